"""il-robot bench tecnet: the TecNet policy's cost per tick, on one CPU core.

The target is the control step with the sentence cached (what runs every tick);
the sentence itself (one embedding per demo) is paid once per swap. The process
is pinned to one core and onnxruntime to one thread, so the figure is what one
core of this machine gives, whatever else runs.
"""

from __future__ import annotations

import os
import time

import numpy as np


def add_arguments(p) -> None:
    g = p.add_argument_group("tecnet (il-robot bench tecnet)")
    g.add_argument("--tecnet-dir", metavar="DIR", help="exported TecNet model (default: the shipped models/tecnet)")
    g.add_argument("--tecnet-demo", metavar="BAG", help="demo bag for the sentence (default: the model's shipped demo)")
    g.add_argument("--ticks", type=int, default=2000, help="control steps timed")


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
    from il_robot.policies.base import PolicyConfig, make_policy
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
    return {"model_dir": str(model.dir), "provider": model.provider, "pinned_core": pinned,
            "onnxruntime_threads": 1, "build_s": build_s,
            "sentence_ms_p50": float(np.median(sentence_s) * 1e3),
            "control_step_ms": {"p50": float(np.median(ms)), "p99": float(np.percentile(ms, 99)),
                                "max": float(ms.max())},
            "ticks": ticks}


def print_tecnet(fig: dict) -> None:
    c = fig["control_step_ms"]
    print(f"tecnet ({fig['model_dir']}, {fig['provider']}, core {fig['pinned_core']}, 1 thread): control step "
          f"p50 {c['p50']:.3f} ms, p99 {c['p99']:.3f} ms, max {c['max']:.3f} ms over {fig['ticks']} ticks; "
          f"sentence (one demo) {fig['sentence_ms_p50']:.2f} ms; policy build {fig['build_s']:.2f} s")
