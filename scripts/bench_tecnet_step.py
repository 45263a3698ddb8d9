#!/usr/bin/env python3
"""Time of one TecNet training step (sampling excluded) on a dataset, as `il-robot train tecnet` runs it.

    .venv/bin/python scripts/bench_tecnet_step.py --data RUN/dataset [--threads 2] [--steps 40] [--device cuda]

Batches are drawn first, then the optimiser steps are timed alone, so the figure is the model's
forward, backward and update. Run it with nothing else on the machine; it prints ms/step and steps/s
and the last loss (equal across code changes that must not change the numbers).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import yaml

from il_robot.data.dataset import load_dataset
from il_robot.learning.tecnet import data
from il_robot.learning.tecnet.config import config_from_dict
from il_robot.learning.tecnet.model import TecNet, state_layout
from il_robot.learning.tecnet.step import TecNetLosses, make_optimizer, optimiser_step
from il_robot.learning.tecnet.train import _to_torch
from il_robot.paths import config_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset directory (il-robot dataset build)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--steps", type=int, default=40, help="timed steps, after 5 warm-up steps")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    args = parser.parse_args()
    cfg = config_from_dict(yaml.safe_load(config_file("tecnet.yaml").read_text()))
    cfg.loss.control_loss = "l1"
    torch.set_num_threads(args.threads)
    demos = data.load_demos(load_dataset(args.data), "train", cfg.data, state_layout(cfg.model))
    sampler = data.TaskBatchSampler(demos, cfg.data, data.Normalisation.from_demos(demos), np.random.default_rng(0))
    device = torch.device(args.device)
    start = time.perf_counter()
    sampled = [sampler.sample() for _ in range(args.steps + 5)]
    sampling = (time.perf_counter() - start) / len(sampled)
    batches = [_to_torch(batch, device) for batch in sampled]
    torch.manual_seed(0)
    model = TecNet(cfg.model).to(device)
    optimizer = make_optimizer(model, cfg)
    losses = TecNetLosses(model, cfg)
    for batch in batches[:5]:
        optimiser_step(losses, optimizer, batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for batch in batches[5:]:
        out = optimiser_step(losses, optimizer, batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    step = (time.perf_counter() - start) / args.steps
    print(f"{step * 1000:.0f} ms/step = {1 / step:.2f} steps/s ({args.device}, {args.threads} threads); "
          f"last loss {out['loss'].item():.4f}; drawing a batch (one process): {sampling * 1000:.0f} ms")


if __name__ == "__main__":
    main()
