"""DAgger in simulation: the learned policy drives, the scripted expert labels what it sees.

Behaviour cloning sees only the states the demonstrators visited; the learner's small errors take
it elsewhere, where it has no data, and the errors compound (Ross, Gordon & Bagnell, AISTATS 2011).
A corrective episode records the states the learner reaches, each with the expert's action there,
and joins the dataset as a control-only episode (skill "correction": never embedded, since its
last frame need not show the task done). The expert needs the simulator's object poses, so this
is a simulation tool; with a real arm the same role falls to a person correcting by teleop.
No torch here: the learner runs on its exported ONNX model, in parallel sim processes.
"""

from __future__ import annotations

import json
import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from il_robot.data.dataset import write_episode, write_meta
from il_robot.learning.tecnet.data import CORRECTION_SKILL
from il_robot.policies.base import Observation, Policy
from il_robot.policies.scripted import FUNNEL_RADIUS

SEED_BASE = 700_000   # episode seeds SEED_BASE + 1000 * round + task: placements no demo had
ARRIVE_RADIUS = 0.02  # m: the labelling expert descends within 2 cm of its approach point, not 8 mm: a
                      # learner that hovers 1 cm off would otherwise only ever be told to creep closer
LABEL_FUNNEL = FUNNEL_RADIUS  # and its travel height falls continuously over the last 4 cm (scripted.py), so
                              # "descend" grows with closeness instead of appearing at one radius


CONTINUOUS_FUNNEL = 0.06  # m: wider than the demos' 4 cm, so a 2 cm error in where the learner puts the approach
                          # point is a small height error; a tip crossing the target is still above it (11 cm)
LABELLER_MODES = {"phased": {}, "memoryless": {"memoryless": True}, "low-lift": {"low_lift": True},
                  "continuous": {"continuous": True, "funnel_radius": CONTINUOUS_FUNNEL}}
LABELLERS = tuple(LABELLER_MODES)   # the CLI keeps a copy (no heavy imports at parse time); a test pins them equal


@dataclass
class CorrectionJob:
    dataset: str
    model_dir: str
    task_index: int
    demo_file: str       # npz (relative to the dataset) of the demo the learner is conditioned on
    round: int
    beta: float          # probability that a tick executes the expert's action instead of the learner's
    labeller: str = "continuous"
    duration: float = 10.0
    observation_delay: float = 0.0   # s: the learner acts on the frame (and joint state) this old


MAX_OBSERVATION_DELAY = 0.5   # s, as the simulator's camera_delay
POOL_RETRIES = 2              # a simulation worker that dies (a crash in native code) takes its pool down: the
                              # episodes not done yet run again in new workers, up to this many times


class LearnerWithExpertLabels(Policy):
    """Executes the learner (or, with probability beta per tick, the expert); records the expert's action.

    With an observation delay the learner acts on the newest frame at least `delay` old, with the joint
    state of that frame's instant, as the policy node does when the camera lags; the expert labels the
    present scene. The recorded sample pairs what the learner saw with what is right when its command
    lands, so a fine-tune on such rounds learns to act ahead of a lagging camera."""
    needs_image = True
    needs_privileged = True

    def __init__(self, learner, expert: Policy, beta: float, rng: np.random.Generator, delay: float = 0.0):
        self.learner, self.expert, self.beta, self.rng, self.delay = learner, expert, beta, rng, delay
        self.frames: list[tuple] = []
        self.seen: deque[Observation] = deque()

    def reset(self, context: dict) -> None:
        self.expert.reset(context)
        self.frames.clear()
        self.seen.clear()

    def act(self, obs: Observation) -> np.ndarray:
        label = np.asarray(self.expert.act(obs), float)
        self.seen.append(obs)
        while len(self.seen) > 1 and self.seen[1].t <= obs.t - self.delay + 1e-6:
            self.seen.popleft()           # seen[0]: the newest frame old enough (the first, early on)
        sees = self.seen[0]
        executed = label if self.rng.uniform() < self.beta else self.learner(sees)
        self.frames.append((obs.t, sees.image, sees.q, sees.qd, label))
        return executed


def correction_key(round_: int, task_index: int) -> str:
    """The dataset key of a round's corrective episode of a task."""
    return f"correction-r{round_}-{task_index:03d}"


def conditioning_files(meta: dict) -> dict[int, str]:
    """Train task index -> the npz of its first demo (by key) in dataset.json: what the learner is
    conditioned on, as TecNet's validation conditions on a task's first demo."""
    files: dict[int, str] = {}
    for ep in sorted(meta["episodes"], key=lambda e: e["key"]):
        if ep["split"] == "train" and ep.get("skill") != CORRECTION_SKILL:
            files.setdefault(int(ep["task"]["index"]), ep["file"])
    return files


def make_labeller(name: str) -> Policy:
    """The labelling expert. `memoryless`: its action depends on the current scene alone, so the labels are a
    function of what a memoryless learner sees and it can fit them. `phased`: the demonstrating expert's
    phase machine (with the descent funnel), whose phase follows the learner's history: after a slip it says
    "up" where on arrival it says "down", and a learner fitting both hovers between them. `low-lift`: the
    phased expert whose lift after a slip ends at the funnel's height, where arriving says "down".
    `continuous`: memoryless, with a wider funnel and no switch to a fixed descent speed near the approach
    point, so the labels have no edge there for a learner that is a little off to hover on."""
    from il_robot.policies.scripted import ScriptedPusher

    if name not in LABELLER_MODES:
        raise ValueError(f"unknown labeller {name!r}; choose one of {', '.join(LABELLERS)}")
    return ScriptedPusher(**{"arrive_radius": ARRIVE_RADIUS, "funnel_radius": LABEL_FUNNEL, **LABELLER_MODES[name]})


