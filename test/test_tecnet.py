"""TecNet: dataset -> train -> resume -> export -> runtime policy, and the runtime's refusals.

Runtime tests use stub ONNX graphs written here field by field (no torch, no onnx
package needed), so they run on a robot-only install. The training round trip runs
when torch is installed; it checks that onnxruntime reproduces torch and that the
runtime's preprocessing (frame stacking, NCHW, normalisation) is the training one.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from il_robot import topics
from il_robot.data import messages as msg
from il_robot.data.bag_format import JOINT_ORDER, OPERATOR
from il_robot.data.bag_writer import EpisodeBagWriter
from il_robot.policies.base import Observation, PolicyConfig, PolicyLoadError
from il_robot.policies.catalog import make_policy

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(
    not HAS_TORCH, reason="torch not installed: the training/export tests need the training extras "
                          "(IL_ROBOT_EXTRAS=train bash scripts/setup.sh); the runtime tests here run without it")
EMBED = 20


# -- demo bags ------------------------------------------------------------------------------------

def task_colour(task_set: str, index: int) -> tuple[int, int, int]:
    rng = np.random.default_rng([{"train": 1, "val": 2}.get(task_set, 3), index])
    return tuple(int(c) for c in rng.integers(40, 255, 3))


def write_demo_bag(path: Path, task_set: str = "train", index: int = 0, demo: int = 0, frames: int = 8) -> Path:
    """A short fake episode in the demo bag format: a square of the task's colour slides across the image."""
    rng = np.random.default_rng([index, demo, len(task_set)])
    colour = task_colour(task_set, index)
    start, dt = 1.0, 0.05
    stamps = start + dt * np.arange(frames)
    task = {"name": f"{task_set}/{index:03d}", "task_set": task_set, "index": index,
            "target": {"shape": "box" if index % 2 else "cylinder", "rgba": [c / 255 for c in colour] + [1.0]},
            "distractor": {"shape": "box", "rgba": [0.5, 0.5, 0.5, 1.0]}}
    info = {"task": task, "seed": demo, "start_time": start, "episode_id": demo, "episode_duration": frames * dt}
    with EpisodeBagWriter(path) as bag:
        bag.write_msg(topics.EPISODE, "std_msgs/msg/String", start, msg.string(json.dumps(info)))
        bag.write_msg(OPERATOR, "std_msgs/msg/String", start,
                      msg.string(json.dumps({"operator": "test", "skill": "expert"})))
        for t in np.arange(start - 0.01, stamps[-1] + 0.005, 0.01):
            q = 0.1 * np.sin(t + np.arange(7))
            bag.write_msg(topics.JOINT_STATES, "sensor_msgs/msg/JointState", t,
                          msg.joint_state(list(JOINT_ORDER), q, np.cos(t + np.arange(7)), np.zeros(7), t))
        for i, t in enumerate(stamps):
            rgb = np.full((64, 64, 3), 30, np.uint8) + rng.integers(0, 10, (64, 64, 3), dtype=np.uint8)
            x = 4 + i * 40 // frames
            rgb[20:36, x:x + 16] = colour
            bag.write_msg(topics.IMAGE, "sensor_msgs/msg/Image", t, msg.image(rgb, t))
            v = 0.05 * np.array([np.cos(index + 0.3 * i), np.sin(index), 0.1 * (demo - 0.5)])
            bag.write_msg(topics.TIP_VELOCITY, "geometry_msgs/msg/TwistStamped", t, msg.twist_stamped(v, t))
        bag.write_msg(topics.EPISODE_RESULT, "std_msgs/msg/String", stamps[-1], msg.string(json.dumps(
            {"episode_id": demo, "task": task["name"], "seed": demo, "success": True, "final_distance": 0.01,
             "duration": frames * dt})))
    return path


@pytest.fixture(scope="module")
def demo_bags(tmp_path_factory) -> dict[str, list[Path]]:
    root = tmp_path_factory.mktemp("bags")
    plan = {"train": 3, "val": 2}
    return {split: [write_demo_bag(root / f"{split}{i}_d{d}", split, i, d) for i in range(n) for d in range(2)]
            for split, n in plan.items()}


def observation(image: np.ndarray | None = None) -> Observation:
    q = np.linspace(-0.5, 0.5, 7)
    return Observation(0.0, q, np.zeros(7), np.array([0.5, 0.0, 0.1]),
                       np.zeros((64, 64, 3), np.uint8) if image is None else image)


# -- stub ONNX models, written without torch or the onnx package ----------------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _int(field: int, n: int) -> bytes:
    return _varint(field << 3) + _varint(n)


def _bytes(field: int, payload: bytes | str) -> bytes:
    payload = payload.encode() if isinstance(payload, str) else payload
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _tensor(name: str, array) -> bytes:          # onnx.TensorProto, float32
    a = np.asarray(array, np.float32)
    return b"".join(_int(1, d) for d in a.shape) + _int(2, 1) + _bytes(8, name) + _bytes(9, a.tobytes())


def _value_info(name: str, dims: list) -> bytes:  # onnx.ValueInfoProto with a float tensor type
    shape = b"".join(_bytes(1, _int(1, d) if isinstance(d, int) else _bytes(2, d)) for d in dims)
    return _bytes(1, name) + _bytes(2, _bytes(1, _int(1, 1) + _bytes(2, shape)))


def _node(op: str, inputs: list[str], outputs: list[str], **int_attrs: int) -> bytes:
    attrs = b"".join(_bytes(5, _bytes(1, k) + _int(3, v) + _int(20, 2)) for k, v in int_attrs.items())
    return b"".join(_bytes(1, i) for i in inputs) + b"".join(_bytes(2, o) for o in outputs) + _bytes(4, op) + attrs


def _model(nodes: list[bytes], initializers: list[bytes], inputs: list[bytes], outputs: list[bytes]) -> bytes:
    graph = (b"".join(_bytes(1, n) for n in nodes) + _bytes(2, "stub")
             + b"".join(_bytes(5, t) for t in initializers)
             + b"".join(_bytes(11, v) for v in inputs) + b"".join(_bytes(12, v) for v in outputs))
    return _int(1, 8) + _bytes(2, "il_robot test") + _bytes(7, graph) + _bytes(8, _int(2, 13))


def stub_embedding(embed: int = EMBED, channels: int = 6) -> bytes:
    """frames -> mean colour per channel -> linear -> unit vector."""
    w = np.random.default_rng(1).normal(size=(channels, embed)) / 255.0
    return _model([_node("GlobalAveragePool", ["frames"], ["pooled"]), _node("Flatten", ["pooled"], ["flat"], axis=1),
                   _node("MatMul", ["flat", "w"], ["mixed"]), _node("Add", ["mixed", "b"], ["raw"]),
                   _node("LpNormalization", ["raw"], ["embedding"], axis=1, p=2)],
                  [_tensor("w", w), _tensor("b", np.linspace(0.1, 1.0, embed))],
                  [_value_info("frames", ["N", channels, 64, 64])], [_value_info("embedding", ["N", embed])])


