"""Policy selection through parameters, on a real rclpy node."""

import threading

import numpy as np
import pytest
from rclpy.parameter import Parameter

from conftest import wait_until

from il_robot.ros.policy_node import PolicyNode
from il_robot.ros.runner import SideExecutor   # as run_node spins the policy node's two halves


def test_swap_is_refused_with_reason_and_old_policy_kept(ros):
    node = ros.add(PolicyNode(context=ros.context, parameter_overrides=[Parameter("use_sim_time", value=False)]))
    ros.executor.add_node(node.control_node)
    old = node.policy
    result = node.set_parameters([Parameter("policy", value="no_such_policy")])[0]
    assert not result.successful and "unknown policy 'no_such_policy'" in result.reason
    assert node.policy is old and node.policy_name == "scripted"
    assert node.get_parameter("policy").value == "scripted"


def test_swap_to_a_registered_policy(ros):
    node = ros.add(PolicyNode(context=ros.context, parameter_overrides=[Parameter("use_sim_time", value=False)]))
    ros.executor.add_node(node.control_node)
    result = node.set_parameters([Parameter("policy", value="hold")])[0]
    assert result.successful and node.policy_name == "hold" and node.swaps == 1


def test_swap_mid_episode_misses_no_tick(ros):
    """scripted -> (slow-loading) gated -> scripted through the parameter service while frames keep
    coming: every frame gets its desired motion and every joint state its torque, also while the new
    policy is still being built, and the actions change only once the build is done."""
    import rclpy
    from geometry_msgs.msg import PoseArray, TwistStamped
    from rcl_interfaces.msg import Parameter as ParameterMsg
    from rcl_interfaces.msg import ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray
    from trajectory_msgs.msg import JointTrajectory

    from il_robot import topics
    from il_robot.policies.base import Policy, register
    from il_robot.robot import panda_like
    from il_robot.ros import conversions as conv
    from il_robot.ros.inverse_dynamics_node import InverseDynamicsNode

    building, release = threading.Event(), threading.Event()
    gated_action = np.array([0.0, 0.0, 0.01])

    @register("gated_test_policy")
    class Gated(Policy):
        def __init__(self, config):
            building.set()
            assert release.wait(30), "test never released the build"

        def reset(self, context):
            pass

        def act(self, obs):
            return gated_action

    from rosgraph_msgs.msg import Clock

    sim_time = [Parameter("use_sim_time", value=True)]
    # On sim time (the driver stand-in is a simulator with a /clock), so the test's own pace (wall
    # clock) does not matter: joint states stay fresh between frames, and stamps match the clock.
    controller = ros.add(InverseDynamicsNode(context=ros.context, parameter_overrides=sim_time + [
        Parameter("joint_state_timeout", value=5.0), Parameter("joint_state_wall_timeout", value=10.0)]))
    policy = PolicyNode(context=ros.context, parameter_overrides=sim_time)
    spinners = [SideExecutor(policy), SideExecutor(policy.control_node)]
    driver = ros.add(rclpy.create_node("driver_stand_in", context=ros.context))
    cv = threading.Condition()
    seen = {"torques": 0, "desired": [], "actions": []}

    def on(key, value):
        with cv:
            if key == "torques":
                seen[key] += 1
            else:
                seen[key].append(value)
            cv.notify_all()

    driver.create_subscription(Float64MultiArray, topics.EFFORT_COMMANDS,
                               lambda m: any(m.data) and on("torques", None), 1000)
    driver.create_subscription(JointTrajectory, topics.DESIRED_MOTION,
                               lambda m: on("desired", conv.from_time(m.header.stamp)), 100)
    driver.create_subscription(TwistStamped, topics.TIP_VELOCITY,
                               lambda m: on("actions", np.array([m.twist.linear.x, m.twist.linear.y,
                                                                 m.twist.linear.z])), 100)
    js_pub = driver.create_publisher(JointState, topics.JOINT_STATES, 1000)
    clock_pub = driver.create_publisher(Clock, topics.CLOCK, 10)
    poses_pub = driver.create_publisher(PoseArray, topics.OBJECT_POSES, 10)
    setter = driver.create_client(SetParameters, "/policy/set_parameters")
    wait_until(lambda: js_pub.get_subscription_count() >= 2 and poses_pub.get_subscription_count() >= 1
               and driver.count_publishers(topics.DESIRED_MOTION) >= 1
               and driver.count_publishers(topics.EFFORT_COMMANDS) >= 1
               and setter.service_is_ready() and clock_pub.get_subscription_count() >= 3, what="discovery")

    names, q = list(panda_like.JOINT_NAMES), np.array(panda_like.HOME_Q)
    poses = PoseArray()
    poses.poses = [conv.pose((0.45, 0.1, 0.03)), conv.pose((0.4, -0.15, 0.03)), conv.pose((0.55, 0.0, 0.0))]
    state = {"k": 0, "missed_frames": 0, "missed_torques": 0}

    def frame():
        """One camera period: 25 joint states (500 Hz) and the object poses; await every answer."""
        k = state["k"]
        t = 100.0 + 0.05 * k
        state["k"] += 1
        for j in range(25):
            with cv:
                before = seen["torques"]
            clock_pub.publish(Clock(clock=conv.to_time(t + 0.002 * j)))
            if j == 0:   # as a simulator's clock, on the nodes before the frame's messages
                wait_until(lambda: controller.get_clock().now().nanoseconds >= int(t * 1e9) - 10
                           and policy.control_node.get_clock().now().nanoseconds >= int(t * 1e9) - 10,
                           what="the clock")
            js_pub.publish(conv.joint_state(names, q, np.zeros(7), np.zeros(7), t + 0.002 * j))
            with cv:
                if not cv.wait_for(lambda: seen["torques"] > before, 5.0):
                    state["missed_torques"] += 1
            if j == 0:
                poses.header.stamp = conv.to_time(t)
                poses_pub.publish(poses)
                with cv:
                    if not cv.wait_for(lambda: t in seen["desired"], 5.0):
                        state["missed_frames"] += 1

    def set_policy(name):
        value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=name)
        return setter.call_async(SetParameters.Request(parameters=[ParameterMsg(name="policy", value=value)]))

    try:
        for _ in range(5):
            frame()
        future = set_policy("gated_test_policy")
        assert building.wait(10), "the swap never started building the policy"
        for _ in range(20):      # the build is blocked: the old policy keeps every tick
            frame()
        assert not future.done() and policy.policy_name == "scripted"
        assert not any(np.allclose(a, gated_action) for a in seen["actions"])
        release.set()
        wait_until(future.done, what="the swap to finish")
        assert future.result().results[0].successful
        n_actions = len(seen["actions"])
        for _ in range(5):
            frame()
        assert all(np.allclose(a, gated_action) for a in seen["actions"][n_actions:])
        back = set_policy("scripted")
        wait_until(back.done, what="the swap back")
        assert back.result().results[0].successful and policy.policy_name == "scripted"
        for _ in range(5):
            frame()
        assert policy.swaps == 2
        assert state["missed_frames"] == 0 and state["missed_torques"] == 0, state
        assert seen["torques"] == 25 * state["k"]
    finally:
        release.set()
        for s in spinners:
            s.stop()
        policy.close()
        policy.destroy_node()


