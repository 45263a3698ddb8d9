"""Match joint arrays to a fixed joint order by name; never assume the order."""

from __future__ import annotations

from typing import Sequence

import numpy as np


class JointInputError(ValueError):
    """A joint message that must not be applied: unknown/missing joint, NaN, wrong size."""


class JointOrder:
    """Reorders named joint arrays into `names` order, with the checks a controller needs.

    The permutation is cached per incoming name tuple: drivers send the same
    order every time, so the hot path is one dict lookup and one fancy index.
    With allow_extra, names beyond ours are skipped (a real arm's driver also
    publishes joints we do not control, such as gripper fingers); a missing
    one is always an error.
    """

    def __init__(self, names: Sequence[str], allow_extra: bool = False):
        self.names = tuple(names)
        self.allow_extra = allow_extra
        self._index = {n: i for i, n in enumerate(self.names)}
        self._cache: dict[tuple[str, ...], np.ndarray] = {}

    def extra(self, names: Sequence[str]) -> list[str]:
        """Names in `names` that are not ours."""
        return [n for n in names if n not in self._index]

    def permutation(self, names: Sequence[str]) -> np.ndarray:
        key = tuple(names)
        perm = self._cache.get(key)
        if perm is not None:
            return perm
        unknown = self.extra(key)
        if unknown and not self.allow_extra:
            raise JointInputError(f"unknown joint(s) {unknown}; expected {list(self.names)}")
        if len(set(key)) != len(key):
            raise JointInputError(f"duplicate joint names in {list(key)}")
        missing = [n for n in self.names if n not in key]
        if missing:
            raise JointInputError(f"missing joint(s) {missing}")
        perm = np.array([key.index(n) for n in self.names])
        self._cache[key] = perm
        return perm

    def reorder(self, names: Sequence[str], values: Sequence[float], what: str,
                required: bool = True) -> np.ndarray | None:
        """values (in `names` order) -> array in our order; None if optional and empty."""
        arr = np.asarray(values, dtype=float)
        if arr.size == 0 and not required:
            return None
        if arr.shape != (len(names),):
            raise JointInputError(f"{what} has {arr.size} values for {len(names)} joint names")
        ours = arr[self.permutation(names)]
        if not np.isfinite(ours).all():
            raise JointInputError(f"{what} contains NaN or Inf: {ours.tolist()}")
        return ours
