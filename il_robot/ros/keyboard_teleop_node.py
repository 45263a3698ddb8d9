"""Keyboard teleop in a terminal: w/s a/d r/f move the tool tip; publishes /teleop/cmd_vel at 20 Hz.

t toggles the takeover from a learned policy (human-gated DAgger), published with
every command on /teleop/takeover.

Run it in its own terminal (it reads keys raw from stdin):
    ros2 run il_robot keyboard_teleop      or      python -m il_robot.ros.keyboard_teleop_node
"""

from __future__ import annotations

import os
import select
import sys
import termios
import threading
import time
import tty

from geometry_msgs.msg import TwistStamped
from rclpy.node import Node
from std_msgs.msg import Bool

from il_robot import topics
from il_robot.rates import CONTROL_RATE_HZ
from il_robot.ros import conversions as conv
from il_robot.ros.latched import announce_operator
from il_robot.ros.params import declare
from il_robot.ros.runner import run_node
from il_robot.teleop.keyboard import HELP, KeyboardTeleop


class KeyboardTeleopNode(Node):
    def __init__(self, **kwargs):
        super().__init__("keyboard_teleop", **kwargs)
        speed = declare(self, "speed", 0.08, "Tip speed (m/s); +/- change it", float_range=(0.005, 0.3))
        rate = declare(self, "rate_hz", CONTROL_RATE_HZ, "Publish rate (Hz)", float_range=(1.0, 100.0), read_only=True)
        skill = declare(self, "skill", "unknown", "Operator skill recorded with the demos",
                        choices=("expert", "okay", "poor", "unknown"), read_only=True)
        self.teleop = KeyboardTeleop(speed=speed)
        self.pub = self.create_publisher(TwistStamped, topics.TELEOP_CMD, 10)
        self.pub_takeover = self.create_publisher(Bool, topics.TAKEOVER, 10)
        announce_operator(self, {"operator": "human:keyboard", "skill": skill})
        self._lock = threading.Lock()
        self.create_timer(1.0 / rate, self._publish)
        if not sys.stdin.isatty():
            raise ValueError("keyboard teleop needs a terminal (stdin is not a TTY)")
        print(HELP, flush=True)
        threading.Thread(target=self._read_keys, daemon=True).start()

    def _read_keys(self) -> None:
        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        try:
            tty.setcbreak(fd)
            while not self.teleop.quit:
                if select.select([fd], [], [], 0.1)[0]:
                    key = os.read(fd, 1).decode(errors="ignore")
                    with self._lock:
                        self.teleop.key(key, time.monotonic())
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        os.kill(os.getpid(), 2)   # q: stop the node like Ctrl-C

    def _publish(self) -> None:
        with self._lock:
            v = self.teleop.velocity(time.monotonic())
            held = self.teleop.takeover
        self.pub.publish(conv.twist_stamped(v, self.get_clock().now().nanoseconds * 1e-9))
        self.pub_takeover.publish(Bool(data=held))


def main(args=None) -> int:
    return run_node(KeyboardTeleopNode, args, errors=(ValueError,))


if __name__ == "__main__":
    sys.exit(main())
