"""Demo recorder: the demo topics into one rosbag2 bag per episode, as serialized (raw) messages.

Subscribes without deserializing (what `ros2 bag record` does) and writes
with rosbags, MCAP by default. Episodes are cut by stamp: messages wait
WRITE_BEHIND seconds (sim time) in a queue, a bag opens on /sim/episode and
takes the messages stamped from the episode's start to its end (known from
/sim/episode_result), so a message that arrives before the episode's
announcement, or late on another topic, still lands in the right bag. Without a simulator
(`split_episodes: false`) everything goes into one bag until shutdown.
"""

from __future__ import annotations

import json
import sys
import time
from collections import deque
from pathlib import Path

from geometry_msgs.msg import PoseArray, TwistStamped
from rclpy.node import Node
from rclpy.serialization import deserialize_message
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from il_robot import topics
from il_robot.data.bag_format import DEMO_TOPICS, LATCHED_TOPICS, STORAGES
from il_robot.data.bag_check import missing_messages
from il_robot.data.bag_writer import EpisodeBagWriter
from il_robot.data.messages import header_stamp_ns
from il_robot.ros.latched import LATCHED
from il_robot.ros.params import declare
from il_robot.ros.runner import run_node

MSG_CLASSES = {"sensor_msgs/msg/JointState": JointState, "sensor_msgs/msg/Image": Image,
               "sensor_msgs/msg/CameraInfo": CameraInfo, "geometry_msgs/msg/TwistStamped": TwistStamped,
               "trajectory_msgs/msg/JointTrajectory": JointTrajectory, "geometry_msgs/msg/PoseArray": PoseArray,
               "std_msgs/msg/String": String}
WRITE_BEHIND = 1.0   # s of sim time a message waits before it is routed: /sim/episode may come late
CLOSE_GRACE = 1.0    # s (wall) after the result before a bag closes without its final joint state


