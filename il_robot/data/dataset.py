"""Demo bags -> a training dataset: one .npz per episode, split by task set, described by dataset.json.

The dataset is built in `<out>.partial` and renamed into place at the end, so
an interrupted or failed build never leaves something that looks complete.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from il_robot.data.bag_check import BagReport, Problem, episode_duration, inspect_bag
from il_robot.data.bag_format import JOINT_ORDER, SPLITS
from il_robot.parallel import usable_cores
from il_robot.data.corrections import CORRECTION_SKILL, HUMAN_LABELLER, correction_round, takeover
from il_robot.data.episode_file import write_arrays
from il_robot.data.output_dir import move_into_place, partial_dir

FORMAT = "il_robot.dataset"
VERSION = 1
ACTION = {"name": "tip_velocity", "units": "m/s", "frame": "base", "dim": 3}
ARRAY_TYPES = {"image": np.uint8, "t": np.float64, "stamp": np.float64, "q": np.float32, "qd": np.float32,
               "action": np.float32}
ARRAYS = tuple(ARRAY_TYPES)


class DatasetError(ValueError):
    """The dataset cannot be built (bad bag, existing output...) or read."""


def _bad_bag_message(report: BagReport) -> str:
    lines = "\n".join(f"  - {p}" for p in report.problems)
    return f"bad bag {report.path}:\n{lines}"


def _episode_key(path: Path, taken: set[str]) -> str:
    key = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.resolve().name).strip("._") or "episode"
    unique, n = key, 2
    while unique in taken:
        unique, n = f"{key}_{n}", n + 1
    taken.add(unique)
    return unique


def _write_episode(root: Path, key: str, bag: str, report: BagReport) -> dict | None:
    """The bag's episode as an npz; a correction bag (human-gated DAgger) as the frames its operator drove,
    None when they never took over."""
    ep, frames = report.episode, report.episode.frames
    round_ = correction_round(ep.custom_data)
    if round_ is not None:
        taken = takeover(ep)
        if not taken.frames.t.size:
            return None
        frames = taken.frames
    split = ep.info["task"]["task_set"]
    arrays = {"image": frames.image, "t": frames.t, "stamp": frames.stamp_ns / 1e9, "q": frames.q, "qd": frames.qd,
              "action": frames.action}
    result = ep.result or {}
    entry = {
        "bag": bag, "split": split, "task": ep.info["task"],
        "task_name": ep.info["task"]["name"], "seed": ep.info.get("seed"), "episode_id": ep.info.get("episode_id"),
        "operator": ep.operator["operator"], "skill": ep.operator["skill"],
        "success": result.get("success"), "final_distance": result.get("final_distance"),
        "duration": episode_duration(ep), "frames": int(frames.t.size),
        "held_actions": frames.held_actions, "dropped_frames": frames.dropped_frames,
    }
    if round_ is not None:   # control-only, like the scripted expert's DAgger episodes; who corrected, how well
        entry["skill"] = CORRECTION_SKILL
        entry["dagger"] = {"round": round_, "labeller": HUMAN_LABELLER, "operator_skill": ep.operator["skill"],
                           "takeovers": taken.segments, "episode_frames": taken.driven}
    return write_episode(root, key, arrays, entry)


def write_episode(root: str | Path, key: str, arrays: dict[str, np.ndarray], entry: dict) -> dict:
    """The one writer of a dataset's episodes (bags, DAgger's corrective episodes): the npz under the entry's
    split, in the dataset's array types (il_robot.data.episode_file: atomic); returns its dataset.json entry,
    key and file first, then `entry`."""
    rel = Path(entry["split"]) / f"{key}.npz"
    write_arrays(Path(root) / rel, {name: np.asarray(arrays[name]).astype(kind) for name, kind in ARRAY_TYPES.items()})
    return {"key": key, "file": str(rel), **entry}


def summarize(episodes: list[dict], skipped: list[dict]) -> dict:
    def split_figures(eps):
        return {"episodes": len(eps), "tasks": len({e["task_name"] for e in eps}),
                "frames": sum(e["frames"] for e in eps)}

    by_skill = {}
    for skill in sorted({e["skill"] for e in episodes}):
        eps = [e for e in episodes if e["skill"] == skill]
        known = [e["success"] for e in eps if e["success"] is not None]
        by_skill[skill] = {"episodes": len(eps), "with_result": len(known),
                           "success_rate": float(np.mean(known)) if known else None}
    return {**split_figures(episodes), "splits": {s: split_figures([e for e in episodes if e["split"] == s])
                                                  for s in SPLITS},
            "success_by_skill": by_skill, "skipped": skipped}


def _check_out_dir(out: Path, bags: list[str], force: bool) -> Path:
    def no_bag_inside() -> None:
        inside = [b for b in bags if out.exists() and out.resolve() in Path(b).resolve().parents]
        if inside:
            raise DatasetError(f"bag {inside[0]} lies inside the output directory {out}; choose another --out")

    return partial_dir(out, force, "dataset.json", "a dataset", "build", DatasetError, check=no_bag_inside)


def _inspected(bags: list[str], progress: bool) -> Iterator[tuple[str, BagReport]]:
    """(bag, report) in the bags' order. Reading and checking a bag is most of a build and bags are
    independent, so they are read in one process per core, a few bags ahead of the writer at most."""
    workers = min(len(bags), usable_cores())
    bar = tqdm(total=len(bags), desc="bags", unit="bag", disable=not progress)
    try:
        if workers <= 1:
            for bag in bags:
                report = inspect_bag(bag)
                bar.update()
                yield bag, report
            return
        pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"))
        try:
            pending: deque = deque()
            for bag in bags:
                pending.append((bag, pool.submit(inspect_bag, bag)))
                if len(pending) < 2 * workers:
                    continue
                bag_done, future = pending.popleft()
                bar.update()
                yield bag_done, future.result()
            while pending:
                bag_done, future = pending.popleft()
                bar.update()
                yield bag_done, future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()


def _convert_bags(bags: list[str], root: Path, taken: set[str], image_shape: list | None, skip_bad: bool,
                  progress: bool, episodes: list[dict], skipped: list[dict],
                  untouched: list[str] | None = None) -> list | None:
    """Check each bag and write the good ones into `root`, appending to `episodes` as each is written (so a
    caller can undo a failed run) and to `skipped`; correction bags whose operator never took over go to
    `untouched` (nothing to learn from). Returns the image shape."""
    for bag, report in _inspected(bags, progress):
        if report.ok:
            shape = list(report.episode.frames.image.shape[1:])
            if image_shape is None:
                image_shape = shape
            elif shape != image_shape:
                report.problems.append(Problem(f"image size {shape} differs from the dataset's {image_shape}"))
        if not report.ok:
            if not skip_bad:
                raise DatasetError(_bad_bag_message(report))
            skipped.append({"bag": bag, "problems": [str(p) for p in report.problems]})
            continue
        entry = _write_episode(root, _episode_key(Path(bag), taken), bag, report)
        if entry is None:
            if untouched is not None:
                untouched.append(bag)
            continue
        episodes.append(entry)
    return image_shape


def build_dataset(bags: list[str | Path], out_dir: str | Path, force: bool = False, skip_bad: bool = False,
                  progress: bool = True) -> dict:
    """Check and convert every bag; returns the summary also stored in dataset.json.

    A bad bag fails the build (DatasetError listing its problems) unless skip_bad, which
    leaves it out and records it under summary["skipped"].
    """
    if not bags:
        raise DatasetError("no bags given")
    out = Path(out_dir)
    bags = list(dict.fromkeys(str(b) for b in bags))        # the same bag twice counts once
    partial = _check_out_dir(out, bags, force)
    episodes, skipped, untouched = [], [], []
    partial.mkdir(parents=True)
    try:
        image_shape = _convert_bags(bags, partial, set(), None, skip_bad, progress, episodes, skipped, untouched)
        if not episodes:
            raise DatasetError(f"no usable episodes: all {len(bags)} bag(s) are bad"
                               + (f" or corrections never taken over ({len(untouched)})" if untouched else ""))
        summary = {**summarize(episodes, skipped), "no_takeover": len(untouched)}
        meta = {"format": FORMAT, "version": VERSION, "created": datetime.now(timezone.utc).isoformat(),
                "image_shape": image_shape, "action": ACTION, "joint_names": list(JOINT_ORDER),
                "arrays": {"image": "(T,H,W,3) uint8 RGB", "t": "(T,) float64 s since episode start",
                           "stamp": "(T,) float64 s, absolute sim time", "q": "(T,7) float32 rad",
                           "qd": "(T,7) float32 rad/s", "action": "(T,3) float32 m/s tip velocity, base frame"},
                "episodes": episodes, "summary": summary}
        (partial / "dataset.json").write_text(json.dumps(meta, indent=2))
        move_into_place(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return summary


def add_to_dataset(bags: list[str | Path], dataset_dir: str | Path, skip_bad: bool = False,
                   progress: bool = True) -> dict:
    """Add the bags that are not in an existing dataset yet (by resolved path) and keep everything it holds,
    DAgger episodes included: more demos later without rebuilding and relabelling. dataset.json is rewritten
    atomically at the end; a failure removes the files this call wrote and leaves the dataset as it was."""
    root = Path(dataset_dir)
    meta_path = root / "dataset.json"
    if not meta_path.is_file():
        raise DatasetError(f"{root} is not a dataset (no dataset.json); create one with `il-robot dataset build`")
    meta = json.loads(meta_path.read_text())
    have = {str(Path(e["bag"]).resolve()) for e in meta["episodes"] if e.get("bag")}
    bags = list(dict.fromkeys(str(b) for b in bags))        # the same bag twice counts once
    new = [b for b in bags if str(Path(b).resolve()) not in have]
    taken = {e["key"] for e in meta["episodes"]}
    episodes, skipped, untouched = [], [], []
    try:
        _convert_bags(new, root, taken, meta.get("image_shape"), skip_bad, progress, episodes, skipped, untouched)
        old_skipped = [s for s in meta["summary"].get("skipped", []) if s["bag"] not in new]
        meta["episodes"] = meta["episodes"] + episodes
        meta["summary"] = summarize([e for e in meta["episodes"] if e.get("bag")], old_skipped + skipped)
        write_meta(root, meta)
    except BaseException:
        for e in episodes:
            (root / e["file"]).unlink(missing_ok=True)
        raise
    return {**meta["summary"], "added": len(episodes), "already_in": len(bags) - len(new),
            "no_takeover": len(untouched), "corrections_added": sum(e["skill"] == CORRECTION_SKILL for e in episodes)}


def write_meta(root: str | Path, meta: dict) -> None:
    """Rewrite a dataset's dataset.json atomically: a reader sees the old file or the new one, never half."""
    path = Path(root) / "dataset.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, path)


