"""Demos (bags or a built dataset) -> a LeRobotDataset v3 directory, for LeRobot users (ACT, Diffusion Policy).

The layout is LeRobot's codebase v3.0 as LeRobot itself writes it: episodes concatenated into chunked
parquet files (data/) and one mp4 per camera and chunk file (videos/), described by meta/info.json,
meta/stats.json, meta/tasks.parquet and meta/episodes/ (where each episode's rows and video time span
lie, its per-episode stats, and ours: operator, skill, success, task name, split). It is written in
OUT.partial and renamed into place when complete, like `dataset build`.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from tqdm import tqdm

from il_robot.data.output_dir import move_into_place, partial_dir
from il_robot.data.lerobot_format import (
    ACTION_KEY,
    CAMERA_KEY,
    CHUNKS_SIZE,
    CODEBASE_VERSION,
    DATA_FILE_MB,
    DATA_PATH,
    EPISODES_PATH,
    FPS,
    PIX_FMT,
    ROBOT_TYPE,
    STATE_KEY,
    VCODECS,
    VIDEO_FILE_MB,
    VIDEO_PATH,
    ParquetFiles,
    VideoFiles,
    features,
    video_info,
)
from il_robot.data.lerobot_stats import image_histogram, image_stats, jsonable, vector_stats
from il_robot.sim.task_description import describe_task

FRAME_GAP = 1.5 / FPS               # s: a source frame spacing above this counts as a gap (dropped frames)


class ExportError(ValueError):
    """The export cannot be made (bad bag, existing output, mixed image sizes...)."""


@dataclass
class DemoEpisode:
    """One episode, whichever way it came in."""
    source: str              # bag path, or "<dataset>:<key>"
    task: dict               # Task.to_dict()
    t: np.ndarray            # (T,) s since episode start, as recorded
    image: np.ndarray        # (T, H, W, 3) uint8
    q: np.ndarray            # (T, 7) rad
    qd: np.ndarray           # (T, 7) rad/s
    action: np.ndarray       # (T, 3) m/s
    operator: str
    skill: str
    success: bool | None
    final_distance: float | None
    seed: int | None


# -- sources ---------------------------------------------------------------------------------------

def is_dataset(path: str | Path) -> bool:
    return (Path(path) / "dataset.json").is_file()


def episodes_from_bags(bags: list[str], skip_bad: bool = False, skipped: list[dict] | None = None
                       ) -> Iterator[DemoEpisode]:
    """Each good bag's episode (checked as `dataset check` does); a bad bag fails unless skip_bad."""
    from il_robot.data.bag_check import inspect_bag
    from il_robot.data.corrections import correction_round

    for bag in bags:
        report = inspect_bag(bag)
        problems = [str(p) for p in report.problems]
        if report.ok and correction_round(report.episode.custom_data) is not None:
            problems = ["a human-gated DAgger correction bag (the model drove it): export the dataset built "
                        "from it instead, where its corrections are episodes"]
        if problems:
            if not skip_bad:
                raise ExportError(f"bad bag {bag}:\n" + "\n".join(f"  - {p}" for p in problems))
            if skipped is not None:
                skipped.append({"bag": bag, "problems": problems})
            continue
        ep, f = report.episode, report.episode.frames
        result = ep.result or {}
        yield DemoEpisode(str(bag), ep.info["task"], f.t, f.image, f.q, f.qd, f.action, ep.operator["operator"],
                          ep.operator["skill"], result.get("success"), result.get("final_distance"),
                          ep.info.get("seed"))


def episodes_from_dataset(root: str | Path) -> Iterator[DemoEpisode]:
    """Every episode of a built dataset, DAgger corrections included (their skill says so)."""
    from il_robot.data.dataset import DatasetError, load_dataset

    try:
        dataset = load_dataset(root)
    except DatasetError as err:
        raise ExportError(str(err)) from None
    for meta, a in dataset.episodes():
        yield DemoEpisode(f"{root}:{meta['key']}", meta["task"], a["t"], a["image"], a["q"], a["qd"], a["action"],
                          meta.get("operator", "unknown"), meta.get("skill", "unknown"), meta.get("success"),
                          meta.get("final_distance"), meta.get("seed"))


def count_episodes(source: list[str]) -> int:
    """Episodes the export will hold at most (for the progress bar)."""
    if len(source) == 1 and is_dataset(source[0]):
        return len(json.loads((Path(source[0]) / "dataset.json").read_text())["episodes"])
    return len(source)


