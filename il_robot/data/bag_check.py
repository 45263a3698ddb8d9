"""Is this bag a usable demo? Every problem found, one line each, before it reaches a dataset.

Recording goes wrong in ordinary ways (a crash truncates the file, a topic was
not in the record list, the camera stalled); the dataset builder and
`il-robot dataset check` use this to say so plainly instead of training on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from il_robot import topics
from il_robot.data import bag_reader, messages
from il_robot.data.bag_format import (
    DEMO_TOPICS,
    IMAGE_GAP_FACTOR,
    JOINT_GAP_FACTOR,
    MSGTYPES,
    NOMINAL_RATES,
    RECORDING_INCOMPLETE,
    RECORDING_KEY,
    RECORDING_PROBLEMS_KEY,
)
from il_robot.data.bag_reader import BagContents, BagError, Episode, seconds
from il_robot.data.corrections import correction_round

GAP_FACTORS = {topics.JOINT_STATES: JOINT_GAP_FACTOR, topics.IMAGE: IMAGE_GAP_FACTOR}


@dataclass(frozen=True)
class Problem:
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass
class BagReport:
    path: Path
    problems: list[Problem]
    summary: dict | None = None     # counts, duration, rates, frames... of a good bag
    episode: Episode | None = None  # the training view of a good bag

    @property
    def ok(self) -> bool:
        return not self.problems


def missing_messages(published: dict[str, int], stored: dict[str, int]) -> dict[str, int]:
    """Per topic, how many of the messages a publisher reports were not stored (only shortfalls)."""
    return {t: n - stored.get(t, 0) for t, n in published.items() if stored.get(t, 0) < n}


def header_stamps(contents: BagContents, topic: str) -> np.ndarray:
    return np.array([messages.stamp_ns(m.header.stamp) for m in contents.msgs(topic)], np.int64)


def _order_problem(topic: str, stamp: np.ndarray) -> Problem | None:
    back = np.flatnonzero(np.diff(stamp) < 0)
    if not back.size:
        return None
    i = back[0] + 1
    return Problem(f"{topic}: header stamps out of order {back.size} time(s); first at message {i}: "
                   f"t={seconds(stamp[i]):.3f} s after t={seconds(stamp[i - 1]):.3f} s")


def _gap_problem(topic: str, stamp: np.ndarray, factor: float) -> Problem | None:
    if stamp.size < 3:
        return None
    period = np.diff(stamp)
    median = float(np.median(period))
    gaps = np.flatnonzero(period > factor * median)
    if not gaps.size or median <= 0:
        return None
    worst = gaps[np.argmax(period[gaps])]
    return Problem(f"{topic}: {gaps.size} gap(s) longer than {factor:g}x the median period "
                   f"({median / 1e6:.1f} ms); largest {period[worst] / 1e9:.3f} s "
                   f"after t={seconds(stamp[worst]):.3f} s")


def _nonfinite_problem(topic: str, what: str, stamp: np.ndarray, values: np.ndarray) -> Problem | None:
    bad = np.flatnonzero(~np.all(np.isfinite(values.reshape(len(values), -1)), axis=1))
    if not bad.size:
        return None
    return Problem(f"{topic}: NaN/Inf {what} in {bad.size} message(s), first at t={seconds(stamp[bad[0]]):.3f} s")


def _recording_problems(contents: BagContents, info: dict | None, result: dict | None) -> list[Problem]:
    """What the recorder flagged, and what the episode's own JSON says about the bag: the result of
    another episode, or fewer messages than the simulator reports publishing in the episode."""
    problems = []
    if contents.custom_data.get(RECORDING_KEY) == RECORDING_INCOMPLETE:
        why = contents.custom_data.get(RECORDING_PROBLEMS_KEY, "no reason given")
        problems.append(Problem(f"the recorder marked this bag incomplete: {why}"))
    if info is not None and result is not None and "episode_id" in info and "episode_id" in result \
            and result["episode_id"] != info["episode_id"]:
        problems.append(Problem(f"{topics.EPISODE_RESULT} is the result of episode {result['episode_id']}, "
                                f"but this bag records episode {info['episode_id']}"))
    published = (result or {}).get("published")
    if isinstance(published, dict):
        try:
            missing = missing_messages({str(t): int(n) for t, n in published.items()}, contents.counts)
        except (TypeError, ValueError):
            missing = {}
            problems.append(Problem(f"{topics.EPISODE_RESULT}: 'published' is not a topic -> count map"))
        if missing:
            problems.append(Problem("fewer messages than the simulator published in the episode: "
                                    + ", ".join(f"{t} {n} missing" for t, n in sorted(missing.items()))))
    return problems


def check_contents(contents: BagContents) -> tuple[list[Problem], Episode | None]:
    """All problems of a bag that could be read, and its episode when there are none."""
    problems: list[Problem] = []
    for spec in DEMO_TOPICS:
        msgtype = contents.msgtypes.get(spec.topic)
        if msgtype is None:
            if spec.required:
                problems.append(Problem(f"missing required topic {spec.topic} ({spec.msgtype})"))
        elif msgtype != spec.msgtype:
            problems.append(Problem(f"{spec.topic} has type {msgtype}, expected {spec.msgtype}"))
        elif spec.required and not contents.counts.get(spec.topic):
            problems.append(Problem(f"no messages on required topic {spec.topic}"))
    for topic, msgtype in MSGTYPES.items():
        if topic in NOMINAL_RATES and contents.msgtypes.get(topic) == msgtype:
            stamp = header_stamps(contents, topic)
            problems += [p for p in (_order_problem(topic, stamp),) if p]
            if topic in GAP_FACTORS:
                problems += [p for p in (_gap_problem(topic, stamp, GAP_FACTORS[topic]),) if p]

    def attempt(fn):
        try:
            return fn(contents)
        except BagError as err:
            problems.append(Problem(err.problem))
            return None

    js = attempt(bag_reader.joint_states) if contents.msgs(topics.JOINT_STATES) else None
    if js is not None:
        problems += [p for p in (_nonfinite_problem(topics.JOINT_STATES, "position/velocity", js.stamp_ns,
                                                    np.hstack([js.q, js.qd])),) if p]
    imgs = attempt(bag_reader.images) if contents.msgs(topics.IMAGE) else None
    if imgs is not None:
        dup = int(np.sum(np.diff(imgs.stamp_ns) == 0))
        if dup:
            problems.append(Problem(f"{topics.IMAGE}: {dup} frame(s) with the same stamp as the previous one"))
    acts = attempt(bag_reader.actions) if contents.msgs(topics.TIP_VELOCITY) else None
    if acts is not None:
        problems += [p for p in (_nonfinite_problem(topics.TIP_VELOCITY, "velocity", acts.stamp_ns, acts.v),) if p]
    corrections = attempt(lambda c: bag_reader.actions(c, topics.CORRECTION)) if contents.msgs(topics.CORRECTION) \
        else None
    if corrections is not None:
        problems += [p for p in (_nonfinite_problem(topics.CORRECTION, "velocity", corrections.stamp_ns,
                                                    corrections.v),) if p]
    try:
        correction_round(contents.custom_data)
    except ValueError as err:
        problems.append(Problem(str(err)))
    info = attempt(bag_reader.episode_info) if contents.msgs(topics.EPISODE) else None
    result = attempt(bag_reader.episode_result)
    attempt(bag_reader.operator_info)
    problems += _recording_problems(contents, info, result)
    if problems or info is None:
        return problems, None
    try:
        episode = bag_reader.episode(contents)
    except BagError as err:
        return [Problem(err.problem)], None
    if episode.frames.t.size == 0:
        return [Problem(f"no camera frame has an action at or before it (nothing to train on); "
                        f"{episode.frames.dropped_frames} frames dropped")], None
    return [], episode


def episode_duration(episode: Episode) -> float:
    """Episode length (s): the sim's result, else the planned duration, else the frames' span."""
    if episode.result and episode.result.get("duration") is not None:
        return float(episode.result["duration"])
    if episode.info.get("episode_duration") is not None:
        return float(episode.info["episode_duration"])
    return float(episode.frames.t[-1]) if episode.frames.t.size else 0.0


def summarize(contents: BagContents, episode: Episode) -> dict:
    rates = {}
    for topic in NOMINAL_RATES:
        if contents.msgtypes.get(topic) == MSGTYPES[topic] and len(contents.msgs(topic)) >= 2:
            period = float(np.median(np.diff(header_stamps(contents, topic))))
            rates[topic] = round(1e9 / period, 2) if period > 0 else None
    log_ns = [t for msgs in contents.messages.values() for t, _ in msgs]
    result = episode.result or {}
    return {
        "bag": str(contents.path), "storage": contents.storage,
        "task": episode.info["task"]["name"], "seed": episode.info.get("seed"),
        "operator": episode.operator["operator"], "skill": episode.operator["skill"],
        "success": result.get("success"), "final_distance": result.get("final_distance"),
        "duration": episode_duration(episode),
        "span": (max(log_ns) - min(log_ns)) / 1e9 if log_ns else 0.0,
        "frames": int(episode.frames.t.size), "held_actions": episode.frames.held_actions,
        "dropped_frames": episode.frames.dropped_frames,
        "counts": dict(sorted(contents.counts.items())), "rates": rates,
    }


def inspect_bag(path: str | Path) -> BagReport:
    """Read and check a bag once: its problems, or its summary and episode. Never raises for a bad bag."""
    path = Path(path)
    try:
        contents = bag_reader.read_bag(path)
    except BagError as err:
        return BagReport(path, [Problem(err.problem)])
    problems, episode = check_contents(contents)
    if problems:
        return BagReport(path, problems)
    return BagReport(path, [], summarize(contents, episode), episode)


def check_bag(path: str | Path) -> list[Problem]:
    """Problems of a demo bag, one line each; empty when it is fine."""
    return inspect_bag(path).problems
