"""Cross-entropy-method planner over action sequences (numpy only: runs where torch does not).

PlaNet's planner (Hafner et al., ICML 2019, sec. 3): sample J action sequences of
length H from a diagonal Gaussian, score all of them in one batch, refit the Gaussian
to the best K, repeat I times, act on the first step of the mean. Two departures from
the paper, both for a control loop that replans every model step:
  - warm start: the next call starts from this plan shifted by one step (the last step
    repeated), with the spread reset to `init_std`; the paper restarts from N(0, 1);
  - actions live in a box [low, high] (m/s here): samples are clipped into it before
    they are scored, so the refit mean stays inside as well.
What scores a sequence is the caller's business (a learned latent model, the true
simulator, a toy function): `evaluate(actions (J, H, A)) -> returns (J,)`, higher is better.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

Evaluate = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class CEMConfig:
    horizon: int = 12          # H, model steps per candidate sequence
    candidates: int = 1000     # J, sequences scored per iteration (one batch)
    top_k: int = 100           # K, best sequences the Gaussian is refitted to
    iterations: int = 10       # I
    init_std: float = 1.0      # initial spread, as a fraction of the half-width of the action box
    min_std: float = 0.0       # floor on the refitted spread (same unit as init_std); 0 = paper

    def check(self) -> None:
        if min(self.horizon, self.candidates, self.top_k, self.iterations) < 1:
            raise ValueError(f"CEM horizon, candidates, top_k and iterations must be >= 1: {self}")
        if self.top_k > self.candidates:
            raise ValueError(f"CEM top_k ({self.top_k}) cannot exceed candidates ({self.candidates})")
        if not (self.init_std > 0 and self.min_std >= 0):
            raise ValueError(f"CEM init_std must be > 0 and min_std >= 0: {self}")


class CEMPlanner:
    """Stateful across calls only through the warm start; `reset()` forgets it (new episode)."""

    def __init__(self, low, high, config: CEMConfig = CEMConfig(), seed: int | None = 0):
        config.check()
        self.low = np.asarray(low, dtype=np.float64).ravel()
        self.high = np.asarray(high, dtype=np.float64).ravel()
        if self.low.shape != self.high.shape or not np.all(self.high > self.low):
            raise ValueError(f"action bounds must satisfy low < high elementwise: {self.low}, {self.high}")
        self.config = config
        self.action_dim = self.low.size
        self.centre = (self.high + self.low) / 2
        self.half_width = (self.high - self.low) / 2
        self.rng = np.random.default_rng(seed)
        self.last_returns: np.ndarray | None = None   # scores of the final iteration (diagnostics)
        self.reset()

    def reset(self) -> None:
        self._previous: np.ndarray | None = None

    def initial_mean(self) -> np.ndarray:
        """(H, A): the previous plan shifted by one step, or the centre of the box."""
        h = self.config.horizon
        if self._previous is None:
            return np.tile(self.centre, (h, 1))
        shifted = np.concatenate([self._previous[1:], self._previous[-1:]], axis=0)
        return shifted[:h] if len(shifted) >= h else np.concatenate(
            [shifted, np.tile(shifted[-1:], (h - len(shifted), 1))], axis=0)

    def plan(self, evaluate: Evaluate) -> np.ndarray:
        """The refined mean action sequence (H, A), inside the bounds; plan[0] is the action to take."""
        c = self.config
        mean = self.initial_mean()
        std = np.tile(c.init_std * self.half_width, (c.horizon, 1))
        floor = c.min_std * self.half_width
        for _ in range(c.iterations):
            noise = self.rng.standard_normal((c.candidates, c.horizon, self.action_dim))
            candidates = np.clip(mean + std * noise, self.low, self.high)
            returns = np.asarray(evaluate(candidates), dtype=np.float64).reshape(-1)
            if returns.shape != (c.candidates,):
                raise ValueError(f"evaluate returned {returns.shape} scores for {c.candidates} candidates")
            returns = np.where(np.isfinite(returns), returns, -np.inf)   # a NaN never wins
            elite = candidates[np.argpartition(-returns, c.top_k - 1)[:c.top_k]]
            mean = elite.mean(axis=0)
            std = np.maximum(elite.std(axis=0), floor)
        self.last_returns = returns
        self._previous = mean
        return mean.copy()

    def act(self, evaluate: Evaluate) -> np.ndarray:
        """Plan and return only the first action (A,)."""
        return self.plan(evaluate)[0]
