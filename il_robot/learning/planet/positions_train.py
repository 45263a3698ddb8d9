"""Train the position-latent world model (positions.py) on the PlaNet episode directory.

Three parts, each on what it needs, in this order (each a run of learning/run_loop.py's step loop):
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

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from il_robot.learning.checkpoints import read_checkpoint
from il_robot.learning.planet import data
from il_robot.learning.planet.checkpoint import is_positions_checkpoint, save_positions_checkpoint
from il_robot.learning.planet.export import export_planet
from il_robot.learning.planet.planner import plan_episode
from il_robot.learning.planet.plots import plot_position_curves, plot_position_open_loop
from il_robot.learning.planet.positions import MAP, PositionBackend, PositionWorldModel
from il_robot.learning.planet.positions_config import PositionsConfig, PositionTrainConfig, check_config, config_from_dict
from il_robot.learning.run_loop import Every, RunDir, StepLoop, say, set_threads
from il_robot.sim.scene import camera_pixels
from il_robot.sim.tasks import GOAL_XY

IMAGE = 64
LOG_COLUMNS = ("phase", "step", "wall_time", "loss", "train_error", "val_error", "planner_final_distance")


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
    fitted = loc.mean_position(logits)        # the whole map's mean: a second mode costs (not loc.position)
    loss = (((fitted - target) / loc.position_std) ** 2).sum(-1).mean()
    predicted = loc.position(logits)          # what the planner reads: the error reported
    if cfg.attention_weight > 0:
        blob = attention_target(batch["position"][:, 3:6], cfg.attention_sigma)
        log_attention = torch.log_softmax(logits.flatten(1), dim=1).view_as(logits)
        loss = loss + cfg.attention_weight * -(blob * log_attention).sum((1, 2)).mean()
    return loss, (predicted - target)[:, :2].norm(dim=-1)


# -- planner episodes -------------------------------------------------------------------------------------

def planner_episode(model: PositionWorldModel, cfg: PositionsConfig, task, task_frame: np.ndarray, seed: int,
                    noise: float, stack_cache: dict) -> tuple[dict, dict]:
    """One episode of the planner on the torch model in the simulator (in-process control stack)."""
    backend = PositionBackend(model)
    model.eval()
    try:
        return plan_episode(backend, backend.task_vector(task_frame), task, cfg.planner, cfg.data.planner_bound,
                            cfg.data.action_repeat, noise, seed, cfg.collect.episode_duration, stack_cache)
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
    keys = ("target_error_true", "target_error_located", "tip_error_true", "tip_error_located", "still_target_error")
    with open(out / "open_loop.csv", "w") as f:
        f.write("horizon," + ",".join(keys) + ",starts\n")
        for k, h in enumerate(result["horizon"]):
            f.write(f"{int(h)}," + ",".join(f"{result[key][k]:.6g}" for key in keys) + f",{result['starts']}\n")
    return {"csv": str(out / "open_loop.csv"), "png": str(plot_position_open_loop(result, out / "open_loop.png"))}


def _normalise(model: PositionWorldModel, joints: np.ndarray, tips: np.ndarray, cfg: PositionsConfig) -> None:
    model.set_normalisation(joints.mean(0), np.maximum(joints.std(0), 1e-2), tips.mean(0),
                            np.maximum(tips.std(0), 1e-2), cfg.data.action_bound)


def _goal_cell() -> tuple[float, float]:
    u, v = camera_pixels(np.array([*GOAL_XY, 0.03]), IMAGE, IMAGE) * (MAP / IMAGE)
    return float(u), float(v)


def _start_from(model: PositionWorldModel, path: str | Path, cfg: PositionsConfig) -> None:
    """Every part's weights from a position checkpoint with the same model settings."""
    source = read_checkpoint(path)
    if not is_positions_checkpoint(source):
        raise ValueError(f"--init-from {path}: not a position world model checkpoint")
    if config_from_dict(source["config"]).model != cfg.model:
        raise ValueError(f"--init-from {path}: its model settings differ from this config's")
    model.load_state_dict(source["model"])


