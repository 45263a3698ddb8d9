"""Writes what the in-process stack would have published into a demo bag (same topics, stamps, types).

Bulk generation runs without DDS (many episodes, parallel processes), yet its
bags must be indistinguishable in format from ones recorded off the ROS graph.
"""

from __future__ import annotations

import json

import numpy as np

from il_robot import topics
from il_robot.data import messages as m
from il_robot.data.bag_format import MSGTYPES, OPERATOR, TELEOP_CMD
from il_robot.data.bag_writer import EpisodeBagWriter
from il_robot.robot.panda_like import JOINT_NAMES


class BagEpisodeObserver:
    def __init__(self, writer: EpisodeBagWriter, operator_info: dict, camera_intrinsics, episode_id: int = 1):
        self.w = writer
        self.operator_info = operator_info
        self.intrinsics = camera_intrinsics
        self.episode_id = episode_id
        self.names = list(JOINT_NAMES)
        self.start = 0.0
        self.result: dict | None = None

    def _put(self, topic: str, t: float, msg) -> None:
        self.w.write_msg(topic, MSGTYPES[topic], t, msg)

    def episode_start(self, info: dict) -> None:
        self.start = info["start_time"]
        info = {**info, "episode_id": self.episode_id}
        self._put(OPERATOR, self.start, m.string(json.dumps(self.operator_info)))
        self._put(topics.EPISODE, self.start, m.string(json.dumps(info)))

    def joint_state(self, t: float, q, qd, effort) -> None:
        self._put(topics.JOINT_STATES, t, m.joint_state(self.names, q, qd, effort, t))

    def frame(self, t: float, image: np.ndarray, objects: dict) -> None:
        self._put(topics.IMAGE, t, m.image(image, t))
        h, w = image.shape[:2]
        self._put(topics.CAMERA_INFO, t, m.camera_info(w, h, *self.intrinsics, t))
        poses = [objects[k] for k in ("target", "distractor", "goal")]
        self._put(topics.OBJECT_POSES, t, m.pose_array(poses, t))

    def action(self, t: float, v, desired) -> None:
        self._put(TELEOP_CMD, t, m.twist_stamped(v, t))
        self._put(topics.TIP_VELOCITY, t, m.twist_stamped(v, t))
        self._put(topics.DESIRED_MOTION, t, m.desired_motion(self.names, desired.positions, desired.velocities,
                                                             desired.accelerations, t))

    def episode_end(self, result: dict) -> None:
        self.result = {"episode_id": self.episode_id, **result}
        self._put(topics.EPISODE_RESULT, self.start + result["duration"], m.string(json.dumps(self.result)))
