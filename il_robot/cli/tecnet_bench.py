"""il-robot bench tecnet: the TecNet policy's cost per tick, on one CPU core.

The target is the control step with the sentence cached (what runs every tick);
the sentence itself (one embedding per demo) is paid once per swap. The process
is pinned to one core and onnxruntime to one thread, so the figure is what one
core of this machine gives, whatever else runs.

With --episodes and --tecnet-demo-dir it also pushes in-process (the eval's
controllers and task/seed plan, no DDS): about 3 s an episode instead of 12-20 s
through the ROS graph, and the same tasks fail, so a change can be tried on all
50 held-out tasks before `il-robot eval` measures it properly.
"""

from __future__ import annotations

import os
import time

import numpy as np


def add_arguments(p) -> None:
    g = p.add_argument_group("tecnet (il-robot bench tecnet)")
    g.add_argument("--tecnet-dir", metavar="DIR", help="exported TecNet model (default: the shipped models/tecnet)")
    g.add_argument("--tecnet-demo", metavar="BAG", help="demo bag for the sentence of the timed steps (default: the first of --tecnet-demo-dir, else the model's shipped demo)")
    g.add_argument("--ticks", type=int, default=2000, help="control steps timed")
    g.add_argument("--tecnet-demo-dir", metavar="DIR",
                   help="with --episodes: demo bags named like `il-robot record` writes them; each in-process "
                        "episode (task i mod set size of --tasks, seed --seed*100000+i, as `il-robot eval`) is "
                        "conditioned on --shots bags of its own task")
    g.add_argument("--shots", type=int, default=1, help="demos per episode with --tecnet-demo-dir (default 1)")
    g.add_argument("--demo-skill", default="any", help="only demos of this operator skill (default any)")


def first_demo(demo_dir: str | None, task_set: str = "heldout", skill: str = "any") -> str | None:
    """The demo that times the control step when --tecnet-demo is not given but --tecnet-demo-dir is: a
    freshly trained model has no shipped demo, and the timing does not depend on which task names it."""
    if not demo_dir:
        return None
    from il_robot.cli.eval_cmd import task_demos
    return task_demos(demo_dir, task_set, 0, 1, skill)[0]


def bench_tecnet(model_dir: str | None, demo: str | None, ticks: int = 2000) -> dict:
    if not hasattr(os, "sched_setaffinity"):
        return _bench(model_dir, demo, ticks, None)
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})
    try:
        return _bench(model_dir, demo, ticks, min(cores))
    finally:
        os.sched_setaffinity(0, cores)    # this process may go on (a test, other benches)


def _bench(model_dir: str | None, demo: str | None, ticks: int, pinned: int | None) -> dict:
    from il_robot.policies.base import PolicyConfig
    from il_robot.policies.catalog import make_policy
    from il_robot.robot import panda_like

    t0 = time.perf_counter()
    policy = make_policy("tecnet", PolicyConfig(model_dir=model_dir or "", demos=[demo] if demo else []))
    build_s = time.perf_counter() - t0
    model = policy.model
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, model.height, model.width, 3), dtype=np.uint8)
    q = np.asarray(panda_like.HOME_Q, float)
    tip = np.array([0.45, 0.0, 0.3])
    sentence_s = np.empty(50)
    for i in range(len(sentence_s)):
        t = time.perf_counter()
        model.sentence([model.embed_frames(images[i % 16], images[(i + 1) % 16])])
        sentence_s[i] = time.perf_counter() - t
    for i in range(50):     # warm-up
        model.act(images[i % 16], q, np.zeros(7), policy.sentence, tip)
    step_s = np.empty(ticks)
    for i in range(ticks):
        t = time.perf_counter()
        model.act(images[i % 16], q, np.zeros(7), policy.sentence, tip)
        step_s[i] = time.perf_counter() - t
    ms = step_s * 1e3
    return {"model_dir": str(model.dir), "demo": demo, "provider": model.provider, "pinned_core": pinned,
            "onnxruntime_threads": 1, "build_s": build_s,
            "sentence_ms_p50": float(np.median(sentence_s) * 1e3),
            "control_step_ms": {"p50": float(np.median(ms)), "p99": float(np.percentile(ms, 99)),
                                "max": float(ms.max())},
            "ticks": ticks}


