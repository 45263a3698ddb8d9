"""Per-feature statistics laid out as LeRobot's compute_stats lays them out (meta/stats.json and the
episodes' stats/ columns), but exact: all frames, quantiles from the data, image pixels by histogram."""

from __future__ import annotations

import numpy as np

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)


def vector_stats(x: np.ndarray) -> dict[str, np.ndarray]:
    """min/max/mean/std/count/q01..q99 over frames; (T,) data gives shape-(1,) stats, (T, D) data (D,)."""
    x = np.asarray(x, np.float64)
    x2 = x.reshape(len(x), -1)
    stats = {"min": x2.min(0), "max": x2.max(0), "mean": x2.mean(0), "std": x2.std(0),
             "count": np.array([len(x)])}
    for q, v in zip(QUANTILES, np.quantile(x2, QUANTILES, axis=0)):
        stats[f"q{round(q * 100):02d}"] = v
    return stats


def image_histogram(frames: np.ndarray) -> np.ndarray:
    """(3, 256) pixel counts per channel of (T, H, W, 3) uint8 frames: exact image stats, summable."""
    return np.stack([np.bincount(frames[..., c].ravel(), minlength=256) for c in range(3)])


def image_stats(hist: np.ndarray, frames: int) -> dict[str, np.ndarray]:
    """Per-channel stats of pixel values scaled to 0..1, shaped (3, 1, 1) as LeRobot's; count is frames."""
    v = np.arange(256) / 255.0
    n = hist.sum(1, keepdims=True)
    mean = (hist * v).sum(1) / n[:, 0]
    std = np.sqrt((hist * (v - mean[:, None]) ** 2).sum(1) / n[:, 0])
    cdf = np.cumsum(hist, 1) / n
    nonzero = [np.flatnonzero(h) for h in hist]
    stats = {"min": np.array([v[i[0]] for i in nonzero]), "max": np.array([v[i[-1]] for i in nonzero]),
             "mean": mean, "std": std}
    for q in QUANTILES:
        stats[f"q{round(q * 100):02d}"] = np.array([v[np.searchsorted(c, q)] for c in cdf])
    stats = {k: s.reshape(3, 1, 1) for k, s in stats.items()}
    stats["count"] = np.array([frames])
    return stats


def jsonable(stats: dict[str, dict[str, np.ndarray]]) -> dict:
    return {key: {k: v.tolist() for k, v in s.items()} for key, s in stats.items()}
