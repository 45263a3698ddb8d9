"""Shrink a demo bag to what conditioning a few-shot policy needs, so demos can ship with a model.

Keeps every message of the per-frame and per-episode topics, and of
/joint_states only those stamped at a camera frame (a 20 Hz joint stream still
aligns every frame): about half the size. The result is a normal demo bag.
"""

from __future__ import annotations

from pathlib import Path

from rosbags.rosbag2 import Reader

from il_robot import topics
from il_robot.data.bag_format import OPERATOR
from il_robot.data.bag_writer import EpisodeBagWriter
from il_robot.data.messages import header_stamp_ns

KEEP = (topics.IMAGE, topics.TIP_VELOCITY, topics.EPISODE, topics.EPISODE_RESULT, OPERATOR)


def compact_demo(src: str | Path, dst: str | Path, storage: str = "mcap") -> Path:
    with Reader(src) as reader:
        frames = {header_stamp_ns(raw) for conn, _, raw in reader.messages()
                  if conn.topic == topics.IMAGE}
        with EpisodeBagWriter(dst, storage) as out:
            for conn, t_ns, raw in reader.messages():
                if conn.topic in KEEP or (conn.topic == topics.JOINT_STATES and header_stamp_ns(raw) in frames):
                    out.write(conn.topic, conn.msgtype, t_ns, raw)
    return Path(dst)