def stub_control(embed: int = EMBED, state: int = 14) -> bytes:
    """[mean colour, sentence, state] -> linear -> action."""
    w = np.random.default_rng(2).normal(size=(3 + embed + state, 3)) * 0.1
    return _model([_node("GlobalAveragePool", ["image"], ["pooled"]), _node("Flatten", ["pooled"], ["flat"], axis=1),
                   _node("Concat", ["flat", "sentence", "state"], ["features"], axis=1),
                   _node("MatMul", ["features", "w"], ["action"])],
                  [_tensor("w", w)],
                  [_value_info("image", ["N", 3, 64, 64]), _value_info("sentence", ["N", embed]),
                   _value_info("state", ["N", state])], [_value_info("action", ["N", 3])])


def stub_metadata() -> dict:
    return {
        "format": "il_robot.tecnet", "version": 1,
        "models": {"embedding": {"file": "embedding.onnx", "inputs": {"frames": {"shape": ["N", 6, 64, 64]}},
                                 "outputs": {"embedding": {"shape": ["N", EMBED]}}},
                   "control": {"file": "control.onnx",
                               "inputs": {"image": {"shape": ["N", 3, 64, 64]}, "sentence": {"shape": ["N", EMBED]},
                                          "state": {"shape": ["N", 14]}},
                               "outputs": {"action": {"shape": ["N", 3]}}}},
        "image": {"height": 64, "width": 64}, "embedding": {"size": EMBED},
        "state": {"mean": [0.0] * 14, "std": [1.0] * 14},
        "action": {"name": "tip_velocity", "units": "m/s", "dim": 3, "mean": [0.0] * 3, "std": [0.1] * 3},
    }


def write_stub_model(directory: Path, embedding: bytes | None = None, control: bytes | None = None,
                     meta: dict | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "embedding.onnx").write_bytes(embedding or stub_embedding())
    (directory / "control.onnx").write_bytes(control or stub_control())
    (directory / "metadata.json").write_text(json.dumps(meta or stub_metadata()))
    return directory


@pytest.fixture
def stub_model(tmp_path) -> Path:
    return write_stub_model(tmp_path / "tecnet")


# -- runtime: no torch needed ------------------------------------------------------------------------

def test_policy_acts_from_a_demo_bag(stub_model, demo_bags):
    policy = make_policy("tecnet", PolicyConfig(model_dir=str(stub_model), demos=[str(demo_bags["train"][0])]))
    assert policy.needs_image
    np.testing.assert_allclose(np.linalg.norm(policy.sentence), 1.0, atol=1e-5)
    for image in (np.zeros((64, 64, 3), np.uint8), np.full((120, 160, 3), 200, np.uint8)):
        action = policy.act(observation(image))
        assert action.shape == (3,) and np.all(np.isfinite(action))
    policy.check(observation())
    first, last = np.zeros((64, 64, 3), np.uint8), np.full((64, 64, 3), 255, np.uint8)
    assert policy.embed_frames(first, last).shape == (EMBED,)


def test_k_shot_sentence_is_normalised_mean_of_demo_embeddings(stub_model, demo_bags):
    bags = [str(b) for b in demo_bags["train"][:3]]
    policy = make_policy("tecnet", PolicyConfig(model_dir=str(stub_model), demos=bags))
    embeddings = [policy.model.embed_demo(b) for b in bags]
    mean = np.mean(embeddings, axis=0)
    np.testing.assert_allclose(policy.sentence, mean / np.linalg.norm(mean), atol=1e-6)
    one = make_policy("tecnet", PolicyConfig(model_dir=str(stub_model), demos=bags[:1]))
    assert not np.allclose(one.sentence, policy.sentence)


def test_default_model_dir_is_the_shipped_one(stub_model, demo_bags, monkeypatch):
    import il_robot.policies.tecnet as tecnet

    monkeypatch.setattr(tecnet, "models_dir", lambda: stub_model.parent)
    policy = make_policy("tecnet", PolicyConfig(model_dir="", demos=[str(demo_bags["train"][0])]))
    assert policy.model.dir == stub_model


def test_no_demo_is_refused(stub_model):
    with pytest.raises(PolicyLoadError, match=r"tecnet needs at least one demo bag of the task \(parameter `demo`\)"):
        make_policy("tecnet", PolicyConfig(model_dir=str(stub_model), demos=[]))
    with pytest.raises(PolicyLoadError, match="at least one demo"):
        make_policy("tecnet", PolicyConfig(model_dir=str(stub_model), demos=[""]))


