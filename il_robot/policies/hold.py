"""A policy that keeps the tool still: the safe placeholder and a swap target."""

import numpy as np

from il_robot.policies.base import Observation, Policy, PolicyConfig, register


@register("hold")
class HoldPolicy(Policy):
    def __init__(self, config: PolicyConfig | None = None):
        pass

    def reset(self, context: dict) -> None:
        pass

    def act(self, obs: Observation) -> np.ndarray:
        return np.zeros(3)
