"""Latency of the pushing graph on one host and split across two (network namespaces), as figures.

    sudo .venv/bin/python test/bench_two_hosts.py [--seconds 30]

Realtime graph, scripted policy, camera on. A probe process on the robot host times, arrival to
arrival: each joint state to the torque command that follows it, and each camera frame to the
desired motion stamped with that frame (the frame crosses to the policy host and the desired
motion comes back). Measure alone: two cores shared with other work say nothing about the link.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from netns import Hosts, require_root  # noqa: E402
from test_two_hosts import CLI, host_env  # noqa: E402

PROBE = [sys.executable, os.path.join(os.path.dirname(__file__), "dds_probe.py")]
GRAPH = ["launch", "pushing", "policy:=scripted", "episode_duration:=600.0"]


def measure(hosts: Hosts, split: bool, seconds: float) -> dict:
    env = host_env(hosts, "robot", "policy")
    procs = [hosts.run("robot", [*CLI, *GRAPH, f"role:={'robot' if split else 'all'}"], env)]
    if split:
        procs.append(hosts.run("policy", [*CLI, *GRAPH, "role:=policy"], host_env(hosts, "policy", "robot")))
    try:
        procs[0].wait_for(r"\[inverse_dynamics\]: tracking desired motion", 120)
        probe = hosts.run("robot", [*PROBE, "latency", str(seconds)], env)
        procs.append(probe)
        return json.loads(probe.wait_for(r"^\{.*\}$", seconds + 60).group(0))
    finally:
        for proc in reversed(procs):
            proc.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds measured per layout (default 30)")
    args = parser.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    os.environ.setdefault("MUJOCO_GL", "egl")
    require_root()
    figures = {}
    with Hosts("policy") as hosts:
        for label, split in (("one host", False), ("two hosts", True)):
            figures[label] = r = measure(hosts, split, args.seconds)
            print(f"{label}: joint state -> torque p50 {r['joint_state_to_torque']['p50_ms']:.2f} ms, "
                  f"p99 {r['joint_state_to_torque']['p99_ms']:.2f} ms ({r['joint_state_to_torque']['n']} commands); "
                  f"camera frame -> desired motion p50 {r['camera_to_desired_motion']['p50_ms']:.2f} ms, "
                  f"p99 {r['camera_to_desired_motion']['p99_ms']:.2f} ms ({r['camera_to_desired_motion']['n']} frames)",
                  flush=True)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
