"""TecNet checkpoint -> embedding.onnx + control.onnx + metadata.json, checked against torch.

The runtime (il_robot.policies.tecnet) reads only these three files. The export is
written to OUT.partial and renamed into place once onnxruntime reproduces torch's
outputs on random inputs, so a model directory is either complete and verified or absent.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
import platform
import shutil
import subprocess
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from il_robot.data.bag_format import JOINT_ORDER
from il_robot.learning.tecnet_model import ACTION_DIM, DEMO_CHANNELS, TecNet, state_dim, state_layout
from il_robot.learning.tecnet_train import load_checkpoint, model_from_checkpoint

STATE_NAMES = {"q": [f"{j}/position" for j in JOINT_ORDER], "qd": [f"{j}/velocity" for j in JOINT_ORDER],
               "tip": ["tip/x", "tip/y", "tip/z"]}
STATE_UNITS = {"q": "rad", "qd": "rad/s", "tip": "m (tool tip, base frame)"}

FORMAT = "il_robot.tecnet"
VERSION = 1
OPSET = 17
TOLERANCE = 1e-4
EMBEDDING_FILE, CONTROL_FILE, METADATA_FILE = "embedding.onnx", "control.onnx", "metadata.json"


class ExportError(RuntimeError):
    """The exported graphs do not reproduce the torch model (or could not be written)."""


def _git_commit() -> dict:
    """The source checkout this code runs from, best effort (None outside a git checkout)."""
    repo = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                    capture_output=True, text=True, timeout=5, check=True).stdout.strip())
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def _export(module: torch.nn.Module, args: tuple, path: Path, inputs: list[str], output: str) -> None:
    axes = {name: {0: "N"} for name in [*inputs, output]}
    with warnings.catch_warnings():
        # The TorchScript exporter (no onnxscript needed) is deprecated in favour of the dynamo one;
        # the graph is verified against torch below either way.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), input_names=inputs, output_names=[output], dynamic_axes=axes,
                          opset_version=OPSET, dynamo=False, do_constant_folding=True)


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
    import onnxruntime as ort

    x = _random_inputs(model, batch)
    with torch.no_grad():
        expected = {"embedding": model.embedding(torch.from_numpy(x["frames"])).numpy(),
                    "control": model.control(*(torch.from_numpy(x[k]) for k in ("image", "sentence", "state"))).numpy()}
    diffs = {}
    for name, file, feeds in (("embedding", EMBEDDING_FILE, ["frames"]),
                              ("control", CONTROL_FILE, ["image", "sentence", "state"])):
        session = ort.InferenceSession(str(directory / file), providers=["CPUExecutionProvider"])
        got = session.run(None, {k: x[k] for k in feeds})[0]
        if got.shape != expected[name].shape:
            raise ExportError(f"{file}: onnxruntime output shape {got.shape} != torch {expected[name].shape}")
        diffs[name] = float(np.max(np.abs(got - expected[name])))
    bad = {k: v for k, v in diffs.items() if not v <= tolerance}
    if bad:
        raise ExportError(f"onnxruntime disagrees with torch beyond {tolerance:g}: max abs diff {bad}")
    return diffs


def _check_graphs(directory: Path) -> None:
    try:
        import onnx
    except ImportError:
        return          # onnxruntime's load in verify() still catches a broken graph
    for file in (EMBEDDING_FILE, CONTROL_FILE):
        onnx.checker.check_model(str(directory / file), full_check=True)


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
        "verification": {"max_abs_diff": diffs, "tolerance": TOLERANCE, "runtime": "onnxruntime CPU"},
        "source": {"git": _git_commit(), "torch": torch.__version__, "python": platform.python_version(),
                   "exporter": f"torch.onnx TorchScript exporter, opset {OPSET}"},
    }


@contextmanager
def staged_model_dir(out: Path):
    """A `.partial` sibling to write a model directory into; it replaces `out` only if the block
    succeeds, so a failed or interrupted export never leaves a half model where a policy looks."""
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield partial
        if out.exists():
            shutil.rmtree(out)
        partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def export_tecnet(checkpoint: str | Path, out_dir: str | Path, force: bool = False,
                  tolerance: float = TOLERANCE) -> dict:
    """Write the model directory from a checkpoint; returns its metadata. An existing `out_dir` is
    replaced only with force, and only after the new export has been verified."""
    out = Path(out_dir)
    if out.exists() and not force:
        raise ValueError(f"{out} exists already; use --force to replace it")
    ckpt = load_checkpoint(checkpoint)
    model = model_from_checkpoint(ckpt)
    with staged_model_dir(out) as partial:
        example = _random_inputs(model, 2)
        _export(model.embedding, (torch.from_numpy(example["frames"]),), partial / EMBEDDING_FILE,
                ["frames"], "embedding")
        _export(model.control, tuple(torch.from_numpy(example[k]) for k in ("image", "sentence", "state")),
                partial / CONTROL_FILE, ["image", "sentence", "state"], "action")
        _check_graphs(partial)
        diffs = verify(model, partial, tolerance)
        meta = metadata(ckpt, model, diffs)
        (partial / METADATA_FILE).write_text(json.dumps(meta, indent=2))
    return meta
