"""The inverse-dynamics node through real rclpy topics: order, validation, and the safe state of every
fault in docs/safety.md (one test per row). Every test also checks that nothing non-finite or beyond a
torque limit was ever published."""

import threading

import numpy as np
import pytest
import rclpy
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from conftest import wait_until
from il_robot import topics
from il_robot.robot import panda_like
from il_robot.robot.computed_torque import Mode
from il_robot.robot.model import RobotModel
from il_robot.ros import conversions as conv
from il_robot.ros.inverse_dynamics_node import InverseDynamicsNode

NAMES = list(panda_like.JOINT_NAMES)
HOME = np.array(panda_like.HOME_Q)
ROBOT = RobotModel.load()
GRAVITY_HOME = ROBOT.inverse_dynamics(HOME, np.zeros(7), np.zeros(7))


class Harness:
    """A driver stand-in: publishes joint states, desired motion (and /clock on sim time),
    records every torque command."""

    def __init__(self, ros, sim_time=False, **params):
        overrides = [Parameter("use_sim_time", value=sim_time)] + [Parameter(k, value=v) for k, v in params.items()]
        self.node = ros.add(InverseDynamicsNode(context=ros.context, parameter_overrides=overrides))
        self.peer = ros.add(rclpy.create_node("driver_stand_in", context=ros.context))
        self.cv = threading.Condition()
        self.commands: list[np.ndarray] = []
        self.references = 0
        self.peer.create_subscription(Float64MultiArray, topics.EFFORT_COMMANDS, self._on_command, 100)
        self.peer.create_subscription(JointTrajectory, topics.CONTROLLER_REFERENCE, self._on_reference, 10)
        self.js = self.peer.create_publisher(JointState, topics.JOINT_STATES, 10)
        self.dm = self.peer.create_publisher(JointTrajectory, topics.DESIRED_MOTION, 10)
        self.clock = self.peer.create_publisher(Clock, topics.CLOCK, 10)
        self.sim_t = 100.0
        wait_until(lambda: self.js.get_subscription_count() > 0 and self.dm.get_subscription_count() > 0
                   and self.peer.count_publishers(topics.EFFORT_COMMANDS) > 0
                   and (not sim_time or self.clock.get_subscription_count() > 0), what="discovery")
        if sim_time:
            self.set_clock(self.sim_t)

    def _on_command(self, msg):
        with self.cv:
            self.commands.append(np.array(msg.data))
            self.cv.notify_all()

    def _on_reference(self, _msg):
        self.references += 1

    def now(self):
        return self.node.get_clock().now().nanoseconds * 1e-9

    def set_clock(self, t):
        self.sim_t = t
        self.clock.publish(Clock(clock=conv.to_time(t)))
        wait_until(lambda: abs(self.now() - t) < 1e-6, what=f"the node's clock at {t}")

    def send_state(self, names, q, qd, wait=True, stamp=None):
        with self.cv:
            n = len(self.commands)
        self.js.publish(conv.joint_state(names, q, qd, np.zeros(len(q)), self.now() if stamp is None else stamp))
        if wait:
            with self.cv:
                assert self.cv.wait_for(lambda: len(self.commands) > n, 10.0), "no torque command"
                return self.commands[-1]

    def send_desired(self, names, q, qd, qdd, stamp=None, wait=True):
        before = self.node.controller.reference
        rejected = self.node.rejected
        self.dm.publish(conv.desired_motion(names, q, qd, qdd, self.now() if stamp is None else stamp))
        if wait:
            wait_until(lambda: self.node.controller.reference is not before or self.node.rejected > rejected,
                       what="desired motion taken or rejected")

    def await_stale(self):
        """Until the node has stopped commanding and its last command has arrived here."""
        wait_until(lambda: self.node.mode is Mode.STALE, what="the node to stop commanding")
        with self.cv:
            assert self.cv.wait_for(lambda: len(self.commands) >= self.node.commands_sent, 10.0)

    def ticks_pass(self, n=10):
        ticks = self.node.watchdog_ticks
        wait_until(lambda: self.node.watchdog_ticks >= ticks + n, what=f"{n} watchdog ticks")

    def check_all_safe(self):
        with self.cv:
            for tau in self.commands:
                assert tau.shape == (7,) and np.all(np.isfinite(tau)), tau
                assert np.all(np.abs(tau) <= ROBOT.limits.tau_max + 1e-9), tau


