"""Safety rows that need the real arm: the MuJoCo simulator node and the inverse-dynamics node together
(lockstep, so the result does not depend on machine speed)."""

import json
import threading

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from conftest import wait_until
from il_robot import topics
from il_robot.robot import panda_like
from il_robot.ros import conversions as conv
from il_robot.ros.inverse_dynamics_node import InverseDynamicsNode
from il_robot.ros.latched import LATCHED
from il_robot.ros.sim_node import SimNode

QD_MAX = np.array(panda_like.QD_MAX)
TAU_MAX = np.array(panda_like.TAU_MAX)


def test_a_reset_while_holding_does_not_drive_the_arm_back(ros):
    """The policy sends one target and stalls; the controller holds the arm there (P). /sim/reset puts
    the arm at a start pose: the controller holds it there. It used to drive it straight back to P at
    87 N m, 11.9 rad/s against a 2.6 rad/s limit."""
    sim = ros.add(SimNode(context=ros.context, parameter_overrides=[
        Parameter("mode", value="lockstep"), Parameter("render", value=False),
        Parameter("episode_duration", value=30.0)]))
    ros.add(InverseDynamicsNode(context=ros.context, parameter_overrides=[
        Parameter("use_sim_time", value=True), Parameter("lockstep", value=True)]))
    peer = ros.add(rclpy.create_node("stalled_policy", context=ros.context))
    cv = threading.Condition()
    states: list[tuple[float, np.ndarray, np.ndarray]] = []
    commands: list[np.ndarray] = []
    episodes: list[dict] = []

    def on_state(msg):
        with cv:
            states.append((conv.from_time(msg.header.stamp), np.array(msg.position), np.array(msg.velocity)))
            cv.notify_all()

    def on_command(msg):
        with cv:
            commands.append(np.array(msg.data))

    def on_episode(msg):
        with cv:
            episodes.append(json.loads(msg.data))
            cv.notify_all()

    peer.create_subscription(JointState, topics.JOINT_STATES, on_state, 1000)
    peer.create_subscription(Float64MultiArray, topics.EFFORT_COMMANDS, on_command, 1000)
    peer.create_subscription(String, topics.EPISODE, on_episode, LATCHED)
    desired = peer.create_publisher(JointTrajectory, topics.DESIRED_MOTION, 10)
    reset = peer.create_client(Trigger, topics.SIM_RESET)
    try:
        wait_until(lambda: desired.get_subscription_count() >= 1 and reset.service_is_ready(), what="discovery")

        def run_until(t_end):
            with cv:
                assert cv.wait_for(lambda: states and states[-1][0] >= t_end, 60), f"sim time {t_end}"

        with cv:
            assert cv.wait_for(lambda: len(states) > 5, 30)
            t0, q0, _ = states[-1]
        held = q0 + np.array([0.3, 0.2, -0.2, 0.2, 0.3, -0.2, 0.3])
        desired.publish(conv.desired_motion(panda_like.JOINT_NAMES, held, np.zeros(7), np.zeros(7), t0))
        run_until(t0 + 1.5)                       # the target reached; the policy stalls: holding P
        with cv:
            q_p = states[-1][1]
        assert np.abs(q_p - held).max() < 0.05

        future = reset.call_async(Trigger.Request())
        wait_until(future.done, what="the reset")
        start = json.loads(future.result().message)["start_time"]
        run_until(start + 1.5)
        with cv:
            after = [(t, q, qd) for t, q, qd in states if t >= start - 1e-9]
            sent = list(commands)
        q_start = after[0][1]
        assert np.abs(q_start - q_p).max() > 0.2, "the reset should move the arm far from P"
        peak = np.max([np.abs(qd) / QD_MAX for _, _, qd in after])
        drift = np.abs(after[-1][1] - q_start).max()
        print(f"after the reset: peak speed {peak:.3f} of the limit, drift from the start pose {drift:.4f} rad")
        assert peak <= 1.0
        assert drift < 0.02                       # held where the reset put it, not driven back to P
        assert all(np.all(np.isfinite(c)) and np.all(np.abs(c) <= TAU_MAX + 1e-9) for c in sent)
    finally:
        sim.close()


def test_a_killed_controller_leaves_the_arm_braked_by_the_driver(ros):
    """The controller dies (no more torque commands): the simulator, like a real driver with a command
    timeout, brakes after command_timeout (gravity compensation + damping): the arm does not fall."""
    sim = ros.add(SimNode(context=ros.context, parameter_overrides=[
        Parameter("mode", value="realtime"), Parameter("render", value=False),
        Parameter("episode_duration", value=60.0), Parameter("command_timeout", value=0.1)]))
    # The controller spins on an executor of its own, so that killing it leaves the rest spinning.
    controller = InverseDynamicsNode(context=ros.context, parameter_overrides=[Parameter("use_sim_time", value=True)])
    own = SingleThreadedExecutor(context=ros.context)
    own.add_node(controller)
    spinning = threading.Thread(target=own.spin, daemon=True)
    spinning.start()
    peer = ros.add(rclpy.create_node("watcher", context=ros.context))
    cv = threading.Condition()
    states: list[tuple[float, np.ndarray, np.ndarray]] = []

    def on_state(msg):
        with cv:
            states.append((conv.from_time(msg.header.stamp), np.array(msg.position), np.array(msg.effort)))
            cv.notify_all()

    peer.create_subscription(JointState, topics.JOINT_STATES, on_state, 1000)
    try:
        wait_until(lambda: controller.commands_sent > 50, timeout=60, what="the controller holding the arm")
        own.shutdown()          # the controller dies: no more torque commands
        spinning.join(timeout=10)
        controller.destroy_node()
        with cv:
            t_kill, q_kill, _ = states[-1]
            assert cv.wait_for(lambda: states[-1][0] >= t_kill + 1.0, 60), "the simulator stopped"
            after = [(t, q, e) for t, q, e in states if t >= t_kill]
        drift = max(np.abs(q - q_kill).max() for _, q, _ in after)
        print(f"drift over 1 s of sim time after the controller died: {drift:.4f} rad")
        assert drift < 0.02
        assert all(np.abs(e).max() > 1.0 for t, _, e in after if t > t_kill + 0.2)   # braking, not limp
    finally:
        sim.close()
