"""The whole graph as users start it: sim -> inverse dynamics -> torques, driven by the expert."""

import json
import os
import signal
import subprocess
import sys

import pytest

from conftest import wait_until

pytestmark = pytest.mark.slow


def il_robot(*args, timeout):
    return subprocess.run([sys.executable, "-m", "il_robot.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ))


def test_eval_scripted_expert_on_heldout_tasks(tmp_path):
    out = tmp_path / "eval.json"
    proc = il_robot("eval", "--policy", "scripted", "--tasks", "heldout", "--episodes", "20", "--json", str(out),
                    "--video", str(tmp_path / "videos"), timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = json.loads(out.read_text())
    print(proc.stdout)
    assert figures["episodes"] == 20 and len(figures["per_episode"]) == 20
    assert {e["task"] for e in figures["per_episode"]} == {f"heldout/{i:03d}" for i in range(20)}
    assert figures["success_rate"] >= 0.9
    # Loop figures are per second of sim time, so they do not depend on the machine's speed. The
    # evaluator hears the policy over DDS: allow one action of the first episode lost to discovery.
    assert abs(figures["loop"]["policy_rate_hz"] - 20.0) < 0.1 and abs(figures["loop"]["torque_rate_hz"] - 500) < 5
    assert all(e["loop"]["policy_ticks"] >= 199 for e in figures["per_episode"])
    from il_robot.video import read_video_frame_count
    for episode in figures["per_episode"]:
        assert episode["loop"]["physics_steps"] in (4999, 5000) and episode["loop"]["frames"] == 200
        assert episode["loop"]["policy_missed"] == 0   # sync_policy: every frame waits for its answer
        assert read_video_frame_count(episode["video"]) == 200


def test_launch_pushing_runs_episodes(ros, tmp_path):
    """`il-robot launch pushing` starts the graph; the first episode pushes the target toward the goal."""
    from rclpy.qos import DurabilityPolicy, QoSProfile
    from std_msgs.msg import String

    import numpy as np
    import rclpy
    from il_robot import topics
    from il_robot.sim.tasks import GOAL_XY, draw_positions, make_task

    results = []
    node = ros.add(rclpy.create_node("launch_watcher", context=ros.context))
    node.create_subscription(String, topics.EPISODE_RESULT, lambda m: results.append(json.loads(m.data)),
                             QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    proc = subprocess.Popen([sys.executable, "-m", "il_robot.cli.main", "launch", "pushing", "mode:=lockstep",
                             "sync_policy:=true", "--log-dir", str(tmp_path)],
                            env=dict(os.environ))
    try:
        wait_until(lambda: results or proc.poll() is not None, timeout=300, what="an episode result")
        assert proc.poll() is None, f"launch exited early with {proc.returncode}"
        first = results[0]
        assert first["task"] == "heldout/000" and first["seed"] == 0
        start = np.linalg.norm(draw_positions(make_task("heldout", 0), 0)[0] - GOAL_XY)
        assert first["final_distance"] < start - 0.08, (start, first)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.terminate()   # il-robot stops its nodes on SIGTERM too; never leave a graph behind
            proc.wait(30)
    assert proc.returncode == 0
