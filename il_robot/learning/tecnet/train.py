"""Train TecNet on a built dataset: task batches, the three losses, validation, checkpoints, curves.

The step, the validation and the best-checkpoint rule are TecNet's; the run around them (directory,
resume, cadence, logs, Ctrl-C, summary, export) is learning/run_loop.py's. Everything a run makes
lands in its output directory:
  checkpoints/last.pt, checkpoints/best.pt   state dicts + config + normalisation (torch.load weights_only)
  train_log.csv, val_log.csv                 one row per log step / validation
  curves.png, embeddings_val.png             training curves; PCA of val demo embeddings
  summary.json                               final figures, speed, paths
  onnx/                                      the exported runtime model (embedding.onnx, control.onnx, metadata.json)

Under torchrun every process runs `train` with the same arguments (docs/recipes.md, "Training on several
processes or machines"): each loads its share of the train tasks and makes its part of every batch
(tecnet/step.py), and rank 0 alone validates and writes the run directory.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from il_robot.data.dataset import load_dataset
from il_robot.learning.checkpoints import restore_training_state
from il_robot.learning.distributed import World, joined
from il_robot.learning.run_loop import RunDir, StepLoop, say, set_threads, torch_device
from il_robot.learning.tecnet import data, step
from il_robot.learning.tecnet.checkpoint import load_checkpoint, save_checkpoint
from il_robot.learning.tecnet.config import TecNetConfig, check_config, config_from_dict
from il_robot.learning.tecnet.export import export_tecnet
from il_robot.learning.tecnet.import_onnx import checkpoint_from_model_dir
from il_robot.learning.tecnet.model import TecNet, control_loss, sentence_from, state_layout
from il_robot.learning.tecnet.plots import plot_curves, plot_embeddings
from il_robot.learning.tecnet.rollouts import rollout_success
from il_robot.learning.tecnet.step import TecNetLosses, make_optimizer, optimiser_step
from il_robot.policies.tecnet_state import columns_of

TRAIN_COLUMNS = ("step", "wall_time", "steps_per_s", "loss", "embedding_loss", "support_control_loss",
                 "query_control_loss", "correction_control_loss", "embedding_accuracy")
VAL_COLUMNS = ("step", "val_embedding_accuracy", "val_embedding_loss", "val_control_loss",
               "val_control_rmse_mps", "val_success_rate", "val_final_distance_m")
batch_losses = step.batch_losses     # lived here before step.py; callers import it from here too


# -- validation --------------------------------------------------------------------------------------

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


def load_init(path: Path) -> dict:
    """What --init-from names: a checkpoint file, or an exported model directory (a shipped model has no
    checkpoint; its weights are read back out of its graphs)."""
    if path.is_dir():
        return checkpoint_from_model_dir(path)
    return load_checkpoint(path)


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


def _init_settings(init: dict, cfg: TecNetConfig) -> dict:
    """The checkpoint `init` (what --init-from names), and its model settings in `cfg` (the weights fix the
    network's shape, but qd may be dropped from the state: the checkpoint is narrowed to match)."""
    model_cfg = config_from_dict(init["config"]).model
    old = state_layout(model_cfg)
    model_cfg.joint_velocities_in_state = cfg.model.joint_velocities_in_state
    cfg.model = model_cfg
    return narrow_state(init, old, state_layout(model_cfg)) if state_layout(model_cfg) != old else init


def train(data_dir: str | Path, out_dir: str | Path, cfg: TecNetConfig | None = None, steps: int | None = None,
          device: str = "cpu", resume: bool = False, progress: bool = True, export: bool = True,
          init_from: str | Path | None = None) -> dict:
    """Train (or resume) a TecNet; returns the summary also written to OUT/summary.json (on rank 0; {} on the
    other processes under torchrun). `init_from`: a checkpoint whose weights, normalisation and model settings
    a new run starts from (fine-tuning)."""
    with joined(device) as world:
        return _train(world, data_dir, out_dir, cfg, steps, device, resume, progress, export, init_from)


def _share(world: World, dataset, cfg: TecNetConfig) -> tuple[set[str] | None, int | None]:
    """The train tasks this process loads and how many of them each batch takes (None, None: all of them,
    one process). Tasks are dealt round robin, by name, from what dataset.json says."""
    if not world.distributed:
        return None, None
    if cfg.data.tasks_per_batch % world.size:
        raise ValueError(f"data.tasks_per_batch {cfg.data.tasks_per_batch} must be a multiple of the number of "
                         f"processes ({world.size}): each makes an equal part of the batch")
    tasks = data.batch_tasks(dataset, "train", cfg.data)
    per_process = min(cfg.data.tasks_per_batch, len(tasks)) // world.size
    if per_process < 1:
        raise ValueError(f"{len(tasks)} usable train tasks are too few for {world.size} processes "
                         "(each makes a part of every batch from tasks of its own)")
    return set(tasks[world.rank::world.size]), per_process


def _train(world: World, data_dir, out_dir, cfg, steps, device, resume, progress, export, init_from) -> dict:
    run = world.from_main(lambda: RunDir(out_dir, resume))          # rank 0's disk holds the run
    ckpt = world.from_main(lambda: load_checkpoint(run.last)) if resume else None
    if ckpt:
        cfg = config_from_dict(ckpt["config"])          # the run's own settings; only --steps may change
    cfg = cfg or TecNetConfig()
    init = (_init_settings(world.from_main(lambda: load_init(Path(init_from))), cfg)
            if init_from and not resume else None)
    if steps is not None:
        cfg.train.steps = steps
    check_config(cfg)
    threads = set_threads(cfg.train.threads, world)
    dev = torch_device(device, world)

    dataset = load_dataset(data_dir)
    data.check_correction_rounds(dataset.meta, cfg.data)
    if world.main and ckpt and ckpt["data"]["path"] != str(Path(data_dir).resolve()):
        print(f"warning: resuming a run trained on {ckpt['data']['path']} with data from {data_dir}", flush=True)
    share, tasks_per_batch = _share(world, dataset, cfg)
    train_demos = data.load_demos(dataset, "train", cfg.data, state_layout(cfg.model), share)
    if not train_demos:
        raise ValueError(f"{data_dir}: no usable training episodes (split 'train', skills {cfg.data.skills or 'all'})")
    start = ckpt or init
    norm = (data.Normalisation.from_dict(start["normalisation"]) if start
            else data.Normalisation.from_demos(train_demos, world.total))
    # Each process draws its own batches: rank 0 as one process would, the others from seeds of their own.
    seed = cfg.train.seed if world.main else [cfg.train.seed, world.rank]
    rng = np.random.default_rng(seed)
    torch.manual_seed(cfg.train.seed)
    sampler = data.TaskBatchSampler(train_demos, cfg.data, norm, rng, tasks_per_batch)
    val = (data.ValidationSet.build(data.load_demos(dataset, "val", cfg.data, state_layout(cfg.model)), cfg.data,
                                    norm) if world.main else None)
    shares = world.everyone((data.data_summary(train_demos), len(sampler.tasks)))
    data_info = {"path": str(Path(data_dir).resolve()), "created": dataset.meta.get("created"),
                 "summary": dataset.meta.get("summary"), "train": data.combined_summary([s for s, _ in shares]),
                 "val": data.data_summary(val.demos) if val else None,
                 "tasks_used": sum(n for _, n in shares)}
    if world.distributed:
        data_info["processes"] = world.size

    model = TecNet(cfg.model).to(dev)
    optimizer = make_optimizer(model, cfg)
    step, best, train_seconds = 0, {"val_control_loss": None, "val_success_rate": None, "step": None}, 0.0
    if init:
        model.load_state_dict(init["model"])
        data_info["init_from"] = {"checkpoint": str(Path(init_from).resolve()), "step": init["step"]}
    if ckpt:
        step, train_seconds = restore_training_state(ckpt, model, optimizer, rng, weights="train_model")
        best = ckpt["best"]
        if not world.main:     # the checkpoint holds rank 0's random state; the others go on from seeds of theirs
            rng.bit_generator.state = np.random.default_rng([cfg.train.seed, world.rank, step]).bit_generator.state
    losses = world.wrap(TecNetLosses(model, cfg, world), dev)
    average = WeightAverage(model, cfg.optim.ema) if cfg.optim.ema > 0 else None
    if average and ckpt and "train_model" in ckpt:
        average.model.load_state_dict(ckpt["model"])
    evaluated = average.model if average else model    # what validation, checkpoints and the export see
    train_log = val_log = None
    if world.main:
        run.begin(cfg)
        train_log = run.log("train_log.csv", TRAIN_COLUMNS, step if ckpt else None)
        val_log = run.log("val_log.csv", VAL_COLUMNS, step if ckpt else None)

    d = cfg.data
    tasks = sampler.tasks_per_batch * world.size
    per_batch = tasks * (d.support + d.query)
    batch_text = (f"{tasks} tasks x ({d.support} support + {d.query} query) demos, "
                  f"{d.timesteps_per_demo} timesteps each = {per_batch * d.timesteps_per_demo} control samples")
    processes = (f"; {world.size} processes, {sampler.tasks_per_batch} tasks of each batch apiece"
                 if world.distributed else "")
    if world.main:
        print(f"TecNet: {data_info['train']['demos']} train demos of {data_info['tasks_used']} usable tasks "
              f"({data_info['train']['frames_in_memory']} frames in memory); val: "
              f"{len(val.task_names) if val else 0} tasks; batch {batch_text}; device {dev}, {threads} threads"
              f"{processes}", flush=True)
    if world.main and val is None:
        print("no validation: the val split has fewer than 2 tasks with more demos than the support size", flush=True)

    def train_step(n: int) -> dict[str, torch.Tensor]:
        figures = optimiser_step(losses, optimizer, _to_torch(sampler.sample(), dev), cfg.optim.grad_clip)
        if average:
            average.update(model, n)
        return figures

    def save(path: Path = run.last) -> Path:
        return save_checkpoint(path, evaluated, optimizer, loop.step, cfg, norm, data_info, rng, best, loop.seconds,
                               model if average else None)

    def validation(step: int) -> dict | None:
        if val is None:
            return None
        metrics = validate(evaluated, val, cfg, norm, dev)
        if cfg.train.rollout_episodes > 0:
            metrics.update(rollout_success(evaluated, norm, val.demos, cfg.train.rollout_episodes, dev))
        if better(metrics, best):
            best.update(val_control_loss=metrics["val_control_loss"],
                        val_success_rate=metrics.get("val_success_rate"), step=step)
            save(run.best)
        rollouts = (f", closed-loop success {metrics['val_success_rate']:.0%}"
                    if "val_success_rate" in metrics else "")
        say(f"step {step}: val embedding accuracy {metrics['val_embedding_accuracy']:.2f}, "
            f"control loss {metrics['val_control_loss']:.4f} (rmse {metrics['val_control_rmse_mps']:.4f} m/s)"
            + rollouts)
        return metrics

    model.train()
    t = cfg.train
    loop = StepLoop("tecnet", t.steps, train_step, train_log, t.log_every, run=run, start=step, seconds=train_seconds,
                    validate=validation, val_log=val_log, val_every=t.val_every, save=save,
                    checkpoint_every=t.checkpoint_every, world=world,
                    postfix=lambda m, rate: {"loss": f"{m['loss']:.4f}", "acc": f"{m['embedding_accuracy']:.2f}",
                                             "steps_s": f"{rate:.2f}"})
    loop.run(progress)
    if not world.main:
        return {}

    figures = loop.summary()
    if figures["steps_per_s"]:
        print(f"trained {figures['steps_this_run']} steps in {figures['train_seconds']:.1f} s of training time: "
              f"{figures['steps_per_s']:.2f} steps/s ({batch_text})", flush=True)
    summary = {**figures, "batch": batch_text, "threads": threads, "device": str(dev), "processes": world.size,
               "best": best,
               "final_train": train_log.last, "final_val": val_log.last,
               "checkpoints": {"last": str(run.last), "best": str(run.best) if run.best.exists() else None},
               "plots": make_plots(run.out, evaluated, val, train_log, val_log, dev)}

    def export_onnx() -> dict:
        chosen = run.best if cfg.train.export == "best" and run.best.exists() else run.last
        meta = export_tecnet(chosen, run.out / "onnx", force=True)
        print(f"exported {chosen.name} (step {meta['training']['steps']}) to {run.out / 'onnx'}", flush=True)
        return {"dir": str(run.out / "onnx"), "checkpoint": str(chosen), "step": meta["training"]["steps"],
                "max_abs_diff": meta["verification"]["max_abs_diff"]}

    return run.finish(summary, export_onnx if export else None)


def make_plots(out: Path, model: TecNet, val: data.ValidationSet | None, train_log, val_log,
               device: torch.device) -> dict:
    paths = {"curves": str(plot_curves(train_log.rows, val_log.rows, out / "curves.png"))}
    if val is not None:
        model.eval()
        frames = data.to_nchw(data.demo_frames(np.stack([d.ends for d in val.demos])))
        embeddings = embed(model, frames, device).cpu().numpy()
        paths["embeddings"] = str(plot_embeddings(embeddings, [d.meta for d in val.demos],
                                                  out / "embeddings_val.png", "TecNet embeddings of val demos"))
    return paths
