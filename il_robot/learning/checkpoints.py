"""Checkpoint files, for every model: atomic writes, weights-only reads, format checks, the training state.

Trainers write checkpoints and exporters read them; both come here (and to their model's own
checkpoint module for its format), so an exporter never imports a trainer.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch


def write_checkpoint(path: str | Path, payload: dict) -> Path:
    """Atomic (write then rename), so an interrupted save never leaves a half checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | Path):
    """torch.load of tensors and plain data only, no pickled code (weights_only), with clear errors."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"no checkpoint at {path}") from None
    except Exception as err:
        raise ValueError(f"{path} is not a readable checkpoint: {type(err).__name__}: {err}") from None


def check_format(ckpt, path: str | Path, fmt: str, version: int, what: str) -> dict:
    """`ckpt` if it is a `what` checkpoint of format `fmt` this code reads (version <= `version`)."""
    if not isinstance(ckpt, dict) or ckpt.get("format") != fmt:
        raise ValueError(f"{path} is not a {what} checkpoint (format {fmt})")
    if ckpt.get("version", 0) > version:
        raise ValueError(f"{path}: checkpoint version {ckpt['version']} is newer than this code reads")
    return ckpt


def training_state(step: int, model: torch.nn.Module, optimizer, cfg, data: dict, rng: np.random.Generator,
                   train_seconds: float) -> dict:
    """What a resumable checkpoint holds besides its format: weights, optimiser, settings, data, random state."""
    return {"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(), "config": asdict(cfg),
            "data": data, "train_seconds": train_seconds,
            "rng": {"numpy": rng.bit_generator.state, "torch": torch.get_rng_state()}}


def restore_training_state(ckpt: dict, model: torch.nn.Module, optimizer, rng: np.random.Generator,
                           weights: str = "model") -> tuple[int, float]:
    """Load a resumable checkpoint's weights (its `weights` entry when present), optimiser and random state;
    returns (step, train_seconds) to go on from."""
    model.load_state_dict(ckpt.get(weights, ckpt["model"]))
    optimizer.load_state_dict(ckpt["optimizer"])
    rng.bit_generator.state = ckpt["rng"]["numpy"]
    torch.set_rng_state(ckpt["rng"]["torch"])
    return ckpt["step"], float(ckpt.get("train_seconds", 0.0))