# -- the export ------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _robot():
    from il_robot.robot.model import RobotModel
    return RobotModel.load()


def _tip_positions(q: np.ndarray) -> np.ndarray:
    """(T, 7) joint positions -> (T, 3) tool-tip positions: forward kinematics, as the policy node has them."""
    return np.array([_robot().tip_pose(qi)[0] for qi in np.asarray(q, np.float64)]).reshape(-1, 3)


def _frame_gaps(t: np.ndarray) -> int:
    return int(np.sum(np.diff(t) > FRAME_GAP))


class _Writer:
    """Appends episodes to the data, video and episodes files of one export directory."""

    def __init__(self, root: Path, vcodec: str, threads: int):
        import pyarrow as pa

        self.pa, self.root = pa, root
        self.data = ParquetFiles(root, DATA_PATH, DATA_FILE_MB)
        self.video = VideoFiles(root, CAMERA_KEY, vcodec, threads)
        self.tasks: dict[str, int] = {}
        self.episodes: list[dict] = []
        self.columns: dict[str, list[np.ndarray]] = {STATE_KEY: [], ACTION_KEY: [], "timestamp": [],
                                                     "frame_index": [], "episode_index": [], "index": [],
                                                     "task_index": []}
        self.hist = np.zeros((3, 256), np.int64)
        self.image_shape: tuple | None = None
        self.frames = 0

    def add(self, ep: DemoEpisode) -> None:
        pa = self.pa
        n = len(ep.t)
        shape = tuple(ep.image.shape[1:])
        if self.image_shape is None:
            self.image_shape = shape
        elif shape != self.image_shape:
            raise ExportError(f"{ep.source}: image size {shape} differs from the export's {self.image_shape}")
        if shape[0] % 2 or shape[1] % 2:
            raise ExportError(f"{ep.source}: image size {shape[1]}x{shape[0]} is odd; {PIX_FMT} video needs even sides")
        task = describe_task(ep.task)
        task_index = self.tasks.setdefault(task, len(self.tasks))
        index = len(self.episodes)
        cols = {
            STATE_KEY: np.concatenate([ep.q, ep.qd, _tip_positions(ep.q)], axis=1).astype(np.float32),
            ACTION_KEY: np.asarray(ep.action, np.float32),
            "timestamp": (np.arange(n) / FPS).astype(np.float32),     # as LeRobot stamps frames: index / fps
            "frame_index": np.arange(n, dtype=np.int64),
            "episode_index": np.full(n, index, np.int64),
            "index": np.arange(self.frames, self.frames + n, dtype=np.int64),
            "task_index": np.full(n, task_index, np.int64),
        }
        table = pa.table({k: (pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), v.shape[1]) if v.ndim == 2
                              else pa.array(v)) for k, v in cols.items()})
        data_chunk, data_file = self.data.write(table)
        v_chunk, v_file, v_from, v_to = self.video.write_episode(ep.image)
        hist = image_histogram(ep.image)
        self.hist += hist
        for k, v in cols.items():
            self.columns[k].append(v)
        stats = {CAMERA_KEY: image_stats(hist, n), **{k: vector_stats(v) for k, v in cols.items()}}
        self.episodes.append({
            "episode_index": index, "tasks": [task], "length": n,
            "data/chunk_index": data_chunk, "data/file_index": data_file,
            "dataset_from_index": self.frames, "dataset_to_index": self.frames + n,
            f"videos/{CAMERA_KEY}/chunk_index": v_chunk, f"videos/{CAMERA_KEY}/file_index": v_file,
            f"videos/{CAMERA_KEY}/from_timestamp": v_from, f"videos/{CAMERA_KEY}/to_timestamp": v_to,
            **{f"stats/{k}/{s}": v.tolist() for k, st in stats.items() for s, v in st.items()},
            # ours: who demonstrated, how well, which task and split; the source and its frame gaps
            "task_name": ep.task["name"], "split": ep.task["task_set"], "operator": ep.operator, "skill": ep.skill,
            "success": None if ep.success is None else bool(ep.success),
            "final_distance": None if ep.final_distance is None else float(ep.final_distance),
            "seed": None if ep.seed is None else int(ep.seed), "source": ep.source, "frame_gaps": _frame_gaps(ep.t),
            "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0,
        })
        self.frames += n

    def finish(self) -> dict:
        """Close the media files, write meta/; returns info.json."""
        import pandas as pd
        import pyarrow.parquet as pq

        self.data.close()
        self.video.close()
        meta = self.root / "meta"
        (meta / "episodes" / "chunk-000").mkdir(parents=True, exist_ok=True)
        pq.write_table(self.pa.Table.from_pylist(self.episodes), self.root / EPISODES_PATH.format(
            chunk_index=0, file_index=0), compression="snappy")
        # LeRobot's own write_tasks: task strings as the index, task_index the one column
        pd.DataFrame({"task_index": list(self.tasks.values())}, index=list(self.tasks)).to_parquet(
            meta / "tasks.parquet")
        stats = {CAMERA_KEY: image_stats(self.hist, self.frames),
                 **{k: vector_stats(np.concatenate(v)) for k, v in self.columns.items()}}
        (meta / "stats.json").write_text(json.dumps(jsonable(stats), indent=4))
        feats = features(self.image_shape)
        feats[CAMERA_KEY]["info"] = video_info(self.video.first_path)
        info = {
            "codebase_version": CODEBASE_VERSION, "robot_type": ROBOT_TYPE,
            "total_episodes": len(self.episodes), "total_frames": self.frames, "total_tasks": len(self.tasks),
            "chunks_size": CHUNKS_SIZE, "data_files_size_in_mb": DATA_FILE_MB,
            "video_files_size_in_mb": VIDEO_FILE_MB, "fps": FPS, "splits": {"train": f"0:{len(self.episodes)}"},
            "data_path": DATA_PATH, "video_path": VIDEO_PATH, "features": feats,
        }
        (meta / "info.json").write_text(json.dumps(info, indent=4))
        return info


