"""An episode's arrays as one .npz file, written atomically: the one way episode files are written.

Datasets (bags, DAgger's corrective episodes: il_robot.data.dataset.write_episode) and PlaNet's
episode directories (il_robot.learning.planet.data.save_episode) both come here, so every episode
file is complete or absent, never half written.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

PARTIAL_SUFFIX = ".partial.npz"   # the name an episode file has while it is written


def write_arrays(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write `arrays` (in their order) to `path` under a temporary name, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + PARTIAL_SUFFIX)
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
    return path
