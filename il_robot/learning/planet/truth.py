"""The "true dynamics" upper bound: the same CEM planner, scoring plans on copies of the MuJoCo world.

PlaNet reports, next to the learned model, CEM planning with the simulator itself as the
model: what planning can reach when the model is perfect. Here each candidate sequence is
played out on a scratch copy of the world, through the same resolved-rate and
computed-torque control the episode uses, and scored with the training reward
(il_robot.learning.planet.reward). That is thousands of physics steps per candidate, so
J, H and I are reduced and it runs offline (`il-robot bench planet --episodes`), far from
control rate. `torque_every` > 1 holds each torque command over several physics steps in
the rollouts only (a 100 Hz torque loop at 5): faster, slightly less exact.
numpy + MuJoCo only.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import mujoco
import numpy as np

from il_robot.learning.planet.reward import RewardConfig, reward
from il_robot.policies.base import Observation, Policy
from il_robot.policies.cem import CEMConfig, CEMPlanner

STATE_SPEC = mujoco.mjtState.mjSTATE_INTEGRATION


@dataclass(frozen=True)
class TruthConfig:
    horizon: int = 6            # model steps (of action_repeat control ticks) per candidate
    candidates: int = 24
    top_k: int = 4
    iterations: int = 3
    action_repeat: int = 4
    action_bound: float = 0.2   # m/s per axis, as the learned planner
    torque_every: int = 5       # physics steps per torque command inside rollouts (1 = exactly the stack's)
    seed: int = 0

    @property
    def cem(self) -> CEMConfig:
        return CEMConfig(self.horizon, self.candidates, self.top_k, self.iterations)


class TrueDynamicsPlanner(Policy):
    """CEM with the simulator as the model; must run inside `stack.run_episode` (it reads the stack's state)."""
    needs_privileged = True

    def __init__(self, stack, cfg: TruthConfig = TruthConfig(), reward_cfg: RewardConfig = RewardConfig()):
        from il_robot.sim.world import PushingWorld

        self.stack, self.cfg, self.reward_cfg = stack, cfg, reward_cfg
        bound = cfg.action_bound * np.ones(3)
        self.planner = CEMPlanner(-bound, bound, cfg.cem, cfg.seed)
        self.scratch = PushingWorld(stack.world.task, timestep=stack.world.timestep)
        self.rollouts = 0
        self.reset({})

    def reset(self, context: dict) -> None:
        if self.scratch.task != self.stack.world.task:
            self.scratch.set_task(self.stack.world.task)
        self.planner.reset()
        self.action = np.zeros(3)
        self.tick = 0

    def act(self, obs: Observation) -> np.ndarray:
        if self.tick % self.cfg.action_repeat == 0:
            world = self.stack.world
            size = mujoco.mj_stateSize(world.model, STATE_SPEC)
            self._state = np.empty(size)
            mujoco.mj_getState(world.model, world.data, self._state, STATE_SPEC)
            self._now = obs.t
            self.action = self.planner.plan(self._evaluate)[0]
        self.tick += 1
        return self.action.copy()

    def _evaluate(self, candidates: np.ndarray) -> np.ndarray:
        return np.array([self._rollout(seq) for seq in candidates])

    def _rollout(self, actions: np.ndarray) -> float:
        """Return of one action sequence from the current state, on the scratch world."""
        stack, w = self.stack, self.scratch
        mujoco.mj_setState(w.model, w.data, self._state, STATE_SPEC)
        mujoco.mj_forward(w.model, w.data)
        rr, ctl = copy.copy(stack.rr), copy.copy(stack.controller)
        names, period = w.joint_names, stack.control_period
        steps = max(1, round(period / w.timestep))
        now, total = self._now, 0.0
        for a in actions:
            for _ in range(self.cfg.action_repeat):
                dm = rr.step(w.q, a, now, period)
                ctl.set_desired(names, dm.positions, dm.velocities, dm.accelerations, now, now)
                tau = None
                for k in range(steps):
                    if k % self.cfg.torque_every == 0:
                        ctl.set_joint_state(names, w.q, w.qd, now)
                        tau, _ = ctl.command(now)
                    w.step(tau)
                    now += w.timestep
            tip, _ = stack.robot.tip_pose(w.q)
            total += float(reward(tip, w.object_pose("target")[:3], self.reward_cfg))
        self.rollouts += 1
        return total

    def close(self) -> None:
        self.scratch.close()
