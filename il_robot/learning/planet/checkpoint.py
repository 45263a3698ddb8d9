"""PlaNet checkpoints of either world model: formats, saving, loading, and the model a checkpoint holds.

Read by the trainers (resume, --init-from), the exporter and the tests; it imports neither of them.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from il_robot.learning.checkpoints import check_format, read_checkpoint, training_state, write_checkpoint
from il_robot.learning.planet import positions_config, rssm_config
from il_robot.learning.planet.positions import PositionWorldModel
from il_robot.learning.planet.rssm import PlaNet

RSSM_FORMAT = "il_robot.planet.checkpoint"
RSSM_VERSION = 2            # 2: task-conditioned posterior, position head
POSITIONS_FORMAT = "il_robot.planet.positions.checkpoint"
POSITIONS_VERSION = 1


def save_rssm_checkpoint(path: Path, model: PlaNet, optimizer, step: int, cfg: rssm_config.PlanetConfig,
                         data_info: dict, rng: np.random.Generator, train_seconds: float) -> Path:
    return write_checkpoint(path, {"format": RSSM_FORMAT, "version": RSSM_VERSION,
                                   **training_state(step, model, optimizer, cfg, data_info, rng, train_seconds)})


def save_positions_checkpoint(path: Path, model: PositionWorldModel, cfg: positions_config.PositionsConfig,
                              steps: dict, data_info: dict, train_seconds: float) -> Path:
    """The three parts' step counts and weights (no optimiser: the parts train one after another)."""
    return write_checkpoint(path, {"format": POSITIONS_FORMAT, "version": POSITIONS_VERSION, "kind": "positions",
                                   "step": int(sum(steps.values())), "steps": steps, "model": model.state_dict(),
                                   "config": asdict(cfg), "data": data_info, "train_seconds": train_seconds})


def load_checkpoint(path: str | Path, ckpt: dict | None = None) -> dict:
    """An RSSM checkpoint dict (`ckpt`: one read already), its format and version checked."""
    ckpt = check_format(read_checkpoint(path) if ckpt is None else ckpt, path, RSSM_FORMAT, RSSM_VERSION, "PlaNet")
    if ckpt.get("version", 0) < RSSM_VERSION:
        raise ValueError(f"{path}: checkpoint version {ckpt.get('version')} predates the task-conditioned posterior "
                         f"(version {RSSM_VERSION}); retrain with this code")
    return ckpt


def is_positions_checkpoint(ckpt: dict) -> bool:
    return isinstance(ckpt, dict) and ckpt.get("format") == POSITIONS_FORMAT


def load_either(path: str | Path) -> dict:
    """A checkpoint of either world model: the position trainer's format, else the RSSM's checks."""
    ckpt = read_checkpoint(path)
    return ckpt if is_positions_checkpoint(ckpt) else load_checkpoint(path, ckpt)


def model_from_checkpoint(ckpt: dict) -> tuple[PlaNet, rssm_config.PlanetConfig]:
    cfg = rssm_config.config_from_dict(ckpt["config"])
    model = PlaNet(cfg.model)
    model.load_state_dict(ckpt["model"])
    return model.eval(), cfg


def positions_model_from_checkpoint(ckpt: dict) -> tuple[PositionWorldModel, positions_config.PositionsConfig]:
    if ckpt.get("version", 0) > POSITIONS_VERSION:
        raise ValueError(f"position checkpoint version {ckpt['version']} is newer than this code reads")
    cfg = positions_config.config_from_dict(ckpt["config"])
    model = PositionWorldModel(cfg.model, reward=cfg.reward)
    model.load_state_dict(ckpt["model"])
    return model.eval(), cfg


def world_model_from_checkpoint(ckpt: dict):
    """(model, config) of either world model, by the checkpoint's format."""
    return positions_model_from_checkpoint(ckpt) if is_positions_checkpoint(ckpt) else model_from_checkpoint(ckpt)
