"""Computed-torque control with the safety rules of the torque loop.

tau = ID(q, qd, qdd_des + Kp (q_des - q) + Kd (qd_des - qd)), with the
velocity the gains ask for kept within the joint speed limits, clipped to the
model's torque limits, and never non-finite. ROS-free so the same logic runs
in benchmarks, in-process rollouts and tests. The safe state of each fault is
in docs/safety.md.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from il_robot.robot.joint_order import JointInputError, JointOrder
from il_robot.robot.model import RobotModel
from il_robot.robot.plausibility import Plausibility, pose_jump

STALE_TOLERANCE = 1e-6          # s: a reference timed at the jump's own instant (same stamp) is the new one
VELOCITY_TARGET_FRACTION = 0.8   # the feedback aims at most for 80% of each speed limit (coupling overshoots)


class StaleReference(ValueError):
    """A desired motion computed from before the measured pose last jumped: it belongs to the time before."""


class Mode(enum.Enum):
    TRACK = "track"  # following fresh desired motion
    HOLD = "hold"    # desired motion stale, absent or dropped: hold the measured pose, gravity compensated
    STALE = "stale"  # joint states stale or absent: no state to act on (see float_command)


@dataclass
class Reference:
    q: np.ndarray
    qd: np.ndarray
    qdd: np.ndarray
    t: float  # time at which q holds; the reference extrapolates q + qd (t' - t)


class ComputedTorqueController:
    """Joint-state and desired-motion inputs in, torques out, by name and with checks.

    Times are seconds on one forward-running timeline of the caller's (the
    node's jump-free elapsed clock; sim time in-process). Invalid input raises
    JointInputError and leaves the previous valid input in place. Joint states
    may name joints beyond the model's (a gripper): those are ignored; a
    desired motion must name exactly the model's joints.
    """

    def __init__(self, robot: RobotModel, kp, kd, joint_state_timeout: float = 0.05,
                 desired_timeout: float = 0.5, max_extrapolation: float = 0.2):
        self.robot = robot
        self.order = JointOrder(robot.joint_names, allow_extra=True)
        self.desired_order = JointOrder(robot.joint_names)
        self.checks = Plausibility(robot.limits, robot.joint_names)
        self.v_limit = VELOCITY_TARGET_FRACTION * robot.limits.qd_max
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
        self.references_from = -np.inf   # desired motion timed before this (the last pose jump) is refused

    def set_gains(self, kp, kd) -> None:
        n = self.robot.n
        kp = np.broadcast_to(np.asarray(kp, dtype=float), (n,)).copy()
        kd = np.broadcast_to(np.asarray(kd, dtype=float), (n,)).copy()
        if np.any(kp < 0) or np.any(kd < 0) or not np.all(np.isfinite(kp)) or not np.all(np.isfinite(kd)):
            raise ValueError("gains must be finite and non-negative")
        self.kp, self.kd = kp, kd
        self._damped = kd > 0
        self._kp_over_kd = np.divide(kp, kd, out=np.zeros(n), where=self._damped)

    def set_joint_state(self, names, position, velocity, t: float, measured_at: float | None = None) -> str | None:
        """Take a measured state. Returns a description when the pose jumped (a reset or a
        restarted driver): the reference is then dropped, the hold re-anchored here, and desired
        motion timed before the state (`measured_at`, its own instant on this timeline when known,
        else t) is refused from then on: computed from the pose before the jump, it would drive the
        arm back there. (A policy answering a frame from just before a reset is one such.)"""
        q = self.order.reorder(names, position, "joint_states.position")
        qd = self.order.reorder(names, velocity, "joint_states.velocity")
        self.checks.check_state(q, qd, "joint_states")
        event = None
        if self.q is not None:
            dt = t - self.state_time
            jump = pose_jump(self.q, q, dt, self.robot.limits.qd_max)
            if jump > 0.0:
                event = (f"measured pose jumped (a joint moved {jump:.2f} rad more than its speed limit allows "
                         f"in {dt * 1e3:.0f} ms): reference dropped, holding the new pose")
                self.drop_reference()
                self.references_from = t if measured_at is None else measured_at
        self.q, self.qd, self.state_time = q, qd, t
        return event

    def set_desired(self, names, position, velocity, acceleration, t_point: float, t_received: float) -> None:
        """Take a one-point reference timed t_point. Raises JointInputError when malformed and
        StaleReference when timed before the last pose jump; the previous reference stays."""
        q = self.desired_order.reorder(names, position, "desired positions")
        qd = self.desired_order.reorder(names, velocity, "desired velocities", required=False)
        qdd = self.desired_order.reorder(names, acceleration, "desired accelerations", required=False)
        zeros = np.zeros(self.robot.n)
        qd = zeros if qd is None else qd
        qdd = zeros if qdd is None else qdd
        self.checks.check_state(q, qd, "desired")
        self.checks.check_acceleration(qdd, "desired")
        if t_point < self.references_from - STALE_TOLERANCE:
            raise StaleReference(f"timed {self.references_from - t_point:.3f} s before the measured pose jumped")
        q = np.clip(q, self.robot.limits.q_min, self.robot.limits.q_max)
        self.reference = Reference(q, qd, qdd, t_point)
        self.reference_received = t_received
        self.hold_q = None

    def drop_reference(self) -> None:
        """Forget the desired motion and the hold pose: the next command holds the measured pose."""
        self.reference = None
        self.reference_received = -np.inf
        self.hold_q = None

    def mode(self, now: float) -> Mode:
        if self.q is None or now - self.state_time > self.joint_state_timeout:
            return Mode.STALE
        if self.reference is None or now - self.reference_received > self.desired_timeout:
            return Mode.HOLD
        return Mode.TRACK

    def reference_at(self, now: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ref = self.reference
        dt = float(np.clip(now - ref.t, 0.0, self.max_extrapolation))
        q = np.clip(ref.q + ref.qd * dt, self.robot.limits.q_min, self.robot.limits.q_max)
        return q, ref.qd, ref.qdd

    def feedback(self, q_des, qd_des, qdd_des, q, qd) -> np.ndarray:
        """Joint accelerations of the PD law; where the velocity it aims for (qd_des + Kp/Kd e)
        exceeds the speed limit, it aims for the limit instead (and drops the feed-forward)."""
        e = q_des - q
        qdd = qdd_des + self.kp * e + self.kd * (qd_des - qd)
        v_target = qd_des + self._kp_over_kd * e
        over = self._damped & (np.abs(v_target) > self.v_limit)
        if over.any():
            limited = self.kd * (np.clip(v_target, -self.v_limit, self.v_limit) - qd)
            qdd = np.where(over, limited, qdd)
        return qdd

    def float_command(self) -> np.ndarray | None:
        """Gravity compensation of the last measured pose, no feedback: what is left applied when
        the states stop (a driver that keeps its last command keeps this, not a push to a target)."""
        if self.q is None:
            return None
        return self._checked(self.robot.inverse_dynamics(self.q, np.zeros(self.robot.n), np.zeros(self.robot.n)))

    def command(self, now: float) -> tuple[np.ndarray | None, Mode]:
        """Torques and the mode they came from; None when there is nothing safe to send (STALE,
        or a computation that came out non-finite)."""
        mode = self.mode(now)
        if mode is Mode.STALE:
            self.hold_q = None   # states that come back re-anchor the hold where the arm is then
            return None, mode
        q, qd = self.q, self.qd
        if mode is Mode.HOLD:
            if self.hold_q is None:
                self.hold_q = q.copy()
            q_des, qd_des, qdd_des = self.hold_q, np.zeros_like(q), np.zeros_like(q)
        else:
            q_des, qd_des, qdd_des = self.reference_at(now)
        tau = self.robot.inverse_dynamics(q, qd, self.feedback(q_des, qd_des, qdd_des, q, qd))
        return self._checked(tau), mode

    def _checked(self, tau: np.ndarray) -> np.ndarray | None:
        """Clipped to the torque limits; None if any entry is not finite (never clip inf to a limit)."""
        if not np.isfinite(tau).all():
            return None
        return self.robot.clip_torque(tau)


__all__ = ["ComputedTorqueController", "JointInputError", "Mode", "Reference", "StaleReference"]
