"""PlaNet checkpoint -> task.onnx + observe.onnx + imagine_h<H>.onnx + metadata.json, checked against torch.

What planning needs and nothing else (no decoder): the task vector of a demo frame, one
filtering step, and the transition + reward model unrolled over H steps for a batch of
candidate sequences (dynamic batch axis N; H is fixed per graph, one graph per exported
horizon). Either world model exports to the same graphs: the RSSM (rssm.py) or the position
latent (positions.py), told apart by the checkpoint's format. Staging, the graph export and the
torch/onnxruntime check are learning/onnx_graphs.py's, as for TecNet.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from il_robot.data.bag_format import JOINT_ORDER
from il_robot.learning.onnx_graphs import (TOLERANCE, check_agreement, check_graphs, compare, export_graph,
                                           refuse_existing, source, staged_model_dir, verification)
from il_robot.learning.planet.checkpoint import load_either, world_model_from_checkpoint
from il_robot.learning.planet.rssm import ACTION_DIM, JOINT_DIM
from il_robot.policies.planet import FORMAT, METADATA_FILE, VERSION, imagine_graph
from il_robot.rates import CONTROL_RATE_HZ

INPUTS = {"task": ["frame"], "observe": ["belief", "state", "action", "image", "joints", "task"],
          "imagine": ["belief", "state", "actions", "task"]}
OUTPUTS = {"task": ["task"], "observe": ["posterior_belief", "posterior_state"], "imagine": ["returns", "rewards"]}


def _sizes(model) -> tuple[int, int, int]:
    """(belief, state, task) sizes of either world model."""
    return model.belief_size, model.state_size, model.task_size


def _shapes(model, horizon: int | None = None) -> dict[str, dict[str, list]]:
    b, s, t = _sizes(model)
    return {
        "task": {"frame": ["N", 3, 64, 64], "task": ["N", t]},
        "observe": {"belief": ["N", b], "state": ["N", s], "action": ["N", ACTION_DIM], "image": ["N", 3, 64, 64],
                    "joints": ["N", JOINT_DIM], "task": ["N", t], "posterior_belief": ["N", b], "posterior_state": ["N", s]},
        "imagine": {"belief": ["N", b], "state": ["N", s], "actions": ["N", horizon, ACTION_DIM],
                    "task": ["N", t], "returns": ["N"], "rewards": ["N", horizon]},
    }


def random_inputs(model, kind: str, batch: int, horizon: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs in the ranges the runtime feeds (pixels 0..255, actions inside the bound, joints near home)."""
    rng = np.random.default_rng(seed)
    (b, s, t), bound = _sizes(model), float(model.action_scale[0])
    x = {"belief": np.tanh(rng.normal(size=(batch, b))), "state": rng.normal(size=(batch, s)),
         "frame": rng.uniform(0, 255, (batch, 3, 64, 64)), "image": rng.uniform(0, 255, (batch, 3, 64, 64)),
         "action": rng.uniform(-bound, bound, (batch, ACTION_DIM)),
         "joints": (model.joint_mean.numpy() + model.joint_std.numpy() * rng.normal(size=(batch, JOINT_DIM))),
         "actions": rng.uniform(-bound, bound, (batch, horizon, ACTION_DIM)),
         "task": np.tanh(rng.normal(size=(batch, t)))}
    return {k: x[k].astype(np.float32) for k in INPUTS[kind]}


def _module(model, kind: str, horizon: int | None) -> torch.nn.Module:
    return model.graph(kind, horizon)


def verify(model, directory: Path, graphs: dict[str, tuple[str, int | None]],
           tolerance: float = TOLERANCE, batch: int = 5) -> dict[str, float]:
    """Max abs difference torch vs onnxruntime per graph and output; ExportError past `tolerance`."""
    diffs = {}
    for name, (kind, horizon) in graphs.items():
        x = random_inputs(model, kind, batch, horizon or 1, seed=1)
        with torch.no_grad():
            expected = _module(model, kind, horizon)(*(torch.from_numpy(x[k]) for k in INPUTS[kind]))
        expected = [e.numpy() for e in (expected if isinstance(expected, tuple) else (expected,))]
        got = compare(directory / f"{name}.onnx", x, dict(zip(OUTPUTS[kind], expected)))
        diffs.update({f"{name}.{out_name}": diff for out_name, diff in got.items()})
    return check_agreement(diffs, tolerance)