def run_episodes(model_dir: str | None, demo_dir: str, episodes: int, task_set: str = "heldout", seed: int = 0,
                 shots: int = 1, skill: str = "any", progress=print, workers: int = 1) -> dict:
    """In-process episodes of the TecNet policy, planned as `il-robot eval` plans them; with workers > 1
    the plan is shared out to that many processes (an episode's result does not depend on which)."""
    from il_robot.cli.eval_cmd import episode_plan
    from il_robot.policies.tecnet import default_model_dir

    model_dir = str(model_dir or default_model_dir())
    from il_robot.parallel import share_out

    plan = list(enumerate(episode_plan(task_set, episodes, seed)))
    workers = max(1, min(workers, len(plan)))
    # progress is print in a worker process (a caller's callback does not pickle)
    parts = share_out(_episodes, plan, workers, model_dir, demo_dir, task_set, shots, skill,
                      progress if workers == 1 else print, len(plan))
    rows = sorted((r for part in parts for r in part), key=lambda r: r["index"])
    d = np.array([r["final_distance"] for r in rows])
    return {"model_dir": model_dir, "tasks": task_set, "seed": seed, "shots": shots, "demo_skill": skill,
            "episodes": len(rows), "successes": int(sum(r["success"] for r in rows)),
            "success_rate": float(np.mean([r["success"] for r in rows])),
            "final_distance_median": float(np.median(d)), "workers": workers, "per_episode": rows}


def _episodes(plan: list, model_dir: str, demo_dir: str, task_set: str, shots: int, skill: str, progress,
              total: int) -> list[dict]:
    os.environ.setdefault("MUJOCO_GL", "egl")
    from il_robot.cli.eval_cmd import task_demos
    from il_robot.policies.tecnet import TecNetModel, TecNetPolicy
    from il_robot.rollout import InProcessStack
    from il_robot.sim.tasks import make_task
    from il_robot.sim.world import PushingWorld

    model = TecNetModel(model_dir)
    world = PushingWorld(make_task(task_set, plan[0][1][0]))
    rows = []
    try:
        stack = InProcessStack(world)
        for i, (index, episode_seed) in plan:
            world.use_task(make_task(task_set, index))
            demos = task_demos(demo_dir, task_set, index, shots, skill)
            policy = TecNetPolicy.conditioned(model, demos)
            t0 = time.monotonic()
            r = stack.run_episode(policy, episode_seed, 10.0)
            rows.append({"index": i, "task": r.task, "seed": episode_seed, "success": bool(r.success),
                         "final_distance": float(r.final_distance), "wall_time": time.monotonic() - t0,
                         "demos": demos})
            progress(f"[{i + 1}/{total}] {r.task} seed {episode_seed}: {'success' if r.success else 'failure'}, "
                     f"{r.final_distance * 100:.1f} cm, {rows[-1]['wall_time']:.1f} s wall")
    finally:
        world.close()
    return rows


def print_episodes(fig: dict) -> None:
    print(f"tecnet in-process on {fig['tasks']} ({fig['shots']}-shot, demo skill {fig['demo_skill']}): success "
          f"{fig['success_rate']:.0%} ({fig['successes']}/{fig['episodes']}), final distance median "
          f"{fig['final_distance_median'] * 100:.1f} cm")


def print_tecnet(fig: dict) -> None:
    c = fig["control_step_ms"]
    print(f"tecnet ({fig['model_dir']}, {fig['provider']}, core {fig['pinned_core']}, 1 thread): control step "
          f"p50 {c['p50']:.3f} ms, p99 {c['p99']:.3f} ms, max {c['max']:.3f} ms over {fig['ticks']} ticks; "
          f"sentence (one demo) {fig['sentence_ms_p50']:.2f} ms; policy build {fig['build_s']:.2f} s")
