"""Computed-torque control with the watchdog rules of the torque loop.

tau = ID(q, qd, qdd_des + Kp (q_des - q) + Kd (qd_des - qd)), clipped to the
model's torque limits. ROS-free so the same logic runs in benchmarks and tests.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from il_robot.robot.joint_order import JointInputError, JointOrder
from il_robot.robot.model import RobotModel


class Mode(enum.Enum):
    TRACK = "track"  # following fresh desired motion
    HOLD = "hold"    # desired motion stale or absent: hold the pose, gravity compensated
    ZERO = "zero"    # joint states stale or absent: no state to act on, zero torque


@dataclass
class Reference:
    q: np.ndarray
    qd: np.ndarray
    qdd: np.ndarray
    t: float  # time at which q holds; the reference extrapolates q + qd (t' - t)


class ComputedTorqueController:
    """Joint-state and desired-motion inputs in, torques out, by name and with checks.

    Times are seconds on the caller's clock (sim time or wall time). Invalid
    input raises JointInputError and leaves the previous valid input in place.
    """

    def __init__(self, robot: RobotModel, kp, kd, joint_state_timeout: float = 0.05,
                 desired_timeout: float = 0.5, max_extrapolation: float = 0.1):
        self.robot = robot
        self.order = JointOrder(robot.joint_names)
        self.set_gains(kp, kd)
        self.joint_state_timeout = joint_state_timeout
        self.desired_timeout = desired_timeout
        self.max_extrapolation = max_extrapolation
        self.q: np.ndarray | None = None
        self.qd: np.ndarray | None = None
        self.state_time = -np.inf
        self.reference: Reference | None = None
        self.reference_received = -np.inf
        self.hold_q: np.ndarray | None = None

    def set_gains(self, kp, kd) -> None:
        n = self.robot.n
        kp = np.broadcast_to(np.asarray(kp, dtype=float), (n,)).copy()
        kd = np.broadcast_to(np.asarray(kd, dtype=float), (n,)).copy()
        if np.any(kp < 0) or np.any(kd < 0) or not np.all(np.isfinite(kp)) or not np.all(np.isfinite(kd)):
            raise ValueError("gains must be finite and non-negative")
        self.kp, self.kd = kp, kd

    def set_joint_state(self, names, position, velocity, t: float) -> None:
        q = self.order.reorder(names, position, "joint_states.position")
        qd = self.order.reorder(names, velocity, "joint_states.velocity")
        self.q, self.qd, self.state_time = q, qd, t

    def set_desired(self, names, position, velocity, acceleration, t_point: float, t_received: float) -> None:
        q = self.order.reorder(names, position, "desired positions")
        qd = self.order.reorder(names, velocity, "desired velocities", required=False)
        qdd = self.order.reorder(names, acceleration, "desired accelerations", required=False)
        zeros = np.zeros(self.robot.n)
        self.reference = Reference(q, zeros if qd is None else qd, zeros if qdd is None else qdd, t_point)
        self.reference_received = t_received
        self.hold_q = None

    def mode(self, now: float) -> Mode:
        if self.q is None or now - self.state_time > self.joint_state_timeout:
            return Mode.ZERO
        if self.reference is None or now - self.reference_received > self.desired_timeout:
            return Mode.HOLD
        return Mode.TRACK

    def reference_at(self, now: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ref = self.reference
        dt = float(np.clip(now - ref.t, 0.0, self.max_extrapolation))
        return ref.q + ref.qd * dt, ref.qd, ref.qdd

    def command(self, now: float) -> tuple[np.ndarray, Mode]:
        mode = self.mode(now)
        if mode is Mode.ZERO:
            self.hold_q = None
            return np.zeros(self.robot.n), mode
        q, qd = self.q, self.qd
        if mode is Mode.HOLD:
            if self.hold_q is None:
                self.hold_q = q.copy()
            q_des, qd_des, qdd_des = self.hold_q, np.zeros_like(q), np.zeros_like(q)
        else:
            q_des, qd_des, qdd_des = self.reference_at(now)
        qdd = qdd_des + self.kp * (q_des - q) + self.kd * (qd_des - qd)
        tau = self.robot.inverse_dynamics(q, qd, qdd)
        return self.robot.clip_torque(tau), mode


__all__ = ["ComputedTorqueController", "JointInputError", "Mode", "Reference"]
