"""Keyboard teleop in a terminal: keys -> tool-tip velocity (no ROS here; the node wraps it).

Terminals send a held key as repeats, so a direction stays on while repeats
keep coming and drops to zero `hold_time` after the last one. A terminal cannot
tell a held key from repeats reliably enough to gate the arm with, so the
takeover (human-gated DAgger) is a toggle: t takes the arm from the policy, t
again hands it back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DIRECTIONS = {
    "w": (1, 0, 0), "s": (-1, 0, 0),     # away from / towards the robot base (x)
    "a": (0, 1, 0), "d": (0, -1, 0),     # left / right (y)
    "r": (0, 0, 1), "f": (0, 0, -1),     # up / down (z)
}
HELP = """keyboard teleop (tool tip velocity, base frame):
  w/s  +x/-x (forward/back)    a/d  +y/-y (left/right)    r/f  up/down
  space  stop    +/-  faster/slower    t  take over from / hand back to a learned policy    q  quit"""


@dataclass
class KeyboardTeleop:
    speed: float = 0.08          # m/s
    hold_time: float = 0.6       # s a key stays on after its last repeat (covers the autorepeat delay)
    max_speed: float = 0.3

    def __post_init__(self):
        self._direction = np.zeros(3)
        self._last_key = -np.inf
        self.quit = False
        self.takeover = False

    def key(self, key: str, now: float) -> None:
        if key in DIRECTIONS:
            self._direction = np.array(DIRECTIONS[key], dtype=float)
            self._last_key = now
        elif key == " ":
            self._direction = np.zeros(3)
        elif key == "t":
            self.takeover = not self.takeover
            self._direction = np.zeros(3)   # a takeover starts (and a hand-back leaves) the operator still
        elif key in "+=":
            self.speed = min(self.max_speed, self.speed * 1.25)
        elif key in "-_":
            self.speed = max(0.005, self.speed / 1.25)
        elif key in ("q", "\x03"):
            self.quit = True
            self._direction = np.zeros(3)

    def velocity(self, now: float) -> np.ndarray:
        if now - self._last_key > self.hold_time:
            self._direction = np.zeros(3)
        return self.speed * self._direction
