"""Simulated human operators: the pushing strategy as a person would drive it through teleop.

Nobody operates here, so demos of diverse quality (the VILD setting) come from
operators that see the scene late (reaction delay), over-correct (a gain above
one on a delayed view overshoots), pause (hesitation) and shake (smooth
noise). The skill level sets how much; the quality of each demo is known.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from il_robot.policies.base import Observation, Policy, PolicyConfig, register
from il_robot.policies.scripted import ScriptedPusher
from il_robot.rates import CONTROL_RATE_HZ


@dataclass(frozen=True)
class Skill:
    reaction_delay: float     # s between seeing the scene and acting on it
    gain: float               # >1: over-corrects, overshoots with the delay
    noise: float              # m/s, std of the smooth (Ornstein-Uhlenbeck) velocity noise
    hesitation_rate: float    # pauses started per second
    hesitation_time: float    # s, mean length of a pause
    push_speed: float         # m/s while pushing


SKILLS = {
    "expert": Skill(reaction_delay=0.10, gain=1.0, noise=0.004, hesitation_rate=0.0, hesitation_time=0.0,
                    push_speed=0.10),
    "okay": Skill(reaction_delay=0.25, gain=1.3, noise=0.02, hesitation_rate=0.2, hesitation_time=0.4,
                  push_speed=0.09),
    "poor": Skill(reaction_delay=0.40, gain=1.8, noise=0.04, hesitation_rate=0.4, hesitation_time=0.8,
                  push_speed=0.07),
}
NOISE_TIME_CONSTANT = 0.3  # s: hand tremor and drift, not white noise


def parse_operator(spec: str) -> str:
    """'sim:okay' -> 'okay'; raises ValueError naming the choices."""
    kind, _, skill = spec.partition(":")
    if kind != "sim" or skill not in SKILLS:
        raise ValueError(f"unknown simulated operator '{spec}'; choose from "
                         + ", ".join(f"sim:{s}" for s in SKILLS))
    return skill


class SimulatedOperator(Policy):
    """Drives the teleop interface (tip velocity) from the privileged scene, with human flaws."""

    needs_privileged = True

    def __init__(self, skill: str = "expert", seed: int = 0, rate_hz: float = CONTROL_RATE_HZ):
        if skill not in SKILLS:
            raise ValueError(f"unknown operator skill '{skill}'; choose from {', '.join(SKILLS)}")
        self.skill_name = skill
        self.skill = SKILLS[skill]
        self.seed = seed
        self.period = 1.0 / rate_hz
        self.strategy = ScriptedPusher(push_speed=self.skill.push_speed)
        self.reset({})

    @property
    def info(self) -> dict:
        return {"operator": f"sim:{self.skill_name}", "skill": self.skill_name, "seed": self.seed,
                **{k: getattr(self.skill, k) for k in Skill.__dataclass_fields__}}

    def reset(self, context: dict) -> None:
        self.rng = np.random.default_rng([self.seed, int(context.get("seed", 0)), 5])
        self.strategy.reset(context)
        delay_ticks = int(round(self.skill.reaction_delay / self.period))
        self._seen: deque[Observation] = deque(maxlen=delay_ticks + 1)
        self._noise = np.zeros(3)
        self._pause_left = 0.0

    def act(self, obs: Observation) -> np.ndarray:
        self._seen.append(obs)
        view = self._seen[0]   # what the operator has taken in by now: the scene `delay` ago
        # The arm's own motion since then is felt (the operator knows what they commanded),
        # so the tip is current; the objects are seen late.
        late = Observation(obs.t, obs.q, obs.qd, obs.tip, obs.image, view.objects)
        v = self.skill.gain * np.asarray(self.strategy.act(late), dtype=float)
        s = self.skill
        a = np.exp(-self.period / NOISE_TIME_CONSTANT)
        self._noise = a * self._noise + np.sqrt(1 - a * a) * s.noise * self.rng.standard_normal(3)
        if self._pause_left > 0:
            self._pause_left -= self.period
            return np.zeros(3)
        if s.hesitation_rate > 0 and self.rng.uniform() < s.hesitation_rate * self.period:
            self._pause_left = self.rng.exponential(s.hesitation_time)
        return v + self._noise


@register("sim_operator")
def _operator_policy(config: PolicyConfig) -> SimulatedOperator:
    """An operator as a policy (in-process generation, quick looks); skill from model_dir ('' = expert)."""
    return SimulatedOperator(parse_operator(f"sim:{config.model_dir or 'expert'}"), rate_hz=config.rate_hz)