@pytest.fixture
def harness(ros):
    made = []

    def make(**kwargs):
        made.append(Harness(ros, **kwargs))
        return made[-1]
    yield make
    for h in made:
        h.check_all_safe()


def test_shuffled_joint_order_gives_the_same_torques(harness):
    h = harness(desired_timeout=5.0)
    rng = np.random.default_rng(3)
    q, qd = HOME + rng.uniform(-0.2, 0.2, 7), rng.normal(0, 0.3, 7)
    q_des = q + 0.05
    h.send_desired(NAMES, q_des, np.zeros(7), np.zeros(7))
    in_order = h.send_state(NAMES, q, qd)
    perm = rng.permutation(7)
    shuffled = h.send_state([NAMES[i] for i in perm], q[perm], qd[perm])
    np.testing.assert_allclose(shuffled, in_order, atol=1e-6)
    expected = ROBOT.inverse_dynamics(q, qd, 400.0 * (q_des - q) + 40.0 * (0 - qd))
    np.testing.assert_allclose(in_order, np.clip(expected, -ROBOT.limits.tau_max, ROBOT.limits.tau_max),
                               rtol=1e-3, atol=1e-2)  # desired extrapolation: a few ms of q_des drift only


@pytest.mark.parametrize("names, q, qd, what", [
    (NAMES[:6] + ["gripper_joint"], HOME, np.zeros(7), "missing joint"),
    (NAMES, np.r_[HOME[:3], np.nan, HOME[4:]], np.zeros(7), "NaN"),
    (NAMES, HOME[:5], np.zeros(5), "short array"),
    (NAMES, HOME, np.full(7, 1e300), "velocity 1e300"),
    (NAMES, HOME, np.full(7, 1e154), "velocity 1e154"),
    (NAMES, np.full(7, 1e308), np.zeros(7), "position 1e308"),
    (NAMES, HOME, np.full(7, 30.0), "velocity 10x the limit"),
])
def test_bad_joint_states_are_rejected_and_then_nothing_is_commanded(harness, names, q, qd, what):
    h = harness()
    h.send_state(NAMES, HOME, np.zeros(7))
    sent = h.node.commands_sent
    h.send_state(names, q, qd, wait=False)
    wait_until(lambda: h.node.rejected == 1, what=f"rejection of {what}")
    h.await_stale()   # never applied: the last valid state goes stale, the float command goes out once
    np.testing.assert_allclose(h.commands[-1], GRAVITY_HOME, atol=1e-9)
    assert h.node.commands_sent == sent + 1


@pytest.mark.parametrize("field", ["positions", "velocities", "accelerations"])
def test_absurd_desired_motion_is_rejected_and_previous_kept(harness, field):
    h = harness(desired_timeout=5.0)
    h.send_desired(NAMES, HOME, np.zeros(7), np.zeros(7))
    before = h.node.controller.reference
    values = {"positions": HOME.copy(), "velocities": np.zeros(7), "accelerations": np.zeros(7)}
    values[field][0] = 1e308
    h.send_desired(NAMES, values["positions"], values["velocities"], values["accelerations"])
    h.send_desired(NAMES, np.r_[HOME[:6], np.inf], np.zeros(7), np.zeros(7))
    h.send_desired(NAMES[:3], HOME[:3], [], [])
    assert h.node.rejected == 3 and h.node.controller.reference is before
    tau = h.send_state(NAMES, HOME, np.zeros(7))
    assert np.all(np.isfinite(tau)) and h.node.mode is Mode.TRACK