@lru_cache(maxsize=2)
def _learner(model_dir: str):
    """One model per worker process, not one per episode."""
    from il_robot.policies.tecnet import TecNetModel

    return TecNetModel(model_dir)


def run_job(job: CorrectionJob) -> dict:
    """One corrective episode; writes its npz into the dataset and returns its dataset.json entry."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    from il_robot.rollout import InProcessStack
    from il_robot.sim.tasks import make_task
    from il_robot.sim.world import PushingWorld

    task = make_task("train", job.task_index)
    dataset = Path(job.dataset)
    model = _learner(job.model_dir)
    with np.load(dataset / job.demo_file, allow_pickle=False) as npz:
        first, last = npz["image"][0], npz["image"][-1]
    sentence = model.sentence([model.embed_frames(first, last)])
    seed = SEED_BASE + 1000 * job.round + job.task_index
    labeller = make_labeller(job.labeller)
    policy = LearnerWithExpertLabels(lambda obs: model.act(obs.image, obs.q, obs.qd, sentence, obs.tip),
                                     labeller, job.beta, np.random.default_rng(seed), job.observation_delay)
    world = PushingWorld(task)
    try:
        result = InProcessStack(world).run_episode(policy, seed, job.duration)
    finally:
        world.close()
    t, image, q, qd, action = (np.array(x) for x in zip(*policy.frames))
    arrays = {"image": image, "t": t - world.episode_start, "stamp": t, "q": q, "qd": qd, "action": action}
    return write_episode(dataset, correction_key(job.round, task.index), arrays, {
        "bag": None, "split": "train", "task": task.to_dict(),
        "task_name": task.name, "seed": seed, "episode_id": None, "operator": "dagger:scripted",
        "skill": CORRECTION_SKILL, "success": bool(result.success), "final_distance": float(result.final_distance),
        "duration": float(result.duration), "frames": int(len(t)), "held_actions": 0, "dropped_frames": 0,
        "dagger": {"round": job.round, "beta": job.beta, "labeller": job.labeller, "model_dir": str(job.model_dir),
                   "observation_delay": job.observation_delay}})


def _run_jobs(jobs: list[CorrectionJob], workers: int, entries: list[dict], bar) -> None:
    """Run the jobs in a fresh pool of spawned workers, appending each finished episode's entry."""
    with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=get_context("spawn")) as pool:
        for future in as_completed([pool.submit(run_job, job) for job in jobs]):
            entries.append(future.result())
            bar.update()
            bar.set_postfix(learner_success=f"{np.mean([e['success'] for e in entries]):.0%}")


def collect_corrections(dataset: str | Path, model_dir: str | Path, round_: int, beta: float = 0.0,
                        num_tasks: int | None = None, workers: int = 1, progress: bool = True,
                        labeller: str = "continuous", observation_delay: float = 0.0) -> dict:
    """Run one corrective episode per train task of the dataset (tasks 0..num_tasks-1 when given) and
    add them to it (dataset.json rewritten atomically at the end, also when the round stops early: the
    episodes done are kept; an episode of the same round and task is replaced)."""
    if not 0.0 <= beta <= 1.0:
        raise ValueError("beta must be within 0..1")
    if not 0.0 <= observation_delay <= MAX_OBSERVATION_DELAY:
        raise ValueError(f"observation delay must be within 0..{MAX_OBSERVATION_DELAY} s")
    make_labeller(labeller)     # an unknown name fails here, not in every worker
    dataset = Path(dataset)
    meta_path = dataset / "dataset.json"
    meta = json.loads(meta_path.read_text())
    demos = conditioning_files(meta)
    tasks = sorted(i for i in demos if num_tasks is None or i < num_tasks)
    jobs = [CorrectionJob(str(dataset), str(model_dir), i, demos[i], round_, beta, labeller,
                          observation_delay=observation_delay) for i in tasks]
    entries = []
    bar = tqdm(total=len(jobs), desc=f"dagger round {round_}", unit="ep", disable=not progress)
    try:
        for attempt in range(1 + POOL_RETRIES):
            done = {e["key"] for e in entries}
            todo = [job for job in jobs if correction_key(round_, job.task_index) not in done]
            if not todo:
                break
            try:
                _run_jobs(todo, workers, entries, bar)
            except BrokenProcessPool:
                if attempt == POOL_RETRIES:
                    raise RuntimeError(f"DAgger round {round_}: a simulation worker died {1 + POOL_RETRIES} "
                                       f"times; the {len(entries)} episodes done are kept in {dataset}") from None
                bar.write(f"a simulation worker died; the {len(jobs) - len(entries)} episodes not done run again "
                          "in new workers")
    finally:
        bar.close()
        if entries:     # whatever happens, the episodes written so far are in the dataset's index
            keys = {e["key"] for e in entries}
            meta["episodes"] = ([e for e in meta["episodes"] if e["key"] not in keys]
                                + sorted(entries, key=lambda e: e["key"]))
            write_meta(dataset, meta)
    return {"round": round_, "episodes": len(entries), "beta": beta, "observation_delay": observation_delay,
            "learner_success": float(np.mean([e["success"] for e in entries])) if entries else None,
            "frames": int(sum(e["frames"] for e in entries))}
