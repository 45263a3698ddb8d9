"""The teleop 'policy': passes the operator's latest velocity command through, zero when it is stale.

The policy node then does what it does for any policy (resolved-rate control,
desired motion, the action label on /tip_velocity_command), so human demos and
learned policies share one action space and one path to the arm.
"""

from __future__ import annotations

import numpy as np

from il_robot.policies.base import Observation, Policy, PolicyConfig, register


@register("teleop")
class TeleopPolicy(Policy):
    def __init__(self, config: PolicyConfig | None = None):
        pass

    def reset(self, context: dict) -> None:
        pass

    def act(self, obs: Observation) -> np.ndarray:
        if obs.command is None:   # no operator, or the deadman released: hold still
            return np.zeros(3)
        return np.asarray(obs.command, dtype=float)
