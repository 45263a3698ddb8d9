"""Latched topics (transient local): the episode description and result, who is operating.

One profile for every publisher and subscriber of these topics, so a late
joiner (a recorder, a restarted node) always gets the last message.
"""

from __future__ import annotations

import json

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from std_msgs.msg import String

from il_robot import topics

LATCHED = QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def announce_operator(node: Node, info: dict):
    """Publish who drives /teleop/cmd_vel (operator, skill, ...) on /teleop/operator, latched."""
    pub = node.create_publisher(String, topics.OPERATOR, LATCHED)
    pub.publish(String(data=json.dumps(info)))
    return pub
