"""Demo recorder: the demo topics into one rosbag2 bag per episode, as serialized (raw) messages.

Subscribes without deserializing (what `ros2 bag record` does) and writes
with rosbags, MCAP by default. Episodes are cut by stamp and matched by id
(il_robot.data.episode_splitter): a result goes to the bag of its episode_id,
a message to the episode whose [start, end] holds its stamp, and a bag that
does not hold exactly what the simulator published is kept but marked
incomplete. Without a simulator (`split_episodes: false`) everything goes into
one bag until shutdown.
"""

from __future__ import annotations

import json
import struct
import sys
import time
from pathlib import Path

from geometry_msgs.msg import PoseArray, TwistStamped
from rclpy.node import Node
from rclpy.serialization import deserialize_message
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from il_robot import topics
from il_robot.data.bag_format import DEMO_TOPICS, LATCHED_TOPICS, STORAGES
from il_robot.data.bag_writer import EpisodeBagWriter
from il_robot.data.corrections import CORRECTION_ROUND_KEY
from il_robot.data.episode_splitter import EpisodeSplitter
from il_robot.data.messages import header_stamp_ns
from il_robot.ros.params import declare
from il_robot.ros.runner import run_node

MSG_CLASSES = {"sensor_msgs/msg/JointState": JointState, "sensor_msgs/msg/Image": Image,
               "sensor_msgs/msg/CameraInfo": CameraInfo, "geometry_msgs/msg/TwistStamped": TwistStamped,
               "trajectory_msgs/msg/JointTrajectory": JointTrajectory, "geometry_msgs/msg/PoseArray": PoseArray,
               "std_msgs/msg/String": String}
STREAM_DEPTH = 5000   # per topic: 10 s of 500 Hz joint states queued while the recorder is busy
# Every announcement and result must reach the recorder (a publisher may keep only its latest):
# subscribed reliably from the start, with room for a backlog; matched to bags by episode_id.
LATCHED_SUBSCRIPTION = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                                  durability=DurabilityPolicy.TRANSIENT_LOCAL)


class RecorderNode(Node):
    def __init__(self, **kwargs):
        super().__init__("recorder", **kwargs)
        self.out_dir = Path(declare(self, "out_dir", "demos", "Directory for the bags", read_only=True))
        self.prefix = declare(self, "prefix", "demo", "Bag name prefix", read_only=True)
        self.storage = declare(self, "storage", "mcap", "rosbag2 storage", choices=STORAGES, read_only=True)
        self.split = declare(self, "split_episodes", True,
                             "One bag per /sim/episode (false: one bag for the whole run)", read_only=True)
        correction_round = declare(self, "correction_round", 0,
                                   "Human-gated DAgger: the round these episodes' takeovers belong to, written into "
                                   "every bag (dataset add then takes them as corrections); 0: demos",
                                   int_range=(0, 1_000_000), read_only=True)
        self.custom_data = {CORRECTION_ROUND_KEY: str(correction_round)} if correction_round else {}
        self.bag: EpisodeBagWriter | None = None     # split_episodes false: the one bag
        self.latched: dict[str, tuple[int, bytes]] = {}
        self.splitter = EpisodeSplitter(self._open_episode, self.get_logger(), custom_data=self.custom_data)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for topic, msgtype, _required in DEMO_TOPICS:
            qos = LATCHED_SUBSCRIPTION if topic in LATCHED_TOPICS else QoSProfile(depth=STREAM_DEPTH)
            self.create_subscription(MSG_CLASSES[msgtype], topic,
                                     lambda data, t=topic, m=msgtype: self._on_message(t, m, data), qos, raw=True)
        self.create_timer(0.2, self.splitter.close_finished)
        if not self.split:
            self.bag = self._open(f"{self.prefix}_{time.strftime('%Y%m%d_%H%M%S')}")
        self.get_logger().info(f"recording {len(DEMO_TOPICS)} topics -> {self.out_dir} ({self.storage})")

    # -- bags -------------------------------------------------------------------------------
    def _open(self, name: str) -> EpisodeBagWriter:
        path = self.out_dir / name
        n = 1
        while path.exists() or path.with_name(path.name + ".partial").exists():
            n += 1
            path = self.out_dir / f"{name}_{n}"
        bag = EpisodeBagWriter(path, self.storage)
        if topics.OPERATOR in self.latched:   # who is operating holds for every episode
            t_ns, data = self.latched[topics.OPERATOR]
            bag.write(topics.OPERATOR, "std_msgs/msg/String", t_ns, data)
        return bag

    def _open_episode(self, info: dict) -> EpisodeBagWriter:
        task = info.get("task", {})
        name = (task.get("name", "task") if isinstance(task, dict) else "task").replace("/", "-")
        return self._open(f"{self.prefix}_{name}_seed{info.get('seed', 0)}")

    # -- messages -----------------------------------------------------------------------------
    def _on_message(self, topic: str, msgtype: str, data: bytes) -> None:
        t_ns = self.get_clock().now().nanoseconds
        if not self.split:
            if topic in LATCHED_TOPICS:
                self.latched[topic] = (t_ns, data)
            if self.bag is not None:
                self.bag.write(topic, msgtype, t_ns, data)
            return
        if topic in LATCHED_TOPICS:
            self._on_latched(topic, msgtype, t_ns, data)
            return
        try:
            stamp = header_stamp_ns(data) * 1e-9
        except (ValueError, IndexError, struct.error) as err:
            self.get_logger().error(f"{topic}: a message without a readable header stamp, not stored: {err}",
                                    throttle_duration_sec=5.0)
            return
        self.splitter.message(stamp, topic, msgtype, t_ns, data)

    def _on_latched(self, topic: str, msgtype: str, t_ns: int, data: bytes) -> None:
        if topic == topics.OPERATOR:
            self.latched[topic] = (t_ns, data)
            self.splitter.to_running(topic, msgtype, t_ns, data)
            return
        # The episode topics are tiny: decode them to follow the episodes.
        text = deserialize_message(data, String).data
        try:
            info = json.loads(text)
            if not isinstance(info, dict):
                raise ValueError("not a JSON object")
            if topic == topics.EPISODE:
                self.splitter.announce(info, msgtype, t_ns, data)
            else:
                self.splitter.result(info, msgtype, t_ns, data)
        except ValueError as err:   # json.JSONDecodeError is a ValueError
            self.get_logger().error(f"{topic}: unusable, not stored in any bag ({err}): {text[:500]}")

    def close(self) -> None:
        if self.bag is not None:
            self.bag.close(self.custom_data)
            self.bag = None
        self.splitter.close_all("shutdown")


def main(args=None) -> int:
    return run_node(RecorderNode, args, errors=(ValueError, FileExistsError))


if __name__ == "__main__":
    sys.exit(main())
