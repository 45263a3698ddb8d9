"""Joystick / gamepad / SpaceMouse (sensor_msgs/Joy) -> tool-tip velocity, with a deadman button.

Axis indices, signs and scales are parameters: devices differ (a SpaceMouse's
spacenav driver publishes 6 axes, a gamepad's joy driver sticks and triggers).
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

    def velocity(self, axes, buttons) -> np.ndarray:
        """Zero unless the deadman is held; raises ValueError if the device lacks a mapped axis."""
        if self.deadman_button >= 0:
            if self.deadman_button >= len(buttons):
                raise ValueError(f"deadman button {self.deadman_button} not on this device "
                                 f"({len(buttons)} buttons)")
            if not buttons[self.deadman_button]:
                return np.zeros(3)
        if max(self.axes) >= len(axes):
            raise ValueError(f"axis {max(self.axes)} not on this device ({len(axes)} axes)")
        raw = np.array([axes[i] for i in self.axes], dtype=float)
        raw = np.where(np.abs(raw) < self.deadzone, 0.0, raw)
        if not np.all(np.isfinite(raw)):
            raise ValueError(f"non-finite joystick axes {raw.tolist()}")
        return np.clip(raw, -1.0, 1.0) * np.asarray(self.scale, dtype=float)
