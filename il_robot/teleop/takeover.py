"""Who drives the arm while a learned policy runs: the policy, or an operator who has taken over.

Human-gated DAgger (HG-DAgger, Kelly et al., ICRA 2019): the policy drives, a
person watches and holds a takeover button (joystick) or toggles it (keyboard)
when it goes wrong; while they hold it their command drives, and those frames,
labelled with their command, are what the policy learns from next.

The operator's device says "held" or "released" with every message on
/teleop/takeover. Silence is neither: if the stream stops while the operator has
the arm (a cable pulled, a driver or link dead), handing the arm back to the
policy the operator was correcting is not safe, and guessing their command is
not either, so the arm holds still (LOST) until the device is heard again. No
ROS here: the policy node feeds it and asks it once per tick.
"""

from __future__ import annotations

import enum
import math

TAKEOVER_TIMEOUT = 0.5   # s (the node's clock, by arrival) without a takeover message while the operator drives


class Driver(enum.Enum):
    POLICY = "policy"        # the learned policy's action goes to the arm
    OPERATOR = "operator"    # the operator's command goes to the arm (and is recorded as a correction)
    LOST = "lost"            # the operator's device went silent mid-takeover: hold still


class TakeoverArbiter:
    """Takeover state from the operator's held/released messages and their arrival times."""

    def __init__(self, timeout: float = TAKEOVER_TIMEOUT):
        if not timeout > 0:
            raise ValueError(f"takeover timeout must be positive, got {timeout}")
        self.timeout = timeout
        self.driver = Driver.POLICY
        self._heard = -math.inf   # arrival time of the last takeover message
        self.takeovers = 0        # times the operator took the arm (segments begun)
        self.messages = 0         # takeover messages heard

    def heard(self, held: bool, now: float) -> Driver:
        """A takeover message arrived at `now`: held takes (or keeps) the arm, released hands it back."""
        self._heard = now
        self.messages += 1
        if held and self.driver is Driver.POLICY:   # (back from LOST: the same takeover, resumed)
            self.takeovers += 1
        self.driver = Driver.OPERATOR if held else Driver.POLICY
        return self.driver

    def driver_at(self, now: float) -> Driver:
        """Who drives at `now`. The operator's stream silent for `timeout` (or a clock gone back, which
        leaves its age unknown) while they drive -> LOST, which only a message from the device ends."""
        if self.driver is Driver.OPERATOR and not 0.0 <= now - self._heard <= self.timeout:
            self.driver = Driver.LOST
        return self.driver

    def silent_for(self, now: float) -> float:
        return now - self._heard
