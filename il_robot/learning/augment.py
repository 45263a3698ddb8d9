"""Image augmentation shared by the models' samplers (numpy + OpenCV, no torch)."""

from __future__ import annotations

import numpy as np

HUE_MIN_SATURATION = 110   # OpenCV HSV (0..255): objects are above, the table (about 95), arm and shadows below
GOAL_HUE = (60, 68)        # OpenCV hue (0..180) of the goal disc, left as it is: it is the same in every task


def turn_hue(images: np.ndarray, turns: np.ndarray) -> np.ndarray:
    """Turn the hue of the saturated, non-goal pixels of each image (B, H, W, 3) uint8 RGB by `turns` (B,)
    in OpenCV hue units (180 = a full turn). The table, the arm and the goal keep their colours."""
    if not np.any(turns % 180):
        return images
    import cv2

    out = images.copy()
    for i in np.flatnonzero(turns % 180):
        hsv = cv2.cvtColor(images[i], cv2.COLOR_RGB2HSV)
        hue = hsv[..., 0]
        mask = (hsv[..., 1] > HUE_MIN_SATURATION) & ~((hue >= GOAL_HUE[0]) & (hue <= GOAL_HUE[1]))
        hue[mask] = ((hue[mask].astype(np.int32) + int(turns[i])) % 180).astype(np.uint8)
        out[i][mask] = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[mask]   # the rest stays bit-exact (HSV is lossy)
    return out


def random_shift(images: np.ndarray, pad: int, rng: np.random.Generator) -> np.ndarray:
    """Pad (edge pixels) and crop back at a random offset per image: (B, H, W, C) uint8."""
    if pad <= 0:
        return images
    b, h, w, _ = images.shape
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    dy = rng.integers(0, 2 * pad + 1, b)
    dx = rng.integers(0, 2 * pad + 1, b)
    rows = dy[:, None] + np.arange(h)
    cols = dx[:, None] + np.arange(w)
    return padded[np.arange(b)[:, None, None], rows[:, :, None], cols[:, None, :]]