class Dataset:
    """A built dataset: `meta` (dataset.json) and lazy per-episode arrays."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        try:
            self.meta = json.loads((self.root / "dataset.json").read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise DatasetError(f"{self.root} is not a dataset: cannot read dataset.json ({err})") from None
        if self.meta.get("format") != FORMAT or self.meta.get("version", 0) > VERSION:
            raise DatasetError(f"{self.root}: dataset.json is format {self.meta.get('format')!r} version "
                               f"{self.meta.get('version')!r}; this code reads {FORMAT} up to {VERSION}")

    def episode_meta(self, split: str | None = None) -> list[dict]:
        return [e for e in self.meta["episodes"] if split is None or e["split"] == split]

    def episodes(self, split: str | None = None) -> Iterator[tuple[dict, dict[str, np.ndarray]]]:
        """(meta, arrays) per episode of `split` (all when None), loaded one at a time."""
        for meta in self.episode_meta(split):
            yield meta, self.arrays(meta)

    def arrays(self, meta: dict) -> dict[str, np.ndarray]:
        """The arrays of the episode `meta` describes (an entry of episode_meta)."""
        with np.load(self.root / meta["file"], allow_pickle=False) as npz:
            return {name: npz[name] for name in ARRAYS}


def load_dataset(root: str | Path) -> Dataset:
    return Dataset(root)