def test_missing_or_broken_model_is_refused(tmp_path, demo_bags):
    demo = [str(demo_bags["train"][0])]
    with pytest.raises(PolicyLoadError, match="model directory .* not found"):
        make_policy("tecnet", PolicyConfig(model_dir=str(tmp_path / "nowhere"), demos=demo))

    no_meta = write_stub_model(tmp_path / "no_meta")
    (no_meta / "metadata.json").unlink()
    with pytest.raises(PolicyLoadError, match="metadata.json missing"):
        make_policy("tecnet", PolicyConfig(model_dir=str(no_meta), demos=demo))

    missing = write_stub_model(tmp_path / "missing")
    (missing / "control.onnx").unlink()
    with pytest.raises(PolicyLoadError, match="control.onnx not found"):
        make_policy("tecnet", PolicyConfig(model_dir=str(missing), demos=demo))

    corrupt = write_stub_model(tmp_path / "corrupt")
    (corrupt / "control.onnx").write_bytes(b"\x08\x07 this is not a protobuf \xff\xfe" * 20)
    with pytest.raises(PolicyLoadError, match="cannot load .*control.onnx"):
        make_policy("tecnet", PolicyConfig(model_dir=str(corrupt), demos=demo))

    truncated = write_stub_model(tmp_path / "truncated")
    data = (truncated / "embedding.onnx").read_bytes()
    (truncated / "embedding.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(PolicyLoadError, match="embedding.onnx"):
        make_policy("tecnet", PolicyConfig(model_dir=str(truncated), demos=demo))

    wrong_format = stub_metadata() | {"format": "something.else"}
    with pytest.raises(PolicyLoadError, match="format 'something.else'"):
        make_policy("tecnet", PolicyConfig(model_dir=str(write_stub_model(tmp_path / "fmt", meta=wrong_format)),
                                           demos=demo))


def test_wrong_shapes_are_refused(tmp_path, demo_bags):
    demo = [str(demo_bags["train"][0])]
    cases = {
        "embedding size": (dict(embedding=stub_embedding(embed=16)), "embedding.*shape"),
        "state size": (dict(control=stub_control(state=12)), "state.*shape"),
        "swapped graphs": (dict(embedding=stub_control(), control=stub_embedding()), "inputs are"),
    }
    for name, (files, pattern) in cases.items():
        directory = write_stub_model(tmp_path / name.replace(" ", "_"), **files)
        with pytest.raises(PolicyLoadError, match=pattern):
            make_policy("tecnet", PolicyConfig(model_dir=str(directory), demos=demo))
    meta = stub_metadata()
    meta["state"]["std"] = [1.0] * 7
    with pytest.raises(PolicyLoadError, match="state normalisation size"):
        make_policy("tecnet", PolicyConfig(model_dir=str(write_stub_model(tmp_path / "norm", meta=meta)),
                                           demos=demo))
    meta = stub_metadata()
    meta["state"]["layout"] = ["q", "qd", "tip"]          # 17 numbers, but the graph reads 14
    with pytest.raises(PolicyLoadError, match="control state size"):
        make_policy("tecnet", PolicyConfig(model_dir=str(write_stub_model(tmp_path / "tip", meta=meta)),
                                           demos=demo))
    meta["state"]["layout"] = ["q", "effort"]
    with pytest.raises(PolicyLoadError, match="state layout"):
        make_policy("tecnet", PolicyConfig(model_dir=str(write_stub_model(tmp_path / "layout", meta=meta)),
                                           demos=demo))


def test_bad_demo_bag_is_refused(stub_model, tmp_path):
    with pytest.raises(PolicyLoadError, match="demo .*nowhere"):
        make_policy("tecnet", PolicyConfig(model_dir=str(stub_model), demos=[str(tmp_path / "nowhere")]))


def test_bad_observations_raise_instead_of_guessing(stub_model, demo_bags):
    policy = make_policy("tecnet", PolicyConfig(model_dir=str(stub_model), demos=[str(demo_bags["train"][0])]))
    obs = observation()
    obs.image = None
    with pytest.raises(ValueError, match="camera image"):
        policy.act(obs)
    obs = observation()
    obs.q = obs.q * np.nan
    with pytest.raises(ValueError, match="NaN"):
        policy.act(obs)
    with pytest.raises(ValueError, match="uint8"):
        policy.act(observation(np.zeros((64, 64, 3), np.float32)))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        policy.act(observation(np.zeros((64, 64), np.uint8)))


def test_device_falls_back_to_available_providers(stub_model, demo_bags, caplog):
    import onnxruntime as ort

    demo = [str(demo_bags["train"][0])]
    policy = make_policy("tecnet", PolicyConfig(model_dir=str(stub_model), demos=demo, device="cuda"))
    assert policy.model.provider in ort.get_available_providers()
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert policy.model.provider == "CPUExecutionProvider"
        assert "not available here; running on CPUExecutionProvider" in caplog.text
    with pytest.raises(PolicyLoadError, match="unknown device 'tpu'"):
        make_policy("tecnet", PolicyConfig(model_dir=str(stub_model), demos=demo, device="tpu"))


def test_runtime_never_imports_torch(stub_model, demo_bags):
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from il_robot.policies.base import Observation, PolicyConfig\n"
        "from il_robot.policies.tecnet import TecNetPolicy\n"
        f"p = TecNetPolicy(PolicyConfig(model_dir={str(stub_model)!r}, demos=[{str(demo_bags['train'][0])!r}]))\n"
        "a = p.act(Observation(0.0, np.zeros(7), np.zeros(7), np.zeros(3), np.zeros((64, 64, 3), np.uint8)))\n"
        "assert a.shape == (3,)\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'il_robot.learning')))\n"
        "print('IMPORTED', bad)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "IMPORTED []" in out.stdout


# -- training, export and the real model: torch needed ------------------------------------------------

SMALL_RUN = ["--set", "data.tasks_per_batch=3", "--set", "data.timesteps_per_demo=4", "--set", "train.log_every=2",
             "--set", "train.val_every=2", "--set", "train.checkpoint_every=2", "--set", "train.threads=1",
             "--set", "data.val_timesteps_per_demo=4", "--set", "train.rollout_episodes=1"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, demo_bags):
    """Dataset from the bags, 4 steps with the shipped config (shrunk by --set), then resumed to 6."""
    from il_robot.cli.main import main
    from il_robot.data.dataset import build_dataset

    if not HAS_TORCH:
        pytest.skip("torch not installed (training extras)")
    root = tmp_path_factory.mktemp("tecnet")
    build_dataset(demo_bags["train"] + demo_bags["val"], root / "data", progress=False)
    run = root / "run"
    args = ["train", "tecnet", "--data", str(root / "data"), "--out", str(run), "--quiet"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_WAIT_POLICY", "PASSIVE")       # what `il-robot train` sets; restored afterwards
        assert main(args + ["--steps", "4"] + SMALL_RUN) == 0
        assert main(args + ["--steps", "6"] + SMALL_RUN) == 2          # the run exists: refuse to clobber it
        assert main(args + ["--steps", "6", "--resume"]) == 0
    return root


@needs_torch
def test_training_writes_checkpoints_logs_plots_and_model(trained_run):
    from il_robot.learning.tecnet.checkpoint import load_checkpoint

    run = trained_run / "run"
    for name in ("checkpoints/last.pt", "checkpoints/best.pt", "train_log.csv", "val_log.csv", "curves.png",
                 "embeddings_val.png", "summary.json", "config.yaml", "onnx/embedding.onnx", "onnx/control.onnx",
                 "onnx/metadata.json"):
        assert (run / name).is_file(), name
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 6
    steps = [int(line.split(",")[0]) for line in (run / "train_log.csv").read_text().splitlines()[1:]]
    assert steps == [2, 4, 6]                     # resumed at 4 without duplicate rows
    val = (run / "val_log.csv").read_text().splitlines()
    assert len(val) == 4 and "val_embedding_accuracy" in val[0]
    rows = list(csv.DictReader(io.StringIO((run / "val_log.csv").read_text())))
    assert all(float(r["val_success_rate"]) in (0.0, 1.0) and float(r["val_final_distance_m"]) > 0 for r in rows)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["steps_per_s"] > 0


@needs_torch
def test_metadata_describes_the_model(trained_run):
    meta = json.loads((trained_run / "run" / "onnx" / "metadata.json").read_text())
    assert meta["format"] == "il_robot.tecnet" and meta["version"] == 1
    assert meta["models"]["embedding"]["inputs"] == {"frames": {"shape": ["N", 6, 64, 64], "dtype": "float32"}}
    assert meta["models"]["embedding"]["outputs"]["embedding"]["shape"] == ["N", 20]
    assert set(meta["models"]["control"]["inputs"]) == {"image", "sentence", "state"}
    assert meta["models"]["control"]["outputs"]["action"]["shape"] == ["N", 3]
    assert len(meta["state"]["mean"]) == len(meta["state"]["std"]) == len(meta["state"]["names"]) == 10
    assert meta["state"]["layout"] == ["q", "tip"] and meta["models"]["control"]["inputs"]["state"]["shape"] == ["N", 10]
    assert meta["action"]["name"] == "tip_velocity" and meta["action"]["units"] == "m/s" and meta["action"]["dim"] == 3
    assert meta["embedding"]["size"] == 20 and meta["image"]["input_range"] == [0.0, 255.0]
    assert meta["training"]["data"]["path"] == str((trained_run / "data").resolve())
    assert meta["training"]["data"]["summary"]["episodes"] == 10 and meta["training"]["steps"] in (2, 4, 6)
    assert meta["source"]["torch"] and "commit" in meta["source"]["git"] and meta["created"]
    assert max(meta["verification"]["max_abs_diff"].values()) <= 1e-4


@needs_torch
def test_onnxruntime_matches_torch(trained_run):
    import onnxruntime as ort
    import torch

    from il_robot.learning.tecnet.checkpoint import load_checkpoint, model_from_checkpoint

    run = trained_run / "run"
    meta = json.loads((run / "onnx" / "metadata.json").read_text())
    best = load_checkpoint(run / "checkpoints" / "best.pt")      # train.export: best
    assert best["step"] == meta["training"]["steps"]
    model = model_from_checkpoint(best)
    rng = np.random.default_rng(3)
    frames = rng.uniform(0, 255, (4, 6, 64, 64)).astype(np.float32)
    image = rng.uniform(0, 255, (7, 3, 64, 64)).astype(np.float32)
    sentence = rng.normal(size=(7, 20)).astype(np.float32)
    state = rng.normal(size=(7, len(meta["state"]["mean"]))).astype(np.float32)
    embedding = ort.InferenceSession(str(run / "onnx" / "embedding.onnx")).run(None, {"frames": frames})[0]
    action = ort.InferenceSession(str(run / "onnx" / "control.onnx")).run(
        None, {"image": image, "sentence": sentence, "state": state})[0]
    with torch.no_grad():
        np.testing.assert_allclose(embedding, model.embedding(torch.from_numpy(frames)).numpy(), atol=1e-4, rtol=0)
        expected = model.control(*(torch.from_numpy(a) for a in (image, sentence, state))).numpy()
    np.testing.assert_allclose(action, expected, atol=1e-4, rtol=0)


@needs_torch
def test_runtime_policy_reproduces_training_preprocessing(trained_run, demo_bags):
    """The policy's embedding of a bag and its action equal what the torch model gives on the dataset's
    arrays for that episode: same frames, channel order, scaling and normalisation."""
    import torch

    from il_robot.data.dataset import load_dataset
    from il_robot.learning.tecnet.data import Normalisation, demo_frames, to_nchw
    from il_robot.learning.tecnet.model import sentence_from
    from il_robot.learning.tecnet.checkpoint import load_checkpoint, model_from_checkpoint
    from il_robot.robot.model import RobotModel

    run = trained_run / "run"
    ckpt = load_checkpoint(run / "checkpoints" / "best.pt")
    model, norm = model_from_checkpoint(ckpt), Normalisation.from_dict(ckpt["normalisation"])
    bags = demo_bags["val"][:2]
    policy = make_policy("tecnet", PolicyConfig(model_dir=str(run / "onnx"), demos=[str(b) for b in bags]))
    dataset = load_dataset(trained_run / "data")
    episodes = {meta["key"]: arrays for meta, arrays in dataset.episodes("val")}
    arrays = [episodes[b.name] for b in bags]
    frames = to_nchw(np.stack([demo_frames(np.stack([a["image"][0], a["image"][-1]])) for a in arrays]))
    with torch.no_grad():
        embeddings = model.embedding(torch.from_numpy(frames))
        sentence = sentence_from(embeddings)
        np.testing.assert_allclose(np.stack(policy.demo_embeddings), embeddings.numpy(), atol=1e-4)
        np.testing.assert_allclose(policy.sentence, sentence.numpy(), atol=1e-4)
        a = arrays[0]
        assert model.cfg.tip_in_state and not model.cfg.joint_velocities_in_state   # the shipped config's layout
        tip = RobotModel.load().tip_pose(a["q"][3])[0]              # what the policy node computes
        state = norm.state(np.concatenate([a["q"][3], tip])[None])
        expected = model.control(torch.from_numpy(to_nchw(a["image"][3:4])), sentence[None],
                                 torch.from_numpy(state)).numpy()[0] * norm.action_std + norm.action_mean
    got = policy.act(Observation(0.0, a["q"][3], a["qd"][3], tip, a["image"][3]))
    np.testing.assert_allclose(got, expected, atol=1e-4)


@needs_torch
def test_export_cli_refuses_to_overwrite_and_checks_agreement(trained_run, tmp_path):
    import torch

    from il_robot.cli.main import main
    from il_robot.learning.onnx_graphs import ExportError
    from il_robot.learning.tecnet.export import verify
    from il_robot.learning.tecnet.checkpoint import load_checkpoint, model_from_checkpoint

    ckpt = trained_run / "run" / "checkpoints" / "last.pt"
    out = tmp_path / "models" / "tecnet"
    assert main(["export", "tecnet", "--checkpoint", str(ckpt), "--out", str(out)]) == 0
    assert main(["export", "tecnet", "--checkpoint", str(ckpt), "--out", str(out)]) == 2
    assert main(["export", "tecnet", "--checkpoint", str(ckpt), "--out", str(out), "--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["control.onnx", "embedding.onnx", "metadata.json"]
    assert not out.with_name("tecnet.partial").exists()
    other = model_from_checkpoint(load_checkpoint(ckpt))
    with torch.no_grad():
        other.control.head[-1].bias += 0.01      # a model the files were not made from
    with pytest.raises(ExportError, match="disagrees with torch"):
        verify(other, out)


@needs_torch
def test_config_errors_are_clear(tmp_path):
    from il_robot.learning.tecnet.config import load_config
    from il_robot.paths import config_file

    cfg = load_config(config_file("tecnet.yaml"))
    assert cfg.model.embedding_size == 20 and cfg.loss.margin == 0.1 and cfg.optim.lr == 5e-4
    with pytest.raises(ValueError, match=r"data: unknown key\(s\) \['task_per_batch'\]"):
        load_config(None, ["data.task_per_batch=4"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("loss:\n  margins: 0.2\n")
    with pytest.raises(ValueError, match="loss: unknown key"):
        load_config(bad)


def test_train_cli_without_torch_says_how_to_install(monkeypatch, tmp_path, capsys):
    from il_robot.cli.main import main

    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    monkeypatch.setitem(sys.modules, "torch", None)        # import torch -> ImportError
    for name in [m for m in sys.modules if m.startswith("il_robot.learning")]:
        monkeypatch.delitem(sys.modules, name)
    assert main(["train", "tecnet", "--data", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    assert "IL_ROBOT_EXTRAS=train" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["train", "tecnet"], ["export", "tecnet"]])
def test_cli_help_needs_no_torch(command):
    code = ("import sys\nfrom il_robot.cli.main import main\n"
            "try:\n    main(sys.argv[1:] + ['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "print('TORCH', 'torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code, *command], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"usage: il-robot {' '.join(command)}" in out.stdout and "TORCH False" in out.stdout


def test_shipped_tecnet_runs_out_of_the_box():
    """policy:=tecnet with no model_dir and no demo: the shipped model on its shipped held-out demo."""
    from il_robot.paths import models_dir
    from il_robot.policies.base import Observation, PolicyConfig
    from il_robot.policies.catalog import make_policy
    from il_robot.robot import panda_like

    if not (models_dir() / "tecnet" / "metadata.json").exists():
        pytest.skip("no TecNet model shipped in models/tecnet")
    policy = make_policy("tecnet", PolicyConfig())
    assert "heldout-000" in policy.demos[0]
    q = np.array(panda_like.HOME_Q)
    action = policy.act(Observation(0.0, q, np.zeros(7), np.zeros(3), np.zeros((64, 64, 3), np.uint8)))
    assert action.shape == (3,) and np.all(np.isfinite(action))


@needs_torch
def test_control_loss_weighs_demos_by_operator_skill():
    """A demo of weight 0 (a poor operator, by default) adds nothing to the control loss."""
    import torch

    from il_robot.learning.tecnet.data import DataConfig, control_weight
    from il_robot.learning.tecnet.model import control_loss

    cfg = DataConfig(control_weights={"okay": 0.5, "poor": 0.0})
    assert [control_weight({"skill": s}, cfg) for s in ("expert", "okay", "poor", None)] == [1.0, 0.5, 0.0, 1.0]
    target = torch.zeros(2, 2, 4, 3)
    predicted = target.clone()
    predicted[1, 1] = 5.0                                   # wrong only on the weight-0 demo
    weight = torch.tensor([[1.0, 0.5], [1.0, 0.0]])
    assert control_loss(predicted, target, "mse", weight).item() == 0.0
    assert control_loss(predicted, target, "mse").item() > 0.0
    predicted[0, 1] = 1.0                                   # wrong by 1 on the weight-0.5 demo
    assert abs(control_loss(predicted, target, "l1", weight).item() - 0.5 / 2.5) < 1e-6


@needs_torch
def test_bench_times_the_control_step(trained_run, demo_bags, tmp_path):
    from il_robot.cli.main import main

    out = tmp_path / "bench.json"
    assert main(["bench", "tecnet", "--tecnet-dir", str(trained_run / "run" / "onnx"), "--tecnet-demo",
                 str(demo_bags["val"][0]), "--ticks", "20", "--json", str(out)]) == 0
    fig = json.loads(out.read_text())["tecnet"]
    assert fig["ticks"] == 20 and 0 < fig["control_step_ms"]["p50"] <= fig["control_step_ms"]["p99"]
    assert fig["onnxruntime_threads"] == 1 and fig["sentence_ms_p50"] > 0


@needs_torch
def test_bench_runs_in_process_episodes_planned_like_eval(trained_run, demo_bags, tmp_path):
    """bench tecnet --episodes: the eval's task/seed plan, each episode on its own task's demo, in MuJoCo."""
    from il_robot.cli.main import main

    demo_dir = tmp_path / "demos"
    demo_dir.mkdir()
    (demo_dir / "heldout-001_demo00_expert").symlink_to(demo_bags["val"][0])
    (demo_dir / "heldout-000_demo00_expert").symlink_to(demo_bags["val"][1])
    out = tmp_path / "bench.json"
    # no --tecnet-demo, and a freshly trained model ships no demo: the timed steps use the dir's first
    assert main(["bench", "tecnet", "--tecnet-dir", str(trained_run / "run" / "onnx"), "--ticks", "5",
                 "--episodes", "2", "--tecnet-demo-dir", str(demo_dir), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["tecnet"]["demo"] == str(demo_dir / "heldout-000_demo00_expert")
    episodes = json.loads(out.read_text())["tecnet"]["episodes"]
    assert episodes["episodes"] == 2 and 0 <= episodes["successes"] <= 2
    rows = episodes["per_episode"]
    assert [(r["task"], r["seed"]) for r in rows] == [("heldout/000", 0), ("heldout/001", 1)]
    assert rows[0]["demos"] == [str(demo_dir / "heldout-000_demo00_expert")]
    assert all(r["final_distance"] > 0 for r in rows)


@needs_torch
def test_dagger_adds_expert_labelled_episodes_that_train_control_only(trained_run, tmp_path):
    """A corrective episode: the model drives, every frame carries the scripted expert's action there;
    the sampler never embeds it but draws control samples from it, and training uses them."""
    import shutil

    import torch

    from il_robot.cli.main import main
    from il_robot.data.dataset import load_dataset
    from il_robot.learning.tecnet import data
    from il_robot.learning.tecnet.checkpoint import load_checkpoint, model_from_checkpoint
    from il_robot.learning.tecnet.config import TecNetConfig, check_config
    from il_robot.learning.tecnet.train import batch_losses
    from il_robot.learning.tecnet.model import state_layout
    from il_robot.policies.tecnet_state import state_size

    dataset = Path(shutil.copytree(trained_run / "data", tmp_path / "data"))
    before = json.loads((dataset / "dataset.json").read_text())["episodes"]
    assert main(["dataset", "dagger", str(dataset), "--model-dir", str(trained_run / "run" / "onnx"),
                 "--num-tasks", "1", "--workers", "1", "--quiet", "--labeller", "memoryless"]) == 0
    episodes = json.loads((dataset / "dataset.json").read_text())["episodes"]
    added = [e for e in episodes if e not in before]
    assert len(added) == 1 and added[0]["skill"] == "correction" and added[0]["split"] == "train"
    assert added[0]["dagger"]["labeller"] == "memoryless"         # recorded with each episode
    with np.load(dataset / added[0]["file"]) as npz:
        assert npz["image"].shape == (added[0]["frames"], 64, 64, 3) and np.all(np.isfinite(npz["action"]))
        assert np.allclose(np.diff(npz["t"]), 0.05) and npz["t"][0] == 0.0

    cfg = TecNetConfig()
    cfg.data.tasks_per_batch, cfg.data.timesteps_per_demo, cfg.data.corrections_per_task = 2, 2, 3
    ckpt = load_checkpoint(trained_run / "run" / "checkpoints" / "last.pt")
    layout = state_layout(model_from_checkpoint(ckpt).cfg)
    demos = data.load_demos(load_dataset(dataset), "train", cfg.data, layout)
    norm = data.Normalisation.from_dict(ckpt["normalisation"])
    sampler = data.TaskBatchSampler(demos, cfg.data, norm, np.random.default_rng(0))
    assert all(not data.is_correction(d.meta) for task in sampler.tasks for d in task)
    task_with = [i for i, pool in enumerate(sampler.corrections) if pool]
    assert len(task_with) == 1
    # A batch draws correction samples from those of its tasks that have corrective episodes: make both that task.
    sampler.tasks, sampler.corrections = [sampler.tasks[task_with[0]]] * 2, [sampler.corrections[task_with[0]]] * 2
    batch = sampler.sample()
    assert batch["correction_images"].shape == (2, 3, 3, 64, 64) and batch["correction_state"].shape == (2, 3, state_size(layout))
    losses = batch_losses(model_from_checkpoint(ckpt).train(), {k: torch.from_numpy(v) for k, v in batch.items()},
                          cfg)
    assert losses["correction_control_loss"].item() > 0

    # data.failed_correction_weight: a failed corrective episode is drawn that much likelier than one pushed home
    ok = sampler.corrections[0][0]
    failed = dataclasses.replace(ok, key="failed", meta={**ok.meta, "success": False})
    unknown = dataclasses.replace(ok, key="unknown", meta={**ok.meta, "success": None})   # a bag without a result
    pool = [dataclasses.replace(ok, meta={**ok.meta, "success": True}), failed, unknown]
    for weight, share in ((1.0, 1 / 3), (8.0, 0.8)):
        sampler.cfg.failed_correction_weight = weight
        draws = sampler._draw_episodes(pool, 6000)
        assert abs(np.mean(draws == 1) - share) < 0.03 and abs(np.mean(draws == 0) - np.mean(draws == 2)) < 0.03
    sampler.cfg.failed_correction_weight = 1.0
    for bad in (0.0, float("inf"), float("nan")):
        cfg.data.failed_correction_weight = bad
        with pytest.raises(ValueError, match="failed_correction_weight must be > 0 and finite"):
            check_config(cfg)
    cfg.data.failed_correction_weight = 1.0

    # data.correction_rounds: a round the dataset lacks is refused before loading; a listed one is kept,
    # an unlisted one dropped, and demos are never filtered by it
    round_ = added[0]["dagger"]["round"]
    loaded = load_dataset(dataset)
    cfg.data.correction_rounds = [round_ + 1]
    with pytest.raises(ValueError, match=rf"correction_rounds \[{round_ + 1}\]: the dataset has DAgger rounds \[{round_}\]"):
        data.check_correction_rounds(loaded.meta, cfg.data)
    assert not data.keep_demo(added[0], cfg.data) and data.keep_demo(before[0], cfg.data)
    cfg.data.correction_rounds = [round_]
    data.check_correction_rounds(loaded.meta, cfg.data)
    kept = data.load_demos(loaded, "train", cfg.data, layout)
    assert sum(data.is_correction(d.meta) for d in kept) == 1 and len(kept) == len(demos)


@needs_torch
def test_a_dagger_round_outlives_a_worker_killed_mid_round(trained_run, tmp_path):
    """A simulation worker that dies (SIGKILL here; a crash in native code in the wild) breaks its pool:
    the round runs what was not done in new workers, and every task gets its episode, indexed once."""
    import multiprocessing
    import shutil
    import signal
    import threading

    from il_robot.learning.dagger import collect_corrections

    dataset = Path(shutil.copytree(trained_run / "data", tmp_path / "data"))
    killed = []

    def kill_one_worker():
        while not killed:
            workers = [p for p in multiprocessing.active_children() if p.pid]
            if workers:
                os.kill(workers[0].pid, signal.SIGKILL)
                killed.append(workers[0].pid)
            else:
                threading.Event().wait(0.01)

    killer = threading.Thread(target=kill_one_worker, daemon=True)
    killer.start()
    summary = collect_corrections(dataset, trained_run / "run" / "onnx", 5, workers=2, progress=False,
                                  labeller="memoryless")
    killer.join(timeout=60)
    assert killed
    tasks = {e["task"]["index"] for e in json.loads((dataset / "dataset.json").read_text())["episodes"]
             if e["split"] == "train" and e.get("skill") != "correction"}
    keys = [e["key"] for e in json.loads((dataset / "dataset.json").read_text())["episodes"]
            if e.get("dagger", {}).get("round") == 5]
    assert summary["episodes"] == len(tasks) == len(keys) == len(set(keys))


def test_state_vector_is_one_layout_for_episodes_and_single_observations():
    """Training (episodes) and the runtime (one observation) build the same vector; gaps are errors."""
    from il_robot.policies.tecnet_state import LAYOUTS, columns_of, state_size, state_vector

    q, qd, tip = np.arange(14.0).reshape(2, 7), -np.arange(14.0).reshape(2, 7), np.ones((2, 3))
    episode = state_vector(LAYOUTS[1], q, qd, tip)
    assert episode.shape == (2, state_size(LAYOUTS[1])) == (2, 17)
    assert np.array_equal(state_vector(LAYOUTS[1], q[1], qd[1], tip[1]), episode[1])
    assert np.array_equal(state_vector(LAYOUTS[0], q, qd), episode[:, :14])
    with pytest.raises(ValueError, match="tip"):
        state_vector(LAYOUTS[1], q[0], qd[0])
    with pytest.raises(ValueError, match="expected 7"):
        state_vector(LAYOUTS[0], q[0, :6], qd[0])
    assert np.array_equal(episode[:, columns_of(LAYOUTS[1], LAYOUTS[2])], state_vector(LAYOUTS[2], q, qd, tip))
    with pytest.raises(ValueError, match="not a subset"):
        columns_of(LAYOUTS[2], LAYOUTS[1])


@needs_torch
def test_keypoints_locate_a_bright_spot_and_gain_sharpens_them():
    """Spatial softmax reads where a feature is; on unit-scale features only a gain makes it precise."""
    import torch

    from il_robot.learning.tecnet.model import ConvEncoder, ModelConfig, spatial_softmax

    h = torch.zeros(1, 1, 32, 32)
    h[0, 0, 8, 24] = 3.0                                  # a normalised feature peak, row 8, column 24
    want = torch.tensor([2 * 24 / 31 - 1, 2 * 8 / 31 - 1])
    flat = (spatial_softmax(h)[0] - want).abs().max()
    sharp = (spatial_softmax(h, torch.tensor([1.5]))[0] - want).abs().max()
    assert sharp < 0.05 < flat
    encoder = ConvEncoder(3, ModelConfig(keypoint_layers=(1, 2)), keypoint_layers=(2, 1))
    assert encoder.keypoint_layers == (1, 2)
    assert encoder(torch.zeros(2, 3, 64, 64)).shape == (2, encoder.out_features)
    with pytest.raises(ValueError, match="keypoint_layers"):
        ConvEncoder(3, ModelConfig(), keypoint_layers=(5,))


def test_control_images_keep_their_place_while_demo_frames_shift():
    """The camera is fixed: the control net's images are not shifted unless asked; the embedded frames are."""
    from il_robot.learning.tecnet.data import DataConfig, Demo, Normalisation, TaskBatchSampler

    rng = np.random.default_rng(0)
    demos = []
    for task in range(3):
        for j in range(2):
            images = rng.integers(0, 255, (5, 16, 16, 3), dtype=np.uint8)
            demos.append(Demo(f"t{task}_{j}", f"t{task}", {"skill": "expert"}, images[[0, -1]], images,
                              np.zeros((5, 17), np.float32), np.zeros((5, 3), np.float32)))
    norm = Normalisation.from_demos(demos)
    originals = {d.images[t].tobytes() for d in demos for t in range(5)}
    cfg = DataConfig(tasks_per_batch=3, timesteps_per_demo=4, embedding_augment_shift=3, control_augment_shift=0)
    batch = TaskBatchSampler(demos, cfg, norm, np.random.default_rng(1)).sample()
    control = np.moveaxis(batch["images"], -3, -1).astype(np.uint8).reshape(-1, 16, 16, 3)
    assert all(image.tobytes() in originals for image in control)
    ends = {np.concatenate([d.ends[0], d.ends[1]], -1).tobytes() for d in demos}
    frames = np.moveaxis(batch["frames"], -3, -1).astype(np.uint8).reshape(-1, 16, 16, 6)
    assert not all(f.tobytes() in ends for f in frames)


def test_task_hue_augment_recolours_objects_alike_within_a_task_and_keeps_the_scene():
    """A turned task is a new colour of target in every one of its frames; table and goal stay as they are."""
    from il_robot.learning.augment import turn_hue

    image = np.zeros((1, 4, 4, 3), np.uint8)
    image[..., :] = (140, 110, 80)              # table brown, saturation about 110/255... kept below the threshold
    image[0, 0, 0] = (255, 80, 0)               # an orange object
    image[0, 1, 1] = (40, 230, 60)              # the green goal disc
    turned = turn_hue(np.repeat(image, 2, 0), np.array([60, 0]))
    assert np.array_equal(turned[1], image[0])                        # no turn: untouched
    assert np.array_equal(turned[0, 1:, :], image[0, 1:, :]) and np.array_equal(turned[0, 0, 1:], image[0, 0, 1:])
    r, g, b = turned[0, 0, 0].astype(int)
    assert g > r and g > b                      # orange turned by 120 degrees: green


def test_sampler_turns_each_task_by_one_hue_for_all_its_demos():
    from il_robot.learning.tecnet.data import DataConfig, Demo, Normalisation, TaskBatchSampler

    orange = np.zeros((3, 8, 8, 3), np.uint8)
    orange[..., :] = (255, 80, 0)
    demos = [Demo(f"t{t}_{j}", f"t{t}", {"skill": "expert"}, orange[:2], orange, np.zeros((3, 17), np.float32),
                  np.zeros((3, 3), np.float32)) for t in range(4) for j in range(2)]
    cfg = DataConfig(tasks_per_batch=4, timesteps_per_demo=3, embedding_augment_shift=0, task_hue_augment=1.0)
    batch = TaskBatchSampler(demos, cfg, Normalisation.from_demos(demos), np.random.default_rng(3)).sample()
    colours = batch["images"][..., 0, 0]                  # (tasks, demos, timesteps, rgb) of one pixel
    frames = batch["frames"][..., 0, 0]                   # (tasks, demos, 6)
    for task in range(4):
        assert len({tuple(c) for c in colours[task].reshape(-1, 3)}) == 1         # one colour per task
        assert all(tuple(f[:3]) == tuple(colours[task, 0, 0]) for f in frames[task])
    assert len({tuple(colours[t, 0, 0]) for t in range(4)}) > 1                   # tasks differ


def test_idle_frames_are_thinned_from_control_samples():
    """Standing-still frames (the seconds after a push) make up only `idle_keep` of what control sees."""
    from il_robot.learning.tecnet.data import Demo, control_frames

    action = np.zeros((1000, 3), np.float32)
    action[:300, 0] = 0.1                                   # 300 moving frames, then 700 standing still
    demo = Demo("d", "t", {}, np.zeros((2, 4, 4, 3), np.uint8), np.zeros((1000, 4, 4, 3), np.uint8),
                np.zeros((1000, 17), np.float32), action)
    frames = control_frames(demo, 0.2, np.random.default_rng(0))
    assert set(range(300)) <= set(frames)
    assert 100 < np.sum(frames >= 300) < 180                # about 0.2 x 700
    assert len(control_frames(demo, 1.0, np.random.default_rng(0))) == 1000


@needs_torch
def test_init_from_starts_a_new_run_from_a_checkpoint_with_new_settings(trained_run, tmp_path):
    from il_robot.cli.main import main
    from il_robot.learning.tecnet.checkpoint import load_checkpoint

    source = trained_run / "run" / "checkpoints" / "last.pt"
    out = tmp_path / "finetune"
    assert main(["train", "tecnet", "--data", str(trained_run / "data"), "--out", str(out), "--quiet", "--no-export",
                 "--init-from", str(source), "--steps", "1"] + SMALL_RUN + ["--set", "data.idle_keep=0.5"]) == 0
    new, old = load_checkpoint(out / "checkpoints" / "last.pt"), load_checkpoint(source)
    assert new["step"] == 1 and new["config"]["data"]["idle_keep"] == 0.5
    assert new["config"]["model"] == old["config"]["model"] and new["normalisation"] == old["normalisation"]
    assert new["data"]["init_from"]["step"] == old["step"]
    assert main(["train", "tecnet", "--data", str(trained_run / "data"), "--out", str(out), "--resume",
                 "--init-from", str(source)]) == 2                  # --resume keeps the run's own weights


@needs_torch
def test_joint_velocities_can_be_dropped_from_a_trained_model(trained_run, tmp_path, demo_bags):
    """qd lets a policy copy its own motion (and stand still once still); a fine-tune can drop it, and the
    runtime then feeds q and the tip position only."""
    from il_robot.cli.main import main
    from il_robot.learning.tecnet.checkpoint import load_checkpoint

    data_dir = str(trained_run / "data")
    assert main(["train", "tecnet", "--data", data_dir, "--out", str(tmp_path / "qd"), "--quiet", "--no-export",
                 "--steps", "1"] + SMALL_RUN + ["--set", "model.joint_velocities_in_state=true"]) == 0
    source = tmp_path / "qd" / "checkpoints" / "last.pt"
    assert len(load_checkpoint(source)["normalisation"]["state_mean"]) == 17
    out = tmp_path / "no_qd"
    assert main(["train", "tecnet", "--data", data_dir, "--out", str(out), "--quiet",
                 "--init-from", str(source), "--steps", "1"] + SMALL_RUN
                + ["--set", "model.joint_velocities_in_state=false"]) == 0
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ckpt["config"]["model"]["joint_velocities_in_state"] is False
    assert len(ckpt["normalisation"]["state_mean"]) == 10
    meta = json.loads((out / "onnx" / "metadata.json").read_text())
    assert meta["state"]["layout"] == ["q", "tip"] and len(meta["state"]["names"]) == 10
    policy = make_policy("tecnet", PolicyConfig(model_dir=str(out / "onnx"), demos=[str(demo_bags["val"][0])]))
    action = policy.act(Observation(0.0, np.zeros(7), np.full(7, np.nan), np.array([0.5, 0.0, 0.1]),
                                    np.zeros((64, 64, 3), np.uint8)))
    assert action.shape == (3,) and np.all(np.isfinite(action))      # qd is not read, so its NaN is harmless


@needs_torch
def test_init_from_an_exported_model_directory_reads_its_weights_back(trained_run, tmp_path):
    """A shipped model has graphs, not a checkpoint: --init-from MODEL_DIR rebuilds the torch weights from
    the ONNX graphs (layer norms and the split first conv included) and fine-tunes from them."""
    from il_robot.cli.main import main
    from il_robot.learning.tecnet.import_onnx import checkpoint_from_model_dir
    from il_robot.learning.tecnet.checkpoint import load_checkpoint

    exported = trained_run / "run" / "onnx"
    meta = json.loads((exported / "metadata.json").read_text())
    source = load_checkpoint(json.loads((trained_run / "run" / "summary.json").read_text())["onnx"]["checkpoint"])
    rebuilt = checkpoint_from_model_dir(exported)
    assert rebuilt["step"] == meta["training"]["steps"]
    assert set(rebuilt["model"]) == set(source["model"])
    for name, value in source["model"].items():
        assert np.allclose(rebuilt["model"][name].numpy(), value.numpy(), atol=1e-6), name
    out = tmp_path / "from_onnx"
    assert main(["train", "tecnet", "--data", str(trained_run / "data"), "--out", str(out), "--quiet",
                 "--no-export", "--init-from", str(exported), "--steps", "1"] + SMALL_RUN) == 0
    assert load_checkpoint(out / "checkpoints" / "last.pt")["normalisation"] == rebuilt["normalisation"]


def test_shipped_tecnet_weights_can_be_read_back_for_fine_tuning():
    from il_robot.paths import models_dir

    if not HAS_TORCH or not (models_dir() / "tecnet" / "metadata.json").exists():
        pytest.skip("needs torch and the shipped models/tecnet")
    from il_robot.learning.tecnet.import_onnx import checkpoint_from_model_dir

    ckpt = checkpoint_from_model_dir(models_dir() / "tecnet")   # raises unless torch reproduces the graphs
    assert ckpt["model"]["control.encoder.convs.0.weight"].shape[1] == 3 + EMBED


def test_import_refuses_a_directory_that_is_not_a_tecnet_export(tmp_path):
    if not HAS_TORCH:
        pytest.skip("torch not installed (training extras)")
    from il_robot.learning.tecnet.import_onnx import checkpoint_from_model_dir

    with pytest.raises(ValueError, match="no metadata.json"):
        checkpoint_from_model_dir(tmp_path)
    (tmp_path / "metadata.json").write_text(json.dumps({"format": "il_robot.planet"}))
    with pytest.raises(ValueError, match="not an exported TecNet"):
        checkpoint_from_model_dir(tmp_path)


@needs_torch
def test_weight_average_is_what_is_checkpointed_and_resumed(trained_run, tmp_path):
    """optim.ema: the average is validated, saved as "model" and exported; the raw weights ride along for
    --resume, which goes on from them (not from the average)."""
    import torch

    from il_robot.cli.main import main
    from il_robot.learning.tecnet.checkpoint import load_checkpoint
    from il_robot.learning.tecnet.train import WeightAverage
    from il_robot.learning.tecnet.model import ModelConfig, TecNet

    model = TecNet(ModelConfig(image_size=16, conv_layers=2, fc_units=8))
    average = WeightAverage(model, 0.9)
    first = [p.clone() for p in average.model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    average.update(model, step=1)  # ramped decay at step 1: min(0.9, 2/11) -> moves 9/11 of the way
    for avg, start in zip(average.model.parameters(), first):
        assert torch.allclose(avg, start + 9 / 11, atol=1e-5)

    out = tmp_path / "ema"
    args = ["train", "tecnet", "--data", str(trained_run / "data"), "--out", str(out), "--quiet", "--no-export"]
    assert main(args + ["--steps", "2"] + SMALL_RUN + ["--set", "optim.ema=0.99"]) == 0
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert set(ckpt["train_model"]) == set(ckpt["model"])
    assert any(not torch.equal(ckpt["train_model"][k], ckpt["model"][k]) for k in ckpt["model"])
    assert main(args + ["--steps", "3", "--resume"]) == 0
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == 3
    bad = ["train", "tecnet", "--data", str(trained_run / "data"), "--out", str(tmp_path / "bad"), "--quiet"]
    assert main(bad + ["--steps", "1", "--set", "optim.ema=1.0"]) == 2          # out of range: refused
    assert not (tmp_path / "bad").exists()
