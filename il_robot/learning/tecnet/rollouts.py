"""Closed-loop validation: the torch model pushes in the simulator, conditioned on val demos.

The control loss on recorded frames says little about pushing: small errors compound
once the policy's own actions choose the next frame. Rollouts on val tasks (never
trained on) measure what the model is for, and pick the checkpoint to export.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from il_robot.learning.tecnet import data
from il_robot.learning.tecnet.model import TecNet, sentence_from, state_layout
from il_robot.policies.base import Observation, Policy
from il_robot.policies.tecnet_state import state_vector

ROLLOUT_SEED = 500   # episode seeds ROLLOUT_SEED + i: placements the demos never had


class TorchTecNetPolicy(Policy):
    """The training-time model as a policy: same preprocessing as the exported runtime policy."""
    needs_image = True

    def __init__(self, model: TecNet, norm: data.Normalisation, sentence: torch.Tensor, device: torch.device):
        self.model, self.norm, self.sentence, self.device = model, norm, sentence.reshape(1, -1), device

    def reset(self, context: dict) -> None:
        pass

    @torch.no_grad()
    def act(self, obs: Observation) -> np.ndarray:
        image = torch.from_numpy(data.to_nchw(obs.image[None])).to(self.device)
        state = self.norm.state(state_vector(state_layout(self.model.cfg), obs.q, obs.qd, obs.tip)[None])
        out = self.model.control(image, self.sentence, torch.from_numpy(state).to(self.device))
        return out.cpu().numpy()[0] * self.norm.action_std + self.norm.action_mean


def conditioning_demos(demos: list[data.Demo], episodes: int) -> list[data.Demo]:
    """The conditioning demo of each episode: each val task's first demo (by key), task after task; past the
    number of tasks they come round again (with new placements: each episode has its own seed)."""
    firsts = [task[0] for task in data.by_task(demos).values()]
    return [firsts[i % len(firsts)] for i in range(episodes)] if firsts else []


@torch.no_grad()
def rollout_success(model: TecNet, norm: data.Normalisation, demos: list[data.Demo], episodes: int,
                    device: torch.device, duration: float = 10.0) -> dict[str, float]:
    """Success rate and median final distance (m) of one episode per val task, 1-shot."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    from il_robot.rollout import InProcessStack
    from il_robot.sim.tasks import make_task
    from il_robot.sim.world import PushingWorld

    model.eval()
    world, successes, distances = None, [], []
    for i, demo in enumerate(conditioning_demos(demos, episodes)):
        task_info = demo.meta["task"]
        task = make_task(task_info["task_set"], int(task_info["index"]))
        if world is None:
            world = PushingWorld(task)
        else:
            world.use_task(task)
        frames = torch.from_numpy(data.to_nchw(data.demo_frames(demo.ends[None]))).to(device)
        sentence = sentence_from(model.embedding(frames)[None])
        result = InProcessStack(world).run_episode(TorchTecNetPolicy(model, norm, sentence, device),
                                                   ROLLOUT_SEED + i, duration)
        successes.append(result.success)
        distances.append(result.final_distance)
    if world is not None:
        world.close()
    model.train()
    if not successes:
        return {}
    return {"val_success_rate": float(np.mean(successes)), "val_final_distance_m": float(np.median(distances))}
