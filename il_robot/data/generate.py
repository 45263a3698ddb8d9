"""Bulk demo generation: simulated operators x tasks x demos, in parallel processes, one bag each.

Each worker process owns a MuJoCo world (and its GL context) and runs the
in-process control stack; bags come out in the demo bag format, so generated
training data goes down the same dataset path as recorded human demos.
Re-running with the same arguments skips bags that already exist (resume).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

from il_robot.sim.tasks import TASK_SET_SIZES


@dataclass(frozen=True)
class DemoJob:
    task_set: str
    task_index: int
    demo: int
    skill: str
    seed: int
    path: str
    storage: str = "mcap"
    duration: float = 10.0


def plan_jobs(out_dir: str, task_set: str, num_tasks: int, demos_per_task: int, skills: list[str],
              seed: int = 0, storage: str = "mcap", duration: float = 10.0, first_task: int = 0) -> list[DemoJob]:
    """Demo k of a task uses skills[k mod len(skills)]; episode seeds are fixed by (seed, task, k)."""
    size = TASK_SET_SIZES[task_set]
    if not 1 <= num_tasks <= size - first_task:
        raise ValueError(f"--num-tasks must be in 1..{size - first_task} for '{task_set}' ({size} tasks)")
    if demos_per_task < 1:
        raise ValueError("--demos-per-task must be at least 1")
    jobs = []
    for i in range(first_task, first_task + num_tasks):
        for k in range(demos_per_task):
            skill = skills[k % len(skills)]
            name = f"{task_set}-{i:03d}_demo{k:02d}_{skill}"
            jobs.append(DemoJob(task_set, i, k, skill, seed * 1_000_000 + i * 1000 + k,
                                str(Path(out_dir) / name), storage, duration))
    return jobs


_WORLD = None


def record_demo(job: DemoJob) -> dict:
    """Run one episode with a simulated operator and write its bag (worker process)."""
    global _WORLD
    from il_robot.data.bag_writer import EpisodeBagWriter
    from il_robot.data.inprocess_recorder import BagEpisodeObserver
    from il_robot.rollout import InProcessStack
    from il_robot.sim.tasks import make_task
    from il_robot.sim.world import PushingWorld
    from il_robot.teleop.operators import SimulatedOperator

    t0 = time.monotonic()
    task = make_task(job.task_set, job.task_index)
    if _WORLD is None:
        _WORLD = PushingWorld(task)
    else:
        _WORLD.use_task(task)
    operator = SimulatedOperator(job.skill, seed=job.seed)
    with EpisodeBagWriter(job.path, job.storage) as writer:
        observer = BagEpisodeObserver(writer, operator.info, _WORLD.camera_intrinsics())
        result = InProcessStack(_WORLD).run_episode(operator, job.seed, job.duration, observer=observer)
        counts = dict(writer.counts)
    return {**asdict(job), "success": result.success, "final_distance": result.final_distance,
            "counts": counts, "wall_time": time.monotonic() - t0}


def generate(jobs: list[DemoJob], workers: int = 1, progress: bool = True) -> dict:
    """Run the jobs whose bag does not exist yet; a failed job leaves no bag and is reported."""
    from tqdm import tqdm

    todo = [j for j in jobs if not Path(j.path).exists()]
    for j in todo:
        Path(j.path).parent.mkdir(parents=True, exist_ok=True)
    done, failed = [], []
    t0 = time.monotonic()
    os.environ.setdefault("MUJOCO_GL", "egl")
    bar = tqdm(total=len(todo), desc="demos", unit="ep", disable=not progress)
    with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(record_demo, j): j for j in todo}
        try:
            for future in as_completed(futures):
                job = futures[future]
                try:
                    done.append(future.result())
                except Exception as err:  # noqa: BLE001 -- one bad episode must not sink the batch
                    failed.append({"path": job.path, "error": f"{type(err).__name__}: {err}"})
                bar.update()
                ok = [d["success"] for d in done]
                bar.set_postfix(success=f"{sum(ok) / max(1, len(ok)):.0%}", failed=len(failed))
        except KeyboardInterrupt:
            for f in futures:
                f.cancel()
            raise
    bar.close()
    return recording_summary(len(jobs), len(jobs) - len(todo), done, failed, time.monotonic() - t0,
                             [j.path for j in jobs])


def recording_summary(planned: int, skipped: int, done: list[dict], failed: list[dict], wall_time: float,
                      bags: list[str]) -> dict:
    """What `il-robot record` reports, however the demos were recorded: counts, success by skill, and
    the size on disk of `bags`."""
    by_skill: dict[str, dict] = {}
    for d in done:
        s = by_skill.setdefault(d["skill"], {"episodes": 0, "successes": 0})
        s["episodes"] += 1
        s["successes"] += int(d["success"])
    for s in by_skill.values():
        s["success_rate"] = s["successes"] / s["episodes"]
    size = sum(f.stat().st_size for b in bags if Path(b).exists() for f in Path(b).rglob("*") if f.is_file())
    return {"planned": planned, "skipped_existing": skipped, "recorded": len(done), "failed": failed,
            "wall_time": wall_time, "bytes_on_disk": size, "by_skill": by_skill, "episodes": done}
