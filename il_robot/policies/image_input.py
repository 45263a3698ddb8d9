"""Camera frames as the exported ONNX graphs read them: checked, at the model's size, NCHW float32.

One place for both learned policies, so TecNet and PlaNet check and resize frames the same way.
"""

from __future__ import annotations

import cv2
import numpy as np


def fit_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB at the model's size (OpenCV resize when the camera differs)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 RGB image, got {image.dtype}")
    if image.shape[:2] != (height, width):
        shrinking = image.shape[0] > height or image.shape[1] > width
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return image


def image_batch(*images: np.ndarray, height: int, width: int) -> np.ndarray:
    """One or more (H, W, 3) frames, fitted and stacked on channels -> (1, 3n, H, W) float32 0..255."""
    fitted = np.concatenate([fit_image(i, height, width) for i in images], axis=2)
    return np.ascontiguousarray(fitted.transpose(2, 0, 1)[None], dtype=np.float32)
