"""The whole control stack in one process, no ROS: policy -> resolved rate -> computed torque -> world.

The ROS graph runs the same pieces in separate nodes; this in-process twin is
for benchmarks, fast data generation and checking a policy without DDS.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from il_robot.policies.base import Observation, Policy
from il_robot.rates import CONTROL_RATE_HZ
from il_robot.robot.computed_torque import ComputedTorqueController
from il_robot.robot.model import RobotModel
from il_robot.robot.resolved_rate import ResolvedRateController
from il_robot.sim.tasks import GOAL_XY
from il_robot.sim.world import PushingWorld

DEFAULT_KP = 400.0
DEFAULT_KD = 40.0


@dataclass
class EpisodeResult:
    task: str
    seed: int
    success: bool
    final_distance: float
    duration: float
    frames: list = field(default_factory=list)


def privileged_objects(world: PushingWorld) -> dict[str, np.ndarray]:
    return {"target": world.object_pose("target")[:3], "distractor": world.object_pose("distractor")[:3],
            "goal": np.array([*GOAL_XY, 0.0])}


class InProcessStack:
    def __init__(self, world: PushingWorld, robot: RobotModel | None = None, kp=DEFAULT_KP, kd=DEFAULT_KD,
                 control_rate: float = CONTROL_RATE_HZ):
        self.world = world
        self.robot = robot or RobotModel.load()
        self.controller = ComputedTorqueController(self.robot, kp, kd)
        self.rr = ResolvedRateController(self.robot)
        self.control_period = 1.0 / control_rate

    def run_episode(self, policy: Policy, seed: int, duration: float = 10.0, render: bool = False,
                    record_frames: bool = False, observer=None) -> EpisodeResult:
        """One episode. `observer` (optional) sees what the ROS graph would publish, in the same
        order and at the same stamps: episode_start(info), joint_state(t, q, qd, effort) every
        step, frame(t, image, objects) and action(t, v, desired) every control tick,
        episode_end(result) -- the in-process recorder writes demo bags from these."""
        world = self.world
        context = world.reset(seed)
        context["episode_duration"] = duration
        if observer is not None:
            render = True
            observer.episode_start(context)
        policy.reset(context)
        self.rr.reset()
        steps_per_tick = max(1, round(self.control_period / world.timestep))
        n_steps = int(round(duration / world.timestep))
        frames = []
        for k in range(n_steps):
            now = world.clock
            q, qd = world.q, world.qd
            self.controller.set_joint_state(world.joint_names, q, qd, now)
            if observer is not None:
                observer.joint_state(now, q, qd, world.applied_torque)
            if k % steps_per_tick == 0:
                image = world.render() if (render or policy.needs_image) else None
                if record_frames and image is not None:
                    frames.append(image)
                tip, _ = self.robot.tip_pose(q)
                objects = privileged_objects(world)
                if observer is not None:
                    observer.frame(now, image, objects)
                obs = Observation(now, q, qd, tip, image, objects)
                v = np.asarray(policy.act(obs), dtype=float)
                dm = self.rr.step(q, v, now, self.control_period)
                if observer is not None:
                    observer.action(now, v, dm)
                self.controller.set_desired(world.joint_names, dm.positions, dm.velocities,
                                            dm.accelerations, now, now)
            tau, _ = self.controller.command(now)
            world.step(tau)
        out = world.outcome()
        result = EpisodeResult(world.task.name, seed, out.success, out.final_distance, world.episode_time, frames)
        if observer is not None:
            observer.joint_state(world.clock, world.q, world.qd, world.applied_torque)  # the final state
            observer.episode_end({"task": result.task, "seed": seed, "success": out.success,
                                  "final_distance": out.final_distance, "duration": result.duration})
        return result
