"""A simulated person correcting a learned policy (human-gated DAgger): watch, take over, hand back.

Stands in for the operator at the joystick when no person is at hand (tests, the
recipe's DAgger stage): it reads the simulator's object poses the way a person
watches the scene, takes over when the push goes wrong and hands back once the
push is on track again. Its flaws while driving are a simulated operator's skill
(reaction delay, over-correction, pauses, tremor; il_robot.teleop.operators);
what it would do is the memoryless `continuous` pusher, whose labels a
memoryless learner can fit (docs/tecnet.md, what we tried).

It takes over when
- drift: the push drifts off its line: the tool, low behind the target, stays
  more than DRIFT target radii to the side of the target->goal line for
  DRIFT_TIME (the contact slides off and the target goes sideways; on 12 train
  tasks the scripted expert's push did so in 2, the step-8 TecNet's in 8),
- stalled: the tool moved less than STALL_DISTANCE in STALL_TIME with the
  target not home (the learned policy's usual failures: a hover near the target,
  a creep that runs out of time),
- away: the target is pushed AWAY further from the goal than it was when the
  policy last had the arm back,
- wrong object: the distractor moved more than WRONG_OBJECT since then;
and hands back once the tool has been pushing on the line behind the target for
ON_TRACK_TIME, or the target is home (within the pusher's own CLOSE_ENOUGH).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from il_robot.policies.base import Observation
from il_robot.policies.scripted import CLOSE_ENOUGH, CORRIDOR_Z, Z_PUSH, ScriptedPusher
from il_robot.robot.panda_like import TOOL_RADIUS
from il_robot.teleop.operators import SimulatedOperator

DRIFT = 0.8             # target radii: the pushing tool this far to the side of the target->goal line...
DRIFT_TIME = 0.5        # s: ... this long -> take over
ON_LINE = 0.4           # target radii: ... and within this of it, it pushes on track
AWAY = 0.02             # m: target this much further from the goal than at the last hand-back -> take over
WRONG_OBJECT = 0.02     # m: the distractor moved this far -> take over
STALL_DISTANCE = 0.03   # m the tool moves at least in STALL_TIME while the target is not home (2 cm/s)
STALL_TIME = 1.5        # s
REACH = 0.03            # m beyond contact (target radius + tool radius, centre to centre) where the tool pushes
HOME = CLOSE_ENOUGH     # m: target this near the goal: nothing to correct (success is 0.05). The pusher it
                        # steers as stands still there: holding on would record "stand still" labels
ON_TRACK_TIME = 0.5     # s pushing in the corridor behind the target -> hand back
# The `continuous` labeller of il_robot.learning.dagger (LABELLER_MODES): no runtime import of learning/.
CORRECTING_PUSHER = {"arrive_radius": 0.02, "funnel_radius": 0.06, "continuous": True}


class SimulatedCorrector:
    """Per frame: whether it holds the takeover, and the tip velocity it commands."""

    def __init__(self, skill: str = "expert", seed: int = 0, rate_hz: float = 20.0):
        self.pusher = ScriptedPusher(**CORRECTING_PUSHER)
        self.operator = SimulatedOperator(skill, seed, rate_hz)
        self.operator.strategy = self.pusher   # what it would do, flaws aside (reset() below starts it)
        self.reset({})

    def reset(self, context: dict) -> None:
        self.operator.reset(context)
        self.holding = False
        self.reason: str | None = None
        self.takeovers: list[str] = []          # the reason of each takeover this episode
        self._anchor: dict[str, np.ndarray] | None = None
        self._tips: deque = deque()             # (t, tip xy z) over the last STALL_TIME
        self._on_track_since: float | None = None
        self._off_line_since: float | None = None

    def step(self, obs: Observation) -> tuple[bool, np.ndarray]:
        """(takeover held, commanded tip velocity: zero while the policy drives)."""
        v = np.asarray(self.operator.act(obs), dtype=float)   # every frame: its delayed view stays current
        objects = obs.objects
        if not all(k in objects for k in ("target", "distractor", "goal")):
            return self.holding, v if self.holding else np.zeros(3)
        target, goal = np.asarray(objects["target"]), np.asarray(objects["goal"])
        if self._anchor is None:
            self._hand_back(objects)
        self._tips.append((obs.t, np.asarray(obs.tip, dtype=float)))
        while self._tips and self._tips[0][0] < obs.t - STALL_TIME - 1e-9:
            self._tips.popleft()
        home = float(np.linalg.norm(goal[:2] - target[:2])) < HOME
        pushing, lateral = self._pushing(obs)
        if not self.holding:
            self.reason = None if home else self._what_is_wrong(obs, objects, pushing, lateral)
            if self.reason is not None:
                self.holding, self._on_track_since = True, None
                self.takeovers.append(self.reason)
        elif home or self._on_track(obs.t, pushing and lateral <= ON_LINE * self.pusher.target_radius):
            self.holding = False
            self._hand_back(objects)
        return self.holding, v if self.holding else np.zeros(3)

    def _what_is_wrong(self, obs: Observation, objects: dict, pushing: bool, lateral: float) -> str | None:
        target, goal, distractor = (np.asarray(objects[k]) for k in ("target", "goal", "distractor"))
        anchor = self._anchor
        if not (pushing and lateral > DRIFT * self.pusher.target_radius):
            self._off_line_since = None
        elif self._off_line_since is None:
            self._off_line_since = obs.t
        if self._off_line_since is not None and obs.t - self._off_line_since >= DRIFT_TIME - 1e-6:
            return "drift"
        if np.linalg.norm(goal[:2] - target[:2]) > np.linalg.norm(goal[:2] - anchor["target"][:2]) + AWAY:
            return "away"
        if np.linalg.norm(distractor[:2] - anchor["distractor"][:2]) > WRONG_OBJECT:
            return "wrong object"
        t0, tip0 = self._tips[0]
        if obs.t - t0 >= STALL_TIME - 1e-6 and max(np.linalg.norm(tip - tip0) for _, tip in self._tips) < STALL_DISTANCE:
            return "stalled"
        return None

    def _pushing(self, obs: Observation) -> tuple[bool, float]:
        """Whether the tool is low behind the target, within reach of it along the target->goal line, and
        how far to the side of that line it is (m)."""
        target, goal, tip = np.asarray(obs.objects["target"]), np.asarray(obs.objects["goal"]), obs.tip
        d = goal[:2] - target[:2]
        d = d / max(float(np.linalg.norm(d)), 1e-9)
        rel = target[:2] - tip[:2]
        along = float(np.dot(rel, d))
        lateral = float(np.linalg.norm(rel - along * d))
        low = tip[2] < Z_PUSH + CORRIDOR_Z
        return low and 0.0 <= along <= self.pusher.target_radius + TOOL_RADIUS + REACH, lateral

    def _on_track(self, t: float, on_line: bool) -> bool:
        """Pushing on the target->goal line for ON_TRACK_TIME."""
        if not on_line:
            self._on_track_since = None
            return False
        if self._on_track_since is None:
            self._on_track_since = t
        return t - self._on_track_since >= ON_TRACK_TIME - 1e-6

    def _hand_back(self, objects: dict) -> None:
        """The push is on track from here: judge drift against where things are now."""
        self._anchor = {k: np.asarray(objects[k], dtype=float).copy() for k in ("target", "distractor")}
        self._tips.clear()
        self._on_track_since = self._off_line_since = None
