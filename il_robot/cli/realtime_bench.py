"""il-robot bench realtime: the pushing graph in realtime mode, as an arm runs it, for a minute.

Runs back-to-back episodes of one policy and reports what the arm's side saw
(the simulator's loop figures: physics steps without a fresh torque, the
longest time on one command, policy frames unanswered, real-time factor), the
CPU each node used, and the machine's own state over the run: load before the
start and the CPU time the hypervisor took (steal), without which realtime
figures on a virtual machine cannot be compared.
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np

TARGETS = {"torque_missed_pct": 1.0, "policy_missed_pct": 1.0, "longest_gap_ms": 20.0}


def add_arguments(p) -> None:
    p.add_argument("--policies", default="scripted,tecnet,planet",
                   help="realtime bench: comma-separated policies, each run for --realtime-seconds "
                        "(default scripted,tecnet,planet)")
    p.add_argument("--realtime-seconds", type=float, default=60.0,
                   help="realtime bench: seconds of episodes per policy (default 60: six 10-s episodes)")
    p.add_argument("--camera-delay", type=float, default=0.0,
                   help="realtime bench: camera latency (s) the simulator adds (default 0)")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_ticks() -> tuple[int, int]:
    """(all CPU ticks, steal ticks) of the machine so far, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return sum(values[:8]), values[7]


def shipped_demos(policy: str) -> list[str]:
    """A few-shot policy's shipped demo of heldout task 0 (what the bench runs), else none."""
    from il_robot.cli.eval_cmd import task_demos
    from il_robot.paths import models_dir

    demo_dir = models_dir() / policy / "demos"
    return task_demos(str(demo_dir), "heldout", 0, 1) if demo_dir.is_dir() else []


def bench_realtime(policy: str, seconds: float, camera_delay: float = 0.0,
                   episode_duration: float = 10.0) -> dict:
    import rclpy

    from il_robot.cli.eval_cmd import loop_figures
    from il_robot.graph import PUSHING
    from il_robot.launcher import GraphProcesses, node_commands, parse_launch_args
    from il_robot.ros.env import ensure_localhost_discovery
    from il_robot.ros.episode_client import EpisodeClient, spin_in_background, stop_background

    ensure_localhost_discovery()
    episodes = max(1, round(seconds / episode_duration))
    demos = shipped_demos(policy)
    demo = "[" + ",".join(f"'{d}'" for d in demos) + "]" if demos else "['']"
    values = parse_launch_args(PUSHING, [
        f"policy:={policy}", f"demo:={demo}", "mode:=realtime", "auto_reset:=false",
        f"episode_duration:={episode_duration}", f"camera_delay:={camera_delay}"])
    log_dir = tempfile.mkdtemp(prefix=f"il_robot_bench_realtime_{policy}_")
    load_before = os.getloadavg()[0]
    rclpy.init()
    procs = None
    client = EpisodeClient("il_robot_bench_realtime", health_check=lambda: procs and procs.raise_if_exited())
    executor, thread = spin_in_background(client)
    results = []
    try:
        with GraphProcesses(node_commands(PUSHING, values), log_dir=log_dir) as procs:
            client.warm_up("heldout", 0, 0, episode_duration)
            cpu0 = {name: _cpu_seconds(p.pid) for name, p in procs.procs.items()}
            ticks0, steal0 = _machine_ticks()
            wall0 = time.monotonic()
            for i in range(episodes):
                results.append(client.run_episode("heldout", 0, i))
                procs.raise_if_exited()
            wall = time.monotonic() - wall0
            cpu = {name: (_cpu_seconds(p.pid) - cpu0[name]) / wall for name, p in procs.procs.items()}
            ticks1, steal1 = _machine_ticks()
    finally:
        stop_background(executor, thread, client)
    loops = [loop_figures(r) for r in results]
    steps = sum(lp["physics_steps"] for lp in loops)
    frames = sum(lp["frames"] for lp in loops)
    return {
        "policy": policy, "camera_delay": camera_delay, "episodes": len(results), "wall_time": wall,
        "torque_missed_pct": 100.0 * sum(lp["torque_missed"] for lp in loops) / max(1, steps),
        "torque_late_pct": 100.0 * sum(lp["torque_late"] for lp in loops) / max(1, steps),
        "longest_gap_ms": max(lp["longest_gap_ms"] for lp in loops),
        "policy_missed_pct": 100.0 * sum(lp["policy_missed"] for lp in loops) / max(1, frames),
        "policy_rate_hz": float(np.mean([lp["policy_rate_hz"] for lp in loops])),
        "real_time_factor": float(np.mean([lp["real_time_factor"] or 0.0 for lp in loops])),
        "successes": int(sum(r["success"] for r in results)),
        "cpu_cores": {name: round(c, 3) for name, c in cpu.items()},
        "machine": {"load_before": load_before, "cores": os.cpu_count(),
                    "steal_pct": 100.0 * (steal1 - steal0) / max(1, ticks1 - ticks0)},
        "per_episode": loops,
        "log_dir": log_dir,
    }


def print_realtime(r: dict) -> None:
    ok = all(r[k] <= v for k, v in TARGETS.items())
    print(f"realtime {r['policy']} ({r['episodes']} x 10 s, camera delay {r['camera_delay'] * 1e3:.0f} ms): "
          f"torque steps without a fresh command {r['torque_missed_pct']:.2f}% (late {r['torque_late_pct']:.1f}%), "
          f"longest gap {r['longest_gap_ms']:.0f} ms; policy {r['policy_rate_hz']:.1f} Hz, frames missed "
          f"{r['policy_missed_pct']:.2f}%; real-time factor {r['real_time_factor']:.3f}; "
          f"success {r['successes']}/{r['episodes']} [{'meets' if ok else 'misses'} the targets: missed <= 1%, "
          f"frames <= 1%, gap <= 20 ms]")
    print("  CPU (cores): " + ", ".join(f"{k} {v:.2f}" for k, v in r["cpu_cores"].items())
          + f"; machine: load {r['machine']['load_before']:.2f} before, steal {r['machine']['steal_pct']:.1f}%")