@pytest.mark.parametrize("ahead", [0.3, 5.0, 3600.0])
def test_a_future_stamped_joint_state_does_not_delay_the_safe_state(harness, ahead):
    """'Now' used to be the later of the node's clock and the stamp: one state stamped +1 h then silence
    gave no command for an hour. Freshness is by arrival now; the stamp is flagged beyond tolerance."""
    h = harness()
    h.send_desired(NAMES, HOME, np.zeros(7), np.zeros(7))
    h.send_state(NAMES, HOME, np.zeros(7))
    h.send_state(NAMES, HOME, np.zeros(7), stamp=h.now() + ahead)
    t0 = h.now()
    h.await_stale()
    assert h.now() - t0 < 1.0    # the timeout is 50 ms; an hour-long wait fails this
    np.testing.assert_allclose(h.commands[-1], GRAVITY_HOME, atol=1e-9)
    assert h.node.stamps_flagged == (1 if ahead > h.node.stamp_tolerance else 0)


def test_stale_joint_states_send_the_float_command_once_then_nothing(harness):
    """Zero torque would drop the arm; the last command is gravity compensation of the last pose, and
    then silence, so a driver's command timeout engages its brakes."""
    h = harness(joint_state_timeout=0.05)
    h.send_desired(NAMES, HOME - 0.1, np.zeros(7), np.zeros(7))
    tau = h.send_state(NAMES, HOME, np.zeros(7))
    assert np.abs(tau - GRAVITY_HOME).max() > 1.0   # tracking, not floating
    h.await_stale()
    np.testing.assert_allclose(h.commands[-1], GRAVITY_HOME, atol=1e-9)
    n = len(h.commands)
    h.ticks_pass(20)
    assert len(h.commands) == n, "commands went on after the states stopped"
    h.send_state(NAMES, HOME + 0.05, np.zeros(7))   # states come back: control resumes, no restart
    assert h.node.mode is Mode.TRACK


def test_stale_desired_motion_holds_the_measured_pose(harness):
    h = harness(desired_timeout=0.05, joint_state_timeout=5.0)
    q_held = HOME + 0.05
    h.send_desired(NAMES, HOME - 0.2, np.zeros(7), np.zeros(7))
    h.send_state(NAMES, q_held, np.zeros(7))
    wait_until(lambda: h.node.clock.elapsed - h.node.controller.reference_received > 0.06,
               what="desired motion to go stale")
    tau = h.send_state(NAMES, q_held, np.zeros(7))
    np.testing.assert_allclose(tau, ROBOT.inverse_dynamics(q_held, np.zeros(7), np.zeros(7)), atol=1e-6)
    assert h.node.mode is Mode.HOLD


def test_a_desired_motion_stamped_far_from_the_clock_is_rejected(harness):
    h = harness(desired_timeout=5.0)
    h.send_desired(NAMES, HOME, np.zeros(7), np.zeros(7))
    before = h.node.controller.reference
    h.send_desired(NAMES, HOME + 0.3, np.zeros(7), np.zeros(7), stamp=h.now() + 1000.0)
    h.send_desired(NAMES, HOME + 0.3, np.zeros(7), np.zeros(7), stamp=h.now() - 1000.0)
    assert h.node.rejected == 2 and h.node.controller.reference is before


def test_a_clock_that_goes_back_drops_the_reference(harness):
    """A restarted simulator sends /clock back: the target from before the restart is dropped and the arm
    holds where it is (it used to be driven there at saturated torque)."""
    h = harness(sim_time=True, desired_timeout=5.0, joint_state_timeout=5.0)
    target = HOME + 0.3
    h.send_desired(NAMES, target, np.zeros(7), np.zeros(7))
    h.send_state(NAMES, HOME, np.zeros(7))
    assert h.node.mode is Mode.TRACK
    h.set_clock(2.0)      # back by 98 s
    wait_until(lambda: h.node.controller.reference is None, what="the reference to be dropped")
    tau = h.send_state(NAMES, HOME, np.zeros(7))
    assert h.node.mode is Mode.HOLD
    np.testing.assert_allclose(tau, GRAVITY_HOME, atol=1e-6)


