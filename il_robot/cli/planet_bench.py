"""il-robot bench planet: planning latency on real ONNX sessions, and in-process success on held-out tasks.

Latency: one model step of the planet policy (observe.onnx + CEM with imagine_h<H>.onnx, one
session call per CEM iteration) for the shipped planner settings and the paper's (H=12,
J=1000, K=100, I=10), one onnxruntime thread. With action repeat R the policy plans on one
control tick in R and holds the action on the others.
Success (--episodes N): the in-process control stack (no ROS) on held-out tasks, for planet,
the true-dynamics CEM upper bound (il_robot.learning.planet.truth) and the scripted expert.
Planet is conditioned on the last frame of a scripted-expert episode of the same task from
another seed (the demo), the way a demo bag conditions it in the ROS graph.
"""

from __future__ import annotations

import os
import time

import numpy as np

from il_robot.policies.cem import CEMConfig

PAPER = CEMConfig(horizon=12, candidates=1000, top_k=100, iterations=10)
DEMO_SEED_OFFSET = 500_000


def add_arguments(p) -> None:
    g = p.add_argument_group("planet (il-robot bench planet)")
    g.add_argument("--model-dir", default="", help="exported PlaNet model (default: the shipped models/planet)")
    g.add_argument("--plans", type=int, default=20, help="planning steps timed per planner setting (default 20)")
    g.add_argument("--episodes", type=int, default=0,
                   help="also run N in-process episodes on --tasks for planet and the scripted expert (default 0)")
    g.add_argument("--truth-episodes", type=int, default=None,
                   help="episodes of the true-dynamics CEM upper bound (default: --episodes; about 90 s each)")
    g.add_argument("--tasks", default="heldout", help="task set of the episodes (default heldout)")
    g.add_argument("--seed", type=int, default=0, help="episode i: task i mod set size, seed seed*100000+i")
    g.add_argument("--no-scripted", action="store_true",
                   help="with --episodes: skip the scripted expert's episodes (a reference; comparing models "
                        "does not need it)")


def _ms(samples) -> dict:
    a = np.asarray(samples) * 1e3
    return {"p50_ms": float(np.median(a)), "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean()),
            "n": int(a.size)}


def _scene(task_set: str = "heldout", index: int = 0, seed: int = 0):
    """A real camera frame and joint state to plan from."""
    from il_robot.sim.tasks import make_task
    from il_robot.sim.world import PushingWorld

    world = PushingWorld(make_task(task_set, index))
    world.reset(seed)
    image, joints = world.render(), np.concatenate([world.q, world.qd])
    world.close()
    return image, joints


def plan_latency(model, cem: CEMConfig, plans: int) -> dict:
    """Wall time of observe + CEM per model step, after one warm-up step."""
    from il_robot.policies.planet import LatentMPC

    model.imagine_session(cem.horizon)          # load outside the timing
    image, joints = _scene()
    task = model.task_vector(image)
    mpc = LatentMPC(model, cem, model.bound, repeat=1)
    mpc.step(image, joints, task)
    times = []
    for _ in range(plans):
        t0 = time.perf_counter()
        mpc.step(image, joints, task)
        times.append(time.perf_counter() - t0)
    return {"planner": {"horizon": cem.horizon, "candidates": cem.candidates, "top_k": cem.top_k,
                        "iterations": cem.iterations}, "plan_step": _ms(times)}


def demo_frame(stack, seed: int) -> tuple[np.ndarray, bool]:
    """Last frame of a scripted-expert episode on the stack's task (and whether it succeeded)."""
    from il_robot.policies.scripted import ScriptedPusher

    result = stack.run_episode(ScriptedPusher(), seed, 10.0, render=True, record_frames=True)
    return result.frames[-1], result.success


def run_episodes(model, args) -> dict:
    """The episode plan, shared out to --workers processes (an episode's result does not depend on which)."""
    from il_robot.sim.tasks import TASK_SET_SIZES

    n = TASK_SET_SIZES[args.tasks]
    plan = [(i, i % n, args.seed * 100_000 + i) for i in range(args.episodes)]
    truth_n = args.episodes if args.truth_episodes is None else args.truth_episodes
    workers = max(1, min(getattr(args, "workers", 1), len(plan)))
    names = ["planet"] + ([] if getattr(args, "no_scripted", False) else ["scripted"])
    from il_robot.parallel import share_out

    # One part runs here on the loaded model; worker processes load it from its directory.
    parts = share_out(_episodes, plan, workers, model if workers == 1 else str(model.dir), args.tasks, truth_n,
                      names, len(plan))
    results = {name: sorted((r for part in parts for r in part[name]), key=lambda r: r["index"])
               for name in ("planet", "scripted", "truth")}
    summary = {}
    for name, rows in results.items():
        if rows:
            d = np.array([r["final_distance"] for r in rows])
            summary[name] = {"episodes": len(rows), "success_rate": float(np.mean([r["success"] for r in rows])),
                             "final_distance_mean": float(d.mean()), "final_distance_median": float(np.median(d)),
                             "wall_time_per_episode": float(np.mean([r["wall_time"] for r in rows])),
                             "per_episode": rows}
    return summary


