"""Train TecNet on a built dataset: task batches, the three losses, validation, checkpoints, curves.

Everything a run makes lands in its output directory:
  checkpoints/last.pt, checkpoints/best.pt   state dicts + config + normalisation (torch.load weights_only)
  train_log.csv, val_log.csv                 one row per log step / validation
  curves.png, embeddings_val.png             training curves; PCA of val demo embeddings
  summary.json                               final figures, speed, paths
  onnx/                                      the exported runtime model (embedding.onnx, control.onnx, metadata.json)
"""

from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm import tqdm

from il_robot.data.dataset import load_dataset
from il_robot.learning import tecnet_data as data
from il_robot.learning.tecnet_model import (ModelConfig, TecNet, control_loss, embedding_hinge_loss, sentence_from,
                                            state_layout)
from il_robot.learning.training_common import CsvLog, fill_config, read_config_values, set_threads, torch_device
from il_robot.policies.tecnet_state import columns_of

CHECKPOINT_FORMAT = "il_robot.tecnet.checkpoint"
CHECKPOINT_VERSION = 1
TRAIN_COLUMNS = ("step", "wall_time", "steps_per_s", "loss", "embedding_loss", "support_control_loss",
                 "query_control_loss", "correction_control_loss", "embedding_accuracy")
VAL_COLUMNS = ("step", "val_embedding_accuracy", "val_embedding_loss", "val_control_loss",
               "val_control_rmse_mps", "val_success_rate", "val_final_distance_m")


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
    data: data.DataConfig = field(default_factory=data.DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: RunConfig = field(default_factory=RunConfig)


# -- configuration -------------------------------------------------------------------------------

def config_from_dict(values: dict) -> TecNetConfig:
    return fill_config(TecNetConfig, values, "")


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> TecNetConfig:
    """YAML file (sections model/data/loss/optim/train) plus `section.key=value` overrides."""
    return config_from_dict(read_config_values(path, overrides))


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
    if not all(isinstance(r, int) and not isinstance(r, bool) for r in d.correction_rounds):
        raise ValueError(f"data.correction_rounds must be a list of round numbers, got {d.correction_rounds!r}")


# -- one step, one validation ----------------------------------------------------------------------

def batch_losses(model: TecNet, batch: dict[str, torch.Tensor], cfg: TecNetConfig) -> dict[str, torch.Tensor]:
    frames, images = batch["frames"], batch["images"]
    n, m, k = images.shape[:3]
    s = cfg.data.support
    embeddings = model.embedding(frames.flatten(0, 1)).view(n, m, -1)
    sentences = sentence_from(embeddings[:, :s])                                   # (N, D)
    emb_loss, accuracy = embedding_hinge_loss(embeddings[:, s:], sentences, cfg.loss.margin)
    task_index = torch.arange(n, device=images.device).repeat_interleave(m * k)
    predicted = model.control(images.flatten(0, 2), sentences, batch["state"].flatten(0, 2),
                              task_index).view(n, m, k, -1)
    target, weight = batch["action"], batch.get("control_weight")
    support_loss = control_loss(predicted[:, :s], target[:, :s], cfg.loss.control_loss,
                                None if weight is None else weight[:, :s])
    query_loss = control_loss(predicted[:, s:], target[:, s:], cfg.loss.control_loss,
                              None if weight is None else weight[:, s:])
    total = (cfg.loss.embedding_weight * emb_loss + cfg.loss.support_control_weight * support_loss
             + cfg.loss.query_control_weight * query_loss)
    losses = {"support_control_loss": support_loss, "query_control_loss": query_loss}
    if "correction_images" in batch:      # states the learner reached, labelled by the expert (DAgger)
        c = batch["correction_images"].shape[1]
        predicted = model.control(batch["correction_images"].flatten(0, 1), sentences,
                                  batch["correction_state"].flatten(0, 1),
                                  torch.arange(n, device=images.device).repeat_interleave(c))
        losses["correction_control_loss"] = control_loss(predicted, batch["correction_action"].flatten(0, 1),
                                                         cfg.loss.control_loss)
        total = total + cfg.loss.correction_control_weight * losses["correction_control_loss"]
    return {"loss": total, "embedding_loss": emb_loss, **losses, "embedding_accuracy": accuracy}


@torch.no_grad()
def embed(model: TecNet, frames: np.ndarray, device: torch.device, chunk: int = 256) -> torch.Tensor:
    flat = frames.reshape(-1, *frames.shape[-3:])
    out = [model.embedding(torch.from_numpy(flat[i:i + chunk]).to(device)) for i in range(0, len(flat), chunk)]
    return torch.cat(out).view(*frames.shape[:-3], -1)


@torch.no_grad()
def validate(model: TecNet, val: data.ValidationSet, cfg: TecNetConfig, norm: data.Normalisation,
             device: torch.device, chunk: int = 256) -> dict[str, float]:
    """Embedding accuracy over val queries (nearest sentence among all val tasks is their own),
    hinge loss, and control error of queries conditioned on their task's support sentence."""
    model.eval()
    sentences = sentence_from(embed(model, val.support_frames, device))          # (tasks, D)
    queries = embed(model, val.query_frames, device)                               # (queries, D)
    own = torch.from_numpy(val.query_task).to(device)
    scores = queries @ sentences.T
    accuracy = (scores.argmax(1) == own).float().mean().item()
    own_score = scores.gather(1, own[:, None])
    others = torch.ones_like(scores, dtype=torch.bool).scatter_(1, own[:, None], False)
    hinge = ((cfg.loss.margin - own_score + scores).clamp_min(0) * others).sum() / others.sum()
    sample_task = own[torch.from_numpy(val.sample_query).to(device)]
    predicted = []
    for i in range(0, len(val.images), chunk):
        predicted.append(model.control(torch.from_numpy(val.images[i:i + chunk]).to(device), sentences,
                                       torch.from_numpy(val.state[i:i + chunk]).to(device),
                                       sample_task[i:i + chunk]))
    predicted = torch.cat(predicted)
    target = torch.from_numpy(val.action).to(device)
    loss = control_loss(predicted, target, cfg.loss.control_loss).item()
    std = torch.from_numpy(norm.action_std).to(device)
    rmse = torch.sqrt((((predicted - target) * std) ** 2).sum(1).mean()).item()
    model.train()
    return {"val_embedding_accuracy": accuracy, "val_embedding_loss": hinge.item(), "val_control_loss": loss,
            "val_control_rmse_mps": rmse}


def better(metrics: dict, best: dict) -> bool:
    """Best checkpoint: higher closed-loop success when rollouts run, then lower val control loss."""
    if best.get("val_control_loss") is None:
        return True
    success, best_success = metrics.get("val_success_rate"), best.get("val_success_rate")
    if success is not None and best_success is not None and success != best_success:
        return success > best_success
    return metrics["val_control_loss"] < best["val_control_loss"]


# -- checkpoints and logs ------------------------------------------------------------------------

def save_checkpoint(path: Path, model: TecNet, optimizer, step: int, cfg: TecNetConfig,
                    norm: data.Normalisation, data_info: dict, rng: np.random.Generator, best: dict,
                    train_seconds: float, train_model: TecNet | None = None) -> None:
    """Atomic (write then rename), so an interrupted save never leaves a half checkpoint. `model` is what
    is exported; with a weight average, `train_model` holds the raw weights the optimiser goes on from."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    extra = {} if train_model is None else {"train_model": train_model.state_dict()}
    torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "step": step,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "config": asdict(cfg),
                "normalisation": norm.to_dict(), "data": data_info, "best": best,
                "train_seconds": train_seconds, **extra,
                "rng": {"numpy": rng.bit_generator.state, "torch": torch.get_rng_state()}}, tmp)
    os.replace(tmp, path)


class WeightAverage:
    """Exponential moving average of a model's weights. Consecutive checkpoints of one fine-tune pushed
    home 25%, 9% and 17% of their DAgger rounds; an average of the recent weights is steadier. The decay
    ramps up over the first steps of a run, so a fresh average is not held at its start; the ramp follows
    the run's step count, so a resumed run goes on where it stopped."""

    def __init__(self, model: TecNet, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: TecNet, step: int) -> None:
        """Average in `model` after optimiser step `step` (1 for the first step of the run)."""
        decay = min(self.decay, (1 + step) / (10 + step))
        for avg, p in zip(self.model.parameters(), model.parameters()):
            avg.lerp_(p.detach(), 1.0 - decay)


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint dict; tensors only, no pickled code (weights_only)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"no checkpoint at {path}") from None
    except Exception as err:
        raise ValueError(f"{path} is not a readable checkpoint: {type(err).__name__}: {err}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a TecNet checkpoint (format {CHECKPOINT_FORMAT})")
    if ckpt.get("version", 0) > CHECKPOINT_VERSION:
        raise ValueError(f"{path}: checkpoint version {ckpt['version']} is newer than this code reads")
    return ckpt


