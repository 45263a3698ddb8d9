"""Scripted pushing expert: reads the simulator's object poses, pushes the target home.

Approach high, descend behind the target on the target->goal line, push with
feedback on the line (slowing while off it), and back off and re-approach when
the object slips off the tool, unless it is already close to the goal. Few
phase changes make demos that a policy can imitate from pixels. It needs
privileged state, so it runs in simulation only.

With `funnel_radius` the travel height falls linearly to the push height over
the last `funnel_radius` metres to the approach point, so "go down" is a
continuous function of the tip's position instead of a switch at a few
millimetres: what a labeller for a learner that arrives imprecisely needs (a
learner hovering 1 cm off is told to descend, not only to creep closer).

With `memoryless` the action is a function of the current observation alone (no
phases): push while the tip is in the pushing corridor behind the target,
otherwise travel to the approach point at the funnel height, moving sideways
only once the tip is near that height (so a low tip far from the approach point
rises first, as after a lift). A memoryless learner cannot see the phase of a
phased labeller: at the approach point, mid-height, the phased expert says "up"
(lifting after a slip) or "down" (descending), and a regressor averages the two
to a hover.

With `low_lift` (and a funnel) the phases stay, but a lift after a slip ends at
the funnel's height for where the tip is, not at the full travel height: near
the approach point "up" then gives way to "down" at the height where arriving
says "down", so the lift and the descent no longer disagree there.

With `continuous` (memoryless) the switch to a fixed descent speed within
`arrive_radius` becomes a blend over a second `arrive_radius`, and sideways
motion there goes on however low the tip is: every component of the action is a
continuous function of the tip's position near the approach point, and the only
place the field stands still is home. A learner that locates the approach point
a couple of centimetres off then fits a field with no edge to hover on.
"""

from __future__ import annotations

import enum

import numpy as np

from il_robot.policies.base import Observation, Policy, PolicyConfig, register
from il_robot.robot.panda_like import TOOL_RADIUS

Z_PUSH = 0.02     # tip height while pushing (m)
Z_HIGH = 0.12     # tip height when travelling over objects
PUSH_SPEED = 0.10
TRAVEL_GAIN = 3.0
DONE_RADIUS = 0.012
CLOSE_ENOUGH = 0.035   # contact lost this near the goal (success: 0.05): stop, no second approach
LATERAL_GAIN = 6.0     # sideways correction while pushing (1/s); 10 oscillates with a 0.1 s operator delay
LOST_LATERAL = 0.6     # contact counts as lost beyond this fraction of the target radius (+1 cm) off the line
ARRIVE_RADIUS = 0.008  # m: descend once this close (xy) to the point behind the target
DESCEND_SPEED = 0.12   # m/s, the least descent speed (a pure P-law crawls over its last centimetres)
FUNNEL_RADIUS = 0.04   # m: narrow enough that a tip crossing the target (a standoff, 3.5 cm or more, from the
                       # approach point) is still well above it
RISE_BAND = 0.04       # m: memoryless travel moves sideways at full speed only within this of its height
CORRIDOR_Z = 0.012     # m above Z_PUSH: a tip this low in the corridor behind the target is pushing


def _on_line(obj: np.ndarray, tip: np.ndarray, d: np.ndarray) -> tuple[float, float]:
    """Where the target is from the tip, along the push direction `d` and sideways of it (m)."""
    rel = obj - tip[:2]
    along = float(np.dot(rel, d))
    return along, float(np.linalg.norm(rel - along * d))


class Phase(enum.Enum):
    LIFT = "lift"
    TRAVEL = "travel"
    DESCEND = "descend"
    PUSH = "push"
    DONE = "done"