class _FrameDriver:
    """A simulator stand-in for the policy node alone: /clock, joint states, object poses, images."""

    def __init__(self, ros, **params):
        import rclpy
        from geometry_msgs.msg import PoseArray
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import Image, JointState
        from trajectory_msgs.msg import JointTrajectory

        from il_robot import topics
        from il_robot.ros import conversions as conv

        self.conv, self.Clock = conv, Clock
        overrides = [Parameter("use_sim_time", value=True)] + [Parameter(k, value=v) for k, v in params.items()]
        self.policy = PolicyNode(context=ros.context, parameter_overrides=overrides)
        self.spinners = [SideExecutor(self.policy), SideExecutor(self.policy.control_node)]
        self.node = ros.add(rclpy.create_node("sim_stand_in", context=ros.context))
        self.cv = threading.Condition()
        self.desired: list[float] = []
        self.node.create_subscription(JointTrajectory, topics.DESIRED_MOTION, self._on_desired, 100)
        self.clock = self.node.create_publisher(Clock, topics.CLOCK, 10)
        self.js = self.node.create_publisher(JointState, topics.JOINT_STATES, 10)
        self.poses = self.node.create_publisher(PoseArray, topics.OBJECT_POSES, 10)
        self.images = self.node.create_publisher(Image, topics.IMAGE, 10)
        wait_until(lambda: self.clock.get_subscription_count() >= 2 and self.js.get_subscription_count() >= 1
                   and self.poses.get_subscription_count() >= 1 and self.images.get_subscription_count() >= 1
                   and self.node.count_publishers(topics.DESIRED_MOTION) >= 1, what="discovery")
        from il_robot.robot import panda_like
        self.names, self.q = list(panda_like.JOINT_NAMES), np.array(panda_like.HOME_Q)

    def _on_desired(self, msg):
        with self.cv:
            self.desired.append(self.conv.from_time(msg.header.stamp))
            self.cv.notify_all()

    def set_clock(self, t):
        self.clock.publish(self.Clock(clock=self.conv.to_time(t)))
        wait_until(lambda: abs(self.policy.control_node.get_clock().now().nanoseconds * 1e-9 - t) < 1e-6,
                   what="the policy's clock")

    def frame(self, t, stamp=None, image=False, answered=True):
        """The clock at t, the joint state at t, then the object poses (and image) stamped `stamp`."""
        from geometry_msgs.msg import PoseArray
        conv = self.conv
        stamp = conv.from_time(conv.to_time(t if stamp is None else stamp))   # as it comes back
        self.set_clock(t)
        self.js.publish(conv.joint_state(self.names, self.q, np.zeros(7), np.zeros(7), t))
        poses = PoseArray()
        poses.header.stamp = conv.to_time(stamp)
        poses.poses = [conv.pose((0.45, 0.1, 0.03)), conv.pose((0.4, -0.15, 0.03)), conv.pose((0.55, 0.0, 0.0))]
        with self.cv:
            n = len(self.desired)
        self.poses.publish(poses)
        if image:
            self.images.publish(conv.image(np.zeros((64, 64, 3), np.uint8), stamp))
        if answered:
            with self.cv:
                assert self.cv.wait_for(lambda: stamp in self.desired[n:], 10.0), f"frame {stamp} not answered"

    def stop(self):
        for s in self.spinners:
            s.stop()
        self.policy.close()
        self.policy.destroy_node()


