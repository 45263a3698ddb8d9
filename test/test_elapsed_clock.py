"""The jump-free timeline that every age in the torque loop is measured on (no ROS)."""

from il_robot.elapsed_clock import ElapsedClock


def test_follows_the_clock_and_takes_jumps_out():
    c = ElapsedClock(forward_tolerance=0.025)
    assert c.update(100.0, 0.0) == (0.0, None)
    elapsed, jump = c.update(100.01, 0.001)              # a coarse /clock step: elapsed time
    assert abs(elapsed - 0.01) < 1e-12 and jump is None
    elapsed, jump = c.update(101.0, 0.002)               # a reset moved the clock on: not elapsed
    assert abs(elapsed - 0.011) < 1e-12 and jump and not jump.backwards
    elapsed, jump = c.update(5.0, 0.003)                  # a restarted simulator: back
    assert abs(elapsed - 0.012) < 1e-12 and jump.backwards and jump.delta < -95
    elapsed, jump = c.update(5.5, 0.503)                  # a stall: the clock and steady time agree
    assert abs(elapsed - 0.512) < 1e-12 and jump is None


def test_a_frozen_clock_does_not_advance():
    """A paused (lockstep) or dead simulator: the timeline waits; the node's steady guard decides."""
    c = ElapsedClock(forward_tolerance=0.025)
    c.update(1.0, 0.0)
    assert c.update(1.0, 10.0) == (0.0, None)