@register("scripted")
class ScriptedPusher(Policy):
    needs_privileged = True

    def __init__(self, config: PolicyConfig | None = None, push_speed: float = PUSH_SPEED,
                 arrive_radius: float = ARRIVE_RADIUS, funnel_radius: float | None = None,
                 memoryless: bool = False, low_lift: bool = False, continuous: bool = False):
        self.push_speed = push_speed
        self.low_lift = low_lift
        self.arrive_radius = arrive_radius
        self.funnel_radius = funnel_radius or (FUNNEL_RADIUS if memoryless else None)
        self.memoryless = memoryless or continuous
        self.continuous = continuous
        self.reset({})

    def reset(self, context: dict) -> None:
        self.phase = Phase.LIFT
        task = context.get("task") or {}
        target = task.get("target") or {}
        size = float(target.get("size", 0.03))
        self.target_radius = size * (np.sqrt(2.0) if target.get("shape") == "box" else 1.0)

    def _standoff(self) -> float:
        return self.target_radius + TOOL_RADIUS + 0.012

    def _travel_height(self, distance_xy: float) -> float:
        if not self.funnel_radius:
            return Z_HIGH
        return Z_PUSH + (Z_HIGH - Z_PUSH) * min(1.0, distance_xy / self.funnel_radius)

    def act(self, obs: Observation) -> np.ndarray:
        if "target" not in obs.objects or "goal" not in obs.objects:
            return np.zeros(3)
        obj = np.asarray(obs.objects["target"][:2])
        goal = np.asarray(obs.objects["goal"][:2])
        tip = obs.tip
        to_goal = goal - obj
        dist = np.linalg.norm(to_goal)
        if self.memoryless:
            return self._act_memoryless(obj, tip, to_goal, dist)
        if dist < DONE_RADIUS:
            self.phase = Phase.DONE
        elif self.phase is Phase.DONE and dist > CLOSE_ENOUGH + 0.01:
            self.phase = Phase.LIFT
        if self.phase is Phase.DONE:
            return np.zeros(3)
        d = to_goal / dist
        behind = obj - d * self._standoff()

        if self.phase is Phase.PUSH:
            along, lateral = _on_line(obj, tip, d)
            if along < 0.0 or lateral > LOST_LATERAL * self.target_radius + 0.01 or along > self._standoff() + 0.05:
                # Slipped off or overshot: go round again, unless it is home already.
                self.phase = Phase.DONE if dist < CLOSE_ENOUGH else Phase.LIFT
                if self.phase is Phase.DONE:
                    return np.zeros(3)
            else:
                return self._push(obj, tip, d, lateral)

        if self.phase is Phase.LIFT:
            top = self._travel_height(float(np.linalg.norm(behind - tip[:2]))) if self.low_lift else Z_HIGH
            if tip[2] >= top - 0.01:
                self.phase = Phase.TRAVEL
            else:
                return np.array([0.0, 0.0, 4.0 * (Z_HIGH - tip[2]) + 0.05])
        if self.phase is Phase.TRAVEL:
            err = np.array([*(behind - tip[:2]), self._travel_height(np.linalg.norm(behind - tip[:2])) - tip[2]])
            if np.linalg.norm(err[:2]) < self.arrive_radius:
                self.phase = Phase.DESCEND
            else:
                return TRAVEL_GAIN * err
        # DESCEND, at no less than DESCEND_SPEED
        err = np.array([*(behind - tip[:2]), Z_PUSH - tip[2]])
        if abs(err[2]) < 0.006:
            self.phase = Phase.PUSH
        v = TRAVEL_GAIN * err
        v[2] = -max(DESCEND_SPEED, -v[2]) if err[2] < -0.006 else v[2]
        return v

    def _push(self, obj: np.ndarray, tip: np.ndarray, d: np.ndarray, lateral: float) -> np.ndarray:
        contact = obj - d * (self.target_radius + TOOL_RADIUS)
        v_xy = LATERAL_GAIN * (contact - tip[:2])
        v_xy = v_xy - np.dot(v_xy, d) * d  # correct sideways only
        # Slow down while off the line, so the sideways correction wins before the object slips.
        speed = self.push_speed * max(0.2, 1.0 - lateral / self.target_radius)
        v_xy = v_xy + speed * d
        return np.array([*v_xy, 3.0 * (Z_PUSH - tip[2])])

    def _act_memoryless(self, obj: np.ndarray, tip: np.ndarray, to_goal: np.ndarray, dist: float) -> np.ndarray:
        if dist < DONE_RADIUS:
            return np.zeros(3)
        d = to_goal / dist
        along, lateral = _on_line(obj, tip, d)
        in_corridor = (tip[2] < Z_PUSH + CORRIDOR_Z and 0.0 <= along <= self._standoff() + 0.02
                       and lateral <= LOST_LATERAL * self.target_radius + 0.01)
        if in_corridor:
            return self._push(obj, tip, d, lateral)
        if dist < CLOSE_ENOUGH:
            return np.zeros(3)      # home, and not pushing: no second approach
        behind = obj - d * self._standoff()
        to_behind = behind - tip[:2]
        distance_xy = float(np.linalg.norm(to_behind))
        height = self._travel_height(distance_xy)
        v = TRAVEL_GAIN * np.array([*to_behind, height - tip[2]])
        sideways = float(np.clip(1.0 - (height - tip[2]) / RISE_BAND, 0.0, 1.0))   # below its height: rise first
        if self.continuous:
            # Within arrive_radius descend at DESCEND_SPEED or more, blending to the funnel's P-law over the next
            # arrive_radius, and move sideways there however low the tip is: the field has no edge and no point
            # but the goal where it stands still (the approach point may also lie just out of the arm's reach).
            near = float(np.clip(2.0 - distance_xy / self.arrive_radius, 0.0, 1.0))
            if tip[2] - Z_PUSH > 0.006:
                v[2] = (1.0 - near) * v[2] + near * min(v[2], -DESCEND_SPEED)
            v[:2] *= max(sideways, near)
            return v
        v[:2] *= sideways
        if distance_xy < self.arrive_radius and tip[2] - Z_PUSH > 0.006:
            v[2] = -max(DESCEND_SPEED, -v[2])     # a pure P-law crawls over its last centimetres
        return v
