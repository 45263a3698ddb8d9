"""Write one episode into a rosbag2 directory that `ros2 bag info/play` can open.

The bag is written under `<path>.partial/` and moved to `<path>` only on a
clean close, so a crashed or interrupted recording never looks like a
complete bag. Connections carry the message definitions (self-describing bag).
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer

from il_robot.data import messages
from il_robot.data.bag_format import LATCHED_TOPICS, STORAGES

FORMAT_TAG = ("il_robot.bag_format", "1")   # metadata.yaml custom_data: which format this bag follows

_ZERO = QosTime(sec=0, nsec=0)   # "unspecified": the rmw default (infinite)
LATCHED_QOS = Qos(history=QosHistory.KEEP_LAST, depth=1, reliability=QosReliability.RELIABLE,
                  durability=QosDurability.TRANSIENT_LOCAL, deadline=_ZERO, lifespan=_ZERO,
                  liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=_ZERO,
                  avoid_ros_namespace_conventions=False)


def normalize_msgtype(msgtype: str) -> str:
    """'sensor_msgs/JointState' -> 'sensor_msgs/msg/JointState' (rosbag2 spelling)."""
    parts = msgtype.split("/")
    return f"{parts[0]}/msg/{parts[1]}" if len(parts) == 2 else msgtype


class EpisodeBagWriter:
    """One episode -> one bag. Thread-safe `write` (recorder callbacks may run in parallel)."""

    def __init__(self, path: str | Path, storage: str = "mcap"):
        if storage not in STORAGES:
            raise ValueError(f"unknown bag storage '{storage}'; choose from {', '.join(STORAGES)}")
        self.path = Path(path)
        self.storage = storage
        self.staging = self.path.with_name(self.path.name + ".partial")
        if self.path.exists():
            raise FileExistsError(f"{self.path} exists already; not overwriting a bag")
        if self.staging.exists():
            raise FileExistsError(f"{self.staging} exists (an interrupted recording?); remove it first")
        self.counts: dict[str, int] = {}
        self._connections: dict[str, object] = {}
        self._lock = threading.Lock()
        self.staging.mkdir(parents=True)
        try:
            plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
            self._writer = Writer(self.staging / self.path.name, version=Writer.VERSION_LATEST,
                                  storage_plugin=plugin)
            self._writer.set_custom_data(*FORMAT_TAG)
            self._writer.open()
        except BaseException:
            shutil.rmtree(self.staging, ignore_errors=True)
            raise
        self.closed = False

    def __enter__(self) -> "EpisodeBagWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False

    def _connection(self, topic: str, msgtype: str):
        conn = self._connections.get(topic)
        if conn is None:
            ts = messages.typestore()
            if msgtype not in ts.types:
                raise ValueError(f"{topic}: unknown message type '{msgtype}' (standard ROS 2 types only)")
            qos = [LATCHED_QOS] if topic in LATCHED_TOPICS else []
            conn = self._writer.add_connection(topic, msgtype, typestore=ts, offered_qos_profiles=qos)
            self._connections[topic] = conn
            self.counts[topic] = 0
        elif conn.msgtype != msgtype:
            raise ValueError(f"{topic}: got a {msgtype}, but the topic was recorded as {conn.msgtype}")
        return conn

    def write(self, topic: str, msgtype: str, t_ns: int, data: bytes | memoryview) -> None:
        """Store serialized CDR (with its 4-byte encapsulation header) at log time t_ns (node clock)."""
        msgtype = normalize_msgtype(msgtype)
        if int(t_ns) < 0:
            raise ValueError(f"{topic}: negative log time {t_ns} ns")
        if len(data) < 4:
            raise ValueError(f"{topic}: {len(data)} bytes is not a CDR message")
        with self._lock:
            if self.closed:
                raise RuntimeError(f"bag {self.path} is closed")
            conn = self._connection(topic, msgtype)
            self._writer.write(conn, int(t_ns), bytes(data))
            self.counts[topic] += 1

    def write_msg(self, topic: str, msgtype: str, t: float, msg) -> None:
        """Serialize a rosbags message (see `il_robot.data.messages`) and store it at t seconds."""
        self.write(topic, normalize_msgtype(msgtype), messages.to_ns(t),
                   messages.serialize(msg, normalize_msgtype(msgtype)))

    def close(self, custom_data: dict[str, str] | None = None) -> Path:
        """Finish the bag (index, metadata.yaml) and move it into place; returns its path.
        custom_data: extra string pairs for metadata.yaml (e.g. the recorder's verdict)."""
        with self._lock:
            if self.closed:
                return self.path
            self.closed = True
            try:
                for key, value in (custom_data or {}).items():
                    self._writer.set_custom_data(key, str(value))
                self._writer.close()
                (self.staging / self.path.name).rename(self.path)
                self.staging.rmdir()
            except BaseException:
                self._writer.abort()
                shutil.rmtree(self.staging, ignore_errors=True)
                raise
        return self.path

    def abort(self) -> None:
        """Drop everything written so far: no bag, no partial directory."""
        with self._lock:
            self.closed = True
            try:
                self._writer.abort()
            finally:
                shutil.rmtree(self.staging, ignore_errors=True)
