"""TecNet training on several processes (PyTorch DDP under torchrun): the same step as one process, the
tasks dealt out, rank 0 alone writing, the recipe stage under torchrun, two hosts in network namespaces.

Real torch.distributed throughout: gloo process groups on 127.0.0.1 (or across a veth pair, as root).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from test_tecnet import write_demo_bag

HAS_TORCH = importlib.util.find_spec("torch") is not None
pytestmark = pytest.mark.skipif(not HAS_TORCH, reason="torch not installed (training extras)")
REPO = Path(__file__).resolve().parents[1]
TORCHRUN_TIMEOUT = 240      # s: a few steps of a tiny model, with two interpreters importing torch on a busy machine
TINY = ["--set", "data.tasks_per_batch=4", "--set", "data.timesteps_per_demo=4", "--set", "train.log_every=2",
        "--set", "train.val_every=2", "--set", "train.checkpoint_every=2", "--set", "data.val_timesteps_per_demo=4",
        "--set", "train.rollout_episodes=0", "--set", "train.threads=1", "--set", "train.export=last"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """4 train tasks and 2 val tasks, 2 demos each (the fake episodes of test_tecnet)."""
    from il_robot.data.dataset import build_dataset

    root = tmp_path_factory.mktemp("ddp")
    bags = [write_demo_bag(root / "bags" / f"{split}{i}_d{d}", split, i, d)
            for split, n in (("train", 4), ("val", 2)) for i in range(n) for d in range(2)]
    build_dataset(bags, root / "data", progress=False)
    return root / "data"


def torchrun(args: list[str], nproc: int = 2, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
           "-m", "il_robot.cli.main", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=TORCHRUN_TIMEOUT)


def log_steps(path: Path) -> list[int]:
    with open(path, newline="") as f:
        return [int(r["step"]) for r in csv.DictReader(f)]


# -- the same step on 1 and on 2 processes -------------------------------------------------------------

TASKS, SUPPORT, QUERY, K, C = 4, 1, 1, 3, 2


def _config():
    from il_robot.learning.tecnet.config import TecNetConfig

    cfg = TecNetConfig()
    cfg.model.conv_filters, cfg.model.fc_units, cfg.model.keypoint_layers = 8, 32, (1,)
    cfg.data.support, cfg.data.query, cfg.data.tasks_per_batch = SUPPORT, QUERY, TASKS
    cfg.optim.grad_clip = 1.0
    return cfg


def _batch(seed: int = 0) -> dict:
    """A whole batch as the sampler makes it: 4 tasks, operator weights that differ between the halves, and
    corrective samples for task 1 only (in the first half): each half weighs differently."""
    import torch

    g = torch.Generator().manual_seed(seed)
    m = SUPPORT + QUERY
    return {"frames": torch.rand(TASKS, m, 6, 64, 64, generator=g) * 255,
            "images": torch.rand(TASKS, m, K, 3, 64, 64, generator=g) * 255,
            "state": torch.randn(TASKS, m, K, 14, generator=g),
            "action": torch.randn(TASKS, m, K, 3, generator=g),
            "control_weight": torch.tensor([[1.0, 0.5], [0.0, 1.0], [1.0, 1.0], [0.5, 1.0]]),
            "correction_images": torch.rand(1, C, 3, 64, 64, generator=g) * 255,
            "correction_state": torch.randn(1, C, 14, generator=g),
            "correction_action": torch.randn(1, C, 3, generator=g),
            "correction_task": torch.full((1, C), 1)}


def _part(batch: dict, rank: int, size: int) -> dict:
    """Rank `rank`'s tasks of the batch; the corrective samples go with their task (task 1: rank 0's)."""
    n = TASKS // size
    part = {k: v[rank * n:(rank + 1) * n] for k, v in batch.items() if not k.startswith("correction_")}
    if rank == 0:
        part.update({k: v for k, v in batch.items() if k.startswith("correction_")})
    return part


def _train_steps(world, batch: dict, steps: int) -> tuple[dict, list[float]]:
    """`steps` optimiser steps of a fresh model (seed 0) on `batch`, as train.py makes them."""
    import torch

    from il_robot.learning.tecnet.model import TecNet
    from il_robot.learning.tecnet.step import TecNetLosses, optimiser_step

    cfg = _config()
    torch.manual_seed(0)
    model = TecNet(cfg.model)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)
    losses = world.wrap(TecNetLosses(model, cfg, world), torch.device("cpu"))
    figures = [optimiser_step(losses, optimizer, batch, cfg.optim.grad_clip)["loss"].item() for _ in range(steps)]
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, figures


def _rank_process(rank: int, size: int, port: int, out: str, steps: int) -> None:
    """One of `size` processes, numbered as torchrun numbers them: joins the group the way `train` does."""
    import torch

    from il_robot.learning.distributed import joined

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(size), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(size),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    with joined("cpu") as world:
        weights, losses = _train_steps(world, _part(_batch(), rank, size), steps)
        mean_loss = [world.mean(torch.tensor(x)).item() for x in losses]
    torch.save({"weights": weights, "loss": mean_loss}, Path(out) / f"rank{rank}.pt")


def test_one_step_on_two_processes_with_half_the_batch_each_equals_one_with_the_whole_batch(tmp_path):
    """The losses of the halves, averaged by DDP, are the loss of the whole batch: the weights after the steps
    are those one process reaches (to float rounding), though each half's negatives, operator weights and
    corrective samples differ. Three Adam steps with gradient clipping, so the optimiser state agrees too."""
    import torch
    import torch.multiprocessing as mp

    from il_robot.learning.distributed import ONE

    steps = 3
    mp.spawn(_rank_process, args=(2, free_port(), str(tmp_path), steps), nprocs=2, join=True)
    alone_weights, alone_loss = _train_steps(ONE, _batch(), steps)
    torch.manual_seed(0)
    from il_robot.learning.tecnet.model import TecNet
    start = TecNet(_config().model).state_dict()

    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    np.testing.assert_allclose(ranks[0]["loss"], alone_loss, rtol=1e-5)
    moved = max((alone_weights[k] - start[k]).abs().max().item() for k in start)
    assert moved > 1e-3                      # the steps moved the weights far beyond the tolerance below
    for name, alone in alone_weights.items():
        for r in ranks:
            torch.testing.assert_close(r["weights"][name], alone, rtol=1e-4, atol=1e-5, msg=name)


def test_train_tasks_are_dealt_out_and_the_batch_must_divide(tiny_data):
    from il_robot.data.dataset import load_dataset
    from il_robot.learning.distributed import World
    from il_robot.learning.tecnet.config import TecNetConfig
    from il_robot.learning.tecnet.train import _share

    cfg, dataset = TecNetConfig(), load_dataset(tiny_data)
    cfg.data.tasks_per_batch = 4
    shares = [_share(World(r, 2, r, 2), dataset, cfg) for r in range(2)]
    assert shares[0] == ({"train/000", "train/002"}, 2) and shares[1] == ({"train/001", "train/003"}, 2)
    cfg.data.tasks_per_batch = 3
    with pytest.raises(ValueError, match="must be a multiple of the number of processes"):
        _share(World(0, 2, 0, 2), dataset, cfg)


# -- under torchrun ------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_torchrun_trains_on_two_processes_and_rank_0_alone_writes(tiny_data, tmp_path):
    out = tmp_path / "run"
    r = torchrun(["train", "tecnet", "--data", str(tiny_data), "--out", str(out), "--steps", "4", "--quiet", *TINY])
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("TecNet: 8 train demos of 4 usable tasks") == 1
    assert "2 processes, 2 tasks of each batch apiece" in r.stdout
    assert r.stdout.count("exported last.pt (step 4)") == 1 and r.stdout.count("run directory:") == 1
    assert log_steps(out / "train_log.csv") == [2, 4]              # one writer: no row twice
    assert log_steps(out / "val_log.csv") == [2, 4]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 4
    from il_robot.learning.tecnet.checkpoint import load_checkpoint

    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ckpt["step"] == 4 and ckpt["data"]["processes"] == 2 and ckpt["data"]["tasks_used"] == 4
    assert ckpt["data"]["train"]["demos"] == 8                     # the two shares together
    meta = json.loads((out / "onnx" / "metadata.json").read_text())
    assert meta["training"]["steps"] == 4 and (out / "onnx" / "control.onnx").is_file()

    again = torchrun(["train", "tecnet", "--data", str(tiny_data), "--out", str(out), "--steps", "6", "--quiet"])
    assert again.returncode != 0           # the run is there: every process refuses with rank 0's reason
    assert again.stderr.count("holds a training run already") == 2
    assert "il_robot/" not in again.stderr          # a message, no traceback of ours (torchrun adds its own)


@pytest.mark.slow
def test_recipe_train_stage_runs_under_torchrun_and_resumes(tiny_data, tmp_path):
    """`train --recipe R --nproc-per-node 2`: a train stage runs as a torchrun command, and a stage started
    again with more steps resumes the run on two processes from rank 0's checkpoint."""
    from il_robot.recipes.command_log import RunLog
    from il_robot.recipes.spec import parse_recipe
    from il_robot.recipes.stages import StageContext, train

    settings = {}
    for item in TINY[1::2]:
        key, value = item.split("=")
        settings[key] = int(value) if value.isdigit() else value
    recipe = parse_recipe({"model": "tecnet", "description": "ddp", "stages": {
        "demos": {"kind": "record", "tasks": "train", "num_tasks": 4},
        "dataset": {"kind": "dataset", "demos": ["demos"]},
        "bc": {"kind": "train", "dataset": "dataset", "steps": 4, "set": settings}}}, tmp_path / "r.yaml")
    run = tmp_path / "run"
    shutil.copytree(tiny_data, run / "dataset")
    ctx = StageContext(run, recipe, RunLog(run / "log.txt", echo=False), "cpu", commands=[], nproc_per_node=2)
    figures = train(ctx, recipe.stage("bc"))
    assert ctx.commands[0].startswith("torchrun --standalone --nproc-per-node 2 -m il_robot.cli.main train tecnet")
    assert figures["steps"] == 4
    recipe.stage("bc").settings["steps"] = 6
    figures = train(ctx, recipe.stage("bc"))
    assert "--resume" in ctx.commands[1] and figures["steps"] == 6
    assert log_steps(run / "bc" / "train_log.csv") == [2, 4, 6]


