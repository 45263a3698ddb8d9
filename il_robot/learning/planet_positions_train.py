"""Train the position-latent PlaNet world model (planet_positions.py) on the PlaNet episode directory.

Three parts, each on what it needs, in this order:
  1. locator + task vector, on single frames (hue-turned like the RSSM's chunks): the target's centre
     in metres, and where it is in the picture (the camera's pinhole projection, a cross-entropy on the
     attention map), so the map peaks on the target rather than spreading over the table;
  2. tip head, on (q, tip) pairs of every frame;
  3. dynamics, on one-model-step transitions of tip and objects (target *and* distractor: the physics
     of a push does not know roles). Every `collect.every` dynamics steps the planner, on the model
     being trained and with exploration noise, acts one episode on a train task; it joins the data
     directory and the transitions (the PlaNet loop).
Then val tasks are planned in the simulator (success rate into the summary), the open-loop figure is
drawn and the model exported.

OUT gets: checkpoints/last.pt, config.yaml, train_log.csv, curves.png, open_loop.csv + open_loop.png
(target and tip error against steps predicted open loop), summary.json, onnx/.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm import tqdm

from il_robot.learning import planet_data as data
from il_robot.learning.planet_data import CollectConfig
from il_robot.learning.planet_positions import MAP, PositionBackend, PositionModelConfig, PositionWorldModel
from il_robot.learning.planet_reward import RewardConfig
from il_robot.learning.planet_train import PlannerPolicy, cached_stack, read_checkpoint
from il_robot.learning.config import fill_config, read_config_values
from il_robot.learning.run_loop import CsvLog, set_threads
from il_robot.policies.cem import CEMConfig
from il_robot.policies.planet import LatentMPC
from il_robot.sim.scene import camera_pixels
from il_robot.sim.tasks import GOAL_XY

CHECKPOINT_FORMAT = "il_robot.planet.positions.checkpoint"
CHECKPOINT_VERSION = 1
CONTROL_RATE_HZ = 20.0
IMAGE = 64
LOG_COLUMNS = ("phase", "step", "wall_time", "loss", "train_error", "val_error", "planner_final_distance")


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
class PositionExportConfig:
    horizons: list[int] = field(default_factory=lambda: [12])


@dataclass
class PositionsConfig:
    model: PositionModelConfig = field(default_factory=PositionModelConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    data: PositionDataConfig = field(default_factory=PositionDataConfig)
    planner: CEMConfig = field(default_factory=CEMConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
    train: PositionTrainConfig = field(default_factory=PositionTrainConfig)
    export: PositionExportConfig = field(default_factory=PositionExportConfig)


def config_from_dict(values: dict) -> PositionsConfig:
    return fill_config(PositionsConfig, values, "")


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> PositionsConfig:
    return config_from_dict(read_config_values(path, overrides))


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


# -- checkpoints -----------------------------------------------------------------------------------

def save_checkpoint(path: Path, model: PositionWorldModel, cfg: PositionsConfig, steps: dict, data_info: dict,
                    train_seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "kind": "positions",
                "step": int(sum(steps.values())), "steps": steps, "model": model.state_dict(),
                "config": asdict(cfg), "data": data_info, "train_seconds": train_seconds}, tmp)
    os.replace(tmp, path)


def is_positions_checkpoint(ckpt: dict) -> bool:
    return isinstance(ckpt, dict) and ckpt.get("format") == CHECKPOINT_FORMAT


def model_from_checkpoint(ckpt: dict) -> tuple[PositionWorldModel, PositionsConfig]:
    if ckpt.get("version", 0) > CHECKPOINT_VERSION:
        raise ValueError(f"position checkpoint version {ckpt['version']} is newer than this code reads")
    cfg = config_from_dict(ckpt["config"])
    model = PositionWorldModel(cfg.model, reward=cfg.reward)
    model.load_state_dict(ckpt["model"])
    return model.eval(), cfg


# -- data --------------------------------------------------------------------------------------------

def transitions(episodes: list[data.EpisodeData], repeat: int, bound: float) -> np.ndarray:
    """(N, 15) rows tip, object, command, previous command (both in bounds), next tip, next object: one
    model step from every frame, for the target and the distractor of each episode."""
    rows = []
    for e in episodes:
        a = e.arrays
        t = np.arange(repeat, e.length - repeat)
        if len(t) == 0:
            continue
        command = data.model_step_actions(a["action"], t + repeat, repeat, bound) / bound
        previous = data.model_step_actions(a["action"], t, repeat, bound) / bound
        for obj in ("target", "distractor"):
            rows.append(np.concatenate([a["tip"][t], a[obj][t], command, previous, a["tip"][t + repeat],
                                        a[obj][t + repeat]], axis=1))
    return np.concatenate(rows).astype(np.float32)


def _rows(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return x[:, 0:3], x[:, 3:6], x[:, 6:9], x[:, 9:12], x[:, 12:15], x[:, 15:18]


def dynamics_loss(model: PositionWorldModel, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss in cm^2, mean object xy error in m) of one model step."""
    tip, obj, command, previous, next_tip, next_obj = _rows(x)
    tip1, obj1 = model.dynamics(tip, obj, command, previous)
    loss = ((tip1 - next_tip) ** 2).sum(-1) + ((obj1 - next_obj)[:, :2] ** 2).sum(-1)
    return loss.mean() * 1e4, (obj1 - next_obj)[:, :2].norm(dim=-1).mean()


