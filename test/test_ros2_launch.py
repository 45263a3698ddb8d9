"""The graph under the real ROS 2 command line: ros2 launch starts it, topics flow, ros2 param swaps
the policy, a late joiner reads the latest episode result, Ctrl-C stops every node clean."""

from __future__ import annotations

import json
import os
import re
import signal

import pytest
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory

from conftest import wait_until
from il_robot import topics
from il_robot.ros.latched import LATCHED
from ros2_cli import Launch, alive, require_ros2_cli, ros2, unclean_lines

pytestmark = pytest.mark.slow
NODES = ("sim_node", "inverse_dynamics_node", "policy_node")


class Traffic:
    """Counts what the launched graph publishes, seen through a node of the test's own."""

    def __init__(self, ros):
        import rclpy
        self.node = ros.add(rclpy.create_node("traffic_watch", context=ros.context))
        self.counts = {t: 0 for t in (topics.JOINT_STATES, topics.EFFORT_COMMANDS, topics.DESIRED_MOTION)}
        self.results: list[dict] = []
        for topic, kind in ((topics.JOINT_STATES, JointState), (topics.EFFORT_COMMANDS, Float64MultiArray),
                            (topics.DESIRED_MOTION, JointTrajectory)):
            self.node.create_subscription(kind, topic, lambda _m, t=topic: self._count(t), qos_profile_sensor_data
                                          if topic == topics.JOINT_STATES else 10)
        self.node.create_subscription(String, topics.EPISODE_RESULT,
                                      lambda m: self.results.append(json.loads(m.data)), LATCHED)

    def _count(self, topic: str) -> None:
        self.counts[topic] += 1

    def wait_flowing(self, at_least: int = 20, timeout: float = 90.0) -> None:
        start = dict(self.counts)
        wait_until(lambda: all(self.counts[t] - start[t] >= at_least for t in self.counts), timeout,
                   f"joint states, torque commands and desired motion flowing (seen {self.counts})")


def assert_clean_stop(launch: Launch, code: int, pids: dict[str, int]) -> None:
    out = launch.output
    assert code == 0, out[-3000:]
    assert not unclean_lines(out), "\n".join(unclean_lines(out)) + "\n---\n" + out[-3000:]
    for name in pids:
        assert re.search(rf"\[{re.escape(name)}\]: process has finished cleanly", out), out[-3000:]
    assert not [pid for pid in pids.values() if alive(pid)], "orphan node process(es)"


@pytest.fixture
def cli():
    require_ros2_cli()
    started: list[Launch] = []

    def launch(*args: str, launch_file: str = "pushing.launch.py") -> Launch:
        started.append(Launch(launch_file, *args))
        return started[-1]

    yield launch
    for running in started:
        running.kill()
    ros2("daemon", "stop")   # `ros2 param` / `ros2 topic` started it: no process outlives the test


def test_ros2_launch_flows_swaps_policy_serves_latest_result_and_stops_on_ctrl_c(ros, cli):
    traffic = Traffic(ros)
    launch = cli("episode_duration:=1.0", "render:=false")
    traffic.wait_flowing()
    pids = launch.node_pids()
    assert set(pids) == {f"{n}-{i}" for i, n in enumerate(NODES, 1)}

    swap = ros2("param", "set", "/policy", "policy", "hold")
    assert "Set parameter successful" in swap.stdout, swap.stdout + swap.stderr
    assert ros2("param", "get", "/policy", "policy").stdout.strip().endswith("hold")
    refused = ros2("param", "set", "/policy", "policy", "no_such_policy")
    assert refused.returncode == 0   # ros2 param set exits 0 even when the node refuses: read what it says
    assert "Setting parameter failed: unknown policy" in refused.stdout + refused.stderr
    assert ros2("param", "get", "/policy", "policy").stdout.strip().endswith("hold")
    traffic.wait_flowing()   # the held policy keeps the loop going

    # A late joiner gets the latest episode result, not the oldest one kept.
    wait_until(lambda: len(traffic.results) >= 3, 120, "three episode results")
    seen = max(r["episode_id"] for r in traffic.results)
    echo = ros2("topic", "echo", "--once", "--full-length", topics.EPISODE_RESULT, "std_msgs/msg/String")
    data = re.search(r"data: '(.*)'", echo.stdout)
    assert data, echo.stdout + echo.stderr
    assert json.loads(data.group(1).replace("''", "'"))["episode_id"] >= seen

    assert_clean_stop(launch, launch.ctrl_c(), pids)


