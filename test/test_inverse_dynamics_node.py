"""The inverse-dynamics node through real rclpy topics: order, validation, watchdogs."""

import threading

import numpy as np
import pytest
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from conftest import wait_until
from il_robot import topics
from il_robot.robot import panda_like
from il_robot.robot.model import RobotModel
from il_robot.ros import conversions as conv
from il_robot.ros.inverse_dynamics_node import InverseDynamicsNode

NAMES = list(panda_like.JOINT_NAMES)
HOME = np.array(panda_like.HOME_Q)


class Harness:
    """A driver stand-in: publishes joint states and desired motion, records torque commands."""

    def __init__(self, ros, **params):
        overrides = [Parameter("use_sim_time", value=False)] + [Parameter(k, value=v) for k, v in params.items()]
        self.node = ros.add(InverseDynamicsNode(context=ros.context, parameter_overrides=overrides))
        import rclpy
        self.peer = ros.add(rclpy.create_node("driver_stand_in", context=ros.context))
        self.cv = threading.Condition()
        self.commands: list[np.ndarray] = []
        self.peer.create_subscription(Float64MultiArray, topics.EFFORT_COMMANDS, self._on_command, 100)
        self.js = self.peer.create_publisher(JointState, topics.JOINT_STATES, 10)
        self.dm = self.peer.create_publisher(JointTrajectory, topics.DESIRED_MOTION, 10)
        wait_until(lambda: self.js.get_subscription_count() > 0 and self.dm.get_subscription_count() > 0
                   and self.peer.count_publishers(topics.EFFORT_COMMANDS) > 0, what="discovery")
        self.robot = RobotModel.load()

    def _on_command(self, msg):
        with self.cv:
            self.commands.append(np.array(msg.data))
            self.cv.notify_all()

    def now(self):
        return self.node.get_clock().now().nanoseconds * 1e-9

    def send_state(self, names, q, qd, wait=True):
        n = len(self.commands)
        self.js.publish(conv.joint_state(names, q, qd, np.zeros(len(q)), self.now()))
        if wait:
            wait_until(lambda: len(self.commands) > n, what="a torque command")
            return self.commands[-1]

    def send_desired(self, names, q, qd, qdd):
        self.dm.publish(conv.desired_motion(names, q, qd, qdd, self.now()))
        wait_until(lambda: self.node.controller.reference is not None, what="desired motion")

    def next_command_where(self, predicate, timeout=5.0):
        with self.cv:
            start = len(self.commands)
            ok = self.cv.wait_for(lambda: any(predicate(c) for c in self.commands[start:]), timeout)
        assert ok, "no such command arrived"


def test_shuffled_joint_order_gives_the_same_torques(ros):
    h = Harness(ros, desired_timeout=5.0)
    rng = np.random.default_rng(3)
    q, qd = HOME + rng.uniform(-0.2, 0.2, 7), rng.normal(0, 0.3, 7)
    q_des = q + 0.05
    h.send_desired(NAMES, q_des, np.zeros(7), np.zeros(7))
    in_order = h.send_state(NAMES, q, qd)
    perm = rng.permutation(7)
    shuffled = h.send_state([NAMES[i] for i in perm], q[perm], qd[perm])
    np.testing.assert_allclose(shuffled, in_order, atol=1e-6)
    expected = h.robot.inverse_dynamics(q, qd, 400.0 * (q_des - q) + 40.0 * (0 - qd))
    np.testing.assert_allclose(in_order, np.clip(expected, -h.robot.limits.tau_max, h.robot.limits.tau_max),
                               rtol=1e-3, atol=1e-2)  # desired extrapolation: a few ms of q_des drift only


@pytest.mark.parametrize("names, q, what", [
    (NAMES[:6] + ["gripper_joint"], HOME, "unknown joint"),
    (NAMES, np.r_[HOME[:3], np.nan, HOME[4:]], "NaN"),
    (NAMES, HOME[:5], "short array"),
])
def test_bad_joint_states_are_rejected(ros, names, q, what):
    h = Harness(ros)
    h.send_state(NAMES, HOME, np.zeros(7))
    sent = h.node.commands_sent
    h.send_state(names, q, np.zeros(len(q)), wait=False)
    wait_until(lambda: h.node.rejected == 1, what=f"rejection of {what}")
    # Never applied: no command computed from it; the watchdog then goes to zero torque.
    assert h.node.commands_sent == sent or not h.commands[-1].any()
    h.next_command_where(lambda c: not c.any())


