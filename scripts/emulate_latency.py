"""TecNet in-process with the realtime graph's latencies put back, one at a time.

Realtime success can drop for many reasons at once (a late camera, a late answer, a
controller clock in /clock steps, torques a step late, the host's slow phases). This
runs the in-process stack (il_robot.rollout's pieces, no DDS, deterministic) with each
latency emulated alone, so what one costs is measured without the others:

  --camera-delay D   a frame captured at t reaches the policy at t + D
  --latency L        and its answer reaches the controller L later
  --timing frame     the answer is timed at the frame's stamp and acts on the frame's
                     joint state (what the policy and inverse-dynamics nodes do)
  --timing arrival   the answer is timed when it lands, from the state then
  --model-state now  the model sees the newest joint state instead of the frame's
  --clock-step S     the controller's clock moves in steps of S (a 100 Hz /clock: 0.01)
  --late P           each torque is applied one physics step late with probability P

    .venv/bin/python scripts/emulate_latency.py --demo-dir DIR --episodes 50 --camera-delay 0.1 --latency 0.02

DIR: held-out demo bags as `il-robot record --tasks heldout` names them (one expert demo per task used).
Episode i is held-out task i, seed i, as `il-robot eval --episodes N` plans them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

EPISODE_START = float(2 ** 20)   # s: float rounding of the stamps moves a pushed object by centimetres, so
                                 # episodes start on one clock value (as lockstep's whole seconds do)


def run_episode(stack, policy, seed: int, opts: dict, duration: float = 10.0) -> tuple[bool, float]:
    from il_robot.policies.base import Observation
    from il_robot.rollout import privileged_objects

    world, ctl, rr = stack.world, stack.controller, stack.rr
    world.clock = EPISODE_START   # every episode from the same clock: it replays whatever ran before it
    context = world.reset(seed)
    context["episode_duration"] = duration
    policy.reset(context)
    rr.reset()
    ctl.drop_reference()
    rng = np.random.default_rng(seed)
    period = stack.control_period
    steps_per_frame = round(period / world.timestep)
    step = opts["clock_step"]
    pending, previous_tau = [], None
    for k in range(int(round(duration / world.timestep))):
        now = world.clock
        t_ctl = np.floor(now / step + 1e-6) * step if step else now
        q, qd = world.q, world.qd
        ctl.set_joint_state(world.joint_names, q, qd, t_ctl)
        if k % steps_per_frame == 0:
            tip, _ = stack.robot.tip_pose(q)
            pending.append((now + opts["camera_delay"] + opts["latency"], now, world.render(), q.copy(), qd.copy(),
                            tip, privileged_objects(world)))
        while pending and pending[0][0] <= now + 1e-9:
            _, t, image, q_seen, qd_seen, tip_seen, objects = pending.pop(0)
            if opts["model_state"] == "now":
                q_seen, qd_seen = q, qd
                tip_seen, _ = stack.robot.tip_pose(q)
            v = np.asarray(policy.act(Observation(t, q_seen, qd_seen, tip_seen, image, objects)), float)
            if opts["timing"] == "frame":
                dm = rr.step(q_seen, v, t, period)
                ctl.set_desired(world.joint_names, dm.positions, dm.velocities, dm.accelerations, t, t_ctl)
            else:
                dm = rr.step(q, v, now, period)
                ctl.set_desired(world.joint_names, dm.positions, dm.velocities, dm.accelerations, t_ctl, t_ctl)
        tau, _ = ctl.command(t_ctl)
        if tau is None:
            tau = world.gravity_torque()
        if previous_tau is not None and rng.uniform() < opts["late"]:
            tau, previous_tau = previous_tau, tau
        else:
            previous_tau = tau
        world.step(tau)
    out = world.outcome()
    return bool(out.success), float(out.final_distance)


def episodes(plan: list, model_dir: str, demo_dir: str, opts: dict) -> list[dict]:
    os.environ.setdefault("MUJOCO_GL", "egl")
    from il_robot.cli.eval_cmd import task_demos
    from il_robot.policies.tecnet import TecNetModel, TecNetPolicy
    from il_robot.rollout import InProcessStack
    from il_robot.sim.tasks import make_task
    from il_robot.sim.world import PushingWorld

    model = TecNetModel(model_dir)
    world = PushingWorld(make_task("heldout", plan[0][1][0]))
    stack = InProcessStack(world)
    rows = []
    try:
        for i, (index, seed) in plan:
            world.use_task(make_task("heldout", index))
            policy = TecNetPolicy.conditioned(model, task_demos(demo_dir, "heldout", index, 1, "expert"))
            success, distance = run_episode(stack, policy, seed, opts)
            rows.append({"index": i, "task": index, "seed": seed, "success": success, "final_distance": distance})
            print(f"[{i + 1}] heldout/{index:03d}: {'success' if success else 'failure'}, {distance * 100:.1f} cm",
                  flush=True)
    finally:
        world.close()
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--demo-dir", required=True, help="held-out demo bags (one expert demo per task is used)")
    p.add_argument("--model-dir", default=None, help="exported TecNet (default: the shipped models/tecnet)")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--camera-delay", type=float, default=0.0, help="s (default 0)")
    p.add_argument("--latency", type=float, default=0.0, help="s from the frame reaching the policy to its answer "
                   "reaching the controller (default 0)")
    p.add_argument("--timing", choices=("frame", "arrival"), default="frame")
    p.add_argument("--model-state", choices=("frame", "now"), default="frame")
    p.add_argument("--clock-step", type=float, default=0.0, help="s (default 0: continuous)")
    p.add_argument("--late", type=float, default=0.0, help="probability of a torque a step late (default 0)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--json", help="write the per-episode results here")
    a = p.parse_args()
    from il_robot.cli.eval_cmd import episode_plan
    from il_robot.parallel import share_out
    from il_robot.policies.tecnet import default_model_dir

    opts = {k: getattr(a, k) for k in ("camera_delay", "latency", "timing", "model_state", "clock_step", "late")}
    plan = list(enumerate(episode_plan("heldout", a.episodes, 0)))
    parts = share_out(episodes, plan, a.workers, str(a.model_dir or default_model_dir()), a.demo_dir, opts)
    rows = sorted((r for part in parts for r in part), key=lambda r: r["index"])
    wins = sum(r["success"] for r in rows)
    print(f"{json.dumps(opts)}: success {wins / len(rows):.0%} ({wins}/{len(rows)}), final distance median "
          f"{np.median([r['final_distance'] for r in rows]) * 100:.1f} cm")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"options": opts, "episodes": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
