"""Rollout videos from camera frames: what people look at instead of reading logs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SCALE = 4  # 64x64 camera frames are blown up (nearest) so a player shows them at a useful size


def write_video(path: str | Path, frames: list[np.ndarray], fps: float, caption: str = "") -> Path:
    """Write RGB uint8 frames as an MP4 (mp4v); the caption is drawn on every frame."""
    import cv2

    if not frames:
        raise ValueError(f"no frames to write to {path}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    size = (w * SCALE, h * SCALE)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV could not open a video writer for {path}")
    try:
        for rgb in frames:
            bgr = cv2.resize(np.ascontiguousarray(rgb[..., ::-1]), size, interpolation=cv2.INTER_NEAREST)
            if caption:
                cv2.putText(bgr, caption, (4, size[1] - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1,
                            cv2.LINE_AA)
            writer.write(bgr)
    finally:
        writer.release()
    return path


def read_video_frame_count(path: str | Path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        n = 0
        while cap.read()[0]:
            n += 1
        return n
    finally:
        cap.release()
