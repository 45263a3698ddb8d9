"""What a LeRobotDataset v3 directory is made of, as LeRobot 0.4 writes it, and the writers of its chunked
files: episodes back to back in parquet (data/) and mp4 (videos/), a new file once one is full.

The constants are LeRobot's defaults (lerobot.datasets.utils, video_utils) and this package's features.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from il_robot.data.bag_format import JOINT_ORDER
from il_robot.rates import CONTROL_RATE_HZ
from il_robot.sim.scene import CAMERA_NAME

CODEBASE_VERSION = "v3.0"
FPS = int(CONTROL_RATE_HZ)           # one frame per camera image, as the demos were recorded
ROBOT_TYPE = "il_robot_panda_like"
CAMERA_KEY = f"observation.images.{CAMERA_NAME}"
STATE_KEY, ACTION_KEY = "observation.state", "action"
STATE_NAMES = ([f"{j}.pos" for j in JOINT_ORDER] + [f"{j}.vel" for j in JOINT_ORDER]
               + ["tip.x", "tip.y", "tip.z"])          # rad, rad/s, m (base frame)
ACTION_NAMES = ["tip.vx", "tip.vy", "tip.vz"]           # m/s, tool-tip linear velocity, base frame

# LeRobot's defaults (lerobot.datasets.utils, video_utils): files per chunk, file sizes, paths, video encoding.
CHUNKS_SIZE, DATA_FILE_MB, VIDEO_FILE_MB = 1000, 100, 200
CHUNK_FILE = "chunk-{chunk_index:03d}/file-{file_index:03d}"
DATA_PATH = "data/" + CHUNK_FILE + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE + ".mp4"
EPISODES_PATH = "meta/episodes/" + CHUNK_FILE + ".parquet"
VCODECS = ("libsvtav1", "h264")     # LeRobot's default codec (AV1) and the one every decoder reads
VIDEO_GOP, VIDEO_CRF, PIX_FMT = 2, 30, "yuv420p"


def _size(path: Path) -> int:
    """Bytes written so far (a muxer may not have created the file yet)."""
    return path.stat().st_size if path.exists() else 0


class Cursor:
    """Chunk and file index of the file being written; the next file when it is full (LeRobot's rule)."""

    def __init__(self):
        self.chunk, self.file = 0, 0

    def advance(self) -> None:
        self.chunk, self.file = (self.chunk + 1, 0) if self.file == CHUNKS_SIZE - 1 else (self.chunk, self.file + 1)

    def path(self, template: str, **kw) -> str:
        return template.format(chunk_index=self.chunk, file_index=self.file, **kw)


class ParquetFiles:
    """Tables appended to chunked parquet files, a new file once one reaches `limit_mb`."""

    def __init__(self, root: Path, template: str, limit_mb: float):
        self.root, self.template, self.limit = root, template, limit_mb * 1024 * 1024
        self.cursor, self.writer, self.path = Cursor(), None, None

    def write(self, table) -> tuple[int, int]:
        import pyarrow.parquet as pq

        if self.writer is not None and _size(self.path) >= self.limit:
            self.close()
            self.cursor.advance()
        if self.writer is None:
            self.path = self.root / self.cursor.path(self.template)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(self.path, table.schema, compression="snappy")
        self.writer.write_table(table)
        return self.cursor.chunk, self.cursor.file

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class VideoFiles:
    """Frames of consecutive episodes encoded into one mp4 per chunk file, at FPS; a new file once one
    reaches VIDEO_FILE_MB. Frame i of a file is shown at i / FPS, so an episode spans [from, to) in it."""

    def __init__(self, root: Path, key: str, vcodec: str, threads: int):
        self.root, self.key, self.vcodec, self.threads = root, key, vcodec, threads
        self.cursor, self.container, self.stream, self.frames = Cursor(), None, None, 0
        self.first_path: Path | None = None

    def _open(self, height: int, width: int) -> None:
        import av

        path = self.root / self.cursor.path(VIDEO_PATH, video_key=self.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.first_path = self.first_path or path
        self.path, self.frames = path, 0
        options = {"g": str(VIDEO_GOP), "crf": str(VIDEO_CRF)}
        if self.vcodec == "libsvtav1":
            options.update({"preset": "12", "svtav1-params": f"lp={self.threads}"})
        else:
            options["threads"] = str(self.threads)
        os.environ.setdefault("SVT_LOG", "1")     # SVT-AV1 prints its banner and settings to stderr otherwise
        self.container = av.open(str(path), "w")
        self.stream = self.container.add_stream(self.vcodec, rate=FPS, options=options)
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, PIX_FMT
        self.stream.codec_context.time_base = Fraction(1, FPS)

    def write_episode(self, frames: np.ndarray) -> tuple[int, int, float, float]:
        """Encode one episode's (T, H, W, 3) frames; (chunk, file, from_timestamp, to_timestamp)."""
        import av

        if self.container is not None and _size(self.path) >= VIDEO_FILE_MB * 1024 * 1024:
            self.close()
            self.cursor.advance()
        if self.container is None:
            self._open(*frames.shape[1:3])
            _no_realtime_threads()
        start = self.frames
        for rgb in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = self.frames
            self.frames += 1
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
        _no_realtime_threads()
        return self.cursor.chunk, self.cursor.file, start / FPS, self.frames / FPS

    def close(self) -> None:
        if self.container is not None:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
            self.container.close()
            self.container = None
            _no_realtime_threads()


def _no_realtime_threads() -> None:
    """Put every thread of this process back on the default scheduler. SVT-AV1, run as root, raises
    the thread that opens it and its own workers to SCHED_FIFO 99; an export next to a robot's
    torque loop would then starve it, and every process started afterwards would inherit it."""
    if not hasattr(os, "sched_setscheduler"):
        return
    for task in os.listdir("/proc/self/task"):
        try:
            if os.sched_getscheduler(int(task)) != os.SCHED_OTHER:
                os.sched_setscheduler(int(task), os.SCHED_OTHER, os.sched_param(0))
        except OSError:
            continue   # ended meanwhile, or not ours to change


def video_info(path: Path) -> dict:
    """What LeRobot records of a video in info.json (its get_video_info)."""
    import av

    with av.open(str(path)) as f:
        s = f.streams.video[0]
        return {"video.height": s.height, "video.width": s.width, "video.codec": s.codec_context.codec.canonical_name,
                "video.pix_fmt": s.pix_fmt, "video.is_depth_map": False, "video.fps": int(s.base_rate),
                "video.channels": 3, "has_audio": False}


def features(image_shape: tuple[int, int, int]) -> dict:
    """info.json's features: ours first, then LeRobot's bookkeeping columns (its DEFAULT_FEATURES)."""
    scalar = {"shape": [1], "names": None}
    return {
        CAMERA_KEY: {"dtype": "video", "shape": list(image_shape), "names": ["height", "width", "channels"]},
        STATE_KEY: {"dtype": "float32", "shape": [len(STATE_NAMES)], "names": STATE_NAMES},
        ACTION_KEY: {"dtype": "float32", "shape": [len(ACTION_NAMES)], "names": ACTION_NAMES},
        "timestamp": {"dtype": "float32", **scalar},
        "frame_index": {"dtype": "int64", **scalar},
        "episode_index": {"dtype": "int64", **scalar},
        "index": {"dtype": "int64", **scalar},
        "task_index": {"dtype": "int64", **scalar},
    }
