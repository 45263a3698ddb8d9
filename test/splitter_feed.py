"""An EpisodeSplitter writing real bags, fed serialized messages at chosen stamps: the recorder's routing
and closing rules tested without a ROS graph, in the orders an executor may deliver them."""
import json
import types

import numpy as np

from il_robot import topics
from il_robot.data import messages as m
from il_robot.data.bag_format import MSGTYPES
from il_robot.data.bag_writer import EpisodeBagWriter
from il_robot.data.episode_splitter import EpisodeSplitter
from il_robot.robot.panda_like import JOINT_NAMES

QUIET = types.SimpleNamespace(info=lambda *a: None, warning=lambda *a: None, error=lambda *a: None)


class SplitterFeed:
    """`splitter` writes one bag per episode under `root` (`ep<episode_id>`); `clock` is the recorder's
    running time (settable through `wall`), which decides when a silent stream is given up."""

    def __init__(self, root, log=QUIET, image_size: int = 64):
        self.wall = 0.0
        self.image_size = image_size
        self.splitter = EpisodeSplitter(lambda info: EpisodeBagWriter(root / f"ep{info['episode_id']}"), log,
                                        clock=lambda: self.wall)

    def send(self, stamp: float, topic: str, message) -> None:
        """A stream message, typed as the recorder's topic list types it."""
        msgtype = MSGTYPES[topic]
        self.splitter.message(stamp, topic, msgtype, m.to_ns(stamp), m.serialize(message, msgtype))

    def frames(self, topic: str, stamps) -> None:
        """Joint states or camera images at these stamps."""
        for t in stamps:
            if topic == topics.IMAGE:
                self.send(t, topic, m.image(np.zeros((self.image_size, self.image_size, 3), np.uint8), t))
            else:
                zeros = np.zeros(len(JOINT_NAMES))
                self.send(t, topic, m.joint_state(JOINT_NAMES, zeros, zeros, zeros, t))

    def start(self, info: dict) -> None:
        """The simulator's /sim/episode announcement."""
        self.splitter.announce(info, MSGTYPES[topics.EPISODE], m.to_ns(info.get("start_time", 0.0)),
                               self._string(info, topics.EPISODE))

    def result(self, info: dict, stamp: float = 0.0) -> None:
        """The episode's result."""
        self.splitter.result(info, MSGTYPES[topics.EPISODE_RESULT], m.to_ns(stamp),
                             self._string(info, topics.EPISODE_RESULT))

    @staticmethod
    def _string(info: dict, topic: str) -> bytes:
        return m.serialize(m.string(json.dumps(info)), MSGTYPES[topic])
