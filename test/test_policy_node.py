"""Policy selection through parameters, on a real rclpy node."""

import threading

import numpy as np
from rclpy.parameter import Parameter

from conftest import wait_until

from il_robot.ros.policy_node import PolicyNode


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


class _Spinner:
    """A node on an executor thread of its own, as `run_node` runs the policy node's two halves."""

    def __init__(self, context, node):
        from rclpy.executors import SingleThreadedExecutor
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self):
        from rclpy.executors import ExternalShutdownException
        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass

    def stop(self):
        self.executor.shutdown()
        self.thread.join(timeout=5)


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
    spinners = [_Spinner(ros.context, policy), _Spinner(ros.context, policy.control_node)]
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