def metadata(ckpt: dict, model, cfg, graphs: dict[str, tuple[str, int | None]],
             diffs: dict[str, float]) -> dict:
    models = {}
    for name, (kind, horizon) in graphs.items():
        shapes = _shapes(model, horizon)[kind]
        models[name] = {"file": f"{name}.onnx",
                        "inputs": {k: {"shape": shapes[k], "dtype": "float32"} for k in INPUTS[kind]},
                        "outputs": {k: {"shape": shapes[k], "dtype": "float32"} for k in OUTPUTS[kind]}}
    belief_size, state_size, task_size = _sizes(model)
    positions = model.kind == "positions"
    latent = ({"belief_size": belief_size, "state_size": state_size, "world_model": "positions",
               "belief": "tip (3, m), target (3, m), previous action / bound (3), the target's cell in the "
                         "locator's 32x32 map (2; zeros: none yet); state unused (zeros)",
               "initial": "zeros for belief, state and the previous action at the episode start",
               "filter": "observe.onnx each model step: tip from the joints, target located in the frame"}
              if positions else
              {"belief_size": belief_size, "state_size": state_size, "world_model": "rssm",
               "initial": "zeros for belief, state and the previous action at the episode start",
               "filter": "observe.onnx each model step (frame, joints, task); posterior mean"})
    return {
        "format": FORMAT, "version": VERSION, "created": datetime.now(timezone.utc).isoformat(),
        "models": models,
        "image": {"height": 64, "width": 64, "encoding": "rgb8", "layout": "NCHW", "input_range": [0.0, 255.0],
                  "scaling": "x / 255 - 0.5, inside the graphs",
                  "resize": "INTER_AREA to height x width when the camera differs"},
        "joints": {"names": [f"{j}/position" for j in JOINT_ORDER] + [f"{j}/velocity" for j in JOINT_ORDER],
                   "units": "rad, rad/s", "mean": model.joint_mean.tolist(), "std": model.joint_std.tolist(),
                   "normalise": "(joints - mean) / std, inside the graphs: feed raw values"},
        "latent": latent,
        "task": {"size": task_size, "from": "task.onnx on the last frame of a demo (target at the goal); "
                                              "k demos: mean of their task vectors"},
        "action": {"name": "tip_velocity", "units": "m/s", "frame": "base", "dim": ACTION_DIM,
                   "bound": cfg.data.planner_bound if positions else cfg.data.action_bound,
                   "box": "[-bound, bound] per axis: the planner's",
                   "repeat": cfg.data.action_repeat, "control_rate_hz": CONTROL_RATE_HZ,
                   "model_step_s": cfg.data.action_repeat / CONTROL_RATE_HZ},
        "reward": {**asdict(cfg.reward), "units": "m (negative distances)",
                   "definition": "-(goal_weight * |target_xy - goal_xy| + reach_weight * max(|tip - reach point| - "
                                 "reach_radius, 0)) per frame; reach point: the target's centre, or with "
                                 "reach_behind > 0 the point that far behind it (away from the goal) at push_height",
                   "mean": 0.0 if positions else float(model.reward_mean),
                   "std": 1.0 if positions else float(model.reward_std),
                   "returns": "sum over the horizon of predicted rewards (prior means), reward units"},
        "planner": {**asdict(cfg.planner), "algorithm": "CEM (il_robot.policies.cem), warm-started",
                    "horizons": sorted(h for _, h in graphs.values() if h)},
        "training": {"steps": ckpt["step"], "data": ckpt.get("data"), "config": ckpt["config"]},
        "verification": verification(diffs),
        "source": source(),
    }


def export_planet(checkpoint: str | Path, out_dir: str | Path, force: bool = False, horizons: list[int] | None = None,
                  tolerance: float = TOLERANCE) -> dict:
    """Write the model directory from a checkpoint; returns its metadata. Horizons: the planner's plus
    export.horizons of the run's config (or `horizons`). An existing out_dir is replaced only with force,
    and only after the new export has been verified."""
    out = Path(out_dir)
    refuse_existing(out, force)
    ckpt = load_either(checkpoint)
    model, cfg = world_model_from_checkpoint(ckpt)
    wanted = sorted({cfg.planner.horizon, *(cfg.export.horizons if horizons is None else horizons)})
    if min(wanted) < 1:
        raise ValueError(f"horizons must be >= 1: {wanted}")
    graphs: dict[str, tuple[str, int | None]] = {"task": ("task", None), "observe": ("observe", None)}
    graphs.update({imagine_graph(h): ("imagine", h) for h in wanted})
    with staged_model_dir(out) as partial:
        for name, (kind, horizon) in graphs.items():
            example = random_inputs(model, kind, 2, horizon or 1)
            export_graph(_module(model, kind, horizon), tuple(torch.from_numpy(example[k]) for k in INPUTS[kind]),
                         partial / f"{name}.onnx", INPUTS[kind], OUTPUTS[kind])
        check_graphs([partial / f"{name}.onnx" for name in graphs])
        diffs = verify(model, partial, graphs, tolerance)
        meta = metadata(ckpt, model, cfg, graphs, diffs)
        (partial / METADATA_FILE).write_text(json.dumps(meta, indent=2))
    return meta
