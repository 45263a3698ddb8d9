"""Joystick / gamepad / SpaceMouse (sensor_msgs/Joy) -> tool-tip velocity, with a deadman button.

Axis indices, signs and scales are parameters: devices differ (a SpaceMouse's
spacenav driver publishes 6 axes, a gamepad's joy driver sticks and triggers).
A takeover button (human-gated DAgger) takes the arm from a learned policy while
held; it also enables motion, so one button both takes over and steers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class JoyMapping:
    axes: tuple[int, int, int] = (1, 0, 4)          # x, y, z: left stick up/down, left/right, right stick
    scale: tuple[float, float, float] = (0.15, 0.15, 0.1)   # m/s at full deflection (sign flips an axis)
    deadman_button: int = 4                          # -1: no deadman
    deadzone: float = 0.1
    takeover_button: int = -1                        # held: the operator drives instead of the policy (-1: none;
                                                     # config/correct.yaml: 5, a gamepad's right bumper)

    def _pressed(self, button: int, buttons, what: str) -> bool:
        if button >= len(buttons):
            raise ValueError(f"{what} button {button} not on this device ({len(buttons)} buttons)")
        return bool(buttons[button])

    def takeover(self, buttons) -> bool:
        """Whether the takeover button is held (False without one); ValueError if the device lacks it."""
        return self.takeover_button >= 0 and self._pressed(self.takeover_button, buttons, "takeover")

    def velocity(self, axes, buttons) -> np.ndarray:
        """Zero unless the deadman or the takeover button is held; raises ValueError if the device lacks a
        mapped axis or button."""
        if self.deadman_button >= 0 and not self.takeover(buttons):
            if not self._pressed(self.deadman_button, buttons, "deadman"):
                return np.zeros(3)
        if max(self.axes) >= len(axes):
            raise ValueError(f"axis {max(self.axes)} not on this device ({len(axes)} axes)")
        raw = np.array([axes[i] for i in self.axes], dtype=float)
        raw = np.where(np.abs(raw) < self.deadzone, 0.0, raw)
        if not np.all(np.isfinite(raw)):
            raise ValueError(f"non-finite joystick axes {raw.tolist()}")
        return np.clip(raw, -1.0, 1.0) * np.asarray(self.scale, dtype=float)
