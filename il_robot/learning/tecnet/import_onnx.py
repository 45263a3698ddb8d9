"""An exported TecNet model directory (ONNX + metadata.json) -> a checkpoint dict to fine-tune from.

A shipped model carries no torch checkpoint, only its graphs; this reads the weights back out of
them, so that `train tecnet --init-from models/tecnet` fine-tunes the shipped model on new demos or
DAgger rounds instead of spending an hour retraining it. The exporter folds two things that have to
be undone: each layer norm's affine weight and bias become anonymous Mul/Add constants after its
InstanceNormalization, and the control net's first conv is split into its image part and its
tiled-sentence part (two Convs). The result is checked: torch on the rebuilt weights must reproduce
the graphs on random inputs (the export tolerance), or nothing is returned.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch

from il_robot.learning.tecnet.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION
from il_robot.learning.tecnet.export import FORMAT, verify
from il_robot.learning.tecnet.model import ModelConfig, TecNet

NORM_INDEX = re.compile(r"norms\.(\d+)/")


def _graph_weights(path: Path) -> dict[str, np.ndarray]:
    """State-dict entries (without the net's prefix) of one exported graph."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    weights = {name: value for name, value in inits.items() if not name.startswith("onnx::")}
    first_conv: list[np.ndarray] = []   # the control net's split first conv: image part, then sentence part
    for node in graph.node:
        consts = [name for name in node.input if name in inits and name.startswith("onnx::")]
        if not consts:
            continue
        if node.op_type == "Conv":
            first_conv.append(inits[consts[0]])
        elif node.op_type in ("Mul", "Add"):
            match = NORM_INDEX.search(node.input[0])
            if not match:
                raise ValueError(f"{path}: constant {consts[0]} of a {node.op_type} outside a layer norm")
            kind = "weight" if node.op_type == "Mul" else "bias"
            weights[f"encoder.norms.{match.group(1)}.{kind}"] = inits[consts[0]].reshape(-1)
        else:
            raise ValueError(f"{path}: unexpected folded constant {consts[0]} of a {node.op_type}")
    if first_conv:
        if len(first_conv) != 2:
            raise ValueError(f"{path}: expected the first conv as 2 parts (image, sentence), found {len(first_conv)}")
        weights["encoder.convs.0.weight"] = np.concatenate(first_conv, axis=1)
    return weights


def checkpoint_from_model_dir(model_dir: str | Path, tolerance: float = 1e-4) -> dict:
    """A checkpoint dict (format of tecnet.checkpoint.save_checkpoint, minus optimizer state) rebuilt from an
    exported model directory; ValueError if its weights cannot be read back exactly."""
    model_dir = Path(model_dir)
    meta_path = model_dir / "metadata.json"
    if not meta_path.is_file():
        raise ValueError(f"{model_dir}: no metadata.json (not an exported TecNet model directory)")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{meta_path}: format {meta.get('format')!r}, not an exported TecNet model")
    try:
        config = meta["training"]["config"]
        model = TecNet(ModelConfig(**config["model"]))
        state = {}
        for net in ("embedding", "control"):
            for name, value in _graph_weights(model_dir / meta["models"][net]["file"]).items():
                state[f"{net}.{name}"] = torch.from_numpy(np.array(value, np.float32))
        model.load_state_dict(state, strict=True)
    except (KeyError, TypeError, RuntimeError) as err:
        raise ValueError(f"{model_dir}: weights do not fit the model its metadata describes: "
                         f"{type(err).__name__}: {err}") from None
    model.eval()
    try:
        verify(model, model_dir, tolerance)
    except Exception as err:
        raise ValueError(f"{model_dir}: rebuilt weights do not reproduce the graphs: {err}") from None
    norm = {"state_mean": meta["state"]["mean"], "state_std": meta["state"]["std"],
            "action_mean": meta["action"]["mean"], "action_std": meta["action"]["std"]}
    return {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "step": int(meta["training"]["steps"]),
            "model": model.state_dict(), "config": config, "normalisation": norm,
            "data": meta["training"].get("data"), "best": meta["training"].get("best"),
            "source": {"model_dir": str(model_dir.resolve()), "created": meta.get("created")}}
