"""The planner acting in the simulator on a world model being trained (either kind): the planner episodes
that join the data (PlaNet's loop, Hafner et al. 2019, Algorithm 1) and the val-task planning of a run."""

from __future__ import annotations

import numpy as np

from il_robot.learning.planet import data
from il_robot.policies.base import Observation, Policy
from il_robot.policies.cem import CEMConfig
from il_robot.policies.planet import LatentMPC


class PlannerPolicy(Policy):
    """LatentMPC on a torch world model (either kind), for one task vector."""
    needs_image = True

    def __init__(self, mpc: LatentMPC, task: np.ndarray):
        self.mpc, self.task = mpc, task

    def reset(self, context: dict) -> None:
        self.mpc.reset()

    def act(self, obs: Observation) -> np.ndarray:
        return self.mpc.step(obs.image, np.concatenate([obs.q, obs.qd]), self.task)


def cached_stack(stack_cache: dict, task):
    """One in-process control stack per run (a MuJoCo world and its renderer), switched to `task`."""
    from il_robot.rollout import InProcessStack
    from il_robot.sim.world import PushingWorld

    if "stack" not in stack_cache:
        stack_cache["stack"] = InProcessStack(PushingWorld(task))
    stack = stack_cache["stack"]
    stack.world.use_task(task)
    return stack


def plan_episode(backend, task_vector: np.ndarray, task, planner: CEMConfig, bound: float, repeat: int,
                 noise: float, seed: int, duration: float, stack_cache: dict) -> tuple[dict, dict]:
    """(arrays, meta) of one episode the planner acts on `task` with the model behind `backend` (its task
    vector given), with Gaussian exploration noise (a fraction of `bound`), on the run's cached stack."""
    mpc = LatentMPC(backend, planner, bound, repeat, noise, seed)
    return data.run_episode(cached_stack(stack_cache, task), PlannerPolicy(mpc, task_vector), seed, duration,
                            "planner")
