"""Read a demo bag (mcap or sqlite3) into numpy: joint states, camera frames, actions, episode info.

rosbags does the storage work; this module turns its messages into arrays in
panda_joint1..7 order (matched by name) and its errors into one `BagError`
that names the bag and what is wrong with it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from rosbags.rosbag2 import Reader

from il_robot import topics
from il_robot.data import messages
from il_robot.data.bag_format import (
    ACTION_MATCH_TOLERANCE,
    EPISODE_REQUIRED_KEYS,
    EPISODE_TASK_REQUIRED_KEYS,
    IMAGE_ENCODING,
    JOINT_ORDER,
    JOINT_STATE_MAX_AGE,
    MSGTYPES,
    OPERATOR,
    SKILLS,
    SPLITS,
)
from il_robot.robot.joint_order import JointInputError, JointOrder

_NS = 1_000_000_000
MAX_METADATA_VERSION = 9    # the newest rosbag2 metadata version rosbags 0.11 reads


class BagError(ValueError):
    """A bag that cannot be used, with the reason in one line."""

    def __init__(self, bag: str | Path, problem: str):
        super().__init__(f"{bag}: {problem}")
        self.bag = str(bag)
        self.problem = problem


@dataclass
class BagContents:
    """Everything read from one bag; demo topics deserialized, others only counted."""
    path: Path
    storage: str
    msgtypes: dict[str, str]                     # every topic in the bag -> its message type
    counts: dict[str, int]                       # messages actually read, per topic
    metadata_counts: dict[str, int]              # what metadata.yaml says
    messages: dict[str, list[tuple[int, object]]] = field(default_factory=dict)  # (log time ns, msg)
    custom_data: dict[str, str] = field(default_factory=dict)   # metadata.yaml custom_data (recorder verdict)

    def msgs(self, topic: str) -> list:
        return [m for _, m in self.messages.get(topic, [])]


def _metadata(path: Path) -> dict:
    if not path.is_dir():
        raise BagError(path, "not a bag directory" if path.exists() else "no such bag directory")
    meta_file = path / "metadata.yaml"
    if not meta_file.is_file():
        raise BagError(path, "metadata.yaml missing (not a rosbag2 directory, or the recording did not finish)")
    try:
        info = yaml.safe_load(meta_file.read_text())["rosbag2_bagfile_information"]
        version, storage = int(info["version"]), str(info["storage_identifier"])
        files = [str(f) for f in info["relative_file_paths"]]
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as err:
        raise BagError(path, f"metadata.yaml unreadable: {type(err).__name__}: {err}") from None
    if version > MAX_METADATA_VERSION:
        raise BagError(path, f"metadata.yaml: rosbag2 version {version} is newer than this reader "
                             f"supports (<= {MAX_METADATA_VERSION})")
    if storage not in ("mcap", "sqlite3"):
        raise BagError(path, f"metadata.yaml: storage '{storage}' not supported (mcap or sqlite3)")
    if not files:
        raise BagError(path, "metadata.yaml lists no storage file")
    for name in files:
        f = path / Path(name).name
        if not f.is_file():
            raise BagError(path, f"storage file missing: {f.name}")
        if f.stat().st_size == 0:
            raise BagError(path, f"truncated or corrupt: {f.name} is empty")
    return info


def _counts(info: dict) -> dict[str, int]:
    return {t["topic_metadata"]["name"]: int(t["message_count"]) for t in info.get("topics_with_message_count") or []}


def metadata_counts(path: str | Path) -> dict[str, int]:
    """Messages per topic as metadata.yaml records them (what `ros2 bag info` prints), no data read."""
    return _counts(_metadata(Path(path)))


def _custom_data(info: dict) -> dict[str, str]:
    custom = info.get("custom_data")
    return {str(k): str(v) for k, v in custom.items()} if isinstance(custom, dict) else {}


def read_bag(path: str | Path) -> BagContents:
    """Read a bag; raises BagError for anything that keeps it from being read."""
    path = Path(path)
    info = _metadata(path)
    metadata_counts = _counts(info)
    files = ", ".join(Path(f).name for f in info["relative_file_paths"])
    try:
        reader = Reader(path)
        reader.open()
    except Exception as err:  # noqa: BLE001 - rosbags/mcap/sqlite raise many types for one cause
        raise BagError(path, f"truncated or corrupt: {files}: {err}") from None
    contents = BagContents(path, str(info["storage_identifier"]), {}, {}, metadata_counts,
                           custom_data=_custom_data(info))
    try:
        for conn in reader.connections:
            contents.msgtypes[conn.topic] = conn.msgtype
            contents.counts.setdefault(conn.topic, 0)
        wanted = {c.id for c in reader.connections if MSGTYPES.get(c.topic) == c.msgtype}
        for conn, log_ns, raw in reader.messages():
            contents.counts[conn.topic] += 1
            if conn.id not in wanted:
                continue
            try:
                msg = messages.deserialize(raw, conn.msgtype)
            except Exception as err:  # noqa: BLE001
                raise BagError(path, f"truncated or corrupt: cannot decode message "
                                     f"{contents.counts[conn.topic]} on {conn.topic}: {err}") from None
            contents.messages.setdefault(conn.topic, []).append((int(log_ns), msg))
    except BagError:
        raise
    except Exception as err:  # noqa: BLE001
        raise BagError(path, f"truncated or corrupt: {files}: {type(err).__name__}: {err}") from None
    finally:
        reader.close()
    differ = [f"{t} (read {n}, listed {metadata_counts[t]})" for t, n in contents.counts.items()
              if t in metadata_counts and n != metadata_counts[t]]
    if differ:
        raise BagError(path, f"truncated or corrupt: message counts differ from metadata.yaml: {', '.join(differ)}")
    return contents


# -- numpy views ----------------------------------------------------------------------------------

@dataclass
class JointStates:
    stamp_ns: np.ndarray    # (N,) int64, header stamps
    q: np.ndarray           # (N, 7) rad, panda_joint1..7
    qd: np.ndarray          # (N, 7) rad/s
    effort: np.ndarray      # (N, 7) N m (NaN where the message had none)


@dataclass
class Images:
    stamp_ns: np.ndarray    # (N,) int64
    rgb: np.ndarray         # (N, H, W, 3) uint8


@dataclass
class Actions:
    stamp_ns: np.ndarray    # (N,) int64
    v: np.ndarray           # (N, 3) m/s, tool-tip linear velocity, base frame


def seconds(ns) -> float:
    return int(ns) / _NS


def joint_states(contents: BagContents) -> JointStates:
    order = JointOrder(JOINT_ORDER)
    msgs = contents.msgs(topics.JOINT_STATES)
    n = len(msgs)
    stamp = np.empty(n, np.int64)
    q, qd, effort = np.empty((n, 7)), np.empty((n, 7)), np.full((n, 7), np.nan)
    for i, m in enumerate(msgs):
        stamp[i] = messages.stamp_ns(m.header.stamp)
        try:
            q[i] = order.reorder(m.name, m.position, "position")
            qd[i] = order.reorder(m.name, m.velocity, "velocity")
        except JointInputError as err:
            raise BagError(contents.path, f"{topics.JOINT_STATES} message {i} at t={seconds(stamp[i]):.3f} s: "
                                          f"{err}") from None
        if len(m.effort) == len(m.name):      # effort is informative only: not checked, NaN when absent
            effort[i] = np.asarray(m.effort, float)[order.permutation(m.name)]
    return JointStates(stamp, q, qd, effort)


def decode_rgb(msg) -> np.ndarray:
    """(H, W, 3) uint8 from an rgb8 Image; ValueError for other encodings or short buffers."""
    if msg.encoding != IMAGE_ENCODING:
        raise ValueError(f"image encoding '{msg.encoding}' (need {IMAGE_ENCODING})")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.asarray(msg.data, dtype=np.uint8)
    if step < w * 3 or data.size != step * h:
        raise ValueError(f"image buffer of {data.size} bytes does not fit {w}x{h} rgb8 with step {step}")
    return data.reshape(h, step)[:, : w * 3].reshape(h, w, 3)


def images(contents: BagContents) -> Images:
    """The camera frames, each stamp once: a lockstep simulator re-sends an unanswered step's frame,
    and the bag keeps both copies of what is one frame."""
    msgs = contents.msgs(topics.IMAGE)
    stamp = np.array([messages.stamp_ns(m.header.stamp) for m in msgs], np.int64)
    first = np.r_[True, stamp[1:] != stamp[:-1]] if stamp.size else np.zeros(0, bool)
    msgs, stamp = [m for m, k in zip(msgs, first) if k], stamp[first]
    frames = []
    for i, m in enumerate(msgs):
        try:
            rgb = decode_rgb(m)
        except ValueError as err:
            raise BagError(contents.path, f"{topics.IMAGE} frame {i} at t={seconds(stamp[i]):.3f} s: {err}") from None
        if frames and rgb.shape != frames[0].shape:
            raise BagError(contents.path, f"{topics.IMAGE}: image sizes differ: frame 0 is "
                                          f"{frames[0].shape[1]}x{frames[0].shape[0]}, frame {i} at "
                                          f"t={seconds(stamp[i]):.3f} s is {rgb.shape[1]}x{rgb.shape[0]}")
        frames.append(rgb)
    rgb = np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8)
    return Images(stamp, rgb)


def actions(contents: BagContents, topic: str = topics.TIP_VELOCITY) -> Actions:
    msgs = contents.msgs(topic)
    stamp = np.array([messages.stamp_ns(m.header.stamp) for m in msgs], np.int64)
    v = np.array([[m.twist.linear.x, m.twist.linear.y, m.twist.linear.z] for m in msgs], float).reshape(-1, 3)
    return Actions(stamp, v)


# -- JSON topics -----------------------------------------------------------------------------------

def _json_dicts(contents: BagContents, topic: str) -> list[dict]:
    out = []
    for i, m in enumerate(contents.msgs(topic)):
        try:
            d = json.loads(m.data)
        except json.JSONDecodeError as err:
            raise BagError(contents.path, f"{topic} message {i} is not JSON: {err}") from None
        if not isinstance(d, dict):
            raise BagError(contents.path, f"{topic} message {i} is JSON but not an object: {m.data[:60]!r}")
        out.append(d)
    return out


def episode_info(contents: BagContents) -> dict:
    """The /sim/episode dict (PushingWorld.reset() + episode_id, episode_duration), validated."""
    dicts = _json_dicts(contents, topics.EPISODE)
    if not dicts:
        raise BagError(contents.path, f"no message on {topics.EPISODE}")
    if any(d != dicts[0] for d in dicts[1:]):
        ids = sorted({str(d.get("episode_id")) for d in dicts})
        raise BagError(contents.path, f"{topics.EPISODE}: more than one episode in this bag (ids {', '.join(ids)})")
    info = dicts[0]
    missing = [k for k in EPISODE_REQUIRED_KEYS if k not in info]
    task = info.get("task")
    if isinstance(task, dict):
        missing += [f"task.{k}" for k in EPISODE_TASK_REQUIRED_KEYS if k not in task]
    elif "task" in info:
        missing.append("task (must be an object)")
    if missing:
        raise BagError(contents.path, f"{topics.EPISODE} JSON lacks {', '.join(missing)}")
    if task["task_set"] not in SPLITS:
        raise BagError(contents.path, f"{topics.EPISODE}: task_set '{task['task_set']}' is not one of "
                                      f"{', '.join(SPLITS)}")
    try:
        float(info["start_time"])
    except (TypeError, ValueError):
        raise BagError(contents.path, f"{topics.EPISODE}: start_time {info['start_time']!r} is not a number") from None
    return info


def episode_result(contents: BagContents) -> dict | None:
    """The last /sim/episode_result dict, or None when the bag has none."""
    dicts = _json_dicts(contents, topics.EPISODE_RESULT)
    return dicts[-1] if dicts else None


def operator_info(contents: BagContents) -> dict:
    """Who drove the demo: {"operator", "skill", ...}; "unknown" for what the bag does not say."""
    dicts = _json_dicts(contents, OPERATOR)
    info = {"operator": "unknown", "skill": "unknown", **(dicts[-1] if dicts else {})}
    if info["skill"] not in SKILLS:
        raise BagError(contents.path, f"{OPERATOR}: skill '{info['skill']}' is not one of {', '.join(SKILLS)}")
    return info


# -- one training sample per camera frame --------------------------------------------------------

@dataclass
class EpisodeFrames:
    stamp_ns: np.ndarray    # (T,) int64 absolute sim time of each kept frame
    t: np.ndarray           # (T,) float64 s since episode start
    image: np.ndarray       # (T, H, W, 3) uint8
    q: np.ndarray           # (T, 7)
    qd: np.ndarray          # (T, 7)
    action: np.ndarray      # (T, 3)
    held_actions: int       # frames that reuse the previous action (no action stamped with them)
    dropped_frames: int     # frames before the episode start or before the first action


def _require_sorted(path: Path, topic: str, stamp_ns: np.ndarray) -> None:
    bad = np.flatnonzero(np.diff(stamp_ns) < 0)
    if bad.size:
        raise BagError(path, f"{topic}: header stamps out of order at t={seconds(stamp_ns[bad[0] + 1]):.3f} s")


def align(contents: BagContents, js: JointStates, imgs: Images, acts: Actions, start_time: float) -> EpisodeFrames:
    """Per frame at stamp t_i: the action stamped t_i (within 1 ms), else the latest one before
    (held); the latest joint state at or before t_i, at most 0.05 s old. Frames before the
    episode start or before the first action are dropped."""
    for topic, s in ((topics.JOINT_STATES, js.stamp_ns), (topics.IMAGE, imgs.stamp_ns),
                     (topics.TIP_VELOCITY, acts.stamp_ns)):
        _require_sorted(contents.path, topic, s)
    start_ns = messages.to_ns(start_time)
    tol = messages.to_ns(ACTION_MATCH_TOLERANCE)
    stamp = imgs.stamp_ns
    a_idx = np.searchsorted(acts.stamp_ns, stamp + tol, side="right") - 1
    keep = (stamp >= start_ns) & (a_idx >= 0)
    stamp, a_idx, frame_idx = stamp[keep], a_idx[keep], np.flatnonzero(keep)
    j_idx = np.searchsorted(js.stamp_ns, stamp, side="right") - 1
    max_age = messages.to_ns(JOINT_STATE_MAX_AGE)
    if js.stamp_ns.size:
        stale = (j_idx < 0) | (stamp - js.stamp_ns[np.maximum(j_idx, 0)] > max_age)
    else:
        stale = np.ones(stamp.size, bool)
    if stale.any():
        k = int(np.flatnonzero(stale)[0])
        raise BagError(contents.path, f"no joint state within {JOINT_STATE_MAX_AGE} s before the camera frame at "
                                      f"t={seconds(stamp[k]):.3f} s ({int(stale.sum())} frames affected)")
    held = int(np.sum(np.abs(acts.stamp_ns[a_idx] - stamp) > tol)) if stamp.size else 0
    return EpisodeFrames(
        stamp_ns=stamp, t=(stamp - start_ns) / _NS, image=imgs.rgb[frame_idx], q=js.q[j_idx], qd=js.qd[j_idx],
        action=acts.v[a_idx], held_actions=held, dropped_frames=int(imgs.stamp_ns.size - stamp.size))


@dataclass
class Episode:
    path: Path
    info: dict              # /sim/episode
    result: dict | None     # /sim/episode_result
    operator: dict          # /teleop/operator (defaults "unknown")
    frames: EpisodeFrames
    custom_data: dict[str, str] = field(default_factory=dict)   # metadata.yaml custom_data (a correction round)
    corrections: Actions | None = None   # /teleop/correction: the operator's command where they had taken over


def episode(contents: BagContents) -> Episode:
    """The training view of a bag that has been read; raises BagError when it cannot be built."""
    info = episode_info(contents)
    frames = align(contents, joint_states(contents), images(contents), actions(contents),
                   float(info["start_time"]))
    corrections = actions(contents, topics.CORRECTION) if contents.msgs(topics.CORRECTION) else None
    return Episode(contents.path, info, episode_result(contents), operator_info(contents), frames,
                   dict(contents.custom_data), corrections)


def load_episode(path: str | Path) -> Episode:
    return episode(read_bag(path))
