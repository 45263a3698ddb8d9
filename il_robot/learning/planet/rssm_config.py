"""The RSSM world model's training settings (config/planet.yaml): every section of a run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from il_robot.learning.config import fill_config, load_settings
from il_robot.learning.planet.data import CollectConfig
from il_robot.learning.planet.reward import RewardConfig
from il_robot.learning.planet.rssm import LossConfig, ModelConfig
from il_robot.policies.cem import CEMConfig


@dataclass
class DataConfig:
    action_repeat: int = 4          # control ticks per model step (paper: 2-8 by task); 4 = 5 Hz model
    action_bound: float = 0.2       # m/s per axis: the planner's box; recorded actions are clipped into it
    batch_size: int = 50            # B chunks per step (paper 50)
    chunk_length: int = 50          # L model steps per chunk (paper 50)
    hue_augment: float = 0.0        # share of chunks whose objects (and task frame) get one random hue turn


@dataclass
class OptimConfig:
    lr: float = 1e-3                # Adam (paper)
    eps: float = 1e-4
    grad_clip: float = 1000.0       # max global gradient norm


@dataclass
class RunConfig:
    steps: int = 100000
    seed: int = 0
    log_every: int = 20
    eval_every: int = 500           # open-loop prediction on val episodes (val_log.csv)
    checkpoint_every: int = 500
    threads: int = 0                # torch CPU threads; 0 = all cores this process may use
    open_loop_context: int = 5      # model steps filtered before predicting open loop
    open_loop_horizon: int = 20     # model steps predicted open loop (cut to what the episodes hold)
    open_loop_sequences: int = 8    # val episodes in the open-loop figures
    video_sequences: int = 3        # of those, how many go into open_loop.mp4
    encoder_pretrain_steps: int = 0   # a fresh run first trains the encoder alone to find the objects (frames)
    encoder_pretrain_batch: int = 64  # frames per pretraining step


@dataclass
class ExportConfig:
    horizons: list[int] = field(default_factory=lambda: [12])   # imagine graphs besides the planner's


@dataclass
class PlanetConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    planner: CEMConfig = field(default_factory=CEMConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
    train: RunConfig = field(default_factory=RunConfig)
    export: ExportConfig = field(default_factory=ExportConfig)


def config_from_dict(values: dict) -> PlanetConfig:
    return fill_config(PlanetConfig, values, "")


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> PlanetConfig:
    """YAML file (sections as PlanetConfig) plus `section.key=value` overrides; unknown keys are errors."""
    return load_settings(PlanetConfig, path, overrides)


def check_config(cfg: PlanetConfig) -> None:
    d = cfg.data
    if min(d.action_repeat, d.batch_size, d.chunk_length) < 1 or not d.action_bound > 0:
        raise ValueError("data.action_repeat, batch_size, chunk_length must be >= 1 and action_bound > 0")
    if cfg.train.steps < 1:
        raise ValueError("train.steps must be at least 1")
    if cfg.collect.every < 0:
        raise ValueError("collect.every must be >= 0 (0 = no planner episodes)")
    cfg.planner.check()
    cfg.collect.check()
