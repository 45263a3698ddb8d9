"""The one training loop every model plugs into: run directory, step cadence, logs, checkpoints, summary.

A model brings what is its own: one optimiser step (returning its figures), its validation, its
checkpoint and its export. The loop decides when each happens, by step count, the same way for
TecNet, the RSSM, the position latent's parts and the RSSM's encoder pretraining:

    after every step      the hooks that are due (e.g. a planner episode every collect.every steps)
    every log_every       one train-log row: the window's mean figures, step time, steps/s
    every val_every       validate -> one val-log row
    every checkpoint_every  save (checkpoints/last.pt)
    the last step         all three; Ctrl-C saves and re-raises

Under torchrun (learning/distributed.py) every rank runs the same loop: the log figures are averaged over
the ranks, and rank 0 alone logs, validates, saves and shows the progress bar.

A run directory (RunDir) refuses to start a new run over an old one, gives resume its checkpoint,
writes config.yaml, the CSV logs and summary.json, and calls the export at the end.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import yaml
from tqdm import tqdm

from il_robot.learning.distributed import ONE, World, rank_device
from il_robot.parallel import usable_cores


class CsvLog:
    """Append-only CSV; on resume, rows after the checkpoint's step are dropped (they will be redone)."""

    def __init__(self, path: Path, columns: tuple[str, ...], keep_until: int | None):
        self.path, self.columns = path, columns
        self.rows: list[dict] = []
        if keep_until is not None and path.is_file():
            with open(path, newline="") as f:
                self.rows = [r for r in csv.DictReader(f) if int(float(r["step"])) <= keep_until]
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows(self.rows)

    def add(self, row: dict) -> None:
        row = {c: row.get(c, "") for c in self.columns}
        self.rows.append(row)
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.columns).writerow(row)

    @property
    def last(self) -> dict | None:
        return self.rows[-1] if self.rows else None


