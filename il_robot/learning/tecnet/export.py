"""TecNet checkpoint -> embedding.onnx + control.onnx + metadata.json, checked against torch.

The runtime (il_robot.policies.tecnet) reads only these three files. Staging, the graph export and
the torch/onnxruntime check are learning/onnx_graphs.py's, as for PlaNet.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from il_robot.data.bag_format import JOINT_ORDER
from il_robot.learning.onnx_graphs import (TOLERANCE, check_agreement, check_graphs, compare, export_graph,
                                           refuse_existing, source, staged_model_dir, verification)
from il_robot.learning.tecnet.checkpoint import load_checkpoint, model_from_checkpoint
from il_robot.learning.tecnet.model import ACTION_DIM, DEMO_CHANNELS, TecNet, state_dim, state_layout

STATE_NAMES = {"q": [f"{j}/position" for j in JOINT_ORDER], "qd": [f"{j}/velocity" for j in JOINT_ORDER],
               "tip": ["tip/x", "tip/y", "tip/z"]}
STATE_UNITS = {"q": "rad", "qd": "rad/s", "tip": "m (tool tip, base frame)"}

FORMAT = "il_robot.tecnet"
VERSION = 1
EMBEDDING_FILE, CONTROL_FILE, METADATA_FILE = "embedding.onnx", "control.onnx", "metadata.json"
CONTROL_INPUTS = ["image", "sentence", "state"]


def _random_inputs(model: TecNet, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    size, dim = model.cfg.image_size, model.cfg.embedding_size
    sentence = rng.normal(size=(batch, dim)).astype(np.float32)
    return {"frames": rng.uniform(0, 255, (batch, DEMO_CHANNELS, size, size)).astype(np.float32),
            "image": rng.uniform(0, 255, (batch, 3, size, size)).astype(np.float32),
            "sentence": (sentence / np.linalg.norm(sentence, axis=1, keepdims=True)).astype(np.float32),
            "state": rng.normal(size=(batch, state_dim(model.cfg))).astype(np.float32)}


def verify(model: TecNet, directory: Path, tolerance: float = TOLERANCE, batch: int = 5) -> dict[str, float]:
    """Max abs difference torch vs onnxruntime per graph, on random inputs with a batch size other
    than the export's (checks the dynamic batch axis too); ExportError past `tolerance`."""
    x = _random_inputs(model, batch)
    with torch.no_grad():
        embedding = model.embedding(torch.from_numpy(x["frames"])).numpy()
        action = model.control(*(torch.from_numpy(x[k]) for k in CONTROL_INPUTS)).numpy()
    diffs = {"embedding": compare(directory / EMBEDDING_FILE, {"frames": x["frames"]}, {"embedding": embedding}),
             "control": compare(directory / CONTROL_FILE, {k: x[k] for k in CONTROL_INPUTS}, {"action": action})}
    return check_agreement({name: max(d.values()) for name, d in diffs.items()}, tolerance)


def metadata(ckpt: dict, model: TecNet, diffs: dict[str, float]) -> dict:
    size, dim = model.cfg.image_size, model.cfg.embedding_size
    norm = ckpt["normalisation"]
    return {
        "format": FORMAT, "version": VERSION, "created": datetime.now(timezone.utc).isoformat(),
        "models": {
            "embedding": {"file": EMBEDDING_FILE,
                          "inputs": {"frames": {"shape": ["N", DEMO_CHANNELS, size, size], "dtype": "float32"}},
                          "outputs": {"embedding": {"shape": ["N", dim], "dtype": "float32"}}},
            "control": {"file": CONTROL_FILE,
                        "inputs": {"image": {"shape": ["N", 3, size, size], "dtype": "float32"},
                                   "sentence": {"shape": ["N", dim], "dtype": "float32"},
                                   "state": {"shape": ["N", state_dim(model.cfg)], "dtype": "float32"}},
                        "outputs": {"action": {"shape": ["N", ACTION_DIM], "dtype": "float32"}}},
        },
        "image": {"height": size, "width": size, "encoding": "rgb8", "layout": "NCHW",
                  "input_range": [0.0, 255.0], "scaling": "x / 127.5 - 1, inside the graphs",
                  "resize": "INTER_AREA to height x width when the camera differs",
                  "demo_frames": "first and last frames of the demo on channels: first RGB, then last RGB"},
        "embedding": {"size": dim, "normalised": True,
                      "sentence": "normalise(mean of the normalised embeddings of the demos)"},
        "state": {"layout": list(state_layout(model.cfg)),
                  "names": [name for part in state_layout(model.cfg) for name in STATE_NAMES[part]],
                  "units": ", ".join(STATE_UNITS[part] for part in state_layout(model.cfg)),
                  "mean": norm["state_mean"], "std": norm["state_std"],
                  "normalise": "(state - mean) / std before control.onnx"},
        "action": {"name": "tip_velocity", "units": "m/s", "frame": "base", "dim": ACTION_DIM,
                   "mean": norm["action_mean"], "std": norm["action_std"],
                   "denormalise": "control.onnx output * std + mean"},
        "training": {"steps": ckpt["step"], "data": ckpt.get("data"), "config": ckpt["config"],
                     "best": ckpt.get("best")},
        "verification": verification(diffs),
        "source": source(),
    }


def export_tecnet(checkpoint: str | Path, out_dir: str | Path, force: bool = False,
                  tolerance: float = TOLERANCE) -> dict:
    """Write the model directory from a checkpoint; returns its metadata. An existing `out_dir` is
    replaced only with force, and only after the new export has been verified."""
    out = Path(out_dir)
    refuse_existing(out, force)
    ckpt = load_checkpoint(checkpoint)
    model = model_from_checkpoint(ckpt)
    with staged_model_dir(out) as partial:
        example = _random_inputs(model, 2)
        export_graph(model.embedding, (torch.from_numpy(example["frames"]),), partial / EMBEDDING_FILE,
                     ["frames"], ["embedding"])
        export_graph(model.control, tuple(torch.from_numpy(example[k]) for k in CONTROL_INPUTS),
                     partial / CONTROL_FILE, CONTROL_INPUTS, ["action"])
        check_graphs([partial / EMBEDDING_FILE, partial / CONTROL_FILE])
        diffs = verify(model, partial, tolerance)
        meta = metadata(ckpt, model, diffs)
        (partial / METADATA_FILE).write_text(json.dumps(meta, indent=2))
    return meta
