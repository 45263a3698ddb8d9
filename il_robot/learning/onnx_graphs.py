"""Writing and checking ONNX model directories, for every exporter (TecNet, PlaNet).

A model directory is written to OUT.partial and renamed into place only once onnxruntime reproduces
torch on random inputs, with another batch size than the export's (so the dynamic batch axis is
checked too): a directory that a policy reads is complete and verified, or absent. Every graph is
exported the same way (TorchScript exporter, opset 17, batch axis N), and every metadata.json says
how it was checked and which source made it.
"""

from __future__ import annotations

import platform
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from il_robot.provenance import git_commit

OPSET = 17
TOLERANCE = 1e-4


class ExportError(RuntimeError):
    """The exported graphs do not reproduce the torch model (or could not be written)."""


def refuse_existing(out: Path, force: bool) -> None:
    if out.exists() and not force:
        raise ValueError(f"{out} exists already; use --force to replace it")


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


def export_graph(module: torch.nn.Module, example: tuple[torch.Tensor, ...], path: Path, inputs: list[str],
                 outputs: list[str]) -> None:
    """One graph with a dynamic batch axis N on every input and output."""
    with warnings.catch_warnings():
        # The TorchScript exporter (no onnxscript needed) is deprecated in favour of the dynamo one;
        # every graph is verified against torch either way.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, str(path), input_names=inputs, output_names=outputs,
                          dynamic_axes={name: {0: "N"} for name in [*inputs, *outputs]}, opset_version=OPSET,
                          dynamo=False, do_constant_folding=True)


def check_graphs(paths: list[Path]) -> None:
    """onnx's full model check where onnx is installed (onnxruntime's load in `compare` catches the rest)."""
    try:
        import onnx
    except ImportError:
        return
    for path in paths:
        onnx.checker.check_model(str(path), full_check=True)


def compare(path: Path, feeds: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> dict[str, float]:
    """Max abs difference per output between onnxruntime on the graph at `path` and torch's `expected`."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    diffs = {}
    for (name, want), got in zip(expected.items(), session.run(list(expected), feeds)):
        if got.shape != want.shape:
            raise ExportError(f"{path.name} {name}: onnxruntime shape {got.shape} != torch {want.shape}")
        diffs[name] = float(np.max(np.abs(got - want)))
    return diffs


def check_agreement(diffs: dict[str, float], tolerance: float = TOLERANCE) -> dict[str, float]:
    bad = {k: v for k, v in diffs.items() if not v <= tolerance}
    if bad:
        raise ExportError(f"onnxruntime disagrees with torch beyond {tolerance:g}: max abs diff {bad}")
    return diffs


def verification(diffs: dict[str, float]) -> dict:
    return {"max_abs_diff": diffs, "tolerance": TOLERANCE, "runtime": "onnxruntime CPU"}


def source() -> dict:
    """The code a model came from: git commit, torch, python, exporter."""
    return {"git": git_commit(), "torch": torch.__version__, "python": platform.python_version(),
            "exporter": f"torch.onnx TorchScript exporter, opset {OPSET}"}
