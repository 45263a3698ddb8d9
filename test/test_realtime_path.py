"""The realtime torque path's parts: the wire format read and written without Python messages,
topics served off the executor, the realtime scheduling of the controller's and the simulator's
processes, and log throttling that costs nothing when it throttles."""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import rclpy
from rclpy.parameter import Parameter
from rclpy.serialization import deserialize_message, serialize_message
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from conftest import wait_until
from il_robot.ros import cdr
from il_robot.ros import conversions as conv
from il_robot.ros.env import ensure_localhost_discovery
from il_robot.ros.log_throttle import LogThrottle
from il_robot.ros.topic_thread import TopicThread


@pytest.mark.parametrize("n", [0, 1, 7, 9])
@pytest.mark.parametrize("frame_id", ["", "a", "panda_link0"])
def test_joint_states_read_and_written_as_bytes_match_rclpys_own_serialization(n, frame_id):
    rng = np.random.default_rng(n)
    names = [f"joint_{'x' * i}{i}" for i in range(n)]
    q, qd, tau = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    msg = conv.joint_state(names, q, qd, tau, 1234.000000789)
    msg.header.frame_id = frame_id
    read = cdr.read_joint_state(serialize_message(msg))
    assert read.name == tuple(names) and read.stamp == pytest.approx(1234.000000789, abs=1e-9)
    assert np.array_equal(read.position, q) and np.array_equal(read.velocity, qd) and np.array_equal(read.effort, tau)
    back = deserialize_message(cdr.joint_state(names, q, qd, tau, 1234_000_000_789, frame_id), JointState)
    assert back.header.stamp == msg.header.stamp and back.header.frame_id == frame_id and list(back.name) == names
    assert np.array_equal(back.position, q) and np.array_equal(back.velocity, qd) and np.array_equal(back.effort, tau)


def test_empty_arrays_of_a_joint_state_read_as_empty():
    msg = conv.joint_state(["a", "b"], [1.0, 2.0], [], [], 1.0)
    read = cdr.read_joint_state(serialize_message(msg))
    assert read.position.tolist() == [1.0, 2.0] and read.velocity.size == 0 and read.effort.size == 0


@pytest.mark.parametrize("n", [0, 1, 7])
def test_torque_commands_as_bytes_match_rclpys_own_serialization(n):
    tau = np.linspace(-80.0, 80.0, n)
    back = deserialize_message(cdr.float64_array(tau), Float64MultiArray)
    assert np.array_equal(back.data, tau) and back.layout.dim[0].size == n
    assert np.array_equal(cdr.read_float64_array(serialize_message(conv.effort_command(tau))), tau)


def test_truncated_bytes_are_a_clear_error_not_a_crash():
    data = serialize_message(conv.joint_state(["a", "b"], [1.0, 2.0], [0.0, 0.0], [0.0, 0.0], 1.0))
    for cut in (6, 20, len(data) - 4):
        with pytest.raises(ValueError):
            cdr.read_joint_state(data[:cut])
    with pytest.raises(ValueError):
        cdr.read_float64_array(cdr.float64_array(np.ones(7))[:-8])


def test_a_topic_thread_serves_its_topics_and_the_nodes_clock_while_the_executor_stays_idle(ros):
    """/clock moved off the executor must take its QoS event handlers along: left behind, one stayed
    ready and the executor spun at 100 % CPU (it did, before the fix)."""
    node = ros.add(rclpy.create_node("served", context=ros.context,
                                     parameter_overrides=[Parameter("use_sim_time", value=True)]))
    got = []
    served = TopicThread(node, "served")
    assert served.follow_clock()
    served.subscribe(JointState, "/served_states", lambda data: got.append(cdr.read_joint_state(data)), 10, raw=True)
    served.start()
    peer = ros.add(rclpy.create_node("served_peer", context=ros.context))
    clock = peer.create_publisher(Clock, "/clock", 10)
    states = peer.create_publisher(JointState, "/served_states", 10)
    wait_until(lambda: clock.get_subscription_count() > 0 and states.get_subscription_count() > 0, what="discovery")
    executor_thread = next(t for t in threading.enumerate() if getattr(t, "_target", None) == ros.executor.spin)
    cpu_before = _thread_cpu(executor_thread.native_id)
    for i in range(50):
        clock.publish(Clock(clock=conv.to_time(100.0 + i)))
        states.publish(conv.joint_state(["a"], [float(i)], [0.0], [0.0], 100.0 + i))
        wait_until(lambda: len(got) == i + 1 and node.get_clock().now().nanoseconds == (100 + i) * 10**9,
                   what=f"message {i} handled")
    cpu = _thread_cpu(executor_thread.native_id) - cpu_before
    served.close()
    assert [g.position[0] for g in got] == list(range(50))
    # The executor had nothing to do: a spinning one burns about the whole interval (>= 1 s here).
    assert cpu < 0.2, f"the executor thread used {cpu:.2f} s of CPU while topics were served elsewhere"