def test_a_clock_jump_forward_is_not_elapsed_time(harness):
    """A simulator reset moves /clock on (a lockstep reset by up to a second; 50 s here, so that no pause
    of a busy test machine between two readings can pass for it), and the clock may be handled before
    the joint state stamped at the new time: no stop then, but a stop once the states really stop."""
    h = harness(sim_time=True, joint_state_timeout=0.05, lockstep=True)

    def advance(dt):   # the clock moves on by dt, and the node reads it (a watchdog tick) before the next step
        h.set_clock(h.sim_t + dt)
        h.ticks_pass(1)

    for _ in range(3):
        h.send_state(NAMES, HOME, np.zeros(7))
        advance(0.01)
    advance(50.0)      # the reset
    h.ticks_pass(3)
    assert h.node.mode is not Mode.STALE
    h.send_state(NAMES, HOME, np.zeros(7))
    for _ in range(8):  # no more states: stale within the timeout of sim time
        advance(0.01)
    h.await_stale()


def test_a_killed_simulator_stops_the_controller_on_sim_time(harness):
    """On sim time the node's clock stops with /clock: the steady-clock guard stops commanding."""
    h = harness(sim_time=True, joint_state_timeout=0.05, joint_state_wall_timeout=0.25)
    h.send_state(NAMES, HOME, np.zeros(7))
    h.set_clock(h.sim_t + 0.002)
    h.send_state(NAMES, HOME, np.zeros(7))
    h.await_stale()   # neither /clock nor states come any more
    np.testing.assert_allclose(h.commands[-1], GRAVITY_HOME, atol=1e-9)
    n = len(h.commands)
    h.ticks_pass(20)
    assert len(h.commands) == n


def test_a_still_sim_clock_with_states_flowing_stops_the_controller(harness):
    """Without a moving clock no age can be judged: a sim whose /clock stopped gets no commands."""
    h = harness(sim_time=True, joint_state_timeout=5.0, joint_state_wall_timeout=0.1)
    h.send_state(NAMES, HOME, np.zeros(7))
    wait_until(lambda: (h.send_state(NAMES, HOME, np.zeros(7), wait=False), h.node.mode is Mode.STALE)[1],
               what="the stop while /clock stands still")


def test_lockstep_parameter_alone_turns_on_the_simulator_handshake(harness):
    real_arm = harness(desired_timeout=5.0)
    real_arm.send_desired(NAMES, HOME, np.zeros(7), np.zeros(7))
    assert real_arm.node.pub_reference is None and real_arm.references == 0


def test_lockstep_echoes_references_and_sends_nothing_when_states_stop(harness):
    h = harness(lockstep=True, desired_timeout=5.0)
    h.send_desired(NAMES, HOME, np.zeros(7), np.zeros(7))
    wait_until(lambda: h.references == 1, what="the reference echo")
    h.send_state(NAMES, HOME, np.zeros(7))
    n = len(h.commands)
    h.await_stale()
    h.ticks_pass(10)
    assert len(h.commands) == n   # a lockstep simulator would take any command as an answer


def test_lockstep_times_the_reference_by_the_states_stamps_not_by_clock_arrival(harness):
    """A replay must not depend on whether a step's /clock came in before or after its state: in
    lockstep the reference is extrapolated to the state's own stamp, to the last bit, wherever the
    node's clock stands."""
    h = harness(sim_time=True, lockstep=True, desired_timeout=5.0)
    t0 = float(2 ** 20)   # a lockstep episode starts on a whole second of this binade
    h.set_clock(t0)
    qd = np.full(7, 0.1)
    h.send_desired(NAMES, HOME, qd, np.zeros(7), stamp=t0)
    state = (NAMES, HOME + 0.004, np.zeros(7))
    clock_behind = h.send_state(*state, stamp=t0 + 0.01)   # its /clock not in yet
    h.set_clock(t0 + 0.01)
    clock_with = h.send_state(*state, stamp=t0 + 0.01)     # a re-send, its /clock in
    np.testing.assert_array_equal(clock_behind, clock_with)
    ctl = h.node.controller
    expected, _ = ctl.command(t0 + 0.01)
    np.testing.assert_array_equal(clock_with, expected)
    assert ctl.reference.t == t0   # the point's own stamp
    not_extrapolated = ROBOT.inverse_dynamics(HOME + 0.004, np.zeros(7),
                                              ctl.feedback(HOME, qd, np.zeros(7), HOME + 0.004, np.zeros(7)))
    assert np.abs(clock_with - not_extrapolated).max() > 0.1   # the 10 ms of extrapolation count


