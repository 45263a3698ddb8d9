"""Latched topics (transient local): the episode description and result, who is operating.

Publishers keep only the latest message (LATCHED_LATEST): a late joiner
(`ros2 topic echo --once`, a recorder, a restarted node) gets the current
episode, not the oldest one still in a history. Subscribers keep a queue
(LATCHED), so messages that arrive while their executor is busy are not lost;
the two profiles are compatible (both reliable, transient local).
"""

from __future__ import annotations

import json

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from std_msgs.msg import String

from il_robot import topics

LATCHED_LATEST = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)   # publishers
LATCHED = QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL)         # subscribers


def announce_operator(node: Node, info: dict):
    """Publish who drives /teleop/cmd_vel (operator, skill, ...) on /teleop/operator, latched."""
    pub = node.create_publisher(String, topics.OPERATOR, LATCHED_LATEST)
    pub.publish(String(data=json.dumps(info)))
    return pub