def _thread_cpu(tid: int) -> float:
    with open(f"/proc/self/task/{tid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _policies(pid: int) -> dict[str, set[int]]:
    """Thread name -> scheduling policies of a process's threads."""
    out: dict[str, set[int]] = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/comm") as f:
                name = f.read().strip()
            out.setdefault(name, set()).add(os.sched_getscheduler(int(task)))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return out


@pytest.mark.skipif(os.geteuid() != 0, reason="realtime scheduling needs root (or an rtprio limit)")
def test_the_controller_and_a_realtime_simulator_run_at_fifo_priority_but_not_the_renderer(tmp_path):
    env = ensure_localhost_discovery(dict(os.environ, MUJOCO_GL="egl", PYTHONUNBUFFERED="1"))
    procs = {
        name: subprocess.Popen([sys.executable, "-m", f"il_robot.ros.{module}", "--ros-args", *args],
                               env=env, stdout=open(tmp_path / f"{name}.log", "w"), stderr=subprocess.STDOUT)
        for name, module, args in (
            ("sim", "sim_node", ["-p", "mode:=realtime"]),
            ("controller", "inverse_dynamics_node", ["-p", "use_sim_time:=true"]))}
    try:
        for name in procs:
            wait_until(lambda: "realtime priority 50" in (tmp_path / f"{name}.log").read_text(), timeout=60,
                       what=f"{name} says it runs at realtime priority")
        wait_until(lambda: any(n.startswith("llvmpipe") for n in _policies(procs["sim"].pid)), timeout=30,
                   what="the renderer's threads")
        sim, controller = _policies(procs["sim"].pid), _policies(procs["controller"].pid)
        assert controller["python"] == {os.SCHED_FIFO}
        assert any(n.startswith("dds.") for n in controller) and all(
            p == {os.SCHED_FIFO} for n, p in controller.items() if n.startswith("dds."))
        assert os.SCHED_FIFO in sim["python"] and all(
            p == {os.SCHED_OTHER} for n, p in sim.items() if n.startswith("llvmpipe"))
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            p.wait(timeout=20)


def test_log_throttle_lets_one_line_per_period_and_kind_through():
    throttle = LogThrottle(0.2)
    first = [throttle.ready("a") for _ in range(100)]
    assert first.count(True) == 1 and first[0] and throttle.ready("b")
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:
        time.sleep(0.01)
    assert throttle.ready("a")


def test_the_policy_reads_the_arms_state_at_a_frames_own_instant_from_the_recent_ones(ros):
    """A lagging camera's frame is acted on with the joint state of its stamp, not the newest."""
    from il_robot.ros.joint_state_history import JointStateHistory

    owner = ros.add(rclpy.create_node("history_owner", context=ros.context))
    history = JointStateHistory(owner, "/history_states", depth=64)
    peer = ros.add(rclpy.create_node("history_peer", context=ros.context))
    pub = peer.create_publisher(JointState, "/history_states", 100)
    wait_until(lambda: pub.get_subscription_count() > 0, what="discovery")
    assert history.at(1.0, timeout=0.0) is None   # nothing yet
    for k in range(50):   # 500 Hz states from t = 1.000 s; position = stamp
        t = 1.0 + 0.002 * k
        pub.publish(conv.joint_state(["a"], [t], [0.0], [0.0], t))
    wait_until(lambda: history.at(1.098, timeout=0.0).stamp >= 1.098 - 1e-9, what="all 50 states")
    assert history.at(1.05, timeout=0.0).position[0] == pytest.approx(1.05)    # the frame's instant
    assert history.at(1.051, timeout=0.0).position[0] == pytest.approx(1.05)   # the newest before it
    assert history.at(0.5, timeout=0.0).position[0] == pytest.approx(1.0)      # older than all: the oldest

    # The frame's state not there yet: it waits for it (a simulator publishes it a moment before the frame).
    threading.Timer(0.05, lambda: pub.publish(conv.joint_state(["a"], [2.0], [0.0], [0.0], 2.0))).start()
    assert history.at(2.0, timeout=5.0).position[0] == 2.0

    # A clock that goes back (a restarted driver) forgets the states of the time before.
    pub.publish(conv.joint_state(["a"], [0.3], [0.0], [0.0], 0.3))
    assert history.at(0.3, timeout=5.0).position[0] == 0.3
    assert history.at(1.05, timeout=0.0).position[0] == 0.3
    history.destroy()
