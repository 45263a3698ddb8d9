"""PlaNet's experience: episodes collected in the simulator, stored as npz, sampled as sequences.

PlaNet learns from its own interaction (Hafner et al. 2019, Algorithm 1): a few seed
episodes, then every C training steps an episode acted by the planner with exploration
noise, all appended to one growing dataset. Unlike the demo bags, these episodes carry
the privileged positions the reward is computed from (tip, target), and a task id.

One file per episode in a directory, `<set>-<task>_<source>_s<seed>.npz`, one row per
control frame (il_robot.rates.CONTROL_RATE_HZ, 20 Hz):
  image (T,64,64,3) uint8 RGB | q, qd (T,7) | action (T,3) tip velocity commanded after
  the frame (m/s) | t (T,) s | tip, target, distractor (T,3) m, base frame |
  meta: JSON string (task, task_set, task_index, seed, source, success, final_distance)
Seed sources: expert / okay / poor (the simulated operators), random (smooth random tip
velocities), redirect (the expert pushes the target to a random point instead of the goal) and
wrong (the expert pushes the distractor to the goal); `planner` episodes come from training
(--collect-every). numpy + MuJoCo
only; seed collection runs in spawned worker processes like `il-robot record`.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from il_robot.learning.planet.reward import RewardConfig, goal_distance, reward
from il_robot.data.episode_file import PARTIAL_SUFFIX, write_arrays
from il_robot.learning.augment import turn_hue
from il_robot.policies.base import Observation, Policy
from il_robot.rates import CONTROL_RATE_HZ
from il_robot.sim.tasks import GOAL_RADIUS, TASK_SET_SIZES

SOURCES = ("expert", "okay", "poor", "random", "redirect", "wrong", "planner")
ARRAYS = ("image", "q", "qd", "action", "t", "tip", "target", "distractor")


@dataclass
class CollectConfig:
    train_tasks: int = 20                 # train tasks 0..n-1 get seed episodes (and planner episodes)
    val_tasks: int = 4                    # val tasks 0..n-1: episodes for the open-loop prediction figures
    seed_episodes_per_task: int = 4       # per train task, sources cycled from seed_sources
    val_episodes_per_task: int = 1
    seed_sources: list[str] = field(default_factory=lambda: ["expert", "okay", "poor", "random"])
    episode_duration: float = 10.0        # s of sim time (the eval episode length)
    every: int = 100                      # training steps between planner episodes (C); 0 = seed data only
    episodes_per_collect: int = 1
    exploration_noise: float = 0.3        # planner episodes: Gaussian action noise, fraction of the bound
    workers: int = 1                      # processes for seed collection
    seed: int = 0

    def check(self) -> None:
        bad = sorted(set(self.seed_sources) - set(SOURCES[:-1]))
        if bad or not self.seed_sources:
            raise ValueError(f"collect.seed_sources {self.seed_sources}: choose from {list(SOURCES[:-1])}")
        if not 1 <= self.train_tasks <= TASK_SET_SIZES["train"] or not 0 <= self.val_tasks <= TASK_SET_SIZES["val"]:
            raise ValueError("collect.train_tasks / val_tasks outside the task sets")
        if self.seed_episodes_per_task < 1 or self.episode_duration <= 0:
            raise ValueError("collect.seed_episodes_per_task must be >= 1 and episode_duration > 0")


class RandomPusher(Policy):
    """Smooth random tip velocities (Ornstein-Uhlenbeck, 0.5 s time constant) inside +-bound.

    PlaNet seeds with uniform random actions; at 20 Hz those jitter in place, while a slowly
    drifting velocity covers the workspace and sometimes knocks the objects."""

    def __init__(self, bound: float, seed: int = 0, rate_hz: float = CONTROL_RATE_HZ, time_constant: float = 0.5):
        self.bound, self.seed = bound, seed
        self.decay = float(np.exp(-1.0 / (rate_hz * time_constant)))
        self.reset({})

    def reset(self, context: dict) -> None:
        self.rng = np.random.default_rng([self.seed, int(context.get("seed", 0)), 17])
        self.v = self.rng.uniform(-self.bound, self.bound, 3)

    def act(self, obs: Observation) -> np.ndarray:
        kick = np.sqrt(1 - self.decay ** 2) * self.bound * self.rng.standard_normal(3)
        self.v = np.clip(self.decay * self.v + kick, -self.bound, self.bound)
        return self.v.copy()


class RetargetedExpert(Policy):
    """The expert operator shown a rewritten scene, for contact the demos never show.

    'redirect': the goal moves to a random point of the placement region, so the target is pushed
    in every direction, not only towards the goal (a model that saw only those learns "the target
    drifts to the goal when the tip is low" rather than what a push does). 'wrong': target and
    distractor swap roles, so the other object is pushed home and the reward stays poor (which
    object the task names matters, and touching the wrong one moves only that one)."""

    needs_privileged = True

    def __init__(self, mode: str, seed: int = 0):
        from il_robot.teleop.operators import SimulatedOperator

        if mode not in ("redirect", "wrong"):
            raise ValueError(f"unknown retargeting '{mode}'")
        self.mode, self.seed = mode, seed
        self.operator = SimulatedOperator("expert", seed=seed)
        self.reset({})

    def reset(self, context: dict) -> None:
        from il_robot.sim.tasks import X_RANGE, Y_RANGE

        self.operator.reset(context)
        rng = np.random.default_rng([self.seed, int(context.get("seed", 0)), 23])
        self.goal = np.array([rng.uniform(*X_RANGE), rng.uniform(*Y_RANGE), 0.0])

    def act(self, obs: Observation) -> np.ndarray:
        objects = dict(obs.objects)
        if self.mode == "redirect":
            objects["goal"] = self.goal.copy()
        elif "target" in objects and "distractor" in objects:
            objects["target"], objects["distractor"] = objects["distractor"], objects["target"]
        return self.operator.act(replace(obs, objects=objects))


def seed_policy(source: str, seed: int, action_bound: float) -> Policy:
    from il_robot.teleop.operators import SimulatedOperator

    if source == "random":
        return RandomPusher(action_bound, seed)
    if source in ("redirect", "wrong"):
        return RetargetedExpert(source, seed)
    return SimulatedOperator(source, seed=seed)


class FrameRecorder:
    """InProcessStack observer: one row per control frame (image, joints, action, positions)."""

    def __init__(self, robot):
        self.robot = robot
        self.rows: dict[str, list] = {k: [] for k in ARRAYS}
        self._q = self._qd = None
        self.start = 0.0

    def episode_start(self, info: dict) -> None:
        self.start = float(info["start_time"])

    def joint_state(self, t, q, qd, effort) -> None:
        self._q, self._qd = np.array(q), np.array(qd)

    def frame(self, t, image, objects) -> None:
        r = self.rows
        r["image"].append(image)
        r["q"].append(self._q)
        r["qd"].append(self._qd)
        r["t"].append(t - self.start)
        r["tip"].append(self.robot.tip_pose(self._q)[0])
        r["target"].append(np.asarray(objects["target"][:3]))
        r["distractor"].append(np.asarray(objects["distractor"][:3]))

    def action(self, t, v, desired) -> None:
        self.rows["action"].append(np.asarray(v, dtype=float))

    def episode_end(self, result: dict) -> None:
        pass

    def arrays(self) -> dict[str, np.ndarray]:
        out = {k: np.asarray(v, dtype=np.float32) for k, v in self.rows.items() if k != "image"}
        out["image"] = np.stack(self.rows["image"]).astype(np.uint8)
        out["t"] = np.asarray(self.rows["t"], dtype=np.float64)
        return out


def run_episode(stack, policy: Policy, seed: int, duration: float, source: str) -> tuple[dict, dict]:
    """(arrays, meta) of one episode on the stack's world (its current task)."""
    recorder = FrameRecorder(stack.robot)
    result = stack.run_episode(policy, seed, duration, observer=recorder)
    task = stack.world.task
    meta = {"task": task.name, "task_set": task.task_set, "task_index": task.index, "seed": int(seed),
            "source": source, "success": bool(result.success), "final_distance": float(result.final_distance),
            "duration": float(result.duration), "task_spec": task.to_dict()}
    return recorder.arrays(), meta


def episode_name(meta: dict) -> str:
    return f"{meta['task_set']}-{meta['task_index']:03d}_{meta['source']}_s{meta['seed']}.npz"


def save_episode(directory: str | Path, arrays: dict, meta: dict) -> Path:
    """One file per episode, its meta inside (atomic: il_robot.data.episode_file). Not a dataset's schema:
    these rows carry the privileged positions the reward is computed from, and no dataset.json."""
    return write_arrays(Path(directory) / episode_name(meta),
                        {"meta": np.array(json.dumps(meta)), **{k: arrays[k] for k in ARRAYS}})


# -- seed collection (worker processes) -------------------------------------------------------------

@dataclass(frozen=True)
class SeedJob:
    task_set: str
    task_index: int
    source: str
    seed: int
    out_dir: str
    duration: float
    action_bound: float

    @property
    def path(self) -> Path:
        return Path(self.out_dir) / episode_name({"task_set": self.task_set, "task_index": self.task_index,
                                                  "source": self.source, "seed": self.seed})


def plan_seed_jobs(out_dir: str | Path, cfg: CollectConfig, action_bound: float) -> list[SeedJob]:
    jobs = []
    for task_set, tasks, per_task in (("train", cfg.train_tasks, cfg.seed_episodes_per_task),
                                      ("val", cfg.val_tasks, cfg.val_episodes_per_task)):
        for i in range(tasks):
            for k in range(per_task):
                source = cfg.seed_sources[k % len(cfg.seed_sources)]
                seed = cfg.seed * 1_000_000 + i * 1000 + k
                jobs.append(SeedJob(task_set, i, source, seed, str(out_dir), cfg.episode_duration, action_bound))
    return jobs


_STACK = None


def _stack_for(task_set: str, task_index: int):
    """The process's in-process stack (one MuJoCo world and GL context per process), on this task."""
    global _STACK
    from il_robot.rollout import InProcessStack
    from il_robot.sim.tasks import make_task
    from il_robot.sim.world import PushingWorld

    task = make_task(task_set, task_index)
    if _STACK is None:
        _STACK = InProcessStack(PushingWorld(task))
    else:
        _STACK.world.use_task(task)
    return _STACK


def collect_seed_episode(job: SeedJob) -> dict:
    t0 = time.monotonic()
    stack = _stack_for(job.task_set, job.task_index)
    arrays, meta = run_episode(stack, seed_policy(job.source, job.seed, job.action_bound), job.seed,
                               job.duration, job.source)
    save_episode(job.out_dir, arrays, meta)
    return {**meta, "wall_time": time.monotonic() - t0}


def collect_seed(out_dir: str | Path, cfg: CollectConfig, action_bound: float, progress: bool = True) -> dict:
    """Collect the seed episodes that are not in out_dir yet; returns counts and success by source."""
    from tqdm import tqdm

    cfg.check()
    todo = [j for j in plan_seed_jobs(out_dir, cfg, action_bound) if not j.path.exists()]
    os.environ.setdefault("MUJOCO_GL", "egl")
    done, failed = [], []
    bar = tqdm(total=len(todo), desc="seed episodes", unit="ep", disable=not progress or not todo)
    if cfg.workers <= 1:
        for job in todo:
            done.append(collect_seed_episode(job))
            bar.update()
    elif todo:
        with ProcessPoolExecutor(max_workers=cfg.workers, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(collect_seed_episode, j): j for j in todo}
            for future in as_completed(futures):
                try:
                    done.append(future.result())
                except Exception as err:  # noqa: BLE001 -- one bad episode must not sink the batch
                    failed.append({"path": str(futures[future].path), "error": f"{type(err).__name__}: {err}"})
                bar.update()
    bar.close()
    by_source: dict[str, dict] = {}
    for d in done:
        s = by_source.setdefault(d["source"], {"episodes": 0, "successes": 0})
        s["episodes"] += 1
        s["successes"] += int(d["success"])
    return {"collected": len(done), "failed": failed, "by_source": by_source}


# -- loading and sampling ---------------------------------------------------------------------------------

@dataclass
class EpisodeData:
    path: Path
    meta: dict
    arrays: dict[str, np.ndarray]

    @property
    def task(self) -> str:
        return self.meta["task"]

    @property
    def length(self) -> int:
        return len(self.arrays["image"])

    @property
    def final_distance(self) -> float:
        return float(goal_distance(self.arrays["target"][-1]))


def load_episode(path: str | Path) -> EpisodeData:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ARRAYS}
            meta = json.loads(str(z["meta"]))
    except (OSError, KeyError, ValueError) as err:
        raise ValueError(f"{path}: not a PlaNet episode ({type(err).__name__}: {err})") from None
    n = len(arrays["image"])
    if any(len(a) != n for a in arrays.values()) or arrays["image"].shape[1:] != (64, 64, 3):
        raise ValueError(f"{path}: arrays of different lengths or images not (T, 64, 64, 3)")
    return EpisodeData(path, meta, arrays)


