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
    turned = np.flatnonzero(turns % 180)
    h, w = images.shape[1:3]
    # One conversion of all turned images stacked as one tall image (colour conversion is per pixel):
    # a cv2 call per image was most of a PlaNet batch's sampling time (2500 frames).
    tall = np.ascontiguousarray(images[turned]).reshape(-1, w, 3)
    hsv = cv2.cvtColor(tall, cv2.COLOR_RGB2HSV).reshape(-1, h, w, 3)
    hue = hsv[..., 0]
    mask = (hsv[..., 1] > HUE_MIN_SATURATION) & ~((hue >= GOAL_HUE[0]) & (hue <= GOAL_HUE[1]))
    shifted = (hue.astype(np.int32) + turns[turned].astype(np.int32)[:, None, None]) % 180
    hsv[..., 0] = np.where(mask, shifted, hue).astype(np.uint8)
    rgb = cv2.cvtColor(hsv.reshape(-1, w, 3), cv2.COLOR_HSV2RGB).reshape(-1, h, w, 3)
    part = tall.reshape(-1, h, w, 3)      # a copy of the turned images
    part[mask] = rgb[mask]                # the rest stays bit-exact (HSV is lossy)
    out[turned] = part
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
