"""The TecNet control net's state vector: which robot quantities, in which order.

Training (whole episodes), closed-loop validation and the runtime policy (one
observation) all build it here, so the layout written into a model's metadata is
the one every caller feeds.
"""

from __future__ import annotations

import numpy as np

from il_robot.robot.panda_like import N_JOINTS

PART_SIZES = {"q": N_JOINTS, "qd": N_JOINTS, "tip": 3}   # joint positions (rad), velocities (rad/s), tip (m)
LAYOUTS = (("q", "qd"), ("q", "qd", "tip"), ("q", "tip"))   # what this code feeds; metadata state.layout


def layout_for(tip: bool, joint_velocities: bool = True) -> tuple[str, ...]:
    """The layout a model reads: q, then qd unless left out, then the tip position if asked for."""
    layout = ("q",) + (("qd",) if joint_velocities else ()) + (("tip",) if tip else ())
    if layout not in LAYOUTS:
        raise ValueError(f"state layout {list(layout)} is not one this runtime feeds: {[list(k) for k in LAYOUTS]}")
    return layout


def state_size(layout: tuple[str, ...]) -> int:
    return sum(PART_SIZES[part] for part in layout)


def columns_of(layout: tuple[str, ...], kept: tuple[str, ...]) -> np.ndarray:
    """Indices, within a state in `layout`, of the entries of the parts that `kept` also has: how a state
    (or a layer reading one) in `layout` becomes one in `kept`, which must be a part-subset of it."""
    if not set(kept) <= set(layout):
        raise ValueError(f"state layout {list(kept)} is not a subset of {list(layout)}")
    offsets = np.cumsum([0] + [PART_SIZES[part] for part in layout])
    return np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i, part in enumerate(layout) if part in kept])


def state_vector(layout: tuple[str, ...], q, qd, tip=None) -> np.ndarray:
    """q, qd (..., 7) and tip (..., 3) -> (..., state_size) float64 in `layout` order.

    Works for one observation and for whole episodes (leading time axis). A wrong size or a
    missing tip position is a ValueError naming what was expected.
    """
    parts = {"q": q, "qd": qd, "tip": tip}
    arrays = []
    for part in layout:
        if parts[part] is None:
            raise ValueError(f"this model's state has the {part} part; none was given")
        x = np.asarray(parts[part], np.float64)
        if x.ndim == 0 or x.shape[-1] != PART_SIZES[part]:
            raise ValueError(f"state part {part}: expected {PART_SIZES[part]} numbers, got shape {x.shape}")
        arrays.append(x)
    return np.concatenate(arrays, axis=-1)