@pytest.fixture
def frames(ros):
    made = []

    def make(**params):
        made.append(_FrameDriver(ros, **params))
        return made[-1]
    yield make
    for d in made:
        d.stop()


@pytest.mark.parametrize("ahead", [5.0, 1000.0])
def test_a_future_stamped_frame_is_discarded_and_the_policy_keeps_acting(frames, ahead):
    """One object pose at +1000 s used to stop the policy until sim time passed the stamp."""
    d = frames()
    t = 100.0
    for _ in range(3):
        d.frame(t)
        t += 0.05
    d.frame(t, stamp=t + ahead, answered=False)
    wait_until(lambda: d.policy.frames_discarded == 1, what="the discard")
    for _ in range(3):
        t += 0.05
        d.frame(t)     # answered: the policy acts on
    assert max(d.desired) < t + 1.0


def test_a_clock_that_goes_back_restarts_the_frame_sequence(frames):
    """A restarted simulator starts its clock again: its frames are answered, not taken for old ones."""
    d = frames()
    for k in range(3):
        d.frame(100.0 + 0.05 * k)
    for k in range(3):
        d.frame(1.0 + 0.05 * k)


@pytest.mark.parametrize("policy", ["hold", "teleop"])
def test_hold_and_teleop_answer_each_frame_once(frames, policy):
    """Image and poses share a stamp: one desired motion per frame (it was two: 28-34 Hz for 20 Hz)."""
    d = frames(policy=policy)
    for k in range(5):
        d.frame(100.0 + 0.05 * k, image=True)
    last = 100.0 + 0.05 * 5
    d.frame(last, image=True)   # the image after the poses is the last message: all answers are in
    with d.cv:
        assert d.desired == sorted(set(d.desired)), d.desired


def test_lockstep_answers_a_re_sent_frame_again(frames):
    d = frames(lockstep=True)
    d.frame(100.0)
    d.frame(100.0)   # the same frame again: answered again (only with lockstep)
    with d.cv:
        assert d.desired.count(100.0) == 2