def load_init(path: Path) -> dict:
    """What --init-from names: a checkpoint file, or an exported model directory (a shipped model has no
    checkpoint; its weights are read back out of its graphs)."""
    if path.is_dir():
        from il_robot.learning.tecnet_import import checkpoint_from_model_dir
        return checkpoint_from_model_dir(path)
    return load_checkpoint(path)


def model_from_checkpoint(ckpt: dict) -> TecNet:
    model = TecNet(ModelConfig(**ckpt["config"]["model"]))
    model.load_state_dict(ckpt["model"])
    return model.eval()


# -- the run ------------------------------------------------------------------------------------------

def narrow_state(ckpt: dict, old: tuple[str, ...], new: tuple[str, ...]) -> dict:
    """A checkpoint whose control net reads state layout `new`, a part-subset of its `old` one: the first
    head layer loses the dropped parts' columns and the normalisation their entries, so the network
    computes what it did, minus what those parts added."""
    try:
        keep = columns_of(old, new)
    except ValueError as err:
        raise ValueError(f"--init-from can drop parts of a model's state, not add them: {err}") from None
    weight = ckpt["model"]["control.head.0.weight"]
    features = weight.shape[1] - len(ckpt["normalisation"]["state_mean"])
    columns = torch.cat([torch.arange(features), torch.from_numpy(features + keep)])
    ckpt = dict(ckpt, model=dict(ckpt["model"]), normalisation=dict(ckpt["normalisation"]))
    ckpt["model"]["control.head.0.weight"] = weight[:, columns].clone()
    for key in ("state_mean", "state_std"):
        ckpt["normalisation"][key] = [ckpt["normalisation"][key][i] for i in keep]
    return ckpt


