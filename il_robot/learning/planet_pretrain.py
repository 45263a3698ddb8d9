"""Pretrain PlaNet's encoder to find the objects, on single frames, before the world model trains.

In the full model the encoder's gradient is mostly the image likelihood's (12288 pixels that the arm
and the table dominate); a 3 cm object is a few pixels of it. Trained that way, the filtered target
position was still off by 9-10 cm (the spread of the data) after 1600 steps here. The same encoder
trained alone on the frame position loss (target and distractor positions from one frame and the
task vector) finds the target to about 1 cm on training frames within three minutes of CPU. So a
run starts with that: only the encoder, the task head and the frame position head, on frames drawn
from the train episodes (hue-turned like the chunks), with their own Adam optimiser.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from il_robot.learning.planet_data import SequenceSampler
from il_robot.learning.planet_model import PlaNet, frame_position_loss
from il_robot.learning.run_loop import CsvLog

COLUMNS = ("step", "wall_time", "frame_position_loss", "target_xy_error")


def pretrain_encoder(model: PlaNet, sampler: SequenceSampler, steps: int, batch: int, lr: float, eps: float,
                     log_path: Path | None = None, log_every: int = 20, device="cpu", progress: bool = True) -> dict:
    """`steps` Adam steps on the frame position loss; returns the last window's mean loss and target error (m)."""
    parts = [model.encoder, model.task_head, model.frame_position_head]
    params = [p for part in parts for p in part.parameters()]
    optimizer = torch.optim.Adam(params, lr=lr, eps=eps)
    log = CsvLog(log_path, COLUMNS, None) if log_path is not None else None
    std = model.position_std[3:5]
    window: dict[str, list[float]] = {"frame_position_loss": [], "target_xy_error": []}
    last: dict[str, float] = {}
    seconds = 0.0
    bar = tqdm(total=steps, desc="encoder pretraining", unit="step", disable=not progress, dynamic_ncols=True)
    for step in range(1, steps + 1):
        t0 = time.monotonic()
        frames = {k: torch.from_numpy(v).to(device).float() for k, v in sampler.sample_frames(batch).items()}
        task = model.task_vector(frames["task_frame"].permute(0, 3, 1, 2))
        target = (frames["position"] - model.position_mean) / model.position_std
        loss, predicted = frame_position_loss(model, model.encoder(frames["image"].permute(0, 3, 1, 2)), task, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seconds += time.monotonic() - t0
        with torch.no_grad():
            error = ((predicted[:, :2] - target[:, 3:5]) * std).norm(dim=-1).mean()
        window["frame_position_loss"].append(loss.item())
        window["target_xy_error"].append(error.item())
        bar.update(1)
        if step % log_every == 0 or step == steps:
            last = {k: float(np.mean(v)) for k, v in window.items()}
            if log is not None:
                log.add({"step": step, "wall_time": round(seconds, 3), **last})
            bar.set_postfix(loss=f"{last['frame_position_loss']:.3f}", tgt=f"{last['target_xy_error']:.3f}")
            window = {k: [] for k in window}
    bar.close()
    return {"steps": steps, "batch": batch, "seconds": seconds, **last}
