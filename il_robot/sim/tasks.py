"""Pushing tasks: which object to push, and what both objects are like.

A task fixes the target and the distractor (shape, size, colour, mass,
friction); an episode draws their positions. Train and held-out sets come from
fixed seeds so anyone can regenerate them.
"""

from __future__ import annotations

import colorsys
from dataclasses import asdict, dataclass

import numpy as np

TASK_SET_SEEDS = {"train": 1000, "val": 2000, "heldout": 3000}
TASK_SET_SIZES = {"train": 600, "val": 20, "heldout": 50}
MAX_SEED = 2**63 - 1   # episode seeds: any non-negative int64 (a ROS integer parameter; numpy takes any)
SHAPES = ("box", "cylinder")

GOAL_XY = (0.55, 0.0)
GOAL_RADIUS = 0.05  # success: target centre within this of the goal centre (xy)

# Episode placement region for object centres (base frame, metres).
X_RANGE = (0.36, 0.68)
Y_RANGE = (-0.24, 0.24)
GOAL_DIST_RANGE = (0.13, 0.24)


@dataclass(frozen=True)
class ObjectSpec:
    shape: str          # "box" (half-extent) or "cylinder" (radius)
    size: float         # half-extent or radius, m
    height: float       # half-height, m
    rgba: tuple[float, float, float, float]
    mass: float         # kg
    friction: float     # sliding friction coefficient

    @property
    def radius(self) -> float:
        """Horizontal radius that bounds the object (box: half-diagonal)."""
        return self.size * (np.sqrt(2.0) if self.shape == "box" else 1.0)


@dataclass(frozen=True)
class Task:
    task_set: str
    index: int
    target: ObjectSpec
    distractor: ObjectSpec

    @property
    def name(self) -> str:
        return f"{self.task_set}/{self.index:03d}"

    def to_dict(self) -> dict:
        return {"name": self.name, "task_set": self.task_set, "index": self.index,
                "target": asdict(self.target), "distractor": asdict(self.distractor)}


def _draw_object(rng: np.random.Generator, hue: float) -> ObjectSpec:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, rng.uniform(0.65, 1.0), rng.uniform(0.6, 1.0))
    return ObjectSpec(
        shape=str(rng.choice(SHAPES)),
        size=float(rng.uniform(0.022, 0.032)),
        height=float(rng.uniform(0.02, 0.035)),
        rgba=(float(r), float(g), float(b), 1.0),
        mass=float(rng.uniform(0.1, 0.4)),
        friction=float(rng.uniform(0.3, 0.8)),
    )


def make_task(task_set: str, index: int) -> Task:
    """Task `index` of a set; the same (set, index) always gives the same task."""
    if task_set not in TASK_SET_SEEDS:
        raise ValueError(f"unknown task set '{task_set}'; choose from {sorted(TASK_SET_SEEDS)}")
    if not 0 <= index < TASK_SET_SIZES[task_set]:
        raise ValueError(f"task index {index} outside 0..{TASK_SET_SIZES[task_set] - 1} of '{task_set}'")
    rng = np.random.default_rng([TASK_SET_SEEDS[task_set], index])
    hue = rng.uniform()
    target = _draw_object(rng, hue)
    distractor = _draw_object(rng, hue + rng.uniform(0.25, 0.75))  # clearly another colour
    return Task(task_set, index, target, distractor)


def task_set(name: str, count: int | None = None) -> list[Task]:
    n = TASK_SET_SIZES[name] if count is None else count
    return [make_task(name, i) for i in range(n)]


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    s = np.clip(np.dot(p - a, ab) / max(np.dot(ab, ab), 1e-12), 0.0, 1.0)
    return float(np.linalg.norm(p - (a + s * ab)))


def draw_positions(task: Task, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Target and distractor xy for one episode: the distractor clear of the push path."""
    rng = np.random.default_rng([TASK_SET_SEEDS[task.task_set], task.index, seed, 7])
    goal = np.asarray(GOAL_XY)
    for _ in range(10_000):
        target = rng.uniform((X_RANGE[0], Y_RANGE[0]), (X_RANGE[1], Y_RANGE[1]))
        dist = np.linalg.norm(target - goal)
        if not GOAL_DIST_RANGE[0] <= dist <= GOAL_DIST_RANGE[1]:
            continue
        distractor = rng.uniform((X_RANGE[0], Y_RANGE[0]), (X_RANGE[1], Y_RANGE[1]))
        # Path from behind the target (where the pusher starts) to past the goal.
        direction = (goal - target) / dist
        behind = target - direction * 0.1
        clearance = task.distractor.radius + max(task.target.radius, 0.03) + 0.04
        if _segment_distance(distractor, behind, goal + direction * 0.05) < clearance:
            continue
        if np.linalg.norm(distractor - goal) < GOAL_RADIUS + task.distractor.radius + 0.03:
            continue
        return target, distractor
    raise RuntimeError(f"could not place objects for {task.name} seed {seed}")
