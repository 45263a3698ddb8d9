"""Simulated correcting operator: watches the scene and works a joystick (sensor_msgs/Joy on /joy).

The person's stand-in for human-gated DAgger in simulation: it holds the
takeover button while the learned policy's push goes wrong and steers with the
sticks, releasing the button once the push is on track (il_robot.teleop.corrector).
It publishes what a joy driver would: the stick and buttons as it decides them on
each camera frame, and again at the driver's autorepeat rate on the steady clock
(a held button keeps its messages coming also while the simulator waits between
episodes), so the real joy_teleop node, the policy node's takeover and the
recorder run exactly as with a person's gamepad.
"""

from __future__ import annotations

import json
import sys

import numpy as np
from geometry_msgs.msg import PoseArray
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import JointState, Joy
from std_msgs.msg import String

from il_robot import topics
from il_robot.policies.base import Observation
from il_robot.robot import panda_like
from il_robot.robot.joint_order import JointInputError, JointOrder
from il_robot.robot.model import RobotModel
from il_robot.ros import conversions as conv
from il_robot.ros.latched import LATCHED
from il_robot.ros.latest_message import LatestMessage
from il_robot.ros.params import declare
from il_robot.ros.runner import run_node
from il_robot.teleop.corrector import SimulatedCorrector
from il_robot.teleop.joy import JoyMapping
from il_robot.teleop.operators import SKILLS

CORRECTOR_TAKEOVER_BUTTON = 5   # config/correct.yaml's joy_teleop takeover_button (a gamepad's right bumper)
AUTOREPEAT_RATE = 20.0          # Hz (steady clock): the ROS joy driver's default autorepeat_rate


def joy_axes_and_buttons(v: np.ndarray, held: bool, mapping: JoyMapping) -> tuple[list[float], list[int]]:
    """The stick deflections (clipped to the stick's travel) and buttons that command `v` through `mapping`."""
    axes = [0.0] * (max(mapping.axes) + 1)
    for axis, value, scale in zip(mapping.axes, v, mapping.scale):
        axes[axis] = float(np.clip(value / scale, -1.0, 1.0))
    buttons = [0] * (max(mapping.deadman_button, mapping.takeover_button) + 1)
    if held:
        buttons[mapping.takeover_button] = 1
    return axes, buttons


class CorrectorNode(Node):
    def __init__(self, **kwargs):
        super().__init__("corrector", **kwargs)
        skill = declare(self, "skill", "expert", "How well the stand-in steers once it has taken over",
                        choices=tuple(SKILLS), read_only=True)
        seed = declare(self, "seed", 0, "Seed of its noise and hesitations", read_only=True)
        axes = declare(self, "axes", list(JoyMapping.axes), "Joy axes driving tip x, y, z (as joy_teleop's)",
                       read_only=True)
        scale = declare(self, "scale", list(JoyMapping.scale), "m/s at full deflection (as joy_teleop's)",
                        read_only=True)
        takeover = declare(self, "takeover_button", CORRECTOR_TAKEOVER_BUTTON,
                           "Button it holds to take over (as joy_teleop's)", int_range=(0, 31), read_only=True)
        if len(axes) != 3 or len(scale) != 3 or not all(scale):
            raise ValueError("axes and scale need 3 entries (x, y, z), scales non-zero")
        self.mapping = JoyMapping(tuple(axes), tuple(scale), deadman_button=-1, takeover_button=takeover)
        self.corrector = SimulatedCorrector(skill, seed)
        self.robot = RobotModel.load("", list(panda_like.JOINT_NAMES))
        self.order = JointOrder(self.robot.joint_names)
        self.joint_states = LatestMessage(self, JointState, topics.JOINT_STATES)
        self.pub = self.create_publisher(Joy, topics.JOY, 10)
        self.create_subscription(PoseArray, topics.OBJECT_POSES, self._on_objects, 10)
        self.create_subscription(String, topics.EPISODE, self._on_episode, LATCHED)
        self.held_frames = 0
        self.episode_start = 0.0
        self._joy = self._message(np.zeros(3), False)
        self.create_timer(1.0 / AUTOREPEAT_RATE, lambda: self.pub.publish(self._joy),
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(f"simulated {skill} corrector -> {topics.JOY} (takeover button {takeover})")

    def _on_episode(self, msg: String) -> None:
        try:
            info = json.loads(msg.data)
            self.corrector.reset(info)
            self.episode_start = float(info.get("start_time", 0.0))
            self._joy = self._message(np.zeros(3), False)   # a new episode: hands off the stick
        except (json.JSONDecodeError, TypeError, AttributeError, ValueError) as err:
            self.get_logger().error(f"ignored malformed episode description: {err}")

    def _on_objects(self, msg: PoseArray) -> None:
        if len(msg.poses) < 3:
            return
        js = self.joint_states.take()
        if js is None:
            return
        try:
            q = self.order.reorder(js.name, js.position, "joint_states.position")
            qd = self.order.reorder(js.name, js.velocity, "joint_states.velocity")
        except JointInputError as err:
            self.get_logger().error(f"not watching on bad /joint_states: {err}", throttle_duration_sec=1.0)
            return
        t = conv.from_time(msg.header.stamp)
        objects = {k: np.array([p.position.x, p.position.y, p.position.z])
                   for k, p in zip(("target", "distractor", "goal"), msg.poses)}
        tip, _ = self.robot.tip_pose(q)
        was_holding = self.corrector.holding
        held, v = self.corrector.step(Observation(t, q, qd, tip, None, objects))
        if held and not was_holding:
            self.get_logger().info(f"taking over {t - self.episode_start:.2f} s into the episode: "
                                   f"{self.corrector.reason}")
        elif was_holding and not held:
            self.get_logger().info(f"handing back {t - self.episode_start:.2f} s into the episode")
        self._joy = self._message(v, held)
        self.pub.publish(self._joy)
        self.held_frames += held

    def _message(self, v: np.ndarray, held: bool) -> Joy:
        axes, buttons = joy_axes_and_buttons(v, held, self.mapping)
        joy = Joy(axes=axes, buttons=buttons)
        joy.header.stamp = self.get_clock().now().to_msg()
        return joy

    def close(self) -> None:
        self.joint_states.destroy()


def main(args=None) -> int:
    return run_node(CorrectorNode, args, errors=(ValueError,))


if __name__ == "__main__":
    sys.exit(main())
