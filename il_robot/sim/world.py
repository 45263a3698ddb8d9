"""The MuJoCo pushing world: step with joint torques, observe, render, score.

Not thread-safe. The renderer's GL context belongs to the thread that first
calls `render`; call `render` (and `close`) from that thread only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np

from il_robot.robot import panda_like
from il_robot.sim.camera import Camera
from il_robot.sim.scene import CAMERA_NAME, scene_mjcf
from il_robot.sim.tasks import GOAL_RADIUS, GOAL_XY, Task, draw_positions


@dataclass(frozen=True)
class Outcome:
    success: bool
    final_distance: float  # m, target centre to goal centre in xy


class PushingWorld:
    """One task at a time; episodes reset positions from a seed, time keeps running."""

    joint_names = panda_like.JOINT_NAMES

    def __init__(self, task: Task, image_size: tuple[int, int] = (64, 64), timestep: float = 0.002,
                 home_noise: float = 0.02):
        self.image_height, self.image_width = image_size
        self.timestep = timestep
        self.home_noise = home_noise
        self.clock = 0.0          # monotonic across episodes (this is what /clock publishes)
        self.episode_start = 0.0
        self.episode_seed = 0
        self._camera = Camera(*image_size)
        self.set_task(task)

    # -- task and episode -----------------------------------------------------
    def use_task(self, task: Task) -> None:
        """set_task, unless `task` is the current one: rebuilding the MuJoCo model is the slow part."""
        if task != self.task:
            self.set_task(task)

    def set_task(self, task: Task) -> None:
        self.task = task
        self.model = mujoco.MjModel.from_xml_string(scene_mjcf(task, self.timestep))
        self.data = mujoco.MjData(self.model)
        m = self.model
        jids = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n) for n in self.joint_names]
        self._qadr = m.jnt_qposadr[jids]
        self._vadr = m.jnt_dofadr[jids]
        self._obj_qadr = {n: m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, f"{n}_joint")]
                          for n in ("target", "distractor")}
        self.tau_max = np.array(panda_like.TAU_MAX)
        self.reset(self.episode_seed)

    def reset(self, seed: int) -> dict:
        """New episode of the current task; returns its description."""
        self.episode_seed = int(seed)
        mujoco.mj_resetData(self.model, self.data)
        rng = np.random.default_rng([seed, 11])
        q0 = np.array(panda_like.HOME_Q) + rng.uniform(-self.home_noise, self.home_noise, panda_like.N_JOINTS)
        self.data.qpos[self._qadr] = q0
        target_xy, distractor_xy = draw_positions(self.task, seed)
        for name, xy, spec in (("target", target_xy, self.task.target),
                               ("distractor", distractor_xy, self.task.distractor)):
            adr = self._obj_qadr[name]
            yaw = rng.uniform(-math.pi, math.pi)
            self.data.qpos[adr:adr + 7] = (*xy, spec.height, math.cos(yaw / 2), 0, 0, math.sin(yaw / 2))
        self.data.ctrl[:] = 0.0
        mujoco.mj_forward(self.model, self.data)
        self.episode_start = self.clock
        return {"task": self.task.to_dict(), "seed": self.episode_seed, "start_time": self.clock,
                "target_xy": target_xy.tolist(), "distractor_xy": distractor_xy.tolist(),
                "goal_xy": list(GOAL_XY), "q0": q0.tolist()}

    # -- physics --------------------------------------------------------------
    def step(self, tau: np.ndarray) -> None:
        """One physics step with joint torques (arm order), clipped to the motor limits."""
        self.data.ctrl[:7] = np.clip(tau, -self.tau_max, self.tau_max)
        mujoco.mj_step(self.model, self.data)
        self._steps += 1
        self._clock = self._clock_origin + self._steps * self.timestep

    def gravity_torque(self) -> np.ndarray:
        """Torque that holds the arm still right now (used while no controller answers)."""
        return self.data.qfrc_bias[self._vadr].copy()

    @property
    def clock(self) -> float:
        """Sim time (s): the time it was last set to plus whole steps, multiplied rather than
        summed, so that it stays on the step grid to the last bit however long it runs."""
        return self._clock

    @clock.setter
    def clock(self, value: float) -> None:
        self._clock = self._clock_origin = float(value)
        self._steps = 0

    @property
    def episode_time(self) -> float:
        return self.clock - self.episode_start

    @property
    def q(self) -> np.ndarray:
        return self.data.qpos[self._qadr].copy()

    @property
    def qd(self) -> np.ndarray:
        return self.data.qvel[self._vadr].copy()

    @property
    def applied_torque(self) -> np.ndarray:
        return self.data.actuator_force[:7].copy()

    def object_pose(self, name: str) -> np.ndarray:
        """(x, y, z, qw, qx, qy, qz) of 'target' or 'distractor'."""
        adr = self._obj_qadr[name]
        return self.data.qpos[adr:adr + 7].copy()

    def outcome(self) -> Outcome:
        dist = float(np.linalg.norm(self.object_pose("target")[:2] - np.asarray(GOAL_XY)))
        return Outcome(success=dist <= GOAL_RADIUS, final_distance=dist)

    # -- camera ---------------------------------------------------------------
    def render(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB from the front camera."""
        return self._camera.render(self.model, self.data)

    def snapshot(self) -> tuple[mujoco.MjModel, np.ndarray]:
        """(model, qpos copy): another thread's Camera.render_pose draws it while physics goes on."""
        return self.model, self.data.qpos.copy()

    def camera_intrinsics(self) -> tuple[float, float, float, float]:
        """fx, fy, cx, cy of the pinhole camera (square pixels, vertical fov from the model)."""
        cam = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, CAMERA_NAME)
        fovy = math.radians(self.model.cam_fovy[cam])
        f = 0.5 * self.image_height / math.tan(fovy / 2)
        return f, f, (self.image_width - 1) / 2, (self.image_height - 1) / 2

    def close(self) -> None:
        self._camera.close()