def test_nproc_per_node_is_for_recipes_and_planet_refuses_torchrun(tiny_data, tmp_path, capsys, monkeypatch):
    from il_robot.cli.main import main

    assert main(["train", "tecnet", "--data", str(tiny_data), "--out", str(tmp_path / "r"),
                 "--nproc-per-node", "2"]) == 2
    assert "torchrun --nproc-per-node 2 -m il_robot.cli.main train" in capsys.readouterr().err
    assert main(["train", "planet", "--recipe", "planet-tiny", "--out", str(tmp_path / "p"),
                 "--nproc-per-node", "2"]) == 2
    assert "only for tecnet recipes" in capsys.readouterr().err
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main(["train", "planet", "--data", str(tmp_path / "eps"), "--out", str(tmp_path / "p2")]) == 2
    assert "start it without torchrun" in capsys.readouterr().err


# -- two hosts ------------------------------------------------------------------------------------------------

def _namespaces() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                    reason="network namespaces need root and iproute2 (CI runs as root)")
def test_two_hosts_in_network_namespaces_train_and_export(tiny_data, tmp_path):
    """scripts/ddp_two_hosts.sh: one torchrun per namespace, joined over a veth pair (--nnodes 2, rendezvous
    on 10.231.0.1); node 0's rank 0 writes the run and the model. The namespaces go, also when the run fails."""
    script = REPO / "scripts" / "ddp_two_hosts.sh"
    out = tmp_path / "run"
    r = subprocess.run([str(script), str(tiny_data), str(out), "--steps", "4", *TINY], capture_output=True,
                       text=True, timeout=2 * TORCHRUN_TIMEOUT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "routes of ddp0: 10.231.0.0/24 dev ddp0-eth proto kernel scope link src 10.231.0.1" in r.stdout
    assert "[node 0] TecNet: 8 train demos" in r.stdout and "2 processes, 2 tasks of each batch apiece" in r.stdout
    assert "[node 1] TecNet" not in r.stdout and "[node 0] exported last.pt (step 4)" in r.stdout
    sent = int(r.stdout.split("node 1 sent ")[1].split()[0])
    assert sent > 100_000                  # rank 1's gradients crossed the link
    assert log_steps(out / "train_log.csv") == [2, 4] and (out / "onnx" / "control.onnx").is_file()
    assert "ddp0" not in _namespaces() and "ddp1" not in _namespaces()

    failed = subprocess.run([str(script), str(tmp_path / "no-data"), str(tmp_path / "run2"), "--steps", "2"],
                            capture_output=True, text=True, timeout=2 * TORCHRUN_TIMEOUT)
    assert failed.returncode != 0 and "is not a dataset" in failed.stdout
    assert "ddp0" not in _namespaces() and "ddp1" not in _namespaces()
