"""An EpisodeSplitter writing real bags, fed serialized messages at chosen stamps: the recorder's routing
and closing rules tested without a ROS graph, in the orders an executor may deliver them."""
import json
import types

import numpy as np

from il_robot import topics
from il_robot.data import messages as m
from il_robot.data.bag_writer import EpisodeBagWriter
from il_robot.data.episode_splitter import EpisodeSplitter
from il_robot.robot.panda_like import JOINT_NAMES

STRING = "std_msgs/msg/String"
IMAGE = "sensor_msgs/msg/Image"
JOINT_STATE = "sensor_msgs/msg/JointState"
TWIST = "geometry_msgs/msg/TwistStamped"

QUIET = types.SimpleNamespace(info=lambda *a: None, warning=lambda *a: None, error=lambda *a: None)


class SplitterFeed:
    """`splitter` writes one bag per episode under `root` (`ep<episode_id>`); `clock` is the recorder's
    running time (settable through `wall`), which decides when a silent stream is given up."""

    def __init__(self, root, log=QUIET, image_size: int = 64):
        self.wall = 0.0
        self.image_size = image_size
        self.splitter = EpisodeSplitter(lambda info: EpisodeBagWriter(root / f"ep{info['episode_id']}"), log,
                                        clock=lambda: self.wall)

    def send(self, stamp: float, topic: str, msgtype: str, message) -> None:
        self.splitter.message(stamp, topic, msgtype, m.to_ns(stamp), m.serialize(message, msgtype))

    def frames(self, topic: str, stamps) -> None:
        """Joint states or camera images at these stamps."""
        for t in stamps:
            if topic == topics.IMAGE:
                self.send(t, topic, IMAGE, m.image(np.zeros((self.image_size, self.image_size, 3), np.uint8), t))
            else:
                self.send(t, topic, JOINT_STATE, m.joint_state(JOINT_NAMES, np.zeros(7), np.zeros(7), np.zeros(7), t))

    def start(self, info: dict) -> None:
        """The simulator's /sim/episode announcement."""
        self.splitter.announce(info, STRING, m.to_ns(info.get("start_time", 0.0)), self._string(info))

    def result(self, info: dict, stamp: float = 0.0) -> None:
        """The episode's result."""
        self.splitter.result(info, STRING, m.to_ns(stamp), self._string(info))

    @staticmethod
    def _string(info: dict) -> bytes:
        return m.serialize(m.string(json.dumps(info)), STRING)