def _update(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def train(data_dir: str | Path, out_dir: str | Path, cfg: PositionsConfig | None = None,
          progress: bool = True, export: bool = True, init_from: str | Path | None = None) -> dict:
    """Train the three parts, plan val tasks, export; returns the summary also written to OUT/summary.json.
    With init_from (a position checkpoint with the same model settings) every part starts from its weights,
    and a part with 0 steps keeps them: e.g. more planner episodes for the dynamics alone."""
    run, data_dir = RunDir(out_dir, resumable=False), Path(data_dir)
    cfg = cfg or PositionsConfig()
    check_config(cfg, init_from is not None)
    threads = set_threads(cfg.train.threads)
    torch.manual_seed(cfg.train.seed)
    rng = np.random.default_rng(cfg.train.seed)
    t = cfg.train

    episodes = data.training_episodes(data_dir, cfg.collect, cfg.data.action_bound, progress)
    train_eps = data.split(episodes, "train")
    val_eps = data.split(episodes, "val") or train_eps[:4]
    run.begin(cfg)
    log = run.log("train_log.csv", LOG_COLUMNS)
    model = PositionWorldModel(cfg.model, _goal_cell(), cfg.reward)
    joints = np.concatenate([np.concatenate([e.arrays["q"], e.arrays["qd"]], 1) for e in train_eps])
    tips = np.concatenate([e.arrays["tip"] for e in train_eps])
    _normalise(model, joints, tips, cfg)
    if init_from is not None:
        _start_from(model, init_from, cfg)
    model.train()
    print(f"PlaNet (position latent): {len(train_eps)} train episodes, {len(val_eps)} val episodes; "
          f"{threads} threads", flush=True)
    started = time.monotonic()
    steps = {"locator": 0, "tip": 0, "dynamics": 0}

    def data_info() -> dict:
        return data.run_data_info(data_dir, episodes, cfg.data.action_repeat)

    def save() -> Path:
        return save_positions_checkpoint(run.last, model, cfg, steps, data_info(), time.monotonic() - started)

    def part(name: str, count: int, update: Callable[[], dict], val_error: Callable[[], float] | None = None,
             hooks: tuple[Every, ...] = ()) -> None:
        """One part's steps; its log rows carry the part's name, the time since the run started and, where
        the part has one, its val error."""
        def train_step(n: int) -> dict:
            figures = update()
            steps[name] = n
            return figures

        def row(step: int) -> dict:
            return {"phase": name, "wall_time": round(time.monotonic() - started, 2),
                    **({"val_error": val_error()} if val_error else {})}

        StepLoop(name, count, train_step, log, t.log_every, run=run, save=save, hooks=hooks, row=row).run(progress)

    # 1. locator and task vector
    frames = data.SequenceSampler(train_eps, cfg.data.action_repeat, 1, cfg.data.action_bound, cfg.reward, rng,
                                  cfg.data.hue_augment)
    val_frames = data.SequenceSampler(val_eps, cfg.data.action_repeat, 1, cfg.data.action_bound, cfg.reward,
                                      np.random.default_rng(1)).sample_frames(t.val_frames)
    optimizer = torch.optim.Adam(model.locator.parameters(), lr=t.lr)

    def locator_step() -> dict:
        loss, err = locator_loss(model, frames.sample_frames(t.locator_batch), t)
        _update(optimizer, loss)
        return {"loss": loss, "train_error": err.mean()}

    @torch.no_grad()
    def locator_val() -> torch.Tensor:
        return locator_loss(model, val_frames, t)[1]

    part("locator", t.locator_steps, locator_step, lambda: float(locator_val().median()))
    val_err = locator_val()
    located = {"val_median_m": float(val_err.median()), "val_mean_m": float(val_err.mean()),
               "val_p90_m": float(val_err.quantile(0.9)), "frames": int(len(val_err))}
    print(f"locator: target found to {located['val_median_m'] * 100:.1f} cm (median; mean "
          f"{located['val_mean_m'] * 100:.1f}) on {located['frames']} val frames", flush=True)
    save()

    # 2. tip head
    q = torch.as_tensor(joints, dtype=torch.float32)
    tips = torch.as_tensor(tips, dtype=torch.float32)
    optimizer = torch.optim.Adam(model.tip_head.parameters(), lr=t.lr)

    def tip_step() -> dict:
        idx = torch.randint(len(q), (t.tip_batch,))
        err = (model.tip(q[idx]) - tips[idx]).norm(dim=-1)
        loss = (err ** 2).mean() * 1e4
        _update(optimizer, loss)
        return {"loss": loss, "train_error": err.mean()}

    part("tip", t.tip_steps, tip_step)

    # 3. dynamics, with the planner's own episodes joining every collect.every steps
    samples = torch.as_tensor(transitions(train_eps, cfg.data.action_repeat, cfg.data.action_bound))
    val_samples = torch.as_tensor(transitions(val_eps, cfg.data.action_repeat, cfg.data.action_bound))
    task_frames = data.TaskFrames(train_eps)
    tasks = sorted({e.meta["task_index"] for e in train_eps if e.meta["task_index"] < cfg.collect.train_tasks})
    optimizer = torch.optim.Adam(model.dynamics.parameters(), lr=t.lr)
    stack_cache: dict = {}
    planner_episodes = []

    def dynamics_step() -> dict:
        loss, err = dynamics_loss(model, samples[torch.randint(len(samples), (t.dynamics_batch,))])
        _update(optimizer, loss)
        return {"loss": loss, "train_error": err}

    def collect(step: int) -> dict:
        """A planner episode joins the data directory and the transitions."""
        nonlocal samples
        from il_robot.sim.tasks import make_task

        index = int(rng.choice(tasks))
        member = next(i for i, e in enumerate(train_eps) if e.meta["task_index"] == index)
        seed = 60_000_000 + cfg.collect.seed * 1_000_000 + step
        arrays, meta = planner_episode(model, cfg, make_task("train", index), task_frames.frame(member, rng), seed,
                                       cfg.collect.exploration_noise, stack_cache)
        data.save_episode(data_dir, arrays, meta)
        planner_episodes.append({"task": meta["task"], "success": meta["success"],
                                 "final_distance": meta["final_distance"]})
        episode = data.load_episode(data_dir / data.episode_name(meta))
        samples = torch.cat([samples, torch.as_tensor(transitions([episode], cfg.data.action_repeat,
                                                                  cfg.data.action_bound))])
        say(f"dynamics step {step}: planner episode {meta['task']}: final distance "
            f"{meta['final_distance'] * 100:.1f} cm; {len(samples)} transitions")
        return {"planner_final_distance": meta["final_distance"]}

    @torch.no_grad()
    def dynamics_val() -> float:
        return float(dynamics_loss(model, val_samples)[1])

    part("dynamics", t.dynamics_steps, dynamics_step, dynamics_val,
         (Every(cfg.collect.every if tasks else 0, collect),))
    save()

    summary = {"steps": steps, "init_from": str(init_from) if init_from else None,
               "train_seconds": time.monotonic() - started, "threads": threads,
               "data": data_info(), "locator": located, "planner_episodes": planner_episodes,
               "checkpoint": str(run.last),
               "plots": {"curves": str(plot_position_curves(log.rows, run.out / "curves.png"))}}
    result = open_loop(model, val_eps, cfg)
    if result is not None:
        summary["open_loop"] = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in result.items()}
        summary["open_loop"].update(write_open_loop(run.out, result))
        print(f"open loop, {len(result['horizon'])} steps: target error {result['target_error_true'][-1] * 100:.1f} cm "
              f"from true positions, {result['target_error_located'][-1] * 100:.1f} cm from located ones "
              f"(a still target: {result['still_target_error'][-1] * 100:.1f} cm)", flush=True)
    if t.eval_episodes:
        summary["val_planning"] = evaluate_val(model, cfg, val_eps, t.eval_episodes, stack_cache, progress)
        v = summary["val_planning"]
        print(f"planner on val tasks: {v['successes']}/{v['episodes']} pushed home, final distance median "
              f"{v['final_distance_median'] * 100:.1f} cm", flush=True)

    def export_onnx() -> dict:
        meta = export_planet(run.last, run.out / "onnx", force=True)
        print(f"exported to {run.out / 'onnx'}", flush=True)
        return {"dir": str(run.out / "onnx"), "max_abs_diff": meta["verification"]["max_abs_diff"]}

    return run.finish(summary, export_onnx if export else None)


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
        _, meta = planner_episode(model, cfg, make_task("val", e.meta["task_index"]), frames.frame(i, rng),
                               70_000_000 + e.meta["task_index"], 0.0, stack_cache)
        results.append({"task": meta["task"], "success": meta["success"], "final_distance": meta["final_distance"]})
        if progress:
            print(f"  val {meta['task']}: {'success' if meta['success'] else 'failure'}, "
                  f"{meta['final_distance'] * 100:.1f} cm", flush=True)
    d = [r["final_distance"] for r in results]
    return {"episodes": len(results), "successes": int(sum(r["success"] for r in results)),
            "final_distance_median": float(np.median(d)) if d else float("nan"), "per_episode": results}
