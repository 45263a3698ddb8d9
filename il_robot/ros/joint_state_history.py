"""The arm's recent joint states by stamp, read on demand: the state at a camera frame's instant.

A policy acts on a frame together with the arm's state. When the camera lags
(a real camera pipeline: 30-100 ms), the newest joint state is from later than
the image, and the two disagree by the lag times the arm's speed. The field's
answer is to act on the frame's own stamp: take the joint state of the frame's
instant, compute the action for that instant, and let the controller carry the
reference forward to when it lands (the inverse-dynamics node extrapolates the
desired point from its stamp). This keeps the last `depth` states as bytes (no
callback, no Python message per state at 500 Hz), reading only the stamps, and
decodes the one asked for.
"""

from __future__ import annotations

import time
from collections import deque

import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import JointState

from il_robot.ros import cdr

WAIT_STEP = 0.0002   # s (wall): poll period while the frame's own state has not arrived yet


class JointStateHistory:
    def __init__(self, owner: Node, topic: str, depth: int = 256):
        self._node = rclpy.create_node(f"{owner.get_name()}_{topic.strip('/').replace('/', '_')}_history",
                                       namespace=owner.get_namespace(), context=owner.context,
                                       start_parameter_services=False, use_global_arguments=False)
        self._sub = self._node.create_subscription(JointState, topic, lambda _msg: None, QoSProfile(depth=depth),
                                                   raw=True)
        self._recent: deque[tuple[float, bytes]] = deque(maxlen=depth)

    def _drain(self) -> None:
        handle = self._sub.handle
        while True:
            taken = handle.take_message(self._sub.msg_type, True)
            if taken is None:
                return
            data = taken[0]
            try:
                stamp = cdr.read_stamp(data)
            except ValueError:
                continue   # a malformed message: the newest good ones still answer
            if self._recent and stamp < self._recent[-1][0]:
                self._recent.clear()   # the clock went back (a restarted driver): the old states are moot
            self._recent.append((stamp, data))

    def at(self, stamp: float, timeout: float) -> cdr.JointStateData | None:
        """The newest state stamped at or before `stamp`, after waiting up to `timeout` s (wall) for
        one stamped at `stamp` or later (a simulator publishes the frame's state just before the frame,
        on another topic, so it may be read a moment after it). With none that old, the oldest kept;
        None before the first state."""
        deadline = time.monotonic() + timeout
        while True:
            self._drain()
            if self._recent and self._recent[-1][0] >= stamp - 1e-9 or time.monotonic() > deadline:
                break
            time.sleep(WAIT_STEP)
        if not self._recent:
            return None
        chosen = self._recent[0][1]
        for t, data in reversed(self._recent):
            if t <= stamp + 1e-9:
                chosen = data
                break
        return cdr.read_joint_state(chosen)

    def destroy(self) -> None:
        self._node.destroy_node()