class RecorderNode(Node):
    def __init__(self, **kwargs):
        super().__init__("recorder", **kwargs)
        self.out_dir = Path(declare(self, "out_dir", "demos", "Directory for the bags", read_only=True))
        self.prefix = declare(self, "prefix", "demo", "Bag name prefix", read_only=True)
        self.storage = declare(self, "storage", "mcap", "rosbag2 storage", choices=STORAGES, read_only=True)
        self.split = declare(self, "split_episodes", True,
                             "One bag per /sim/episode (false: one bag for the whole run)", read_only=True)
        self.bag: EpisodeBagWriter | None = None
        self.start = 0.0
        self.end: float | None = None
        self.result_wall: float | None = None
        self.last_stamp = dict.fromkeys((topics.JOINT_STATES, topics.IMAGE, topics.TIP_VELOCITY), -1.0)
        self.latched: dict[str, tuple[int, bytes]] = {}
        self.queue: deque = deque()        # stamped messages not yet routed to a bag
        self.routed_stamp: dict[str, float] = {}   # per topic, the stamp last written
        self.newest = -1.0
        self._result: dict | None = None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for topic, msgtype, _required in DEMO_TOPICS:
            qos = LATCHED if topic in LATCHED_TOPICS else QoSProfile(depth=1000)
            self.create_subscription(MSG_CLASSES[msgtype], topic,
                                     lambda data, t=topic, m=msgtype: self._on_message(t, m, data), qos, raw=True)
        self.create_timer(0.2, self._check_close)
        if not self.split:
            self._open(f"{self.prefix}_{time.strftime('%Y%m%d_%H%M%S')}")
        self.get_logger().info(f"recording {len(DEMO_TOPICS)} topics -> {self.out_dir} ({self.storage})")

    # -- bags -------------------------------------------------------------------------------
    def _open(self, name: str) -> None:
        path = self.out_dir / name
        n = 1
        while path.exists() or path.with_name(path.name + ".partial").exists():
            n += 1
            path = self.out_dir / f"{name}_{n}"
        self.bag = EpisodeBagWriter(path, self.storage)
        for topic, (t_ns, data) in self.latched.items():
            if topic == topics.OPERATOR:   # who is operating holds for every episode
                self.bag.write(topic, "std_msgs/msg/String", t_ns, data)

    def _close(self, why: str) -> None:
        if self.bag is None:
            return
        bag, self.bag = self.bag, None
        path = bag.close()
        if self.split and self._result is None:
            # Cut short (a reset before the episode ended, or shutdown): kept, never lost, but named
            # so that nobody trains on it by mistake (`il-robot dataset build` skips *_incomplete).
            incomplete = path.with_name(path.name + "_incomplete")
            path = path.rename(incomplete) if not incomplete.exists() else path
            self.get_logger().warning(f"episode cut short ({why}): kept as {path.name}")
        published = (self._result or {}).get("published", {})
        lost = missing_messages(published, bag.counts)
        msg = f"wrote {path.name}: " + ", ".join(f"{k} {v}" for k, v in sorted(bag.counts.items()))
        if lost:
            self.get_logger().error(msg + f"; MISSING vs published: {lost}")
        else:
            self.get_logger().info(msg + (" (all published messages stored)" if published else ""))
        self.end, self.result_wall, self._result = None, None, None

    def _check_close(self) -> None:
        if self.bag is not None and self.result_wall is not None and time.monotonic() - self.result_wall > CLOSE_GRACE:
            self._flush(self.end)
            self._close("grace period after the result")

    # -- messages -----------------------------------------------------------------------------
    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_message(self, topic: str, msgtype: str, data: bytes) -> None:
        t_ns = self._now_ns()
        if topic in LATCHED_TOPICS:
            self._on_latched(topic, msgtype, t_ns, data)
            return
        if not self.split:
            if self.bag is not None:
                self.bag.write(topic, msgtype, t_ns, data)
            return
        stamp = header_stamp_ns(data) * 1e-9
        self.newest = max(self.newest, stamp)
        self.queue.append((stamp, topic, msgtype, t_ns, data))
        self._flush(self.newest - WRITE_BEHIND)

    def _flush(self, upto: float) -> None:
        """Route queued messages stamped up to `upto` (or within a known episode end) into the bag."""
        keep = deque()
        while self.queue:
            item = self.queue.popleft()
            stamp = item[0]
            if stamp <= upto + 1e-9 or (self.end is not None and stamp <= self.end + 1e-9):
                self._route(*item)
            else:
                keep.append(item)
        self.queue = keep
        self._maybe_done()

    def _route(self, stamp: float, topic: str, msgtype: str, t_ns: int, data: bytes) -> None:
        if self.bag is None or stamp < self.start - 1e-9 or (self.end is not None and stamp > self.end + 1e-9):
            return   # between episodes
        if self.routed_stamp.get(topic) == stamp:
            return   # a re-send (lockstep retry, an answer repeated for one frame): one copy per bag
        self.routed_stamp[topic] = stamp
        self.bag.write(topic, msgtype, t_ns, data)
        if topic in self.last_stamp:
            self.last_stamp[topic] = max(self.last_stamp[topic], stamp)

    def _on_latched(self, topic: str, msgtype: str, t_ns: int, data: bytes) -> None:
        self.latched[topic] = (t_ns, data)
        if not self.split:
            if self.bag is not None:
                self.bag.write(topic, msgtype, t_ns, data)
            return
        # The episode topics are tiny: decode them to follow the episodes.
        try:
            info = json.loads(deserialize_message(data, String).data)
        except (ValueError, TypeError) as err:
            self.get_logger().error(f"{topic}: stored, but not JSON: {err}")
            info = {}
        if topic == topics.EPISODE:
            start = float(info.get("start_time", 0.0))
            self._flush_before(start)          # the previous episode's stragglers
            self._close("next episode began")
            task = info.get("task", {}).get("name", "task").replace("/", "-")
            self._open(f"{self.prefix}_{task}_seed{info.get('seed', 0)}")
            self.start, self.end = start, None
            self.last_stamp = dict.fromkeys(self.last_stamp, -1.0)
            self.bag.write(topic, msgtype, t_ns, data)
            self._flush(self.newest - WRITE_BEHIND)
        elif topic == topics.EPISODE_RESULT and self.bag is not None:
            self.bag.write(topic, msgtype, t_ns, data)
            self._result = info
            self.end = self.start + float(info.get("duration", 0.0))
            self.result_wall = time.monotonic()
            self._flush(self.newest - WRITE_BEHIND)
        elif topic == topics.OPERATOR and self.bag is not None:
            self.bag.write(topic, msgtype, t_ns, data)

    def _flush_before(self, start: float) -> None:
        keep = deque()
        for item in self.queue:
            if item[0] < start - 1e-9:
                self._route(*item)
            else:
                keep.append(item)
        self.queue = keep

    def _maybe_done(self) -> None:
        """Close once the result, the final joint state and every message the simulator says it
        published in the episode are in, and the last frame's action (or CLOSE_GRACE after the
        result, see _check_close)."""
        if self.end is None or self.bag is None or self.last_stamp[topics.JOINT_STATES] < self.end - 1e-9:
            return
        published = (self._result or {}).get("published", {})
        answered = (topics.TIP_VELOCITY not in self.bag.counts
                    or self.last_stamp[topics.TIP_VELOCITY] >= self.last_stamp[topics.IMAGE] - 1e-9)
        if answered and all(self.bag.counts.get(t, 0) >= n for t, n in published.items()):
            self._close("episode complete")

    def close(self) -> None:
        self._flush(float("inf"))
        self._close("shutdown")


def main(args=None) -> int:
    return run_node(RecorderNode, args, errors=(ValueError, FileExistsError))


if __name__ == "__main__":
    sys.exit(main())
