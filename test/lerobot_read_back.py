"""Read an exported LeRobotDataset back with LeRobot's own loader; run in the LeRobot venv
(scripts/lerobot_check_venv.sh), not ours. Usage: python lerobot_read_back.py DATASET_DIR OUT.npz

Every frame goes through LeRobotDataset.__getitem__ (parquet row + video frame decoded at its timestamp);
what LeRobot returned is saved for test_lerobot_export.py to compare with the bags.
"""

import importlib
import json
import sys

import numpy as np
import torch
import torch.library


def import_torchvision_without_its_ops() -> None:
    """PyPI's torchvision is a CUDA build whose C++ ops cannot load beside the CPU torch; its import then
    fails registering fake kernels for ops that do not exist. LeRobot's dataset code only needs its Python
    side (transforms), so those registrations are skipped for the import."""
    register_fake = torch.library.register_fake

    def defined(op: str) -> bool:
        namespace, name = op.split("::")
        try:
            getattr(getattr(torch.ops, namespace), name)
            return True
        except (AttributeError, RuntimeError):
            return False

    def register_fake_if_defined(op, func=None, /, **kwargs):
        if isinstance(op, str) and op.startswith("torchvision::") and not defined(op):
            return (lambda f: f) if func is None else func
        return register_fake(op, func, **kwargs)

    torch.library.register_fake = register_fake_if_defined
    try:
        importlib.import_module("torchvision")
    finally:
        torch.library.register_fake = register_fake


def main(root: str, out: str) -> None:
    import_torchvision_without_its_ops()
    import lerobot
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("il_robot/export-check", root=root)
    items = [ds[i] for i in range(len(ds))]
    camera = ds.meta.camera_keys[0]
    episodes = ds.meta.episodes.to_pandas()
    extra = ["task_name", "split", "operator", "skill", "success", "final_distance", "source"]
    summary = {
        "lerobot": lerobot.__version__, "video_backend": ds.video_backend, "len": len(ds),
        "num_episodes": ds.num_episodes, "fps": ds.fps, "camera_keys": ds.meta.camera_keys,
        "shapes": {k: list(v) for k, v in ds.meta.shapes.items()}, "names": ds.meta.names,
        "episode_lengths": episodes["length"].tolist(), "episodes": episodes[extra].to_dict("records"),
        "tasks": [item["task"] for item in items], "stats_keys": sorted(ds.meta.stats),
        "image_item_shape": list(items[0][camera].shape), "image_item_dtype": str(items[0][camera].dtype),
    }
    np.savez_compressed(
        out,
        state=torch.stack([i["observation.state"] for i in items]).numpy(),
        action=torch.stack([i["action"] for i in items]).numpy(),
        image=torch.stack([i[camera] for i in items]).numpy(),          # (N, 3, H, W) float 0..1
        timestamp=torch.stack([i["timestamp"] for i in items]).numpy(),
        frame_index=torch.stack([i["frame_index"] for i in items]).numpy(),
        episode_index=torch.stack([i["episode_index"] for i in items]).numpy(),
        summary=np.array(json.dumps(summary, default=str)))
    print(json.dumps({k: summary[k] for k in ("lerobot", "video_backend", "len", "num_episodes", "fps",
                                              "episode_lengths", "image_item_shape")}))


if __name__ == "__main__":
    main(*sys.argv[1:3])
