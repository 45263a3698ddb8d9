"""Tool-tip velocity -> desired joint motion (resolved-rate control).

The action space of every pushing policy and of teleoperation is the tip's
linear velocity (m/s, base frame); this turns it into the one-point joint
trajectory that the inverse-dynamics node tracks. Damped least squares on the
MuJoCo Jacobian keeps it sane near singularities; the tool is kept pointing
down, the posture drifts toward home in the null space, and joint limits,
joint speed limits and a workspace box are respected.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from il_robot.robot import panda_like
from il_robot.robot.model import RobotModel


@dataclass
class DesiredMotion:
    """One trajectory point: be at `positions` at time t, moving with `velocities`."""
    positions: np.ndarray
    velocities: np.ndarray
    accelerations: np.ndarray


@dataclass
class Workspace:
    lo: np.ndarray = field(default_factory=lambda: np.array([0.2, -0.45, 0.018]))
    hi: np.ndarray = field(default_factory=lambda: np.array([0.85, 0.45, 0.45]))


class ResolvedRateController:
    def __init__(self, robot: RobotModel, damping: float = 0.05, orientation_gain: float = 4.0,
                 nullspace_gain: float = 1.0, max_speed: float = 0.3, limit_margin: float = 0.05,
                 home_q=panda_like.HOME_Q, workspace: Workspace | None = None,
                 max_ref_error: float = 0.15):
        self.robot = robot
        self.damping = damping
        self.orientation_gain = orientation_gain
        self.nullspace_gain = nullspace_gain
        self.max_speed = max_speed
        self.home_q = np.asarray(home_q, dtype=float)
        self.workspace = workspace or Workspace()
        self.q_lo = robot.limits.q_min + limit_margin
        self.q_hi = robot.limits.q_max - limit_margin
        self.qd_max = np.asarray(panda_like.QD_MAX[: robot.n]) * 0.5
        self.max_ref_error = max_ref_error
        self.reset()

    def reset(self) -> None:
        """Forget the reference (new episode, or after a teleport)."""
        self._ref_q: np.ndarray | None = None
        self._ref_qd: np.ndarray | None = None
        self._ref_t = 0.0

    def reference_at(self, t: float) -> DesiredMotion | None:
        """The current reference extrapolated to time t (None before the first step)."""
        if self._ref_q is None:
            return None
        q = self._ref_q + self._ref_qd * max(0.0, t - self._ref_t)
        return DesiredMotion(q, self._ref_qd.copy(), np.zeros_like(q))

    def clip_velocity(self, q: np.ndarray, v: np.ndarray, dt: float) -> np.ndarray:
        """Limit speed and keep the tip inside the workspace box over the next dt."""
        v = np.asarray(v, dtype=float)
        speed = np.linalg.norm(v)
        if speed > self.max_speed:
            v = v * (self.max_speed / speed)
        tip, _ = self.robot.tip_pose(q)
        nxt = np.clip(tip + v * dt, self.workspace.lo, self.workspace.hi)
        return (nxt - tip) / dt

    def joint_velocity(self, q: np.ndarray, v: np.ndarray, dt: float) -> np.ndarray:
        _, rot = self.robot.tip_pose(q)
        jac = self.robot.tip_jacobian(q)
        # Tool z axis should point down (world -z): rotate it there, yaw is free.
        z_axis = rot[:, 2]
        omega = self.orientation_gain * np.cross(z_axis, np.array([0.0, 0.0, -1.0]))
        twist = np.concatenate([v, omega])
        jjt = jac @ jac.T + (self.damping ** 2) * np.eye(6)
        j_pinv = jac.T @ np.linalg.solve(jjt, np.eye(6))
        qd = j_pinv @ twist
        null = np.eye(self.robot.n) - j_pinv @ jac
        qd += null @ (self.nullspace_gain * (self.home_q - q))
        # Joint speed and position limits over the next dt.
        qd = np.clip(qd, -self.qd_max, self.qd_max)
        qd = np.clip(qd, (self.q_lo - q) / dt, (self.q_hi - q) / dt)
        return qd

    def step(self, q: np.ndarray, v: np.ndarray, t: float, dt: float) -> DesiredMotion:
        """Desired motion at time t for tip velocity v held over the next dt seconds.

        The reference integrates from the previous reference (so steady contact
        forces are not lost to re-anchoring on the lagging measured pose), and
        re-anchors on the measured pose when the two drift apart.
        """
        v = self.clip_velocity(q, v, dt)
        if self._ref_q is None:
            anchor = q.copy()
        else:
            anchor = self._ref_q + self._ref_qd * np.clip(t - self._ref_t, 0.0, dt)
            if np.max(np.abs(anchor - q)) > self.max_ref_error:
                anchor = q.copy()
        qd = self.joint_velocity(anchor, v, dt)
        self._ref_q, self._ref_qd, self._ref_t = anchor, qd, t
        return DesiredMotion(anchor.copy(), qd, np.zeros_like(qd))
