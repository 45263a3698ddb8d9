"""Joystick / gamepad / SpaceMouse teleop: sensor_msgs/Joy (from a joy or spacenav driver) -> /teleop/cmd_vel.

Hold the deadman button to move; releasing it (or the driver going quiet)
stops the arm, because the teleop node treats a stale command as zero.
"""

from __future__ import annotations

import sys

from geometry_msgs.msg import TwistStamped
from rclpy.node import Node
from sensor_msgs.msg import Joy

from il_robot import topics
from il_robot.ros import conversions as conv
from il_robot.ros.latched import announce_operator
from il_robot.ros.params import declare
from il_robot.ros.runner import run_node
from il_robot.teleop.joy import JoyMapping


class JoyTeleopNode(Node):
    def __init__(self, **kwargs):
        super().__init__("joy_teleop", **kwargs)
        axes = declare(self, "axes", [1, 0, 4], "Joy axes driving tip x, y, z")
        scale = declare(self, "scale", [0.15, 0.15, 0.1], "m/s at full deflection per axis (sign flips it)")
        deadman = declare(self, "deadman_button", 4, "Button that must be held to move (-1: none)")
        deadzone = declare(self, "deadzone", 0.1, "Axis values below this count as zero", float_range=(0.0, 0.9))
        skill = declare(self, "skill", "unknown", "Operator skill recorded with the demos",
                        choices=("expert", "okay", "poor", "unknown"), read_only=True)
        if len(axes) != 3 or len(scale) != 3:
            raise ValueError("axes and scale need 3 entries (x, y, z)")
        self.mapping = JoyMapping(tuple(axes), tuple(scale), deadman, deadzone)
        self.pub = self.create_publisher(TwistStamped, topics.TELEOP_CMD, 10)
        announce_operator(self, {"operator": "human:joy", "skill": skill})
        self.create_subscription(Joy, topics.JOY, self._on_joy, 10)
        self.get_logger().info(f"{topics.JOY} axes {list(axes)} -> {topics.TELEOP_CMD}; hold button {deadman}")

    def _on_joy(self, msg: Joy) -> None:
        try:
            v = self.mapping.velocity(msg.axes, msg.buttons)
        except ValueError as err:
            self.get_logger().error(f"ignored /joy: {err}", throttle_duration_sec=2.0)
            return
        self.pub.publish(conv.twist_stamped(v, self.get_clock().now().nanoseconds * 1e-9))


def main(args=None) -> int:
    return run_node(JoyTeleopNode, args, errors=(ValueError,))


if __name__ == "__main__":
    sys.exit(main())
