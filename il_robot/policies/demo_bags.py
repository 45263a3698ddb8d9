"""Demo bags as the few-shot policies read them: the given ones, or the one shipped with a model."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from il_robot.policies.base import PolicyLoadError

log = logging.getLogger(__name__)


def demos_or_shipped(policy: str, demos: list[str] | None, model_dir: Path) -> list[str]:
    """The `demo` parameter's bags; when it is empty, the first bag under <model_dir>/demos, so that
    a shipped model runs out of the box."""
    given = [d for d in (demos or []) if d]
    if given:
        return given
    shipped = sorted(p for p in (Path(model_dir) / "demos").glob("*") if (p / "metadata.yaml").exists())
    if not shipped:
        raise PolicyLoadError(f"{policy} needs at least one demo bag of the task (parameter `demo`); none given "
                              f"and none shipped in {Path(model_dir) / 'demos'}")
    log.warning("%s: no `demo` given, conditioning on the shipped demo %s", policy, shipped[0].name)
    return [str(shipped[0])]


def demo_images(bag: str | Path) -> np.ndarray:
    """(T, H, W, 3) uint8 camera frames of a demo bag: the ones the dataset builder keeps (with an action)."""
    from il_robot.data.bag_reader import load_episode  # rosbags only when demos are read

    try:
        images = load_episode(bag).frames.image
    except (OSError, ValueError) as err:   # BagError is a ValueError naming the bag
        raise PolicyLoadError(f"demo {bag}: {err}") from None
    if len(images) == 0:
        raise PolicyLoadError(f"demo {bag}: no camera frames with an action")
    return images