class RunDir:
    """A training run's output directory. A new run refuses one that holds a run (checkpoints/last.pt), so a
    second `train` never clobbers the first; `resume` continues it instead (where the model can resume)."""

    def __init__(self, out: str | Path, resume: bool = False, resumable: bool = True):
        self.out = Path(out)
        self.last = self.out / "checkpoints" / "last.pt"
        self.best = self.out / "checkpoints" / "best.pt"
        self.resumable = resumable
        if self.last.exists() and not resume:
            hint = "use --resume to continue it or choose another --out" if resumable else "choose another --out"
            raise ValueError(f"{self.out} holds a training run already ({self.last}); {hint}")

    def begin(self, cfg) -> None:
        """Create the directory and write the run's settings (config.yaml)."""
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.yaml").write_text(yaml.safe_dump(asdict(cfg), sort_keys=False))

    def log(self, name: str, columns: tuple[str, ...], resumed_at: int | None = None) -> CsvLog:
        """A CSV log in the run; a resumed run keeps its rows up to `resumed_at`."""
        return CsvLog(self.out / name, columns, resumed_at)

    def interrupted(self, step: int, saved: Path | None) -> None:
        hint = "continue with --resume" if self.resumable else "start from it with --init-from"
        print(f"\ninterrupted at step {step}; saved {saved} ({hint})" if saved else f"\ninterrupted at step {step}",
              flush=True)

    def finish(self, summary: dict, export: Callable[[], dict] | None = None) -> dict:
        """Run the export hook (its figures go to summary["onnx"]) and write summary.json."""
        if export is not None:
            summary["onnx"] = export()
        (self.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        return summary


@dataclass
class Every:
    """Something a model does every `n` steps (0 = never) besides logging, validating and saving:
    `run(step)` returns figures for the next train-log row, or None."""
    n: int
    run: Callable[[int], dict | None]


def say(text: str) -> None:
    """A line of output that leaves the progress bar intact."""
    tqdm.write(text)


class StepLoop:
    """Optimiser steps up to `steps`, with the cadence above. `train_step(n)` does the update that makes the
    step count n and returns its figures (tensors or floats), averaged over each log window. After `run`,
    `step`, `seconds` (step time, resumed runs included), `means` (the last window's) and `summary()`."""

    def __init__(self, name: str, steps: int, train_step: Callable[[int], dict], log: CsvLog | None,
                 log_every: int, *, run: RunDir | None = None, start: int = 0, seconds: float = 0.0,
                 validate: Callable[[int], dict | None] | None = None, val_log: CsvLog | None = None,
                 val_every: int = 0, save: Callable[[], Path] | None = None, checkpoint_every: int = 0,
                 hooks: tuple[Every, ...] = (), row: Callable[[int], dict] | None = None,
                 postfix: Callable[[dict, float], dict] | None = None, world: World = ONE):
        self.name, self.steps, self.train_step, self.log, self.log_every = name, steps, train_step, log, log_every
        self.run_dir, self.validate, self.val_log, self.val_every = run, validate, val_log, val_every
        self.save, self.checkpoint_every, self.hooks, self.row, self.postfix = save, checkpoint_every, hooks, row, postfix
        self.step, self.seconds = start, seconds
        self.start_step, self.start_seconds = start, seconds
        self.means: dict[str, float] = {}
        self.world = world

    def run(self, progress: bool = True) -> StepLoop:
        writes = self.world.main
        bar = tqdm(total=self.steps, initial=self.step, desc=self.name, unit="step",
                   disable=not (progress and writes), dynamic_ncols=True)
        window: dict[str, list[float]] = {}
        pending: dict = {}
        window_start, window_steps = time.monotonic(), 0
        try:
            while self.step < self.steps:
                t0 = time.monotonic()
                figures = self.train_step(self.step + 1)
                self.step += 1
                self.seconds += time.monotonic() - t0
                window_steps += 1
                for k, v in figures.items():
                    window.setdefault(k, []).append(float(v.item() if hasattr(v, "item") else v))
                bar.update(1)
                for hook in self.hooks:
                    if hook.n and self.step % hook.n == 0:
                        pending.update(hook.run(self.step) or {})
                if self._due(self.log_every):
                    now = time.monotonic()
                    self.means = self.world.mean_figures({k: float(np.mean(v)) for k, v in window.items()})
                    rate = window_steps / max(now - window_start, 1e-9)
                    if self.log is not None and writes:
                        self.log.add({"step": self.step, "wall_time": round(self.seconds, 3),
                                      "steps_per_s": round(rate, 4), **self.means, **pending,
                                      **(self.row(self.step) if self.row else {})})
                    if self.postfix:
                        bar.set_postfix(**self.postfix(self.means, rate))
                    window, pending, window_start, window_steps = {}, {}, now, 0
                if self.validate and writes and self._due(self.val_every):
                    metrics = self.validate(self.step)
                    if metrics is not None and self.val_log is not None:
                        self.val_log.add({"step": self.step, **metrics})
                if self.save and writes and self._due(self.checkpoint_every):
                    self.save()
        except KeyboardInterrupt:
            saved = self.save() if self.save and writes else None
            bar.close()
            if self.run_dir is not None and writes:
                self.run_dir.interrupted(self.step, saved)
            raise
        bar.close()
        return self

    def _due(self, every: int) -> bool:
        return bool(every) and (self.step % every == 0 or self.step == self.steps)

    def summary(self) -> dict:
        """Steps and speed of the run (steps/s over this invocation's steps and step time)."""
        done, seconds = self.step - self.start_step, self.seconds - self.start_seconds
        return {"steps": self.step, "steps_this_run": done, "train_seconds": self.seconds,
                "steps_per_s": done / seconds if seconds > 0 and done else None}


def set_threads(requested: int, world: World = ONE) -> int:
    """torch intra-op threads; 0 = the cores this process may use, shared among the ranks on this machine."""
    n = requested or max(1, usable_cores() // world.local_size)
    torch.set_num_threads(n)
    return n


def torch_device(name: str, world: World = ONE) -> torch.device:
    """The device `name` names (`cuda` under torchrun: the GPU of this process's LOCAL_RANK)."""
    return rank_device(name, world)
