"""Throttling decided before rclpy's logger is called.

rclpy's logger inspects the caller's frame (file system lookups included) on
every call, throttled or not: about 1 ms here. On the torque path a fault that
repeats with every message (absurd joint states at 500 Hz) would then cost more
than the control itself, just when the node must stay on time.
"""

from __future__ import annotations

import time


class LogThrottle:
    def __init__(self, period: float):
        self.period = period
        self._next: dict[str, float] = {}

    def ready(self, key: str) -> bool:
        """True at most once per period for each key (steady clock)."""
        now = time.monotonic()
        if now < self._next.get(key, 0.0):
            return False
        self._next[key] = now + self.period
        return True