def attention_target(positions: np.ndarray, sigma: float) -> torch.Tensor:
    """(N, 32, 32) normalised Gaussian blob at the camera pixel of each target centre (N, 3)."""
    uv = torch.as_tensor(camera_pixels(positions, IMAGE, IMAGE) * (MAP / IMAGE), dtype=torch.float32)
    cells = torch.arange(MAP, dtype=torch.float32) + 0.5
    blob = torch.exp(-((cells[None, None, :] - uv[:, 0, None, None]) ** 2
                       + (cells[None, :, None] - uv[:, 1, None, None]) ** 2) / (2 * sigma ** 2))
    return blob / blob.sum((1, 2), keepdim=True).clamp_min(1e-12)


def _nchw(x: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(x, dtype=torch.float32).permute(0, 3, 1, 2)


def locator_loss(model: PositionWorldModel, batch: dict, cfg: PositionTrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    loc = model.locator
    target = torch.as_tensor(batch["position"][:, 3:6])
    logits = loc.logits(_nchw(batch["image"]), loc.task_vector(_nchw(batch["task_frame"])))
    predicted = loc.position(logits)
    loss = (((predicted - target) / loc.position_std) ** 2).sum(-1).mean()
    if cfg.attention_weight > 0:
        blob = attention_target(batch["position"][:, 3:6], cfg.attention_sigma)
        log_attention = torch.log_softmax(logits.flatten(1), dim=1).view_as(logits)
        loss = loss + cfg.attention_weight * -(blob * log_attention).sum((1, 2)).mean()
    return loss, (predicted - target)[:, :2].norm(dim=-1)


# -- planner episodes -------------------------------------------------------------------------------------

def plan_episode(model: PositionWorldModel, cfg: PositionsConfig, task, task_frame: np.ndarray, seed: int,
                 noise: float, stack_cache: dict) -> tuple[dict, dict]:
    """One episode of the planner on the torch model in the simulator (in-process control stack)."""
    stack = cached_stack(stack_cache, task)
    backend = PositionBackend(model)
    mpc = LatentMPC(backend, cfg.planner, cfg.data.planner_bound, cfg.data.action_repeat, noise, seed)
    model.eval()
    try:
        return data.run_episode(stack, PlannerPolicy(mpc, backend.task_vector(task_frame)), seed,
                                cfg.collect.episode_duration, "planner")
    finally:
        model.train()


# -- open loop ------------------------------------------------------------------------------------------

@torch.no_grad()
def open_loop(model: PositionWorldModel, episodes: list[data.EpisodeData], cfg: PositionsConfig) -> dict | None:
    """Target and tip xy error against steps predicted open loop with the recorded commands, from every
    4th frame of the val episodes: started from the true positions (the dynamics alone) and from what the
    locator and tip head read off that frame (what the planner starts from); a still target beside them."""
    r, bound, horizon = cfg.data.action_repeat, cfg.data.action_bound, cfg.train.open_loop_horizon
    frames = data.TaskFrames(episodes)
    rng = np.random.default_rng(0)
    starts, rows = [], []
    for i, e in enumerate(episodes):
        t0 = np.arange(r, e.length - horizon * r, 4)
        if len(t0) == 0:
            continue
        task = model.task_vector(_nchw(frames.frame(i, rng)[None]))
        a = e.arrays
        joints = torch.as_tensor(np.concatenate([a["q"], a["qd"]], 1)[t0], dtype=torch.float32)
        located = model.locator(_nchw(a["image"][t0]), task.expand(len(t0), -1))
        previous = data.model_step_actions(a["action"], t0, r, bound)
        actions = np.stack([data.model_step_actions(a["action"], t0 + (k + 1) * r, r, bound)
                            for k in range(horizon)], 1)
        truth = np.stack([a["target"][t0 + (k + 1) * r] for k in range(horizon)], 1)
        tip_truth = np.stack([a["tip"][t0 + (k + 1) * r] for k in range(horizon)], 1)
        for start in ("true", "located"):
            tip = torch.as_tensor(a["tip"][t0]) if start == "true" else model.tip(joints)
            target = torch.as_tensor(a["target"][t0]) if start == "true" else located
            belief = torch.cat([tip.float(), target.float(), torch.as_tensor(previous) / bound,
                                torch.zeros(len(t0), 2)], 1)
            tips, targets, _ = model.imagine(belief, torch.as_tensor(actions))
            rows.append((start, np.linalg.norm(targets[..., :2].numpy() - truth[..., :2], axis=-1),
                         np.linalg.norm(tips[..., :2].numpy() - tip_truth[..., :2], axis=-1)))
        starts.append(np.linalg.norm(a["target"][t0][:, None, :2] - truth[..., :2], axis=-1))
    if not starts:
        return None
    out = {"horizon": np.arange(1, horizon + 1), "still_target_error": np.concatenate(starts).mean(0),
           "starts": int(sum(len(s) for s in starts))}
    for start in ("true", "located"):
        out[f"target_error_{start}"] = np.concatenate([t for s, t, _ in rows if s == start]).mean(0)
        out[f"tip_error_{start}"] = np.concatenate([p for s, _, p in rows if s == start]).mean(0)
    return out


def write_open_loop(out: Path, result: dict) -> dict:
    from il_robot.learning.planet_plots import plot_position_open_loop

    keys = ("target_error_true", "target_error_located", "tip_error_true", "tip_error_located", "still_target_error")
    with open(out / "open_loop.csv", "w") as f:
        f.write("horizon," + ",".join(keys) + ",starts\n")
        for k, h in enumerate(result["horizon"]):
            f.write(f"{int(h)}," + ",".join(f"{result[key][k]:.6g}" for key in keys) + f",{result['starts']}\n")
    return {"csv": str(out / "open_loop.csv"), "png": str(plot_position_open_loop(result, out / "open_loop.png"))}


# -- the run ---------------------------------------------------------------------------------------------

def _normalise(model: PositionWorldModel, joints: np.ndarray, tips: np.ndarray, cfg: PositionsConfig) -> None:
    model.set_normalisation(joints.mean(0), np.maximum(joints.std(0), 1e-2), tips.mean(0),
                            np.maximum(tips.std(0), 1e-2), cfg.data.action_bound)


def _goal_cell() -> tuple[float, float]:
    u, v = camera_pixels(np.array([*GOAL_XY, 0.03]), IMAGE, IMAGE) * (MAP / IMAGE)
    return float(u), float(v)


def train(data_dir: str | Path, out_dir: str | Path, cfg: PositionsConfig | None = None,
          progress: bool = True, export: bool = True, init_from: str | Path | None = None) -> dict:
    """Train the three parts, plan val tasks, export; returns the summary also written to OUT/summary.json.
    With init_from (a position checkpoint with the same model settings) every part starts from its weights,
    and a part with 0 steps keeps them: e.g. more planner episodes for the dynamics alone."""
    out, data_dir = Path(out_dir), Path(data_dir)
    last_path = out / "checkpoints" / "last.pt"
    if last_path.exists():
        raise ValueError(f"{out} holds a training run already ({last_path}); choose another --out")
    cfg = cfg or PositionsConfig()
    check_config(cfg, init_from is not None)
    threads = set_threads(cfg.train.threads)
    torch.manual_seed(cfg.train.seed)
    rng = np.random.default_rng(cfg.train.seed)
    t = cfg.train

    seeded = data.collect_seed(data_dir, cfg.collect, cfg.data.action_bound, progress)
    if seeded["failed"]:
        raise RuntimeError(f"seed collection failed: {seeded['failed'][:3]}")
    episodes = data.load_episodes(data_dir)
    train_eps = data.split(episodes, "train")
    if not train_eps:
        raise ValueError(f"{data_dir}: no train-task episodes")
    val_eps = data.split(episodes, "val") or train_eps[:4]
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(asdict(cfg), sort_keys=False))
    log = CsvLog(out / "train_log.csv", LOG_COLUMNS, None)
    model = PositionWorldModel(cfg.model, _goal_cell(), cfg.reward)
    joints = np.concatenate([np.concatenate([e.arrays["q"], e.arrays["qd"]], 1) for e in train_eps])
    tips = np.concatenate([e.arrays["tip"] for e in train_eps])
    _normalise(model, joints, tips, cfg)
    if init_from is not None:
        source = read_checkpoint(init_from)
        if not is_positions_checkpoint(source):
            raise ValueError(f"--init-from {init_from}: not a position world model checkpoint")
        if config_from_dict(source["config"]).model != cfg.model:
            raise ValueError(f"--init-from {init_from}: its model settings differ from this config's")
        model.load_state_dict(source["model"])
    model.train()
    print(f"PlaNet (position latent): {len(train_eps)} train episodes, {len(val_eps)} val episodes; "
          f"{threads} threads", flush=True)
    started = time.monotonic()
    steps = {"locator": 0, "tip": 0, "dynamics": 0}

    def data_info() -> dict:
        return {"path": str(data_dir.resolve()), "train": data.data_summary(train_eps),
                "val": data.data_summary(data.split(episodes, "val")), "action_repeat": cfg.data.action_repeat,
                "control_rate_hz": CONTROL_RATE_HZ}

    def checkpoint() -> None:
        save_checkpoint(last_path, model, cfg, steps, data_info(), time.monotonic() - started)

    # 1. locator and task vector
    frames = data.SequenceSampler(train_eps, cfg.data.action_repeat, 1, cfg.data.action_bound, cfg.reward, rng,
                                  cfg.data.hue_augment)
    val_frames = data.SequenceSampler(val_eps, cfg.data.action_repeat, 1, cfg.data.action_bound, cfg.reward,
                                      np.random.default_rng(1)).sample_frames(t.val_frames)
    optimizer = torch.optim.Adam(model.locator.parameters(), lr=t.lr)
    errors: list[float] = []
    for step in tqdm(range(1, t.locator_steps + 1), desc="locator", unit="step", disable=not progress,
                     dynamic_ncols=True):
        loss, err = locator_loss(model, frames.sample_frames(t.locator_batch), t)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        errors.append(float(err.mean()))
        steps["locator"] = step
        if step % t.log_every == 0 or step == t.locator_steps:
            with torch.no_grad():
                _, val_err = locator_loss(model, val_frames, t)
            log.add({"phase": "locator", "step": step, "wall_time": round(time.monotonic() - started, 2),
                     "loss": float(loss), "train_error": float(np.mean(errors)), "val_error": float(val_err.median())})
            errors = []
    with torch.no_grad():
        _, val_err = locator_loss(model, val_frames, t)
    located = {"val_median_m": float(val_err.median()), "val_mean_m": float(val_err.mean()),
               "val_p90_m": float(val_err.quantile(0.9)), "frames": int(len(val_err))}
    print(f"locator: target found to {located['val_median_m'] * 100:.1f} cm (median; mean "
          f"{located['val_mean_m'] * 100:.1f}) on {located['frames']} val frames", flush=True)
    checkpoint()

    # 2. tip head
    q = torch.as_tensor(joints, dtype=torch.float32)
    tips = torch.as_tensor(tips, dtype=torch.float32)
    optimizer = torch.optim.Adam(model.tip_head.parameters(), lr=t.lr)
    for step in tqdm(range(1, t.tip_steps + 1), desc="tip", unit="step", disable=not progress, dynamic_ncols=True):
        idx = torch.randint(len(q), (t.tip_batch,))
        err = (model.tip(q[idx]) - tips[idx]).norm(dim=-1)
        loss = (err ** 2).mean() * 1e4
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        steps["tip"] = step
        if step % t.log_every == 0 or step == t.tip_steps:
            log.add({"phase": "tip", "step": step, "wall_time": round(time.monotonic() - started, 2),
                     "loss": float(loss), "train_error": float(err.mean())})

    # 3. dynamics, with the planner's own episodes joining every collect.every steps
    samples = torch.as_tensor(transitions(train_eps, cfg.data.action_repeat, cfg.data.action_bound))
    val_samples = torch.as_tensor(transitions(val_eps, cfg.data.action_repeat, cfg.data.action_bound))
    task_frames = data.TaskFrames(train_eps)
    tasks = sorted({e.meta["task_index"] for e in train_eps if e.meta["task_index"] < cfg.collect.train_tasks})
    optimizer = torch.optim.Adam(model.dynamics.parameters(), lr=t.lr)
    stack_cache: dict = {}
    planner_row: dict = {}
    planner_episodes = []
    bar = tqdm(range(1, t.dynamics_steps + 1), desc="dynamics", unit="step", disable=not progress, dynamic_ncols=True)
    for step in bar:
        loss, err = dynamics_loss(model, samples[torch.randint(len(samples), (t.dynamics_batch,))])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        steps["dynamics"] = step
        if cfg.collect.every and step % cfg.collect.every == 0 and tasks:
            from il_robot.sim.tasks import make_task

            index = int(rng.choice(tasks))
            member = next(i for i, e in enumerate(train_eps) if e.meta["task_index"] == index)
            seed = 60_000_000 + cfg.collect.seed * 1_000_000 + step
            arrays, meta = plan_episode(model, cfg, make_task("train", index), task_frames.frame(member, rng), seed,
                                        cfg.collect.exploration_noise, stack_cache)
            data.save_episode(data_dir, arrays, meta)
            planner_episodes.append({"task": meta["task"], "success": meta["success"],
                                     "final_distance": meta["final_distance"]})
            episode = data.load_episode(data_dir / data.episode_name(meta))
            samples = torch.cat([samples, torch.as_tensor(transitions([episode], cfg.data.action_repeat,
                                                                      cfg.data.action_bound))])
            planner_row = {"planner_final_distance": meta["final_distance"]}
            bar.write(f"dynamics step {step}: planner episode {meta['task']}: final distance "
                      f"{meta['final_distance'] * 100:.1f} cm; {len(samples)} transitions")
        if step % t.log_every == 0 or step == t.dynamics_steps:
            with torch.no_grad():
                _, val_err = dynamics_loss(model, val_samples)
            log.add({"phase": "dynamics", "step": step, "wall_time": round(time.monotonic() - started, 2),
                     "loss": float(loss), "train_error": float(err), "val_error": float(val_err), **planner_row})
            planner_row = {}
    checkpoint()

    from il_robot.learning.planet_plots import plot_position_curves

    summary = {"steps": steps, "init_from": str(init_from) if init_from else None,
               "train_seconds": time.monotonic() - started, "threads": threads,
               "data": data_info(), "locator": located, "planner_episodes": planner_episodes,
               "checkpoint": str(last_path),
               "plots": {"curves": str(plot_position_curves(log.rows, out / "curves.png"))}}
    result = open_loop(model, val_eps, cfg)
    if result is not None:
        summary["open_loop"] = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in result.items()}
        summary["open_loop"].update(write_open_loop(out, result))
        print(f"open loop, {len(result['horizon'])} steps: target error {result['target_error_true'][-1] * 100:.1f} cm "
              f"from true positions, {result['target_error_located'][-1] * 100:.1f} cm from located ones "
              f"(a still target: {result['still_target_error'][-1] * 100:.1f} cm)", flush=True)
    if t.eval_episodes:
        summary["val_planning"] = evaluate_val(model, cfg, val_eps, t.eval_episodes, stack_cache, progress)
        v = summary["val_planning"]
        print(f"planner on val tasks: {v['successes']}/{v['episodes']} pushed home, final distance median "
              f"{v['final_distance_median'] * 100:.1f} cm", flush=True)
    if export:
        from il_robot.learning.planet_export import export_planet

        meta = export_planet(last_path, out / "onnx", force=True)
        summary["onnx"] = {"dir": str(out / "onnx"), "max_abs_diff": meta["verification"]["max_abs_diff"]}
        print(f"exported to {out / 'onnx'}", flush=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def evaluate_val(model: PositionWorldModel, cfg: PositionsConfig, val_eps: list[data.EpisodeData], count: int,
                 stack_cache: dict, progress: bool = True) -> dict:
    """The planner (no exploration noise) on up to `count` val tasks, each conditioned on another
    episode's last frame of that task, in the simulator."""
    from il_robot.sim.tasks import make_task

    frames = data.TaskFrames(val_eps)
    rng = np.random.default_rng(7)
    seen, results = set(), []
    for i, e in enumerate(val_eps):
        if e.meta["task_index"] in seen or len(results) >= count:
            continue
        seen.add(e.meta["task_index"])
        _, meta = plan_episode(model, cfg, make_task("val", e.meta["task_index"]), frames.frame(i, rng),
                               70_000_000 + e.meta["task_index"], 0.0, stack_cache)
        results.append({"task": meta["task"], "success": meta["success"], "final_distance": meta["final_distance"]})
        if progress:
            print(f"  val {meta['task']}: {'success' if meta['success'] else 'failure'}, "
                  f"{meta['final_distance'] * 100:.1f} cm", flush=True)
    d = [r["final_distance"] for r in results]
    return {"episodes": len(results), "successes": int(sum(r["success"] for r in results)),
            "final_distance_median": float(np.median(d)) if d else float("nan"), "per_episode": results}