def _to_torch(batch: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v).to(device, non_blocking=True) for k, v in batch.items()}


def train(data_dir: str | Path, out_dir: str | Path, cfg: TecNetConfig | None = None, steps: int | None = None,
          device: str = "cpu", resume: bool = False, progress: bool = True, export: bool = True,
          init_from: str | Path | None = None) -> dict:
    """Train (or resume) a TecNet; returns the summary also written to OUT/summary.json. `init_from`: a
    checkpoint whose weights, normalisation and model settings a new run starts from (fine-tuning)."""
    out = Path(out_dir)
    last_path, best_path = out / "checkpoints" / "last.pt", out / "checkpoints" / "best.pt"
    ckpt = None
    if resume:
        ckpt = load_checkpoint(last_path)
        cfg = config_from_dict(ckpt["config"])          # the run's own settings; only --steps may change
    elif last_path.exists():
        raise ValueError(f"{out} holds a training run already ({last_path}); use --resume to continue it "
                         "or choose another --out")
    cfg = cfg or TecNetConfig()
    init = None
    if init_from and not resume:
        init = load_init(Path(init_from))
        model_cfg = config_from_dict(init["config"]).model     # the weights fix the network's shape...
        old = state_layout(model_cfg)
        model_cfg.joint_velocities_in_state = cfg.model.joint_velocities_in_state   # ...but qd may be dropped
        cfg.model = model_cfg
        if state_layout(model_cfg) != old:
            init = narrow_state(init, old, state_layout(model_cfg))
    if steps is not None:
        cfg.train.steps = steps
    check_config(cfg)
    threads = set_threads(cfg.train.threads)
    dev = torch_device(device)

    dataset = load_dataset(data_dir)
    data.check_correction_rounds(dataset.meta, cfg.data)
    if ckpt and ckpt["data"]["path"] != str(Path(data_dir).resolve()):
        print(f"warning: resuming a run trained on {ckpt['data']['path']} with data from {data_dir}", flush=True)
    train_demos = data.load_demos(dataset, "train", cfg.data, state_layout(cfg.model))
    if not train_demos:
        raise ValueError(f"{data_dir}: no usable training episodes (split 'train', skills {cfg.data.skills or 'all'})")
    start = ckpt or init
    norm = (data.Normalisation.from_dict(start["normalisation"]) if start
            else data.Normalisation.from_demos(train_demos))
    rng = np.random.default_rng(cfg.train.seed)
    torch.manual_seed(cfg.train.seed)
    sampler = data.TaskBatchSampler(train_demos, cfg.data, norm, rng)
    val = data.ValidationSet.build(data.load_demos(dataset, "val", cfg.data, state_layout(cfg.model)), cfg.data, norm)
    data_info = {"path": str(Path(data_dir).resolve()), "created": dataset.meta.get("created"),
                 "summary": dataset.meta.get("summary"), "train": data.data_summary(train_demos),
                 "val": data.data_summary(val.demos) if val else None,
                 "tasks_used": len(sampler.tasks)}

    model = TecNet(cfg.model).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)
    step, best, train_seconds = 0, {"val_control_loss": None, "val_success_rate": None, "step": None}, 0.0
    if init:
        model.load_state_dict(init["model"])
        data_info["init_from"] = {"checkpoint": str(Path(init_from).resolve()), "step": init["step"]}
    if ckpt:
        model.load_state_dict(ckpt.get("train_model", ckpt["model"]))
        optimizer.load_state_dict(ckpt["optimizer"])
        step, best, train_seconds = ckpt["step"], ckpt["best"], float(ckpt.get("train_seconds", 0.0))
        rng.bit_generator.state = ckpt["rng"]["numpy"]
        torch.set_rng_state(ckpt["rng"]["torch"])
    average = WeightAverage(model, cfg.optim.ema) if cfg.optim.ema > 0 else None
    if average and ckpt and "train_model" in ckpt:
        average.model.load_state_dict(ckpt["model"])
    evaluated = average.model if average else model    # what validation, checkpoints and the export see
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(asdict(cfg), sort_keys=False))
    train_log = CsvLog(out / "train_log.csv", TRAIN_COLUMNS, step if ckpt else None)
    val_log = CsvLog(out / "val_log.csv", VAL_COLUMNS, step if ckpt else None)

    d = cfg.data
    per_batch = sampler.tasks_per_batch * (d.support + d.query)
    batch_text = (f"{sampler.tasks_per_batch} tasks x ({d.support} support + {d.query} query) demos, "
                  f"{d.timesteps_per_demo} timesteps each = {per_batch * d.timesteps_per_demo} control samples")
    print(f"TecNet: {len(train_demos)} train demos of {len(sampler.tasks)} usable tasks "
          f"({data_info['train']['frames_in_memory']} frames in memory); val: "
          f"{len(val.task_names) if val else 0} tasks; batch {batch_text}; device {dev}, {threads} threads", flush=True)
    if val is None:
        print("no validation: the val split has fewer than 2 tasks with more demos than the support size", flush=True)

    def checkpoint(path: Path) -> None:
        save_checkpoint(path, evaluated, optimizer, step, cfg, norm, data_info, rng, best, train_seconds,
                        model if average else None)

    def run_validation() -> None:
        if val is None:
            return
        metrics = validate(evaluated, val, cfg, norm, dev)
        if cfg.train.rollout_episodes > 0:
            from il_robot.learning.tecnet_rollouts import rollout_success
            metrics.update(rollout_success(evaluated, norm, val.demos, cfg.train.rollout_episodes, dev))
        val_log.add({"step": step, **metrics})
        if better(metrics, best):
            best.update(val_control_loss=metrics["val_control_loss"],
                        val_success_rate=metrics.get("val_success_rate"), step=step)
            checkpoint(best_path)
        rollouts = (f", closed-loop success {metrics['val_success_rate']:.0%}"
                    if "val_success_rate" in metrics else "")
        bar.write(f"step {step}: val embedding accuracy {metrics['val_embedding_accuracy']:.2f}, "
                  f"control loss {metrics['val_control_loss']:.4f} (rmse {metrics['val_control_rmse_mps']:.4f} m/s)"
                  + rollouts)

    model.train()
    window: dict[str, list[float]] = {}
    window_start, window_steps = time.monotonic(), 0
    bar = tqdm(total=cfg.train.steps, initial=step, desc="tecnet", unit="step", disable=not progress,
               dynamic_ncols=True)
    start_step = step
    try:
        while step < cfg.train.steps:
            t0 = time.monotonic()
            batch = _to_torch(sampler.sample(), dev)
            losses = batch_losses(model, batch, cfg)
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            if cfg.optim.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            optimizer.step()
            step += 1
            if average:
                average.update(model, step)
            train_seconds += time.monotonic() - t0
            window_steps += 1
            for k, v in losses.items():
                window.setdefault(k, []).append(v.item())
            bar.update(1)
            if step % cfg.train.log_every == 0 or step == cfg.train.steps:
                now = time.monotonic()
                means = {k: float(np.mean(v)) for k, v in window.items()}
                rate = window_steps / max(now - window_start, 1e-9)
                train_log.add({"step": step, "wall_time": round(train_seconds, 3), "steps_per_s": round(rate, 4),
                               **means})
                bar.set_postfix(loss=f"{means['loss']:.4f}", acc=f"{means['embedding_accuracy']:.2f}",
                                steps_s=f"{rate:.2f}")
                window, window_start, window_steps = {}, now, 0
            if step % cfg.train.val_every == 0 or step == cfg.train.steps:
                run_validation()
            if step % cfg.train.checkpoint_every == 0 or step == cfg.train.steps:
                checkpoint(last_path)
    except KeyboardInterrupt:
        checkpoint(last_path)
        bar.close()
        print(f"\ninterrupted at step {step}; saved {last_path} (continue with --resume)", flush=True)
        raise
    bar.close()

    done = step - start_step
    steps_per_s = done / train_seconds if train_seconds > 0 and done else None
    if steps_per_s:
        print(f"trained {done} steps in {train_seconds:.1f} s of training time: {steps_per_s:.2f} steps/s "
              f"({batch_text})", flush=True)
    summary = {"steps": step, "steps_this_run": done, "train_seconds": train_seconds, "steps_per_s": steps_per_s,
               "batch": batch_text, "threads": threads, "device": str(dev), "best": best,
               "final_train": train_log.rows[-1] if train_log.rows else None,
               "final_val": val_log.rows[-1] if val_log.rows else None,
               "checkpoints": {"last": str(last_path), "best": str(best_path) if best_path.exists() else None}}
    summary["plots"] = make_plots(out, evaluated, val, train_log, val_log, dev)
    if export:
        from il_robot.learning.onnx_export import export_tecnet
        chosen = best_path if cfg.train.export == "best" and best_path.exists() else last_path
        meta = export_tecnet(chosen, out / "onnx", force=True)
        summary["onnx"] = {"dir": str(out / "onnx"), "checkpoint": str(chosen), "step": meta["training"]["steps"],
                           "max_abs_diff": meta["verification"]["max_abs_diff"]}
        print(f"exported {chosen.name} (step {meta['training']['steps']}) to {out / 'onnx'}", flush=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def make_plots(out: Path, model: TecNet, val: data.ValidationSet | None, train_log: CsvLog, val_log: CsvLog,
               device: torch.device) -> dict:
    from il_robot.learning.plots import plot_curves, plot_embeddings

    paths = {"curves": str(plot_curves(train_log.rows, val_log.rows, out / "curves.png"))}
    if val is not None:
        model.eval()
        frames = data.to_nchw(data.demo_frames(np.stack([d.ends for d in val.demos])))
        embeddings = embed(model, frames, device).cpu().numpy()
        paths["embeddings"] = str(plot_embeddings(embeddings, [d.meta for d in val.demos],
                                                  out / "embeddings_val.png", "TecNet embeddings of val demos"))
    return paths