def _episodes(plan: list, model, task_set: str, truth_n: int, names: list[str], total: int) -> dict:
    """Episodes (index, task, seed) of the plan for planet, the scripted expert and the true-dynamics CEM;
    `model` is a PlanetModel or, in a worker process, its directory."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    from il_robot.learning.planet.reward import RewardConfig
    from il_robot.learning.planet.truth import TrueDynamicsPlanner, TruthConfig
    from il_robot.policies.base import PolicyConfig
    from il_robot.policies.planet import PlanetModel, PlanetPolicy
    from il_robot.policies.scripted import ScriptedPusher
    from il_robot.rollout import InProcessStack
    from il_robot.sim.tasks import make_task
    from il_robot.sim.world import PushingWorld

    if isinstance(model, str):
        model = PlanetModel(model)
    reward_cfg = RewardConfig(**{k: float(model.meta["reward"][k]) for k in ("goal_weight", "reach_weight")},
                              **{k: float(model.meta["reward"][k]) for k in ("reach_radius", "reach_behind", "push_height")
                                 if k in model.meta["reward"]})
    truth_cfg = TruthConfig(action_repeat=model.repeat, action_bound=model.bound)
    stack = InProcessStack(PushingWorld(make_task(task_set, plan[0][1])))
    results: dict[str, list] = {"planet": [], "scripted": [], "truth": []}
    for i, index, seed in plan:
        stack.world.use_task(make_task(task_set, index))
        frame, demo_ok = demo_frame(stack, seed + DEMO_SEED_OFFSET)
        policies = {"planet": PlanetPolicy(PolicyConfig(), model=model, task=model.task_vector(frame))}
        if "scripted" in names:
            policies["scripted"] = ScriptedPusher()
        if i < truth_n:
            policies["truth"] = TrueDynamicsPlanner(stack, truth_cfg, reward_cfg)
        for name, policy in policies.items():
            t0 = time.monotonic()
            r = stack.run_episode(policy, seed, 10.0)
            results[name].append({"index": i, "task": r.task, "seed": seed, "success": r.success,
                                  "final_distance": r.final_distance, "wall_time": time.monotonic() - t0,
                                  **({"demo_success": demo_ok} if name == "planet" else {})})
            print(f"[{i + 1}/{total}] {name:8s} {r.task} seed {seed}: {'success' if r.success else 'failure'}, "
                  f"{r.final_distance * 100:.1f} cm, {time.monotonic() - t0:.1f} s wall", flush=True)
        if "truth" in policies:
            policies["truth"].close()
    return results


def run(args) -> dict:
    os.environ.setdefault("MUJOCO_GL", "egl")
    from il_robot.policies.planet import PlanetModel, default_model_dir

    model_dir = args.model_dir or str(default_model_dir())
    model = PlanetModel(model_dir)
    figures = {"model_dir": model_dir, "provider": model.provider, "action_repeat": model.repeat,
               "control_rate_hz": model.control_rate_hz, "latency": {}}
    for label, cem in (("shipped", model.planner), ("paper", PAPER)):
        try:
            r = plan_latency(model, cem, args.plans)
        except Exception as err:  # noqa: BLE001 -- e.g. no imagine graph for H=12: report, go on
            figures["latency"][label] = {"error": f"{type(err).__name__}: {err}"}
            print(f"planet planning latency, {label} config: {err}")
            continue
        figures["latency"][label] = r
        p = r["plan_step"]
        print(f"planet planning latency, {label} config (H={cem.horizon}, J={cem.candidates}, K={cem.top_k}, "
              f"I={cem.iterations}): p50 {p['p50_ms']:.1f} ms, p99 {p['p99_ms']:.1f} ms per model step "
              f"(one plan every {model.repeat} control ticks at {model.control_rate_hz:.0f} Hz: budget "
              f"{1e3 / model.control_rate_hz:.0f} ms/tick; {model.provider}, 1 thread)", flush=True)
    if args.episodes > 0:
        figures["episodes"] = summary = run_episodes(model, args)
        for name, s in summary.items():
            print(f"{name} on {args.tasks}: success {s['success_rate'] * 100:.0f}% ({s['episodes']} episodes), "
                  f"final distance median {s['final_distance_median'] * 100:.1f} cm, "
                  f"{s['wall_time_per_episode']:.1f} s wall per episode")
    return figures
