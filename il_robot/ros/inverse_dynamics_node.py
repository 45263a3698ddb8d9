"""Inverse-dynamics node: /joint_states + desired motion -> /effort_controller/commands.

One torque command per joint-state message (event driven: lowest latency, and
the torque loop runs at the driver's rate); a watchdog timer sends zero
torque when joint states go stale (for joint_state_timeout and one more
watchdog tick). Invalid input is logged and never applied.
"""

from __future__ import annotations

import sys

import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from il_robot import topics
from il_robot.robot.computed_torque import ComputedTorqueController, JointInputError, Mode
from il_robot.robot.model import RobotModel, RobotModelError
from il_robot.ros import conversions as conv
from il_robot.ros.params import declare
from il_robot.ros.runner import run_node


class InverseDynamicsNode(Node):
    def __init__(self, **kwargs):
        super().__init__("inverse_dynamics", **kwargs)
        description = declare(self, "robot_description", "",
                              "MJCF or URDF: a file path or the XML itself; empty = built-in Panda-like arm",
                              read_only=True)
        joints = declare(self, "joints", [""],
                         "Controlled joints in the effort controller's order; [''] = all joints of the model",
                         read_only=True)
        kp = declare(self, "kp", [400.0], "Position gains (1/s^2): one value for all joints, or one per joint")
        kd = declare(self, "kd", [40.0], "Velocity gains (1/s): one value for all joints, or one per joint")
        js_timeout = declare(self, "joint_state_timeout", 0.05,
                             "Joint states older than this (s) on two watchdog ticks -> zero torque",
                             float_range=(0.002, 5.0))
        dm_timeout = declare(self, "desired_timeout", 0.5,
                             "Desired motion older than this (s) -> hold the pose with gravity compensation",
                             float_range=(0.01, 10.0))
        max_extrap = declare(self, "max_extrapolation", 0.1,
                             "How far (s) a desired point is extrapolated along its velocity",
                             float_range=(0.0, 1.0))
        watchdog_rate = declare(self, "watchdog_rate", 100.0, "Watchdog check rate (Hz)",
                                float_range=(1.0, 1000.0), read_only=True)
        desired_topic = declare(self, "desired_topic", topics.DESIRED_MOTION,
                                "Desired joint motion (trajectory_msgs/JointTrajectory)", read_only=True)
        command_topic = declare(self, "command_topic", topics.EFFORT_COMMANDS,
                                "Torque output (std_msgs/Float64MultiArray)", read_only=True)
        reference_topic = declare(self, "reference_topic", topics.CONTROLLER_REFERENCE,
                                  "Each desired motion once taken (a lockstep simulator waits on it)",
                                  read_only=True)

        joint_names = [j for j in joints if j] or None
        self.robot = RobotModel.load(description, joint_names)
        self.controller = ComputedTorqueController(self.robot, self._gains(kp), self._gains(kd),
                                                   js_timeout, dm_timeout, max_extrap)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.mode: Mode | None = None
        self.commands_sent = 0
        self.rejected = 0
        self.watchdog_armed_at: float | None = None
        self.watchdog_ticks = 0
        self.stale_on_last_tick = False

        self.pub = self.create_publisher(Float64MultiArray, command_topic, 10)
        self.pub_reference = self.create_publisher(JointTrajectory, reference_topic, 10)
        self.create_subscription(JointTrajectory, desired_topic, self._on_desired, 10)
        self.create_subscription(JointState, topics.JOINT_STATES, self._on_joint_state, 10)
        self.create_timer(1.0 / watchdog_rate, self._watchdog)
        self.get_logger().info(
            f"computed-torque control of {self.robot.joint_names}; torque limits "
            f"{np.round(self.robot.limits.tau_max, 1).tolist()} Nm; '{desired_topic}' -> '{command_topic}'")

    def _gains(self, values) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        if values.size not in (1, self.robot.n):
            raise ValueError(f"gains need 1 or {self.robot.n} values, got {values.size}")
        return values if values.size > 1 else np.full(self.robot.n, values[0])

    def _on_set_parameters(self, params) -> SetParametersResult:
        kp, kd = self.controller.kp, self.controller.kd
        try:
            for p in params:
                if p.name == "kp":
                    kp = self._gains(p.value)
                elif p.name == "kd":
                    kd = self._gains(p.value)
                elif p.name == "joint_state_timeout":
                    self.controller.joint_state_timeout = p.value
                elif p.name == "desired_timeout":
                    self.controller.desired_timeout = p.value
                elif p.name == "max_extrapolation":
                    self.controller.max_extrapolation = p.value
            self.controller.set_gains(kp, kd)
        except ValueError as err:
            return SetParametersResult(successful=False, reason=str(err))
        return SetParametersResult(successful=True)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_joint_state(self, msg: JointState) -> None:
        # The state's own stamp is the most precise "now" (a simulator's /clock may be
        # published at a lower rate than its joint states).
        now = max(self._now(), conv.from_time(msg.header.stamp))
        try:
            self.controller.set_joint_state(msg.name, msg.position, msg.velocity, now)
        except JointInputError as err:
            self.rejected += 1
            self.get_logger().error(f"rejected /joint_states: {err}", throttle_duration_sec=1.0)
            return
        self._publish(now)

    def _on_desired(self, msg: JointTrajectory) -> None:
        if len(msg.points) != 1:
            self.get_logger().error(f"rejected desired motion: need exactly 1 point, got {len(msg.points)}",
                                    throttle_duration_sec=1.0)
            return
        point = msg.points[0]
        stamp = conv.from_time(msg.header.stamp)
        now = self._now()
        t_point = (stamp if stamp > 0 else now) + conv.from_time(point.time_from_start)
        try:
            self.controller.set_desired(msg.joint_names, point.positions, point.velocities,
                                        point.accelerations, t_point, now)
        except JointInputError as err:
            self.rejected += 1
            self.get_logger().error(f"rejected desired motion: {err}", throttle_duration_sec=1.0)
            return
        # Every joint state handled from here on is answered with this reference: a lockstep
        # simulator waits for this echo before it asks for the torque of a frame's state.
        self.pub_reference.publish(msg)

    def _watchdog(self) -> None:
        now = self._now()
        self.watchdog_ticks += 1
        if self.watchdog_armed_at is None:
            # Missing joint states count from the first tick, so the first /clock of a
            # simulation does not race the first /joint_states.
            self.watchdog_armed_at = now
        ctl = self.controller
        stale = (ctl.mode(now) is Mode.ZERO
                 and now - max(ctl.state_time, self.watchdog_armed_at) > ctl.joint_state_timeout)
        # Stale on two ticks in a row: a simulator's /clock may jump (a reset) and be handled just
        # before the joint state stamped at the new time, and a zero torque then would be taken,
        # by a lockstep simulator, as the answer to that state.
        if stale and self.stale_on_last_tick:
            self._publish(now)
        self.stale_on_last_tick = stale

    def _publish(self, now: float) -> None:
        tau, mode = self.controller.command(now)
        if mode is not self.mode:
            log = self.get_logger()
            if mode is Mode.ZERO:
                log.error("no fresh /joint_states: commanding zero torque")
            elif mode is Mode.HOLD:
                log.warning("no fresh desired motion: holding the measured pose (gravity compensated)")
            else:
                log.info("tracking desired motion")
            self.mode = mode
        self.pub.publish(conv.effort_command(tau))
        self.commands_sent += 1


def main(args=None) -> int:
    return run_node(InverseDynamicsNode, args, errors=(RobotModelError, ValueError))


if __name__ == "__main__":
    sys.exit(main())
