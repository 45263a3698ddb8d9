"""il-robot bench precision: how exactly must a policy know where the target is?

The scripted expert pushes with the simulator's object poses. Here it sees the
target's position offset by a fixed distance in a random direction, as a learned
policy that mislocates the object by that much would. Its success rate per offset
is the localisation budget a policy from pixels has to meet.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
from tqdm import tqdm

from il_robot.policies.base import Observation
from il_robot.policies.scripted import ScriptedPusher

SEED_BASE = 900   # placements, offset directions: the same for every offset, so rows compare


def add_arguments(p) -> None:
    g = p.add_argument_group("precision (il-robot bench precision)")
    g.add_argument("--offsets", default="0,1,2,3",
                   help="target position offsets the expert sees, cm, comma-separated (default 0,1,2,3)")
    g.add_argument("--precision-episodes", type=int, default=20, help="episodes per offset (default 20)")


class MislocatingExpert(ScriptedPusher):
    """The scripted expert, seeing the target `offset` (xy, m) away from where it is."""

    def __init__(self, offset: np.ndarray):
        super().__init__()
        self.offset = np.asarray(offset, float)

    def act(self, obs: Observation) -> np.ndarray:
        objects = dict(obs.objects)
        if "target" in objects:
            target = np.array(objects["target"], float)
            target[:2] += self.offset
            objects["target"] = target
        return super().act(dataclasses.replace(obs, objects=objects))


def bench_precision(offsets_cm: list[float], episodes: int, task_set: str = "train") -> dict:
    os.environ.setdefault("MUJOCO_GL", "egl")
    from il_robot.rollout import InProcessStack
    from il_robot.sim.tasks import make_task
    from il_robot.sim.world import PushingWorld

    angles = np.random.default_rng(SEED_BASE).uniform(0.0, 2 * np.pi, episodes)
    world, rows = None, []
    with tqdm(total=len(offsets_cm) * episodes, desc="precision", unit="episode") as bar:
        for cm in offsets_cm:
            successes, distances = [], []
            for i in range(episodes):
                task = make_task(task_set, i)
                if world is None:
                    world = PushingWorld(task)
                else:
                    world.use_task(task)
                offset = cm / 100.0 * np.array([np.cos(angles[i]), np.sin(angles[i])])
                result = InProcessStack(world).run_episode(MislocatingExpert(offset), SEED_BASE + i)
                successes.append(result.success)
                distances.append(result.final_distance)
                bar.update()
            rows.append({"offset_cm": cm, "episodes": episodes, "success_rate": float(np.mean(successes)),
                         "final_distance_median_m": float(np.median(distances))})
    if world is not None:
        world.close()
    return {"task_set": task_set, "rows": rows}


def print_precision(r: dict) -> None:
    for row in r["rows"]:
        print(f"expert seeing the target {row['offset_cm']:g} cm off: success {row['success_rate'] * 100:.0f}% "
              f"({row['episodes']} {r['task_set']} episodes), final distance median "
              f"{row['final_distance_median_m'] * 100:.1f} cm")
