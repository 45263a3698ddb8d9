"""Joystick / gamepad / SpaceMouse teleop: sensor_msgs/Joy (from a joy or spacenav driver) -> /teleop/cmd_vel.

Hold the deadman button to move; releasing it (or the driver going quiet)
stops the arm, because the teleop node treats a stale command as zero.
With a takeover button (human-gated DAgger), every /joy message also says on
/teleop/takeover whether it is held: held, the operator drives instead of the
learned policy. The joy driver must publish while a button is held (the ROS joy
driver's autorepeat_rate, 20 Hz by default): a silent stream mid-takeover holds
the arm still.
"""

from __future__ import annotations

import sys

from geometry_msgs.msg import TwistStamped
from rclpy.node import Node
from sensor_msgs.msg import Joy
from std_msgs.msg import Bool

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
        takeover = declare(self, "takeover_button", -1, "Button held to take the arm from a learned policy "
                           "(published on /teleop/takeover; it also enables motion); -1: none", read_only=True)
        skill = declare(self, "skill", "unknown", "Operator skill recorded with the demos",
                        choices=("expert", "okay", "poor", "unknown"), read_only=True)
        operator = declare(self, "operator", "human:joy", "Who operates, recorded with every episode (a "
                           "simulated stand-in on /joy names itself here)", read_only=True)
        if len(axes) != 3 or len(scale) != 3:
            raise ValueError("axes and scale need 3 entries (x, y, z)")
        self.mapping = JoyMapping(tuple(axes), tuple(scale), deadman, deadzone, takeover)
        self.pub = self.create_publisher(TwistStamped, topics.TELEOP_CMD, 10)
        self.pub_takeover = self.create_publisher(Bool, topics.TAKEOVER, 10) if takeover >= 0 else None
        announce_operator(self, {"operator": operator, "skill": skill})
        self.create_subscription(Joy, topics.JOY, self._on_joy, 10)
        self.get_logger().info(f"{topics.JOY} axes {list(axes)} -> {topics.TELEOP_CMD}; hold button {deadman}"
                               + (f"; takeover button {takeover} -> {topics.TAKEOVER}" if takeover >= 0 else ""))

    def _on_joy(self, msg: Joy) -> None:
        try:
            held = self.mapping.takeover(msg.buttons)
            v = self.mapping.velocity(msg.axes, msg.buttons)
        except ValueError as err:
            self.get_logger().error(f"ignored /joy: {err}", throttle_duration_sec=2.0)
            return
        # The command first: when the takeover arrives, the command it hands the arm to is there already.
        self.pub.publish(conv.twist_stamped(v, self.get_clock().now().nanoseconds * 1e-9))
        if self.pub_takeover is not None:
            self.pub_takeover.publish(Bool(data=held))


def main(args=None) -> int:
    return run_node(JoyTeleopNode, args, errors=(ValueError,))


if __name__ == "__main__":
    sys.exit(main())
