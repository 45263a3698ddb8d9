"""The one interface every pushing policy implements, and the table where each registers its name.

A policy maps an observation to the tool tip's linear velocity (m/s, base
frame); the policy node turns that into desired joint motion. TecNet, PlaNet
and the scripted expert all plug in here the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from il_robot.rates import CONTROL_RATE_HZ


class PolicyLoadError(RuntimeError):
    """A policy could not be built: missing or broken model, wrong shapes, bad demo."""


@dataclass
class Observation:
    t: float                          # s, on the node's clock (sim time under simulation)
    q: np.ndarray                     # joint positions, controller order
    qd: np.ndarray                    # joint velocities
    tip: np.ndarray                   # tool tip position (3,), base frame
    image: np.ndarray | None = None   # (H, W, 3) uint8 RGB
    objects: dict[str, np.ndarray] = field(default_factory=dict)  # privileged sim state, if any
    command: np.ndarray | None = None  # operator's tip velocity (teleop), None when absent or stale


@dataclass
class PolicyConfig:
    """What a policy may need to build itself; filled from the policy node's parameters."""
    model_dir: str = ""
    demos: list[str] = field(default_factory=list)
    device: str = "cpu"
    rate_hz: float = CONTROL_RATE_HZ


class Policy(ABC):
    needs_image = False        # subscribes to the camera
    needs_privileged = False   # needs the simulator's object poses (scripted expert only)

    @abstractmethod
    def reset(self, context: dict) -> None:
        """Start an episode; context is the episode description (task, seed...) when known."""

    @abstractmethod
    def act(self, obs: Observation) -> np.ndarray:
        """Tip velocity (3,) in m/s for the next control period."""

    def check(self, obs: Observation) -> None:
        """Run once on a sample observation before going live (catches shape errors)."""
        action = np.asarray(self.act(obs))
        if action.shape != (3,) or not np.all(np.isfinite(action)):
            raise PolicyLoadError(f"policy returned {action!r}; expected 3 finite numbers")
        self.reset({})


REGISTRY: dict[str, Callable[[PolicyConfig], Policy]] = {}


def register(name: str):
    def wrap(factory: Callable[[PolicyConfig], Policy]):
        REGISTRY[name] = factory
        return factory
    return wrap