def test_extra_joints_are_ignored_not_fatal(harness):
    """A Franka driver also publishes the gripper fingers: the arm is still controlled."""
    h = harness(desired_timeout=5.0)
    h.send_desired(NAMES, HOME + 0.05, np.zeros(7), np.zeros(7))
    names = NAMES + ["panda_finger_joint1", "panda_finger_joint2"]
    tau = h.send_state(names, np.r_[HOME, 0.04, 0.04], np.zeros(9))
    assert h.node.mode is Mode.TRACK and h.node.rejected == 0
    assert np.abs(tau - GRAVITY_HOME).max() > 1.0


def test_a_pose_jump_re_anchors_the_hold(harness):
    """A reset while the policy is stalled: the arm is held where it now is, not driven back."""
    h = harness(desired_timeout=0.01, joint_state_timeout=5.0)
    held = HOME + 0.4
    h.send_desired(NAMES, held, np.zeros(7), np.zeros(7))
    h.send_state(NAMES, held, np.zeros(7))
    wait_until(lambda: (h.send_state(NAMES, held, np.zeros(7)), h.node.mode is Mode.HOLD)[1], what="hold")
    tau = h.send_state(NAMES, HOME, np.zeros(7))    # the reset
    np.testing.assert_allclose(tau, GRAVITY_HOME, atol=1e-6)


def test_after_a_reset_a_reference_from_before_it_is_refused_and_the_new_pose_held(harness):
    """Realtime: the policy's answer to the last frame before a reset lands after it. It is refused
    (held at the new pose, not driven back), counted, and the first reference of the new pose is taken."""
    h = harness(desired_timeout=5.0, joint_state_timeout=5.0)
    old = HOME + 0.4
    h.send_desired(NAMES, old, np.zeros(7), np.zeros(7))
    h.send_state(NAMES, old, np.zeros(7))
    before_reset = h.now()
    reset_stamp = before_reset + 0.002
    tau = h.send_state(NAMES, HOME, np.zeros(7), stamp=reset_stamp)   # the reset: the pose jumps
    np.testing.assert_allclose(tau, GRAVITY_HOME, atol=1e-6)
    h.send_desired(NAMES, old, np.zeros(7), np.zeros(7), stamp=before_reset, wait=False)   # computed before it
    wait_until(lambda: h.node.stale_refused == 1, what="the stale reference refused")
    assert h.node.rejected == 0 and h.node.controller.reference is None
    np.testing.assert_allclose(h.send_state(NAMES, HOME, np.zeros(7)), GRAVITY_HOME, atol=1e-6)
    assert h.node.mode is Mode.HOLD
    h.send_desired(NAMES, HOME + 0.05, np.zeros(7), np.zeros(7), stamp=reset_stamp)   # the new pose's frame
    tau = h.send_state(NAMES, HOME, np.zeros(7))
    assert h.node.mode is Mode.TRACK and np.abs(tau - GRAVITY_HOME).max() > 1.0


def test_gains_react_to_parameter_changes_within_their_ranges(harness):
    h = harness()
    res = h.node.set_parameters([Parameter("kp", value=[100.0])])
    assert res[0].successful and np.all(h.node.controller.kp == 100.0)
    res = h.node.set_parameters([Parameter("kp", value=[1.0, 2.0])])
    assert not res[0].successful and "1 or 7 values" in res[0].reason
    for name, value in (("kp", [-1.0]), ("kp", [1e9]), ("kd", [0.0]), ("kd", [float("nan")])):
        res = h.node.set_parameters([Parameter(name, value=value)])
        assert not res[0].successful and "must lie in" in res[0].reason, (name, value)
    assert np.all(h.node.controller.kp == 100.0) and np.all(h.node.controller.kd == 40.0)
    described = h.node.describe_parameter("kd")
    assert described.floating_point_range and described.floating_point_range[0].from_value == 1.0
