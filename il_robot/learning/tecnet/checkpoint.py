"""TecNet checkpoints: the format, saving, loading, and the model a checkpoint holds.

Read by the trainer (resume, --init-from), the exporter and the tests; it imports neither of them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from il_robot.learning.checkpoints import check_format, read_checkpoint, training_state, write_checkpoint
from il_robot.learning.tecnet.data import Normalisation
from il_robot.learning.tecnet.model import ModelConfig, TecNet

CHECKPOINT_FORMAT = "il_robot.tecnet.checkpoint"
CHECKPOINT_VERSION = 1


def save_checkpoint(path: Path, model: TecNet, optimizer, step: int, cfg, norm: Normalisation, data_info: dict,
                    rng: np.random.Generator, best: dict, train_seconds: float,
                    train_model: TecNet | None = None) -> Path:
    """`model` is what is exported; with a weight average, `train_model` holds the raw weights the optimiser
    goes on from."""
    extra = {} if train_model is None else {"train_model": train_model.state_dict()}
    return write_checkpoint(path, {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
                                   **training_state(step, model, optimizer, cfg, data_info, rng, train_seconds),
                                   "normalisation": norm.to_dict(), "best": best, **extra})


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint dict; tensors only, no pickled code (weights_only)."""
    return check_format(read_checkpoint(path), path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "TecNet")


def model_from_checkpoint(ckpt: dict) -> TecNet:
    model = TecNet(ModelConfig(**ckpt["config"]["model"]))
    model.load_state_dict(ckpt["model"])
    return model.eval()