def test_ctrl_c_stops_every_node_clean(ros, cli):
    """Terminal Ctrl-C (SIGINT to the group, then launch's own SIGINT to each node) and a SIGINT to
    the launch alone: every node exits cleanly, no traceback, exit code 0, no orphan.
    IL_ROBOT_CTRL_C_RUNS=20 measures the figure in docs."""
    traffic = Traffic(ros)
    runs = int(os.environ.get("IL_ROBOT_CTRL_C_RUNS", "2"))
    for run in range(runs):
        launch = cli()   # rendering on: the camera thread publishes when the context goes
        traffic.wait_flowing()
        pids = launch.node_pids()
        if run % 2 == 0:
            code = launch.ctrl_c()
        else:
            launch.proc.send_signal(signal.SIGINT)
            code = launch.wait()
        assert_clean_stop(launch, code, pids)


def test_builtin_robot_description_is_spelled_in_a_way_ros2_launch_accepts(ros, cli):
    traffic = Traffic(ros)
    launch = cli("robot_description:=builtin", "render:=false")
    traffic.wait_flowing()
    assert_clean_stop(launch, launch.ctrl_c(), launch.node_pids())


def test_a_controller_that_cannot_start_stops_the_launch(cli):
    """role:=robot: the policy node also reads the robot description and, started, could fail first."""
    launch = cli("robot_description:=/no/such/arm.xml", "render:=false", "role:=robot")
    code = launch.wait(120)
    out = launch.output
    assert code != 0
    assert re.search(r"\[inverse_dynamics_node-2\].*cannot start", out), out[-3000:]
    assert "stopping the launch" in out, out[-3000:]
    assert not [pid for pid in launch.node_pids().values() if alive(pid)], "a node ran on"


def test_the_controller_outlives_a_killed_policy(ros, cli):
    traffic = Traffic(ros)
    launch = cli("render:=false")
    traffic.wait_flowing()
    os.kill(launch.node_pids()["policy_node-3"], signal.SIGKILL)
    launch.wait_for(r"policy_node-3.*process has died")
    torques = traffic.counts[topics.EFFORT_COMMANDS]
    wait_until(lambda: traffic.counts[topics.EFFORT_COMMANDS] > torques + 100, 30, "torque after the policy died")
    assert launch.proc.poll() is None
    launch.ctrl_c()


def test_role_starts_each_hosts_half_of_the_graph(cli):
    """role:=robot starts the simulator and the controller, role:=policy the policy alone (one graph
    split across two hosts; test_two_hosts.py runs the halves on two)."""
    robot = cli("role:=robot", "render:=false")
    robot.wait_for(r"\[inverse_dynamics\]: computed-torque control of")
    policy = cli("role:=policy", "policy:=hold")
    policy.wait_for(r"\[policy\]: policy 'hold' at 20 Hz")
    robot.wait_for(r"\[inverse_dynamics\]: tracking desired motion")   # the halves found each other
    assert sorted(robot.node_pids()) == ["inverse_dynamics_node-2", "sim_node-1"], robot.output
    assert sorted(policy.node_pids()) == ["policy_node-1"], policy.output
    assert_clean_stop(policy, policy.ctrl_c(), policy.node_pids())
    assert_clean_stop(robot, robot.ctrl_c(), robot.node_pids())
