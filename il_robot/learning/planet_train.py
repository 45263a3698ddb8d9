"""Train PlaNet: seed episodes, world-model updates on chunks, planner episodes every C steps.

PlaNet's loop (Hafner et al. 2019, Algorithm 1) on the pushing world: the data directory
starts with seed episodes (collected here when missing), the RSSM is trained on random
chunks, and every `collect.every` steps the planner (CEM on the model being trained, with
exploration noise) acts one episode on a train task, which joins the data.

Everything a run makes lands in its output directory:
  checkpoints/last.pt                          weights (+ normalisation buffers), optimiser, config, rng
  train_log.csv, val_log.csv                   one row per log step / open-loop evaluation
  curves.png                                   losses, reward error, planner episodes
  open_loop.png, open_loop.csv                 open-loop prediction error against horizon (val episodes)
  open_loop.mp4                                real | predicted frames side by side (val episodes)
  summary.json                                 final figures, speed, paths
  onnx/                                        the exported runtime model (il-robot export planet)
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
from il_robot.learning.planet_model import LossConfig, ModelConfig, PlaNet, TorchBackend, world_model_losses
from il_robot.learning.planet_reward import RewardConfig, reward
from il_robot.learning.config import fill_config, read_config_values
from il_robot.learning.run_loop import CsvLog, set_threads, torch_device
from il_robot.policies.base import Observation, Policy
from il_robot.policies.cem import CEMConfig
from il_robot.policies.planet import LatentMPC
from il_robot.sim.tasks import GOAL_XY

CHECKPOINT_FORMAT = "il_robot.planet.checkpoint"
CHECKPOINT_VERSION = 2        # 2: task-conditioned posterior, position head
CONTROL_RATE_HZ = 20.0       # camera / policy rate of the episodes (data rows)
JOINT_STD_FLOOR = 1e-2
TRAIN_COLUMNS = ("step", "wall_time", "steps_per_s", "loss", "image_loss", "joint_loss", "reward_loss",
                 "position_loss", "frame_position_loss", "overshoot_reward_loss", "overshoot_position_loss", "kl", "reward_rmse",
                 "target_xy_error", "episodes", "planner_final_distance", "planner_success")
VAL_COLUMNS = ("step", "val_image_mse_filtered", "val_image_mse_open_loop", "val_reward_mae_open_loop",
               "val_target_error_open_loop")


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


# -- configuration -------------------------------------------------------------------------------

def config_from_dict(values: dict) -> PlanetConfig:
    return fill_config(PlanetConfig, values, "")


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> PlanetConfig:
    """YAML file (sections as PlanetConfig) plus `section.key=value` overrides; unknown keys are errors."""
    return config_from_dict(read_config_values(path, overrides))


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


# -- checkpoints ----------------------------------------------------------------------------------

def save_checkpoint(path: Path, model: PlaNet, optimizer, step: int, cfg: PlanetConfig, data_info: dict,
                    rng: np.random.Generator, train_seconds: float) -> None:
    """Atomic (write then rename), so an interrupted save never leaves a half checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "step": step,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "config": asdict(cfg),
                "data": data_info, "train_seconds": train_seconds,
                "rng": {"numpy": rng.bit_generator.state, "torch": torch.get_rng_state()}}, tmp)
    os.replace(tmp, path)


