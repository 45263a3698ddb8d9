"""TecNet's training settings (config/tecnet.yaml): model, data, loss, optimiser and run sections."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from il_robot.learning.config import fill_config, load_settings
from il_robot.learning.tecnet.data import DataConfig
from il_robot.learning.tecnet.model import ModelConfig


@dataclass
class LossConfig:
    margin: float = 0.1
    embedding_weight: float = 1.0
    support_control_weight: float = 0.1
    query_control_weight: float = 0.1
    correction_control_weight: float = 0.1   # corrective (DAgger) samples, conditioned on the support sentence
    control_loss: str = "mse"       # mse | l1, on normalised actions


@dataclass
class OptimConfig:
    lr: float = 5e-4
    grad_clip: float = 0.0          # max gradient norm; 0 = off
    ema: float = 0.0                # decay of an exponential moving average of the weights, which is what is
                                    # validated, checkpointed as "model" and exported; 0 = off (the raw weights)


@dataclass
class RunConfig:
    steps: int = 20000
    seed: int = 0
    log_every: int = 20
    val_every: int = 500
    checkpoint_every: int = 500
    threads: int = 0                # torch intra-op threads; 0 = the cores this process may use
    export: str = "best"            # which checkpoint goes to onnx/: best (see `better`) | last
    rollout_episodes: int = 0       # closed-loop val: episodes (one per val task) at every validation; 0 = off


@dataclass
class TecNetConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: RunConfig = field(default_factory=RunConfig)


def config_from_dict(values: dict) -> TecNetConfig:
    return fill_config(TecNetConfig, values, "")


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> TecNetConfig:
    """YAML file (sections model/data/loss/optim/train) plus `section.key=value` overrides."""
    return load_settings(TecNetConfig, path, overrides)


def check_config(cfg: TecNetConfig) -> None:
    d = cfg.data
    if d.tasks_per_batch < 2:
        raise ValueError("data.tasks_per_batch must be at least 2 (the other tasks are the negatives)")
    if min(d.support, d.query, d.timesteps_per_demo, d.frame_stride) < 1:
        raise ValueError("data.support, data.query, data.timesteps_per_demo and data.frame_stride must be >= 1")
    if cfg.loss.control_loss not in ("mse", "l1"):
        raise ValueError("loss.control_loss must be 'mse' or 'l1'")
    if cfg.train.export not in ("best", "last"):
        raise ValueError("train.export must be 'best' or 'last'")
    if cfg.train.steps < 1:
        raise ValueError("train.steps must be at least 1")
    if not 0.0 <= cfg.optim.ema < 1.0:
        raise ValueError("optim.ema must be in [0, 1) (0 = off)")
    if not 0 < d.failed_correction_weight < math.inf:
        raise ValueError(f"data.failed_correction_weight must be > 0 and finite (1 = failed and pushed-home "
                         f"episodes alike), got {d.failed_correction_weight!r}")
    if not all(isinstance(r, int) and not isinstance(r, bool) for r in d.correction_rounds):
        raise ValueError(f"data.correction_rounds must be a list of round numbers, got {d.correction_rounds!r}")
