"""Simulated human operator: watches the scene and drives /teleop/cmd_vel like a person would.

Stands in for the human at the keyboard or joystick when recording demos in
simulation; its skill (expert / okay / poor) is announced on /teleop/operator
so every recorded demo carries the quality of its operator.
"""

from __future__ import annotations

import json
import sys

import numpy as np
from geometry_msgs.msg import PoseArray, TwistStamped
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import String

from il_robot import topics
from il_robot.policies.base import Observation
from il_robot.rates import CONTROL_RATE_HZ
from il_robot.robot import panda_like
from il_robot.robot.joint_order import JointInputError, JointOrder
from il_robot.robot.model import RobotModel
from il_robot.ros import conversions as conv
from il_robot.ros.latched import LATCHED, announce_operator
from il_robot.ros.latest_message import LatestMessage
from il_robot.ros.params import declare
from il_robot.ros.runner import run_node
from il_robot.teleop.operators import SKILLS, SimulatedOperator


class OperatorNode(Node):
    def __init__(self, **kwargs):
        super().__init__("operator", **kwargs)
        skill = declare(self, "skill", "expert", "Operator skill", choices=tuple(SKILLS), read_only=True)
        seed = declare(self, "seed", 0, "Seed of the operator's noise and hesitations", read_only=True)
        rate = declare(self, "rate_hz", CONTROL_RATE_HZ, "How often the operator acts (Hz)", float_range=(1.0, 100.0),
                       read_only=True)
        self.operator = SimulatedOperator(skill, seed, rate)
        self.robot = RobotModel.load("", list(panda_like.JOINT_NAMES))
        self.order = JointOrder(self.robot.joint_names)
        self.joint_states = LatestMessage(self, JointState, topics.JOINT_STATES)
        self.pub = self.create_publisher(TwistStamped, topics.TELEOP_CMD, 10)
        self.pub_info = announce_operator(self, self.operator.info)
        self.create_subscription(PoseArray, topics.OBJECT_POSES, self._on_objects, 10)
        self.create_subscription(String, topics.EPISODE, self._on_episode, LATCHED)
        self.commands = 0
        self.get_logger().info(f"simulated {skill} operator -> {topics.TELEOP_CMD}")

    def _on_episode(self, msg: String) -> None:
        try:
            self.operator.reset(json.loads(msg.data))
        except (json.JSONDecodeError, TypeError) as err:
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
            self.get_logger().error(f"not operating on bad /joint_states: {err}", throttle_duration_sec=1.0)
            return
        t = conv.from_time(msg.header.stamp)
        objects = {k: np.array([p.position.x, p.position.y, p.position.z])
                   for k, p in zip(("target", "distractor", "goal"), msg.poses)}
        tip, _ = self.robot.tip_pose(q)
        v = self.operator.act(Observation(t, q, qd, tip, None, objects))
        self.pub.publish(conv.twist_stamped(v, t))
        self.commands += 1

    def close(self) -> None:
        self.joint_states.destroy()


def main(args=None) -> int:
    return run_node(OperatorNode, args, errors=(ValueError,))


if __name__ == "__main__":
    sys.exit(main())