def episode_files(directory: str | Path) -> list[Path]:
    return sorted(p for p in Path(directory).glob("*.npz") if not p.name.endswith(PARTIAL_SUFFIX))


def load_episodes(directory: str | Path, known: dict[Path, EpisodeData] | None = None) -> list[EpisodeData]:
    """Every episode in directory (sorted by name); `known` ones are reused, not read again."""
    known = known or {}
    return [known.get(p) or load_episode(p) for p in episode_files(directory)]


def data_summary(episodes: list[EpisodeData]) -> dict:
    by_source: dict[str, int] = {}
    for e in episodes:
        by_source[e.meta["source"]] = by_source.get(e.meta["source"], 0) + 1
    return {"episodes": len(episodes), "frames": int(sum(e.length for e in episodes)),
            "tasks": len({e.task for e in episodes}), "by_source": by_source,
            "successes": int(sum(bool(e.meta.get("success")) for e in episodes))}


def model_step_actions(action: np.ndarray, frames: np.ndarray, repeat: int, bound: float) -> np.ndarray:
    """The action that led to each frame index in `frames`: the mean of the (clipped) commands of the
    `repeat` control ticks before it; ticks before the episode start count as zero (the arm was still)."""
    clipped = np.clip(np.asarray(action, np.float64), -bound, bound)
    padded = np.concatenate([np.zeros((repeat, action.shape[1]), clipped.dtype), clipped])
    cumulative = np.concatenate([np.zeros((1, action.shape[1])), np.cumsum(padded, axis=0)])
    f = np.asarray(frames) + repeat   # index into padded
    return ((cumulative[f] - cumulative[f - repeat]) / repeat).astype(np.float32)


