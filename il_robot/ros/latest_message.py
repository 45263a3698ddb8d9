"""Read the newest message of a fast topic on demand, without a callback per message.

The simulated operator acts at 20 Hz but /joint_states arrives at 500-1000 Hz; a Python
callback per joint state would cost more than the operator itself. The
subscription lives on a helper node that no executor spins, and `take()`
drains it when the operator ticks.
"""

from __future__ import annotations

import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile


class LatestMessage:
    def __init__(self, owner: Node, msg_type, topic: str, depth: int = 5):
        self._node = rclpy.create_node(f"{owner.get_name()}_{topic.strip('/').replace('/', '_')}_reader",
                                       namespace=owner.get_namespace(), context=owner.context,
                                       start_parameter_services=False, use_global_arguments=False)
        self._sub = self._node.create_subscription(msg_type, topic, lambda _msg: None, QoSProfile(depth=depth))
        self._latest = None

    def take(self):
        """Newest message received so far (None before the first)."""
        handle = self._sub.handle
        while True:
            taken = handle.take_message(self._sub.msg_type, self._sub.raw)
            if taken is None:
                return self._latest
            self._latest = taken[0]

    def destroy(self) -> None:
        self._node.destroy_node()
