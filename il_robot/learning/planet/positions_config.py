"""The position-latent world model's training settings (config/planet_positions.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from il_robot.learning.config import fill_config, load_settings
from il_robot.learning.planet.data import CollectConfig
from il_robot.learning.planet.positions import PositionModelConfig
from il_robot.learning.planet.reward import RewardConfig
from il_robot.learning.planet.rssm_config import ExportConfig
from il_robot.policies.cem import CEMConfig


@dataclass
class PositionDataConfig:
    action_repeat: int = 4          # control ticks per model step (5 Hz model at 20 Hz control)
    action_bound: float = 0.2       # m/s per axis: recorded commands are clipped into it; the model's action unit
    planner_bound: float = 0.12     # m/s per axis: the planner's box (<= action_bound; the expert pushes at 0.10)
    hue_augment: float = 0.5        # share of locator frames whose objects (and task frame) turn by one hue angle


@dataclass
class PositionTrainConfig:
    locator_steps: int = 4000
    locator_batch: int = 32
    attention_weight: float = 1.0   # cross-entropy of the attention map against the target's projected pixel
    attention_sigma: float = 1.0    # cells of the 32x32 map: spread of that target blob
    tip_steps: int = 2000
    tip_batch: int = 512
    dynamics_steps: int = 6000
    dynamics_batch: int = 2048
    lr: float = 1e-3
    seed: int = 0
    threads: int = 0                # torch CPU threads; 0 = all cores this process may use
    log_every: int = 250
    val_frames: int = 512           # val frames for the locator's error
    open_loop_horizon: int = 20     # model steps in the open-loop figure
    eval_episodes: int = 5          # val tasks planned in the simulator at the end (0 = none)


@dataclass
class PositionsConfig:
    model: PositionModelConfig = field(default_factory=PositionModelConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    data: PositionDataConfig = field(default_factory=PositionDataConfig)
    planner: CEMConfig = field(default_factory=CEMConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
    train: PositionTrainConfig = field(default_factory=PositionTrainConfig)
    export: ExportConfig = field(default_factory=ExportConfig)    # the same section as the RSSM's


def config_from_dict(values: dict) -> PositionsConfig:
    return fill_config(PositionsConfig, values, "")


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> PositionsConfig:
    return load_settings(PositionsConfig, path, overrides)


def check_config(cfg: PositionsConfig, init_from: bool = False) -> None:
    t = cfg.train
    least = 0 if init_from else 1
    if min(t.locator_steps, t.tip_steps, t.dynamics_steps) < least or min(t.locator_batch, t.tip_batch,
                                                                          t.dynamics_batch) < 1:
        raise ValueError("train.*_batch must be >= 1 and train.*_steps >= 1 (>= 0 with --init-from: a part with "
                         "0 steps keeps the weights it starts from)")
    if cfg.data.action_repeat < 1 or not cfg.data.action_bound > 0:
        raise ValueError("data.action_repeat must be >= 1 and data.action_bound > 0")
    if not 0 < cfg.data.planner_bound <= cfg.data.action_bound:
        raise ValueError("data.planner_bound must be in (0, data.action_bound]: the model knows no faster commands")
    if cfg.collect.every < 0:
        raise ValueError("collect.every must be >= 0 (0 = no planner episodes)")
    cfg.planner.check()
    cfg.collect.check()