class TaskFrames:
    """The demo frame a sequence is conditioned on: the last frame of a successful episode of the
    same task (target at the goal), another episode than the sequence's own when one exists.

    Tasks with no success fall back to their episode that ended closest to the goal."""

    def __init__(self, episodes: list[EpisodeData]):
        self.by_task: dict[str, list[int]] = {}
        for i, e in enumerate(episodes):
            self.by_task.setdefault(e.task, [])
        for task in self.by_task:
            members = [i for i, e in enumerate(episodes) if e.task == task]
            good = [i for i in members if episodes[i].final_distance <= GOAL_RADIUS]
            self.by_task[task] = good or [min(members, key=lambda i: episodes[i].final_distance)]
        self.episodes = episodes

    def frame(self, index: int, rng: np.random.Generator) -> np.ndarray:
        choices = self.by_task[self.episodes[index].task]
        others = [i for i in choices if i != index] or choices
        return self.episodes[others[rng.integers(len(others))]].arrays["image"][-1]


class SequenceSampler:
    """Batches of chunks at model-step rate (one frame every `repeat` control ticks, random phase).

    A chunk of length L from an episode: frames o + (k0 + i) * repeat, i < L; for each, the action
    that led to it (mean command over the ticks before), the reward at that frame, and the episode's
    task frame. The RSSM starts every chunk from a zero state, as PlaNet does."""

    def __init__(self, episodes: list[EpisodeData], repeat: int, length: int, bound: float,
                 reward_cfg: RewardConfig, rng: np.random.Generator, hue_augment: float = 0.0):
        self.repeat, self.length, self.bound, self.reward_cfg, self.rng = repeat, length, bound, reward_cfg, rng
        self.hue_augment = hue_augment
        self.episodes = [e for e in episodes if (e.length - 1) // repeat + 1 >= length]
        if not self.episodes:
            raise ValueError(f"no episode has {length} model steps of {repeat} frames "
                             f"({(length - 1) * repeat + 1} frames needed)")
        self.task_frames = TaskFrames(self.episodes)
        self.rewards = [reward(e.arrays["tip"], e.arrays["target"], reward_cfg).astype(np.float32)
                        for e in self.episodes]
        self.joints = [np.concatenate([e.arrays["q"], e.arrays["qd"]], axis=1).astype(np.float32)
                       for e in self.episodes]
        self.positions = [episode_positions(e) for e in self.episodes]

    def chunk(self, index: int, frames: np.ndarray) -> dict[str, np.ndarray]:
        e = self.episodes[index]
        return {"image": e.arrays["image"][frames], "joints": self.joints[index][frames],
                "action": model_step_actions(e.arrays["action"], frames, self.repeat, self.bound),
                "reward": self.rewards[index][frames], "position": self.positions[index][frames]}

    def sample(self, batch: int) -> dict[str, np.ndarray]:
        out: dict[str, list] = {"image": [], "joints": [], "action": [], "reward": [], "position": [],
                                "task_frame": []}
        r, n = self.repeat, self.length
        for _ in range(batch):
            index = int(self.rng.integers(len(self.episodes)))
            e = self.episodes[index]
            phase = int(self.rng.integers(min(r, e.length - (n - 1) * r)))
            steps = (e.length - 1 - phase) // r + 1
            k0 = int(self.rng.integers(steps - n + 1))
            chunk = self.chunk(index, phase + (k0 + np.arange(n)) * r)
            task_frame = self.task_frames.frame(index, self.rng)
            if self.hue_augment and self.rng.uniform() < self.hue_augment:
                chunk["image"], task_frame = self._turned(chunk["image"], task_frame)
            for k, v in chunk.items():
                out[k].append(v)
            out["task_frame"].append(task_frame)
        return {k: np.stack(v) for k, v in out.items()}

    def sample_frames(self, batch: int) -> dict[str, np.ndarray]:
        """Single frames (no chunks): image (B, 64, 64, 3), its episode's task frame and positions (B, 9),
        hue-turned like chunks; for pretraining the encoder to find the objects."""
        out: dict[str, list] = {"image": [], "task_frame": [], "position": []}
        for _ in range(batch):
            index = int(self.rng.integers(len(self.episodes)))
            k = int(self.rng.integers(self.episodes[index].length))
            image, task_frame = self.episodes[index].arrays["image"][k:k + 1], self.task_frames.frame(index, self.rng)
            if self.hue_augment and self.rng.uniform() < self.hue_augment:
                image, task_frame = self._turned(image, task_frame)
            out["image"].append(image[0])
            out["task_frame"].append(task_frame)
            out["position"].append(self.positions[index][k])
        return {k: np.stack(v) for k, v in out.items()}

    def _turned(self, images: np.ndarray, task_frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The chunk's frames and its task frame with the objects' hue turned by one random angle: a new
        pair of object colours, the same task (the goal, table and arm keep theirs)."""
        stack = np.concatenate([images, task_frame[None]])
        turned = turn_hue(stack, np.full(len(stack), int(self.rng.integers(1, 180))))
        return turned[:-1], turned[-1]

    def reward_stats(self) -> tuple[float, float]:
        every = np.concatenate(self.rewards)
        return float(every.mean()), float(max(every.std(), 1e-3))

    def position_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std (floored at 1 cm) of the auxiliary position targets."""
        every = np.concatenate(self.positions)
        return every.mean(0), np.maximum(every.std(0), 1e-2)


def episode_positions(e: EpisodeData) -> np.ndarray:
    """(T, 9) tip, target, distractor positions (m): the auxiliary targets of the world model."""
    a = e.arrays
    return np.concatenate([a["tip"], a["target"], a["distractor"]], axis=1).astype(np.float32)


def split(episodes: list[EpisodeData], task_set: str) -> list[EpisodeData]:
    return [e for e in episodes if e.meta.get("task_set") == task_set]


def training_episodes(directory: str | Path, cfg: CollectConfig, action_bound: float,
                      progress: bool = True) -> list[EpisodeData]:
    """What a training run starts from: the seed episodes `directory` lacks are collected first, then every
    episode it holds is loaded; errors when a seed episode failed or no train-task episode is there."""
    seeded = collect_seed(directory, cfg, action_bound, progress)
    if seeded["collected"]:
        by_source = ", ".join(f"{k} {v['successes']}/{v['episodes']} successful"
                              for k, v in seeded["by_source"].items())
        print(f"seed episodes collected into {directory}: {seeded['collected']} ({by_source})", flush=True)
    if seeded["failed"]:
        raise RuntimeError(f"seed collection failed: {seeded['failed'][:3]}")
    episodes = load_episodes(directory)
    if not split(episodes, "train"):
        raise ValueError(f"{directory}: no train-task episodes")
    return episodes


def run_data_info(directory: str | Path, episodes: list[EpisodeData], action_repeat: int) -> dict:
    """What a checkpoint and a summary say about the data a run trained on."""
    return {"path": str(Path(directory).resolve()), "train": data_summary(split(episodes, "train")),
            "val": data_summary(split(episodes, "val")), "action_repeat": action_repeat,
            "control_rate_hz": CONTROL_RATE_HZ}


def main(argv: list[str] | None = None) -> int:
    """python -m il_robot.learning.planet.data --out DIR [...]: seed episodes without training."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m il_robot.learning.planet.data",
                                description="Collect PlaNet seed episodes (simulated operators and random "
                                            "actions) into DIR; existing episodes are kept.")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--train-tasks", type=int, default=CollectConfig.train_tasks)
    p.add_argument("--val-tasks", type=int, default=CollectConfig.val_tasks)
    p.add_argument("--per-task", type=int, default=CollectConfig.seed_episodes_per_task)
    p.add_argument("--sources", default=",".join(CollectConfig().seed_sources))
    p.add_argument("--duration", type=float, default=CollectConfig.episode_duration)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--action-bound", type=float, default=0.2, help="m/s per axis for random actions")
    args = p.parse_args(argv)
    cfg = CollectConfig(train_tasks=args.train_tasks, val_tasks=args.val_tasks,
                        seed_episodes_per_task=args.per_task, seed_sources=args.sources.split(","),
                        episode_duration=args.duration, workers=args.workers)
    summary = collect_seed(args.out, cfg, args.action_bound)
    print(json.dumps(summary, indent=2))
    print(json.dumps(data_summary(load_episodes(args.out)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
