"""Elapsed time on a node's clock, with the clock's jumps taken out.

Freshness ("how long since this message arrived") must not break when the
clock jumps: a restarted simulator or driver sends the clock back, a
simulator reset or a stepped system clock moves it on by more than time
really passed. Fed with readings of the node's clock (sim or system time)
and of a steady clock taken together, ElapsedClock keeps one timeline that
only moves forward: the node's clock where it runs, the steady clock across
a jump. ROS-free: readings are plain seconds.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Jump:
    """A discontinuity of the node's clock between two readings."""
    delta: float        # s the node's clock moved, minus what the steady clock says passed
    backwards: bool


class ElapsedClock:
    """`update(clock, steady)` -> the elapsed time now (s), and the jump seen, if any.

    A reading whose clock moved back is a backward jump. One whose clock moved on
    by more than `forward_tolerance` beyond the steady time that passed is a
    forward jump: a clock published in coarse steps (a simulator's /clock at
    100 Hz moves in 10 ms steps) stays under the tolerance, a reset does not.
    Across a jump the timeline advances by the steady time.
    """

    def __init__(self, forward_tolerance: float):
        self.forward_tolerance = forward_tolerance
        self._clock: float | None = None
        self._steady = 0.0
        self.elapsed = 0.0

    def update(self, clock: float, steady: float) -> tuple[float, Jump | None]:
        if self._clock is None:
            self._clock, self._steady = clock, steady
            return self.elapsed, None
        d_clock, d_steady = clock - self._clock, max(0.0, steady - self._steady)
        jump = None
        if d_clock < 0.0:
            jump = Jump(d_clock - d_steady, backwards=True)
            self.elapsed += d_steady
        elif d_clock > d_steady + self.forward_tolerance:
            jump = Jump(d_clock - d_steady, backwards=False)
            self.elapsed += d_steady
        else:
            self.elapsed += d_clock
        self._clock, self._steady = clock, steady
        return self.elapsed, jump