def read_checkpoint(path: str | Path):
    """torch.load of tensors and plain data only, no pickled code (weights_only), with clear errors."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"no checkpoint at {path}") from None
    except Exception as err:
        raise ValueError(f"{path} is not a readable checkpoint: {type(err).__name__}: {err}") from None


def load_checkpoint(path: str | Path, ckpt: dict | None = None) -> dict:
    """An RSSM checkpoint dict (`ckpt`: one read already), its format and version checked."""
    ckpt = read_checkpoint(path) if ckpt is None else ckpt
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a PlaNet checkpoint (format {CHECKPOINT_FORMAT})")
    if ckpt.get("version", 0) > CHECKPOINT_VERSION:
        raise ValueError(f"{path}: checkpoint version {ckpt['version']} is newer than this code reads")
    if ckpt.get("version", 0) < CHECKPOINT_VERSION:
        raise ValueError(f"{path}: checkpoint version {ckpt.get('version')} predates the task-conditioned posterior "
                         f"(version {CHECKPOINT_VERSION}); retrain with this code")
    return ckpt


def model_from_checkpoint(ckpt: dict) -> tuple[PlaNet, PlanetConfig]:
    cfg = config_from_dict(ckpt["config"])
    model = PlaNet(cfg.model)
    model.load_state_dict(ckpt["model"])
    return model.eval(), cfg


# -- planner episodes (the PlaNet data loop) ------------------------------------------------------------

class PlannerPolicy(Policy):
    """LatentMPC on a torch world model (either kind), for one task vector."""
    needs_image = True

    def __init__(self, mpc: LatentMPC, task: np.ndarray):
        self.mpc, self.task = mpc, task

    def reset(self, context: dict) -> None:
        self.mpc.reset()

    def act(self, obs: Observation) -> np.ndarray:
        return self.mpc.step(obs.image, np.concatenate([obs.q, obs.qd]), self.task)


def cached_stack(stack_cache: dict, task):
    """One in-process control stack per run (a MuJoCo world and its renderer), switched to `task`."""
    from il_robot.rollout import InProcessStack
    from il_robot.sim.world import PushingWorld

    if "stack" not in stack_cache:
        stack_cache["stack"] = InProcessStack(PushingWorld(task))
    stack = stack_cache["stack"]
    stack.world.use_task(task)
    return stack


def collect_planner_episodes(model: PlaNet, cfg: PlanetConfig, episodes: list[data.EpisodeData], data_dir: Path,
                             step: int, rng: np.random.Generator, stack_cache: dict) -> list[dict]:
    """cfg.collect.episodes_per_collect planner episodes on random train tasks, saved into data_dir."""
    from il_robot.sim.tasks import make_task

    train = data.split(episodes, "train")
    frames = data.TaskFrames(train)
    tasks = sorted({e.meta["task_index"] for e in train if e.meta["task_index"] < cfg.collect.train_tasks})
    backend = TorchBackend(model)
    model.eval()
    metas = []
    for k in range(cfg.collect.episodes_per_collect):
        index = int(tasks[rng.integers(len(tasks))])
        task = make_task("train", index)
        stack = cached_stack(stack_cache, task)
        member = next(i for i, e in enumerate(train) if e.task == task.name)
        task_vec = backend.task_vector(frames.frame(member, rng))
        seed = 50_000_000 + cfg.collect.seed * 1_000_000 + step * 10 + k
        mpc = LatentMPC(backend, cfg.planner, cfg.data.action_bound, cfg.data.action_repeat,
                        cfg.collect.exploration_noise, seed)
        arrays, meta = data.run_episode(stack, PlannerPolicy(mpc, task_vec), seed, cfg.collect.episode_duration,
                                        "planner")
        data.save_episode(data_dir, arrays, meta)
        metas.append(meta)
    model.train()
    return metas


# -- open-loop prediction -------------------------------------------------------------------------------------

@torch.no_grad()
def open_loop(model: PlaNet, episodes: list[data.EpisodeData], cfg: PlanetConfig, device: torch.device,
              sequences: int | None = None) -> dict | None:
    """Filter `context` model steps, predict the rest open loop with the recorded actions; per-horizon
    image MSE (pixels 0..1) and reward abs error, and side-by-side frames (real | model)."""
    r, c = cfg.data.action_repeat, cfg.train.open_loop_context
    usable = [e for e in episodes if (e.length - 1) // r + 1 > c]
    if not usable:
        return None
    usable = usable[:sequences or cfg.train.open_loop_sequences]
    horizon = min(cfg.train.open_loop_horizon, min((e.length - 1) // r + 1 for e in usable) - c)
    frames_idx = np.arange(c + horizon) * r
    sampler_rng = np.random.default_rng(0)
    tf = data.TaskFrames(usable)
    batch: dict[str, list] = {"image": [], "joints": [], "action": [], "reward": [], "position": [],
                              "task_frame": []}
    for i, e in enumerate(usable):
        batch["image"].append(e.arrays["image"][frames_idx])
        batch["joints"].append(np.concatenate([e.arrays["q"], e.arrays["qd"]], axis=1)[frames_idx])
        batch["action"].append(data.model_step_actions(e.arrays["action"], frames_idx, r, cfg.data.action_bound))
        batch["reward"].append(reward(e.arrays["tip"], e.arrays["target"], cfg.reward)[frames_idx])
        batch["position"].append(data.episode_positions(e)[frames_idx])
        batch["task_frame"].append(tf.frame(i, sampler_rng))
    t = {k: torch.from_numpy(np.stack(v).astype(np.float32)).to(device) for k, v in batch.items()}
    images = t["image"].permute(0, 1, 4, 2, 3)
    was_training = model.training
    model.eval()
    task = model.task_vector(t["task_frame"].permute(0, 3, 1, 2))
    post = model.observe(images[:, :c], t["joints"][:, :c], t["action"][:, :c], task, sample=False)
    imagined = model.imagine(post["belief"][:, -1], post["state"][:, -1], t["action"][:, c:], task)
    n = len(usable)
    recon, _ = model.decode(post["belief"].flatten(0, 1), post["state"].flatten(0, 1))
    predicted, _ = model.decode(imagined["belief"].flatten(0, 1), imagined["state"].flatten(0, 1))
    recon = (recon + 0.5).clamp(0, 1).view(n, c, 3, 64, 64)
    predicted = (predicted + 0.5).clamp(0, 1).view(n, horizon, 3, 64, 64)
    real = images / 255.0
    filtered_mse = ((recon - real[:, :c]) ** 2).mean((2, 3, 4))
    image_mse = ((predicted - real[:, c:]) ** 2).mean((0, 2, 3, 4))
    reward_mae = (imagined["reward"] - t["reward"][:, c:]).abs().mean(0)
    positions = model.positions(imagined["belief"], imagined["state"], task[:, None].expand(-1, horizon, -1))
    target_error = (positions[..., 3:5] - t["position"][:, c:, 3:5]).norm(dim=-1).mean(0)
    if was_training:
        model.train()
    model_frames = torch.cat([recon, predicted], dim=1).permute(0, 1, 3, 4, 2).mul(255).round().byte().cpu().numpy()
    return {"context": c, "horizon": np.arange(1, horizon + 1), "image_mse": image_mse.cpu().numpy(),
            "reward_mae": reward_mae.cpu().numpy(), "target_error": target_error.cpu().numpy(),
            "filtered_mse": float(filtered_mse.mean()),
            "real": np.stack(batch["image"]), "model": model_frames, "sequences": n}


def side_by_side(result: dict, count: int) -> list[np.ndarray]:
    """Video frames: real | model, a green bar over filtered model frames, a red bar over open-loop ones."""
    frames = []
    c = result["context"]
    for real, pred in list(zip(result["real"], result["model"]))[:count]:
        for k in range(len(real)):
            right = pred[k].copy()
            right[:2] = (0, 200, 0) if k < c else (220, 0, 0)
            gap = np.full((64, 2, 3), 255, np.uint8)
            frames.append(np.concatenate([real[k], gap, right], axis=1))
        frames += [np.zeros_like(frames[-1])] * 2   # a short black gap between sequences
    return frames


def write_open_loop(out: Path, result: dict, cfg: PlanetConfig) -> dict:
    from il_robot.learning.planet_plots import plot_open_loop
    from il_robot.video import write_video

    rows = [{"horizon": int(h), "image_mse": float(m), "reward_mae": float(r), "target_error": float(p),
             "sequences": result["sequences"]}
            for h, m, r, p in zip(result["horizon"], result["image_mse"], result["reward_mae"], result["target_error"])]
    with open(out / "open_loop.csv", "w") as f:
        f.write("horizon,image_mse,reward_mae,target_xy_error,sequences\n")
        f.writelines(f"{r['horizon']},{r['image_mse']:.6g},{r['reward_mae']:.6g},{r['target_error']:.6g},"
                     f"{r['sequences']}\n" for r in rows)
    paths = {"csv": str(out / "open_loop.csv"),
             "png": str(plot_open_loop(result["horizon"], result["image_mse"], result["reward_mae"],
                                       result["context"], out / "open_loop.png"))}
    fps = CONTROL_RATE_HZ / cfg.data.action_repeat
    paths["video"] = str(write_video(out / "open_loop.mp4", side_by_side(result, cfg.train.video_sequences), fps,
                                     "left real | right model (green: filtered, red: open loop)"))
    return paths


# -- the run ----------------------------------------------------------------------------------------------------

def _normalisation(model: PlaNet, train: list[data.EpisodeData], sampler: data.SequenceSampler,
                   cfg: PlanetConfig) -> None:
    joints = np.concatenate([np.concatenate([e.arrays["q"], e.arrays["qd"]], axis=1) for e in train])
    mean, std = sampler.reward_stats()
    model.set_normalisation(joints.mean(0), np.maximum(joints.std(0), JOINT_STD_FLOOR), cfg.data.action_bound,
                            mean, std, *sampler.position_stats(), goal_xy=GOAL_XY,
                            reward_weights=(cfg.reward.goal_weight, cfg.reward.reach_weight))


def _start_from(model: PlaNet, path: str | Path) -> None:
    """Weights and normalisation of another run's checkpoint (same model sizes); parts this config adds
    (a new auxiliary head) start fresh, and the step count and optimiser start over."""
    source = load_checkpoint(path)
    if config_from_dict(source["config"]).model != model.cfg:
        raise ValueError(f"--init-from {path}: its model settings differ from this config's "
                         f"({config_from_dict(source['config']).model} vs {model.cfg})")
    missing, unexpected = model.load_state_dict(source["model"], strict=False)
    if unexpected:
        raise ValueError(f"--init-from {path}: weights this model does not have: {unexpected}")
    if missing:
        print(f"--init-from: new parts start fresh: {sorted({k.split('.')[0] for k in missing})}", flush=True)


def train(data_dir: str | Path, out_dir: str | Path, cfg: PlanetConfig | None = None, steps: int | None = None,
          device: str = "cpu", resume: bool = False, progress: bool = True, export: bool = True,
          collect_every: int | None = None, init_from: str | Path | None = None) -> dict:
    """Train (or resume) PlaNet; returns the summary also written to OUT/summary.json."""
    out, data_dir = Path(out_dir), Path(data_dir)
    last_path = out / "checkpoints" / "last.pt"
    ckpt = None
    if resume:
        ckpt = load_checkpoint(last_path)
        cfg = config_from_dict(ckpt["config"])      # the run's own settings; --steps / --collect-every may change
    elif last_path.exists():
        raise ValueError(f"{out} holds a training run already ({last_path}); use --resume to continue it "
                         "or choose another --out")
    cfg = cfg or PlanetConfig()
    if steps is not None:
        cfg.train.steps = steps
    if collect_every is not None:
        cfg.collect.every = collect_every
    check_config(cfg)
    threads = set_threads(cfg.train.threads)
    dev = torch_device(device)

    seeded = data.collect_seed(data_dir, cfg.collect, cfg.data.action_bound, progress)
    if seeded["collected"]:
        by_source = ", ".join(f"{k} {v['successes']}/{v['episodes']} successful"
                              for k, v in seeded["by_source"].items())
        print(f"seed episodes collected into {data_dir}: {seeded['collected']} ({by_source})", flush=True)
    if seeded["failed"]:
        raise RuntimeError(f"seed collection failed: {seeded['failed'][:3]}")
    episodes = data.load_episodes(data_dir)
    train_eps = data.split(episodes, "train")
    if not train_eps:
        raise ValueError(f"{data_dir}: no train-task episodes")
    val_eps = data.split(episodes, "val") or train_eps[:cfg.train.open_loop_sequences]
    rng = np.random.default_rng(cfg.train.seed)
    torch.manual_seed(cfg.train.seed)
    sampler = data.SequenceSampler(train_eps, cfg.data.action_repeat, cfg.data.chunk_length, cfg.data.action_bound,
                                   cfg.reward, rng, cfg.data.hue_augment)

    model = PlaNet(cfg.model).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr, eps=cfg.optim.eps)
    step, train_seconds = 0, 0.0
    if ckpt:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        step, train_seconds = ckpt["step"], float(ckpt.get("train_seconds", 0.0))
        rng.bit_generator.state = ckpt["rng"]["numpy"]
        torch.set_rng_state(ckpt["rng"]["torch"])
    elif init_from:
        _start_from(model, init_from)
    else:
        _normalisation(model, train_eps, sampler, cfg)
    out.mkdir(parents=True, exist_ok=True)
    pretrained = None
    if not ckpt and not init_from and cfg.train.encoder_pretrain_steps > 0:
        from il_robot.learning.planet_pretrain import pretrain_encoder

        model.train()
        pretrained = pretrain_encoder(model, sampler, cfg.train.encoder_pretrain_steps,
                                      cfg.train.encoder_pretrain_batch, cfg.optim.lr, cfg.optim.eps,
                                      out / "pretrain_log.csv", cfg.train.log_every, dev, progress)
        print(f"encoder pretrained: {pretrained['steps']} steps, target found to "
              f"{pretrained['target_xy_error'] * 100:.1f} cm on its last training frames", flush=True)
    (out / "config.yaml").write_text(yaml.safe_dump(asdict(cfg), sort_keys=False))
    train_log = CsvLog(out / "train_log.csv", TRAIN_COLUMNS, step if ckpt else None)
    val_log = CsvLog(out / "val_log.csv", VAL_COLUMNS, step if ckpt else None)

    def data_info() -> dict:
        return {"path": str(data_dir.resolve()), "train": data.data_summary(train_eps),
                "val": data.data_summary(data.split(episodes, "val")), "action_repeat": cfg.data.action_repeat,
                "control_rate_hz": CONTROL_RATE_HZ}

    def checkpoint() -> None:
        save_checkpoint(last_path, model, optimizer, step, cfg, data_info(), rng, train_seconds)

    d = cfg.data
    print(f"PlaNet: {len(train_eps)} train episodes ({sampler.episodes.__len__()} long enough for chunks of "
          f"{d.chunk_length} x {d.action_repeat} frames), {len(val_eps)} val episodes; batch {d.batch_size} x "
          f"{d.chunk_length}; planner episodes every {cfg.collect.every or 'never'} steps; device {dev}, "
          f"{threads} threads", flush=True)

    model.train()
    window: dict[str, list[float]] = {}
    window_start, window_steps = time.monotonic(), 0
    planner_row: dict = {}
    stack_cache: dict = {}
    bar = tqdm(total=cfg.train.steps, initial=step, desc="planet", unit="step", disable=not progress,
               dynamic_ncols=True)
    start_step, start_seconds = step, train_seconds
    try:
        while step < cfg.train.steps:
            t0 = time.monotonic()
            batch = {k: torch.from_numpy(v).to(dev) for k, v in sampler.sample(d.batch_size).items()}
            batch["image"] = batch["image"].permute(0, 1, 4, 2, 3).float()
            batch["task_frame"] = batch["task_frame"].permute(0, 3, 1, 2).float()
            losses = world_model_losses(model, batch, cfg.loss)
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            optimizer.step()
            step += 1
            train_seconds += time.monotonic() - t0
            window_steps += 1
            for k, v in losses.items():
                window.setdefault(k, []).append(v.item())
            bar.update(1)
            if cfg.collect.every and step % cfg.collect.every == 0:
                metas = collect_planner_episodes(model, cfg, episodes, data_dir, step, rng, stack_cache)
                episodes = data.load_episodes(data_dir, {e.path: e for e in episodes})
                train_eps = data.split(episodes, "train")
                sampler = data.SequenceSampler(train_eps, d.action_repeat, d.chunk_length, d.action_bound,
                                               cfg.reward, rng, d.hue_augment)
                planner_row = {"planner_final_distance": float(np.mean([m["final_distance"] for m in metas])),
                               "planner_success": float(np.mean([m["success"] for m in metas]))}
                bar.write(f"step {step}: planner episode(s) {', '.join(m['task'] for m in metas)}: final distance "
                          f"{planner_row['planner_final_distance'] * 100:.1f} cm; {len(episodes)} episodes in data")
            if step % cfg.train.log_every == 0 or step == cfg.train.steps:
                now = time.monotonic()
                means = {k: float(np.mean(v)) for k, v in window.items()}
                rate = window_steps / max(now - window_start, 1e-9)
                train_log.add({"step": step, "wall_time": round(train_seconds, 3), "steps_per_s": round(rate, 4),
                               "episodes": len(episodes), **means, **planner_row})
                planner_row = {}
                bar.set_postfix(loss=f"{means['loss']:.1f}", kl=f"{means['kl']:.2f}",
                                r_rmse=f"{means['reward_rmse']:.4f}", tgt=f"{means['target_xy_error']:.3f}",
                                steps_s=f"{rate:.2f}")
                window, window_start, window_steps = {}, now, 0
            if step % cfg.train.eval_every == 0 or step == cfg.train.steps:
                result = open_loop(model, val_eps, cfg, dev)
                if result is not None:
                    val_log.add({"step": step, "val_image_mse_filtered": result["filtered_mse"],
                                 "val_image_mse_open_loop": float(result["image_mse"].mean()),
                                 "val_reward_mae_open_loop": float(result["reward_mae"].mean()),
                                 "val_target_error_open_loop": float(result["target_error"].mean())})
            if step % cfg.train.checkpoint_every == 0 or step == cfg.train.steps:
                checkpoint()
    except KeyboardInterrupt:
        checkpoint()
        bar.close()
        print(f"\ninterrupted at step {step}; saved {last_path} (continue with --resume)", flush=True)
        raise
    bar.close()

    from il_robot.learning.planet_plots import plot_curves

    done = step - start_step
    seconds = train_seconds - start_seconds
    steps_per_s = done / seconds if seconds > 0 and done else None
    summary = {"steps": step, "steps_this_run": done, "train_seconds": train_seconds, "steps_per_s": steps_per_s,
               "threads": threads, "device": str(dev), "data": data_info(), "encoder_pretrain": pretrained,
               "final_train": train_log.rows[-1] if train_log.rows else None,
               "final_val": val_log.rows[-1] if val_log.rows else None,
               "checkpoint": str(last_path),
               "plots": {"curves": str(plot_curves(train_log.rows, val_log.rows, out / "curves.png"))}}
    result = open_loop(model, val_eps, cfg, dev)
    if result is not None:
        summary["open_loop"] = {"image_mse": result["image_mse"].tolist(), "reward_mae": result["reward_mae"].tolist(),
                                "target_xy_error": result["target_error"].tolist(),
                                "context": result["context"], **write_open_loop(out, result, cfg)}
    if export:
        from il_robot.learning.planet_export import export_planet
        meta = export_planet(last_path, out / "onnx", force=True)
        summary["onnx"] = {"dir": str(out / "onnx"), "step": meta["training"]["steps"],
                           "max_abs_diff": meta["verification"]["max_abs_diff"]}
        print(f"exported step {step} to {out / 'onnx'}", flush=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
