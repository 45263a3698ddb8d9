"""Spatial-softmax keypoints, shared by the TecNet control net and the PlaNet encoder (torch, offline)."""

from __future__ import annotations

import torch


def spatial_softmax(h: torch.Tensor, log_gain: torch.Tensor | None = None) -> torch.Tensor:
    """(B, C, H, W) -> (B, 2C): the expected (x, y) in [-1, 1] of each channel's softmax over space.

    Where things are is what pushing needs; keypoints give it to the fully connected layers
    as numbers instead of leaving it spread over a flattened feature map. `log_gain` (C,) sharpens
    each channel's softmax: normalised features are about unit scale, and a softmax of those over
    a thousand pixels is nearly flat, pulling every keypoint towards the image centre.
    """
    b, c, height, width = h.shape
    if log_gain is not None:
        h = h * log_gain.exp()[None, :, None, None]
    weights = torch.softmax(h.flatten(2), dim=-1).view(b, c, height, width)
    xs = torch.linspace(-1.0, 1.0, width, dtype=h.dtype, device=h.device)
    ys = torch.linspace(-1.0, 1.0, height, dtype=h.dtype, device=h.device)
    x = (weights.sum(dim=2) * xs).sum(dim=-1)
    y = (weights.sum(dim=3) * ys).sum(dim=-1)
    return torch.cat([x, y], dim=1)