def test_bad_desired_motion_is_rejected_and_previous_kept(ros):
    h = Harness(ros, desired_timeout=5.0)
    h.send_desired(NAMES, HOME, np.zeros(7), np.zeros(7))
    before = h.node.controller.reference
    h.dm.publish(conv.desired_motion(NAMES, np.r_[HOME[:6], np.inf], np.zeros(7), np.zeros(7), h.now()))
    h.dm.publish(conv.desired_motion(NAMES[:3], HOME[:3], [], [], h.now()))
    wait_until(lambda: h.node.rejected == 2, what="two rejections")
    assert h.node.controller.reference is before


def test_silent_joint_states_give_zero_torque(ros):
    h = Harness(ros, joint_state_timeout=0.05)
    h.send_desired(NAMES, HOME, np.zeros(7), np.zeros(7))
    tau = h.send_state(NAMES, HOME, np.zeros(7))
    assert np.abs(tau).max() > 1.0  # gravity needs torque
    h.next_command_where(lambda c: not c.any())  # the watchdog, with no more joint states


def test_a_clock_jump_before_its_joint_state_gives_no_zero_torque(ros):
    """A simulator reset moves /clock on by more than joint_state_timeout, and the clock may be handled
    before the joint state stamped at the new time: no zero torque then (a lockstep simulator would
    take it as the answer to that state), but zero torque once states really stop."""
    import rclpy
    from rosgraph_msgs.msg import Clock

    node = ros.add(InverseDynamicsNode(context=ros.context, parameter_overrides=[
        Parameter("use_sim_time", value=True), Parameter("joint_state_timeout", value=0.05)]))
    peer = ros.add(rclpy.create_node("sim_stand_in", context=ros.context))
    cv = threading.Condition()
    commands: list[np.ndarray] = []

    def on_command(msg):
        with cv:
            commands.append(np.array(msg.data))
            cv.notify_all()

    peer.create_subscription(Float64MultiArray, topics.EFFORT_COMMANDS, on_command, 100)
    clock = peer.create_publisher(Clock, topics.CLOCK, 10)
    js = peer.create_publisher(JointState, topics.JOINT_STATES, 10)
    wait_until(lambda: js.get_subscription_count() > 0 and clock.get_subscription_count() > 0
               and peer.count_publishers(topics.EFFORT_COMMANDS) > 0, what="discovery")

    def set_clock(t):
        ticks = node.watchdog_ticks
        clock.publish(Clock(clock=conv.to_time(t)))
        wait_until(lambda: node.watchdog_ticks > ticks, what=f"a watchdog tick at t={t}")

    def answer(t):
        with cv:
            n = len(commands)
            js.publish(conv.joint_state(NAMES, HOME, np.zeros(7), np.zeros(7), t))
            assert cv.wait_for(lambda: len(commands) > n, 5.0), "no torque for the joint state"
            return commands[-1]

    t = 1.0
    set_clock(t)
    for _ in range(3):                  # a running episode: clock and states every 10 ms
        assert np.abs(answer(t)).max() > 1.0
        t += 0.01
        set_clock(t)
    t += 0.06                           # the reset: the clock jumps, its joint state comes after
    set_clock(t)
    assert np.abs(answer(t)).max() > 1.0
    t += 0.01
    set_clock(t)
    with cv:
        assert all(c.any() for c in commands), "a zero torque came with the clock jump"
    for _ in range(8):                  # the states stop: zero torque within the timeout + a tick
        t += 0.01
        set_clock(t)
    with cv:
        assert cv.wait_for(lambda: not commands[-1].any(), 5.0), "no zero torque after the states stopped"


def test_silent_desired_motion_holds_pose_with_gravity_compensation(ros):
    h = Harness(ros, desired_timeout=0.05, joint_state_timeout=5.0)   # no watchdog zero in between
    q_held = HOME + 0.05
    h.send_desired(NAMES, HOME - 0.2, np.zeros(7), np.zeros(7))
    h.send_state(NAMES, q_held, np.zeros(7))
    wait_until(lambda: h.now() - h.node.controller.reference_received > 0.06, what="desired motion to go stale")
    tau = h.send_state(NAMES, q_held, np.zeros(7))
    gravity = h.robot.inverse_dynamics(q_held, np.zeros(7), np.zeros(7))
    np.testing.assert_allclose(tau, gravity, atol=1e-6)


def test_gains_react_to_parameter_changes(ros):
    h = Harness(ros)
    res = h.node.set_parameters([Parameter("kp", value=[100.0])])
    assert res[0].successful and np.all(h.node.controller.kp == 100.0)
    res = h.node.set_parameters([Parameter("kp", value=[1.0, 2.0])])
    assert not res[0].successful and "1 or 7 values" in res[0].reason
    assert np.all(h.node.controller.kp == 100.0)
