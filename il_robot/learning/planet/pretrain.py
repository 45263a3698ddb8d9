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

from pathlib import Path

import torch

from il_robot.learning.planet.data import SequenceSampler
from il_robot.learning.planet.rssm import PlaNet, frame_position_loss
from il_robot.learning.run_loop import CsvLog, StepLoop

COLUMNS = ("step", "wall_time", "frame_position_loss", "target_xy_error")


def pretrain_encoder(model: PlaNet, sampler: SequenceSampler, steps: int, batch: int, lr: float, eps: float,
                     log_path: Path | None = None, log_every: int = 20, device="cpu", progress: bool = True) -> dict:
    """`steps` Adam steps on the frame position loss; returns the last window's mean loss and target error (m)."""
    parts = [model.encoder, model.task_head, model.frame_position_head]
    params = [p for part in parts for p in part.parameters()]
    optimizer = torch.optim.Adam(params, lr=lr, eps=eps)
    std = model.position_std[3:5]

    def train_step(n: int) -> dict:
        frames = {k: torch.from_numpy(v).to(device).float() for k, v in sampler.sample_frames(batch).items()}
        task = model.task_vector(frames["task_frame"].permute(0, 3, 1, 2))
        target = (frames["position"] - model.position_mean) / model.position_std
        loss, predicted = frame_position_loss(model, model.encoder(frames["image"].permute(0, 3, 1, 2)), task, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            error = ((predicted[:, :2] - target[:, 3:5]) * std).norm(dim=-1).mean()
        return {"frame_position_loss": loss, "target_xy_error": error}

    log = CsvLog(log_path, COLUMNS, None) if log_path is not None else None
    loop = StepLoop("encoder pretraining", steps, train_step, log, log_every,
                    postfix=lambda m, rate: {"loss": f"{m['frame_position_loss']:.3f}",
                                             "tgt": f"{m['target_xy_error']:.3f}"}).run(progress)
    return {"steps": steps, "batch": batch, "seconds": loop.seconds, **loop.means}
