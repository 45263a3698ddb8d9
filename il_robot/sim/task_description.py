"""A pushing task in words ("push the red box to the goal"): the task string language-conditioned learners
(LeRobot's datasets, VLAs) expect, derived from the task spec that episodes carry."""

from __future__ import annotations

import colorsys

# Hue (degrees) where each colour name ends, in order; the tasks' colours are always saturated and bright
# (il_robot.sim.tasks._draw_object), so hue alone names them.
HUE_NAMES = ((15, "red"), (45, "orange"), (70, "yellow"), (160, "green"), (200, "cyan"), (250, "blue"),
             (290, "purple"), (335, "magenta"), (360, "red"))


def colour_name(rgba) -> str:
    """The everyday name of an object's colour (rgba in 0..1)."""
    hue, _, _ = colorsys.rgb_to_hsv(*(float(c) for c in rgba[:3]))
    degrees = hue * 360.0
    return next(name for end, name in HUE_NAMES if degrees < end or end == 360)


def describe_task(task: dict) -> str:
    """'push the <colour> <shape> to the goal' for a task dict (Task.to_dict(), as /sim/episode carries it)."""
    target = task["target"]
    return f"push the {colour_name(target['rgba'])} {target['shape']} to the goal"
