"""What a joint value may be before the controller acts on it: the sanity bounds, in one place.

A finite value can still be absurd (a velocity of 1e300 rad/s gives NaN
torques; a position of 1e308 rad is no pose). Values beyond these bounds are
input errors, not commands to clip: the message is rejected and logged.
"""

from __future__ import annotations

import numpy as np

from il_robot.robot.joint_order import JointInputError
from il_robot.robot.model import JointLimits

SANITY_FACTOR = 10.0          # a measured or desired speed / acceleration above 10x the limit is absurd
POSITION_MARGIN = 0.5         # rad beyond a joint's range: a measured or desired position is absurd
UNLIMITED_POSITION = 100.0    # rad: the sane range of a joint the model gives no range
UNKNOWN_RATE = 1e3            # rad/s and rad/s^2: the sane bound where the model gives no limit


def position_bounds(limits: JointLimits) -> tuple[np.ndarray, np.ndarray]:
    low = np.where(np.isfinite(limits.q_min), limits.q_min - POSITION_MARGIN, -UNLIMITED_POSITION)
    high = np.where(np.isfinite(limits.q_max), limits.q_max + POSITION_MARGIN, UNLIMITED_POSITION)
    return low, high


def rate_bound(limit: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(limit), SANITY_FACTOR * limit, UNKNOWN_RATE)


def check_within(values: np.ndarray, low: np.ndarray, high: np.ndarray, what: str, names) -> None:
    """Raise JointInputError naming the joints whose value lies outside [low, high]."""
    bad = (values < low) | (values > high)
    if bad.any():   # the method, not np.any: this runs on every joint state
        joints = {n: float(v) for n, v, b in zip(names, values, bad) if b}
        raise JointInputError(f"{what} outside the sane range (joint limits +- {POSITION_MARGIN} rad, "
                              f"{SANITY_FACTOR:g}x the speed/acceleration limits): {joints}")


class Plausibility:
    """The bounds of one arm, computed once."""

    def __init__(self, limits: JointLimits, names):
        self.names = list(names)
        self.q_low, self.q_high = position_bounds(limits)
        self.qd_bound = rate_bound(limits.qd_max)
        self.qdd_bound = rate_bound(limits.qdd_max)

    def check_state(self, q: np.ndarray, qd: np.ndarray, what: str) -> None:
        check_within(q, self.q_low, self.q_high, f"{what} position", self.names)
        check_within(qd, -self.qd_bound, self.qd_bound, f"{what} velocity", self.names)

    def check_acceleration(self, qdd: np.ndarray, what: str) -> None:
        check_within(qdd, -self.qdd_bound, self.qdd_bound, f"{what} acceleration", self.names)


# A measured pose that moved more than this between two states did not move: it was reset or
# re-homed (a simulator reset, a restarted driver). Twice the speed limit over the time between
# the states (at least 10 ms: states may be handled in a burst), plus 0.1 rad.
STATE_JUMP_SPEED_FACTOR = 2.0
STATE_JUMP_MIN_DT = 0.01
STATE_JUMP_MARGIN = 0.1


def pose_jump(q_before: np.ndarray, q_after: np.ndarray, dt: float, qd_max: np.ndarray) -> float:
    """The largest joint motion beyond what the limits allow in dt (rad), 0 when plausible."""
    allowed = STATE_JUMP_SPEED_FACTOR * qd_max * max(dt, STATE_JUMP_MIN_DT) + STATE_JUMP_MARGIN
    excess = np.abs(q_after - q_before) - allowed
    return max(0.0, float(excess.max()))