def export_lerobot(source: list[str], out_dir: str | Path, force: bool = False, skip_bad: bool = False,
                   vcodec: str = VCODECS[0], progress: bool = True) -> dict:
    """Export bags (or one built dataset directory) to a LeRobotDataset v3 at out_dir; returns a summary."""
    from il_robot.parallel import usable_cores

    if not source:
        raise ExportError("nothing to export: no bags or dataset given")
    missing = [m for m in ("av", "pyarrow", "pandas") if importlib.util.find_spec(m) is None]
    if missing:
        raise ExportError(f"the LeRobot export needs PyAV, pyarrow and pandas ({', '.join(missing)} missing): "
                          "pip install -e '.[lerobot]' (scripts/setup.sh installs them)")
    if vcodec not in VCODECS:
        raise ExportError(f"video codec '{vcodec}' not supported; choose from {', '.join(VCODECS)}")
    datasets = [s for s in source if is_dataset(s)]
    if datasets and len(source) > 1:
        raise ExportError(f"{datasets[0]} is a dataset: export one dataset on its own, or bags")
    out = Path(out_dir)
    inside = [s for s in source if out.exists() and out.resolve() in Path(s).resolve().parents]
    if inside:
        raise ExportError(f"{inside[0]} lies inside the output directory {out}; choose another --out")
    partial = partial_dir(out, force, "meta/info.json", "a LeRobot dataset", "export", ExportError)
    skipped: list[dict] = []
    episodes = episodes_from_dataset(source[0]) if datasets else episodes_from_bags(source, skip_bad, skipped)
    t0 = time.monotonic()
    partial.mkdir(parents=True)
    try:
        writer = _Writer(partial, vcodec, max(1, min(4, usable_cores())))
        for ep in tqdm(episodes, total=count_episodes(source), desc="episodes", unit="ep", disable=not progress):
            if len(ep.t):
                writer.add(ep)
            else:
                skipped.append({"bag": ep.source, "problems": ["no frames to export"]})
        if not writer.episodes:
            raise ExportError(f"no usable episodes: all {len(source)} bag(s) are bad")
        info = writer.finish()
        move_into_place(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    by_skill: dict[str, dict] = {}
    for e in writer.episodes:
        s = by_skill.setdefault(e["skill"], {"episodes": 0, "successes": 0})
        s["episodes"] += 1
        s["successes"] += int(bool(e["success"]))
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    return {"out": str(out), "episodes": info["total_episodes"], "frames": info["total_frames"],
            "tasks": info["total_tasks"], "task_strings": list(writer.tasks), "fps": FPS,
            "video_codec": info["features"][CAMERA_KEY]["info"]["video.codec"], "by_skill": by_skill,
            "skipped": skipped, "frame_gaps": sum(e["frame_gaps"] for e in writer.episodes),
            "bytes_on_disk": size, "wall_time": time.monotonic() - t0}

