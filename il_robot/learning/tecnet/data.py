"""TecNet training data: demos held in memory, normalisation statistics, task batches, a fixed val set.

numpy only (no torch), so the batching can be tested and reused without a GPU stack.
A batch is N tasks x (S support + Q query) demos of the same task; the embedding
net sees each demo's first and last frames, the control net K random timesteps of
every demo. Images stay uint8 in memory (about 12 KB a frame) until a batch is made.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Callable

import numpy as np

from il_robot.data.dataset import Dataset
from il_robot.learning.augment import random_shift, turn_hue
from il_robot.policies.tecnet_state import state_vector

IDLE_SPEED = 0.01         # m/s: a commanded tip speed below this is "standing still"
STATE_STD_FLOOR = 1e-2    # rad, rad/s: a joint that never moved must not blow up at run time
ACTION_STD_FLOOR = 1e-3   # m/s


@dataclass
class DataConfig:
    tasks_per_batch: int = 16       # N: tasks in a batch; the other tasks are each query's negatives
    support: int = 1                # S: demos that make a task's sentence
    query: int = 1                  # Q: demos embedded and scored against all sentences
    timesteps_per_demo: int = 16    # K: control samples drawn from every support and query demo
    frame_stride: int = 1           # keep every n-th frame in memory (first and last are always kept)
    skills: list[str] = field(default_factory=list)   # operator skills to train on; empty = all
    success_only: bool = False      # drop demos whose episode failed (unknown results are kept)
    embedding_augment_shift: int = 4  # random shift of the embedded demo frames: pad this many pixels, crop
                                      # back; 0 = off. Helps the embedding generalise to unseen tasks
    control_augment_shift: int = 0    # the same for the control net's images. The camera is fixed, so a shift
                                      # moves every object against the tip position in the state
    idle_keep: float = 1.0            # share of idle frames (commanded speed under IDLE_SPEED) among control
                                      # samples; the rest are skipped. Demos end standing still for seconds, and
                                      # a policy that has seen mostly "stop" stops short wherever it is unsure
    task_hue_augment: float = 0.0     # probability that a batch task has its objects' hue turned by a random
                                      # angle, in all its frames alike: a new task, as a target's hue is mostly
                                      # what names it; 0 = off
    val_timesteps_per_demo: int = 20  # evenly spaced control samples per val query demo
    corrections_per_task: int = 8   # control samples per task and batch from its corrective (DAgger) episodes
    failed_correction_weight: float = 1.0  # how much likelier a corrective episode the learner failed is drawn
    # than one it pushed home (1 = alike): most of a failed episode is the states it could not get out of
    control_weights: dict[str, float] = field(default_factory=dict)  # skill -> weight of its demos'
    # actions in the control loss (missing skills: 1); every demo still trains the embedding
    correction_rounds: list[int] = field(default_factory=list)  # DAgger rounds whose corrective episodes
    # are used; empty = all. Rounds of an older labeller can stay in the dataset and out of a fine-tune


CORRECTION_SKILL = "correction"   # episodes the learner drove, labelled by the expert (il_robot.learning.dagger)


def is_correction(meta: dict) -> bool:
    """A corrective episode teaches control only: its last frame need not show the task done."""
    return meta.get("skill") == CORRECTION_SKILL


def dagger_round(meta: dict) -> int | None:
    """The `dataset dagger --round` a corrective episode came from (None for a demo)."""
    return (meta.get("dagger") or {}).get("round")


def control_weight(meta: dict, cfg: DataConfig) -> float:
    """How much a demo's actions count in the control loss, by its operator's skill."""
    return float(cfg.control_weights.get(meta.get("skill"), 1.0))


@dataclass
class Demo:
    """One episode as training needs it."""
    key: str
    task_name: str
    meta: dict
    ends: np.ndarray      # (2, H, W, 3) uint8: first and last frames of the full episode
    images: np.ndarray    # (T, H, W, 3) uint8, every frame_stride-th frame
    state: np.ndarray     # (T, 14 or 17) float32: q, qd (and the tip position), not normalised
    action: np.ndarray    # (T, 3) float32, m/s, not normalised


def control_frames(demo: Demo, idle_keep: float, rng: np.random.Generator) -> np.ndarray:
    """Frame indices a demo's control samples come from: every moving frame and an `idle_keep` share
    of the idle ones (drawn once, so training sees the same frames throughout)."""
    idle = np.linalg.norm(demo.action, axis=1) < IDLE_SPEED
    keep = ~idle | (rng.uniform(size=len(idle)) < idle_keep)
    return np.flatnonzero(keep) if keep.any() else np.arange(len(idle))


def keep_demo(meta: dict, cfg: DataConfig) -> bool:
    if cfg.skills and meta.get("skill") not in cfg.skills:
        return False
    if cfg.correction_rounds and is_correction(meta) and dagger_round(meta) not in cfg.correction_rounds:
        return False
    return not (cfg.success_only and meta.get("success") is False)


def check_correction_rounds(dataset_meta: dict, cfg: DataConfig) -> None:
    """Refuse, before minutes of loading, a `correction_rounds` entry that the dataset does not have."""
    have = sorted({dagger_round(e) for e in dataset_meta.get("episodes", []) if is_correction(e)} - {None})
    missing = [r for r in cfg.correction_rounds if r not in have]
    if missing:
        raise ValueError(f"data.correction_rounds {missing}: the dataset has DAgger rounds {have or 'none'}")


def tip_positions(q: np.ndarray) -> np.ndarray:
    """(T, 7) joint positions -> (T, 3) tool-tip positions (forward kinematics, as the policy node has them)."""
    robot = _robot()
    return np.array([robot.tip_pose(qi)[0] for qi in np.asarray(q, np.float64)], np.float32).reshape(-1, 3)


@lru_cache(maxsize=1)
def _robot():
    from il_robot.robot.model import RobotModel

    return RobotModel.load()


def batch_tasks(dataset: Dataset, split: str, cfg: DataConfig) -> list[str]:
    """The tasks of `split` with enough demos for a batch (support + query), by name, read from dataset.json
    alone: what processes training together deal out among themselves before any of them loads frames."""
    counts = Counter(e["task_name"] for e in dataset.episode_meta(split)
                     if keep_demo(e, cfg) and not is_correction(e) and e.get("frames", 1) > 0)
    return sorted(task for task, n in counts.items() if n >= cfg.support + cfg.query)


def load_demos(dataset: Dataset, split: str, cfg: DataConfig,
               layout: tuple[str, ...] = ("q", "qd"), tasks: set[str] | None = None) -> list[Demo]:
    """Every usable episode of `split` (of `tasks` only, when given: a process's share), frames subsampled
    by cfg.frame_stride, the state in `layout` (il_robot.policies.tecnet_state)."""
    stride = max(1, int(cfg.frame_stride))
    demos = []
    for meta in dataset.episode_meta(split):
        if (tasks is not None and meta["task_name"] not in tasks) or not keep_demo(meta, cfg):
            continue
        arrays = dataset.arrays(meta)
        if len(arrays["image"]) == 0:
            continue
        image = arrays["image"]
        demos.append(Demo(
            key=meta["key"], task_name=meta["task_name"], meta=meta,
            ends=np.stack([image[0], image[-1]]),
            images=np.ascontiguousarray(image[::stride]),
            state=state_vector(layout, arrays["q"][::stride], arrays["qd"][::stride],
                               tip_positions(arrays["q"][::stride]) if "tip" in layout else None).astype(np.float32),
            action=arrays["action"][::stride].astype(np.float32)))
    return demos


def by_task(demos: list[Demo]) -> dict[str, list[Demo]]:
    tasks: dict[str, list[Demo]] = defaultdict(list)
    for demo in sorted(demos, key=lambda d: d.key):
        tasks[demo.task_name].append(demo)
    return dict(sorted(tasks.items()))


@dataclass
class Normalisation:
    """state -> (state - mean) / std before the control net; action = output * std + mean after it.
    The action mean is kept at zero so that "stand still" stays zero."""
    state_mean: np.ndarray
    state_std: np.ndarray
    action_mean: np.ndarray
    action_std: np.ndarray

    @classmethod
    def from_demos(cls, demos: list[Demo], total: Callable[[np.ndarray], np.ndarray] = lambda x: x) -> Normalisation:
        """Mean and std of the demos' frames. `total` sums an array over the processes that train together,
        each holding its share of the demos (World.total), so all get the statistics of all the demos."""
        state = np.concatenate([d.state for d in demos]).astype(np.float64)
        action = np.concatenate([d.action for d in demos]).astype(np.float64)
        count = total(np.array([len(state)], np.float64))
        state_mean = total(state.sum(0)) / count
        state_std = np.sqrt(total(((state - state_mean) ** 2).sum(0)) / count)
        action_std = np.sqrt(total(((action - total(action.sum(0)) / count) ** 2).sum(0)) / count)
        return cls(state_mean.astype(np.float32), np.maximum(state_std, STATE_STD_FLOOR).astype(np.float32),
                   np.zeros(action.shape[1], np.float32),
                   np.maximum(action_std, ACTION_STD_FLOOR).astype(np.float32))

    def state(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.state_mean) / self.state_std).astype(np.float32)

    def action(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.action_mean) / self.action_std).astype(np.float32)

    def to_dict(self) -> dict[str, list[float]]:
        return {k: [float(v) for v in np.asarray(x)] for k, x in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> Normalisation:
        return cls(**{k: np.asarray(d[k], np.float32) for k in ("state_mean", "state_std", "action_mean",
                                                                 "action_std")})


def to_nchw(images: np.ndarray) -> np.ndarray:
    """(..., H, W, C) uint8 -> (..., C, H, W) float32 0..255, what the networks read."""
    return np.moveaxis(images, -1, -3).astype(np.float32)


def demo_frames(ends: np.ndarray) -> np.ndarray:
    """(..., 2, H, W, 3) first/last frames -> (..., H, W, 6): first RGB then last RGB."""
    return np.concatenate([ends[..., 0, :, :, :], ends[..., 1, :, :, :]], axis=-1)


class TaskBatchSampler:
    """Random batches of N tasks x (S support + Q query) demos, with K control samples per demo.

    Arrays (first S of axis 1 are support):
      frames (N, S+Q, 6, H, W), images (N, S+Q, K, 3, H, W): float32 0..255
      state (N, S+Q, K, 14), action (N, S+Q, K, 3): float32, normalised
      control_weight (N, S+Q): float32, each demo's weight in the control loss

    Corrective episodes (DAgger) never make or query a sentence; when some of a batch's tasks have them,
    `correction_*` hold C control samples from each of those N' tasks (images (N', C, 3, H, W), state,
    action), and correction_task (N', C) the position of their task in the batch, whose support sentence
    conditions them like the queries. A person correcting (human-gated DAgger) takes over only in the
    episodes that go wrong, so most tasks may have none.
    """

    def __init__(self, demos: list[Demo], cfg: DataConfig, norm: Normalisation, rng: np.random.Generator,
                 tasks_per_batch: int | None = None):
        """`tasks_per_batch`: this process's part of the batch when several train together (the other tasks
        of the batch, the negatives, come from the other processes); default min(N, the tasks there are)."""
        per_task = cfg.support + cfg.query
        corrections = by_task([d for d in demos if is_correction(d.meta)])
        demos = [d for d in demos if not is_correction(d.meta)]
        self.tasks = [demos for demos in by_task(demos).values() if len(demos) >= per_task]
        self.corrections = [corrections.get(task[0].task_name, []) for task in self.tasks]
        needed = 2 if tasks_per_batch is None else tasks_per_batch
        if len(self.tasks) < needed:
            raise ValueError(f"need at least {needed} training tasks with >= {per_task} demos each "
                             f"(support {cfg.support} + query {cfg.query}); found {len(self.tasks)}")
        self.cfg, self.norm, self.rng = cfg, norm, rng
        self.frames = {d.key: control_frames(d, cfg.idle_keep, rng) for d in demos + [c for cs in corrections.values()
                                                                                      for c in cs]}
        self.tasks_per_batch = tasks_per_batch or min(cfg.tasks_per_batch, len(self.tasks))

    def sample(self) -> dict[str, np.ndarray]:
        cfg, rng = self.cfg, self.rng
        n, m, k = self.tasks_per_batch, cfg.support + cfg.query, cfg.timesteps_per_demo
        picked = rng.choice(len(self.tasks), n, replace=False)
        chosen = [self.tasks[i] for i in picked]
        demos = [task[j] for task in chosen for j in rng.choice(len(task), m, replace=False)]
        ends = np.stack([d.ends for d in demos])                                   # (n*m, 2, H, W, 3)
        times = [self._draw(d, k) for d in demos]
        images = np.concatenate([d.images[t] for d, t in zip(demos, times)])        # (n*m*k, H, W, 3)
        state = np.concatenate([d.state[t] for d, t in zip(demos, times)])
        action = np.concatenate([d.action[t] for d, t in zip(demos, times)])
        turns = np.zeros(n, int)         # hue turn per task, the same for all its demos and frames
        if cfg.task_hue_augment > 0:
            turns = np.where(rng.uniform(size=n) < cfg.task_hue_augment, rng.integers(1, 180, n), 0)
            ends = turn_hue(ends.reshape(-1, *ends.shape[2:]), np.repeat(turns, m * 2)).reshape(ends.shape)
            images = turn_hue(images, np.repeat(turns, m * k))
        frames = demo_frames(ends)
        frames = random_shift(frames, cfg.embedding_augment_shift, rng)
        images = random_shift(images, cfg.control_augment_shift, rng)
        h, w = images.shape[1:3]
        return {"frames": to_nchw(frames).reshape(n, m, 6, h, w),
                "images": to_nchw(images).reshape(n, m, k, 3, h, w),
                "state": self.norm.state(state).reshape(n, m, k, -1),
                "action": self.norm.action(action).reshape(n, m, k, -1),
                "control_weight": np.array([control_weight(d.meta, cfg) for d in demos], np.float32).reshape(n, m),
                **self._corrections(picked, turns, h, w)}

    def _draw(self, demo: Demo, k: int) -> np.ndarray:
        frames = self.frames[demo.key]
        return frames[self.rng.integers(0, len(frames), k)]

    def _draw_episodes(self, pool: list[Demo], c: int) -> np.ndarray:
        w = self.cfg.failed_correction_weight
        if w == 1.0:    # the draw every earlier run made, so they reproduce
            return self.rng.integers(0, len(pool), c)
        p = np.array([w if e.meta.get("success") is False else 1.0 for e in pool])   # unknown: not failed
        return self.rng.choice(len(pool), c, p=p / p.sum())

    def _corrections(self, picked: np.ndarray, turns: np.ndarray, h: int, w: int) -> dict[str, np.ndarray]:
        c = self.cfg.corrections_per_task
        have = np.array([i for i, task in enumerate(picked) if self.corrections[task]], int)
        if c < 1 or not have.size:
            return {}
        pools, turns = [self.corrections[picked[i]] for i in have], turns[have]
        rng = self.rng
        episodes = [pool[j] for pool in pools for j in self._draw_episodes(pool, c)]
        steps = [int(self._draw(e, 1)[0]) for e in episodes]
        images = np.stack([e.images[t] for e, t in zip(episodes, steps)])
        images = turn_hue(images, np.repeat(turns, c))
        images = random_shift(images, self.cfg.control_augment_shift, rng)
        n = len(pools)
        return {"correction_images": to_nchw(images).reshape(n, c, 3, h, w),
                "correction_state": self.norm.state(np.stack([e.state[t] for e, t in zip(episodes, steps)])
                                                    ).reshape(n, c, -1),
                "correction_action": self.norm.action(np.stack([e.action[t] for e, t in zip(episodes, steps)])
                                                      ).reshape(n, c, -1),
                "correction_task": np.repeat(have, c).reshape(n, c).astype(np.int64)}


@dataclass
class ValidationSet:
    """Held-out tasks scored the same way every time: the first S demos of a task (by key) make its
    sentence, its other demos are queries; control is scored on evenly spaced frames of the queries."""
    task_names: list[str]
    support_frames: np.ndarray   # (tasks, S, 6, H, W) float32
    query_frames: np.ndarray     # (queries, 6, H, W) float32
    query_task: np.ndarray       # (queries,) index into task_names
    images: np.ndarray           # (samples, 3, H, W) float32
    state: np.ndarray            # (samples, 14) normalised
    action: np.ndarray           # (samples, 3) normalised
    sample_query: np.ndarray     # (samples,) index of the query demo each sample comes from
    demos: list[Demo]            # every val demo, for the embedding plot

    @classmethod
    def build(cls, demos: list[Demo], cfg: DataConfig, norm: Normalisation) -> ValidationSet | None:
        """None when no task has enough demos for a support set and a query."""
        demos = [d for d in demos if not is_correction(d.meta)]
        tasks = {name: ds for name, ds in by_task(demos).items() if len(ds) > cfg.support}
        if len(tasks) < 2:
            return None
        support, queries, query_task = [], [], []
        images, state, action, sample_query = [], [], [], []
        for t, ds in enumerate(tasks.values()):
            support.append(demo_frames(np.stack([d.ends for d in ds[:cfg.support]])))
            for d in ds[cfg.support:]:
                if control_weight(d.meta, cfg) > 0:    # control is scored on the actions it learns from
                    steps = np.unique(np.linspace(0, len(d.images) - 1, cfg.val_timesteps_per_demo).round().astype(int))
                    sample_query += [len(queries)] * len(steps)
                    images.append(d.images[steps]), state.append(d.state[steps]), action.append(d.action[steps])
                queries.append(demo_frames(d.ends))
                query_task.append(t)
        if not images:
            raise ValueError("no val demo has a control weight above 0 (data.control_weights)")
        return cls(list(tasks), to_nchw(np.stack(support)), to_nchw(np.stack(queries)), np.array(query_task),
                   to_nchw(np.concatenate(images)), norm.state(np.concatenate(state)),
                   norm.action(np.concatenate(action)), np.array(sample_query), demos)


def combined_summary(summaries: list[dict]) -> dict:
    """One data_summary of the shares of tasks that processes training together hold."""
    ranges = [s["demos_per_task"] for s in summaries if s["demos_per_task"]]
    return {"demos": sum(s["demos"] for s in summaries), "tasks": sum(s["tasks"] for s in summaries),
            "frames_in_memory": sum(s["frames_in_memory"] for s in summaries),
            "demos_per_task": {"min": min(r["min"] for r in ranges), "max": max(r["max"] for r in ranges)}
            if ranges else None}


def data_summary(demos: list[Demo]) -> dict:
    tasks = by_task(demos)
    return {"demos": len(demos), "tasks": len(tasks), "frames_in_memory": int(sum(len(d.images) for d in demos)),
            "demos_per_task": {"min": min(map(len, tasks.values())), "max": max(map(len, tasks.values()))}
            if tasks else None}
