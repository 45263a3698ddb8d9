"""Train the RSSM world model (rssm.py): seed episodes, world-model updates on chunks, planner episodes.

PlaNet's loop (Hafner et al. 2019, Algorithm 1) on the pushing world: the data directory
starts with seed episodes (collected here when missing), the RSSM is trained on random
chunks, and every `collect.every` steps the planner (CEM on the model being trained, with
exploration noise) acts one episode on a train task, which joins the data. The step, the
collection and the open-loop figures are the RSSM's; the run around them is learning/run_loop.py's.

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

from pathlib import Path

import numpy as np
import torch

from il_robot.learning.checkpoints import restore_training_state
from il_robot.learning.planet import data
from il_robot.learning.planet.checkpoint import load_checkpoint, save_rssm_checkpoint
from il_robot.learning.planet.export import export_planet
from il_robot.learning.planet.planner import plan_episode
from il_robot.learning.planet.plots import plot_curves, plot_open_loop
from il_robot.learning.planet.pretrain import pretrain_encoder
from il_robot.learning.planet.reward import reward
from il_robot.learning.planet.rssm import PlaNet, TorchBackend, world_model_losses
from il_robot.learning.planet.rssm_config import PlanetConfig, check_config, config_from_dict
from il_robot.learning.run_loop import Every, RunDir, StepLoop, say, set_threads, torch_device
from il_robot.rates import CONTROL_RATE_HZ
from il_robot.sim.tasks import GOAL_XY

JOINT_STD_FLOOR = 1e-2
TRAIN_COLUMNS = ("step", "wall_time", "steps_per_s", "loss", "image_loss", "joint_loss", "reward_loss",
                 "position_loss", "frame_position_loss", "overshoot_reward_loss", "overshoot_position_loss", "kl", "reward_rmse",
                 "target_xy_error", "episodes", "planner_final_distance", "planner_success")
VAL_COLUMNS = ("step", "val_image_mse_filtered", "val_image_mse_open_loop", "val_reward_mae_open_loop",
               "val_target_error_open_loop")


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
        member = next(i for i, e in enumerate(train) if e.task == task.name)
        seed = 50_000_000 + cfg.collect.seed * 1_000_000 + step * 10 + k
        arrays, meta = plan_episode(backend, backend.task_vector(frames.frame(member, rng)), task, cfg.planner,
                                    cfg.data.action_bound, cfg.data.action_repeat, cfg.collect.exploration_noise,
                                    seed, cfg.collect.episode_duration, stack_cache)
        data.save_episode(data_dir, arrays, meta)
        metas.append(meta)
    model.train()
    return metas


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
    run, data_dir = RunDir(out_dir, resume), Path(data_dir)
    ckpt = load_checkpoint(run.last) if resume else None
    if ckpt:
        cfg = config_from_dict(ckpt["config"])      # the run's own settings; --steps / --collect-every may change
    cfg = cfg or PlanetConfig()
    if steps is not None:
        cfg.train.steps = steps
    if collect_every is not None:
        cfg.collect.every = collect_every
    check_config(cfg)
    threads = set_threads(cfg.train.threads)
    dev = torch_device(device)

    episodes = data.training_episodes(data_dir, cfg.collect, cfg.data.action_bound, progress)
    train_eps = data.split(episodes, "train")
    val_eps = data.split(episodes, "val") or train_eps[:cfg.train.open_loop_sequences]
    rng = np.random.default_rng(cfg.train.seed)
    torch.manual_seed(cfg.train.seed)
    d = cfg.data
    sampler = data.SequenceSampler(train_eps, d.action_repeat, d.chunk_length, d.action_bound, cfg.reward, rng,
                                   d.hue_augment)

    model = PlaNet(cfg.model).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr, eps=cfg.optim.eps)
    step, train_seconds = 0, 0.0
    if ckpt:
        step, train_seconds = restore_training_state(ckpt, model, optimizer, rng)
    elif init_from:
        _start_from(model, init_from)
    else:
        _normalisation(model, train_eps, sampler, cfg)
    run.begin(cfg)
    pretrained = None
    if not ckpt and not init_from and cfg.train.encoder_pretrain_steps > 0:
        model.train()
        pretrained = pretrain_encoder(model, sampler, cfg.train.encoder_pretrain_steps,
                                      cfg.train.encoder_pretrain_batch, cfg.optim.lr, cfg.optim.eps,
                                      run.out / "pretrain_log.csv", cfg.train.log_every, dev, progress)
        print(f"encoder pretrained: {pretrained['steps']} steps, target found to "
              f"{pretrained['target_xy_error'] * 100:.1f} cm on its last training frames", flush=True)
    train_log = run.log("train_log.csv", TRAIN_COLUMNS, step if ckpt else None)
    val_log = run.log("val_log.csv", VAL_COLUMNS, step if ckpt else None)

    def data_info() -> dict:
        return data.run_data_info(data_dir, episodes, cfg.data.action_repeat)

    def save() -> Path:
        return save_rssm_checkpoint(run.last, model, optimizer, loop.step, cfg, data_info(), rng, loop.seconds)

    def train_step(n: int) -> dict[str, torch.Tensor]:
        batch = {k: torch.from_numpy(v).to(dev) for k, v in sampler.sample(d.batch_size).items()}
        batch["image"] = batch["image"].permute(0, 1, 4, 2, 3).float()
        batch["task_frame"] = batch["task_frame"].permute(0, 3, 1, 2).float()
        losses = world_model_losses(model, batch, cfg.loss)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        optimizer.step()
        return losses

    def collect(step: int) -> dict:
        """Planner episodes join the data, and the sampler draws from it all."""
        nonlocal episodes, train_eps, sampler
        metas = collect_planner_episodes(model, cfg, episodes, data_dir, step, rng, stack_cache)
        episodes = data.load_episodes(data_dir, {e.path: e for e in episodes})
        train_eps = data.split(episodes, "train")
        sampler = data.SequenceSampler(train_eps, d.action_repeat, d.chunk_length, d.action_bound,
                                       cfg.reward, rng, d.hue_augment)
        row = {"planner_final_distance": float(np.mean([m["final_distance"] for m in metas])),
               "planner_success": float(np.mean([m["success"] for m in metas]))}
        say(f"step {step}: planner episode(s) {', '.join(m['task'] for m in metas)}: final distance "
            f"{row['planner_final_distance'] * 100:.1f} cm; {len(episodes)} episodes in data")
        return row

    def evaluate(step: int) -> dict | None:
        result = open_loop(model, val_eps, cfg, dev)
        return None if result is None else {
            "val_image_mse_filtered": result["filtered_mse"],
            "val_image_mse_open_loop": float(result["image_mse"].mean()),
            "val_reward_mae_open_loop": float(result["reward_mae"].mean()),
            "val_target_error_open_loop": float(result["target_error"].mean())}

    print(f"PlaNet: {len(train_eps)} train episodes ({len(sampler.episodes)} long enough for chunks of "
          f"{d.chunk_length} x {d.action_repeat} frames), {len(val_eps)} val episodes; batch {d.batch_size} x "
          f"{d.chunk_length}; planner episodes every {cfg.collect.every or 'never'} steps; device {dev}, "
          f"{threads} threads", flush=True)
    stack_cache: dict = {}
    model.train()
    t = cfg.train
    loop = StepLoop("planet", t.steps, train_step, train_log, t.log_every, run=run, start=step, seconds=train_seconds,
                    validate=evaluate, val_log=val_log, val_every=t.eval_every, save=save,
                    checkpoint_every=t.checkpoint_every, hooks=(Every(cfg.collect.every, collect),),
                    row=lambda step: {"episodes": len(episodes)},
                    postfix=lambda m, rate: {"loss": f"{m['loss']:.1f}", "kl": f"{m['kl']:.2f}",
                                             "r_rmse": f"{m['reward_rmse']:.4f}", "tgt": f"{m['target_xy_error']:.3f}",
                                             "steps_s": f"{rate:.2f}"})
    loop.run(progress)

    summary = {**loop.summary(), "threads": threads, "device": str(dev), "data": data_info(),
               "encoder_pretrain": pretrained, "final_train": train_log.last, "final_val": val_log.last,
               "checkpoint": str(run.last),
               "plots": {"curves": str(plot_curves(train_log.rows, val_log.rows, run.out / "curves.png"))}}
    result = open_loop(model, val_eps, cfg, dev)
    if result is not None:
        summary["open_loop"] = {"image_mse": result["image_mse"].tolist(), "reward_mae": result["reward_mae"].tolist(),
                                "target_xy_error": result["target_error"].tolist(),
                                "context": result["context"], **write_open_loop(run.out, result, cfg)}

    def export_onnx() -> dict:
        meta = export_planet(run.last, run.out / "onnx", force=True)
        print(f"exported step {loop.step} to {run.out / 'onnx'}", flush=True)
        return {"dir": str(run.out / "onnx"), "step": meta["training"]["steps"],
                "max_abs_diff": meta["verification"]["max_abs_diff"]}

    return run.finish(summary, export_onnx if export else None)
