"""Pictures of TecNet training: loss curves, and where demos land in embedding space."""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np

from il_robot.learning.plots import finish_axes, pyplot, save, series

SHAPE_MARKERS = {"box": "s", "cylinder": "o"}


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of x projected on their two main axes, and the fraction of variance each explains."""
    centred = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    var = s ** 2 / max(float((s ** 2).sum()), 1e-12)
    axes = vt[:2]
    if axes.shape[0] < 2:     # a single demo or a flat cloud: pad with a zero axis
        axes = np.vstack([axes, np.zeros((2 - axes.shape[0], x.shape[1]))])
        var = np.concatenate([var, np.zeros(2)])
    return centred @ axes.T, var[:2]


def _target(meta: dict) -> dict:
    return (meta.get("task") or {}).get("target") or {}


def _hue(meta: dict) -> float:
    rgba = _target(meta).get("rgba")
    return colorsys.rgb_to_hsv(*rgba[:3])[0] if rgba else np.nan


def plot_embeddings(embeddings: np.ndarray, metas: list[dict], path: str | Path, title: str = "") -> Path:
    """PCA of demo embeddings (one row per demo; metas: the dataset's per-episode meta).

    Left: colour = the target object's hue, marker = its shape; tasks that differ in the target
    should separate. Right: colour = task, so demos of one task should form a tight cluster."""
    plt = pyplot()
    xy, var = pca_2d(np.asarray(embeddings, dtype=np.float64))
    tasks = sorted({m.get("task_name", "?") for m in metas})
    task_colour = {t: plt.get_cmap("tab20")(i % 20) for i, t in enumerate(tasks)}
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5.5))
    hues = np.array([_hue(m) for m in metas])
    scatter = None
    for shape, marker in SHAPE_MARKERS.items():
        rows = [i for i, m in enumerate(metas) if _target(m).get("shape") == shape]
        if rows:
            scatter = left.scatter(xy[rows, 0], xy[rows, 1], c=hues[rows], cmap="hsv", vmin=0, vmax=1,
                                   marker=marker, s=40, edgecolors="k", linewidths=0.4, label=f"target {shape}")
    other = [i for i, m in enumerate(metas) if _target(m).get("shape") not in SHAPE_MARKERS]
    if other:
        left.scatter(xy[other, 0], xy[other, 1], c="grey", marker="x", s=30, label="target unknown")
    if scatter is not None:
        fig.colorbar(scatter, ax=left, label="target hue")
    left.legend(loc="best", fontsize=8)
    left.set_title("coloured by target hue, marker = target shape")
    for t in tasks:
        rows = [i for i, m in enumerate(metas) if m.get("task_name", "?") == t]
        right.scatter(xy[rows, 0], xy[rows, 1], color=task_colour[t], s=30, label=t)
    if len(tasks) <= 20:
        right.legend(loc="best", fontsize=7, ncol=2)
    right.set_title(f"coloured by task ({len(tasks)} tasks, {len(metas)} demos)")
    for ax in (left, right):
        ax.set_xlabel(f"PC 1 ({var[0] * 100:.0f}% of variance)")
        ax.set_ylabel(f"PC 2 ({var[1] * 100:.0f}% of variance)")
        ax.grid(alpha=0.3)
    fig.suptitle(title or "TecNet task embeddings (PCA)")
    return save(plt, fig, path)


def plot_curves(train_rows: list[dict], val_rows: list[dict], path: str | Path) -> Path:
    """Training losses, train/val embedding accuracy and val control error against step."""
    plt = pyplot()
    fig, (losses, accuracy, control) = plt.subplots(1, 3, figsize=(15, 4.5))
    for key in ("loss", "embedding_loss", "support_control_loss", "query_control_loss", "correction_control_loss"):
        losses.plot(*series(train_rows, key), label=key)
    losses.set_yscale("log")
    losses.set_title("training losses (weighted total and parts)")
    accuracy.plot(*series(train_rows, "embedding_accuracy"), label="train batch")
    accuracy.plot(*series(val_rows, "val_embedding_accuracy"), "o-", label="val")
    steps, success = series(val_rows, "val_success_rate")
    if len(success):
        accuracy.plot(steps, success, "s-", label="val closed-loop success (1-shot)")
    accuracy.set_ylim(-0.02, 1.02)
    accuracy.set_title("embedding accuracy; pushing success")
    control.plot(*series(train_rows, "query_control_loss"), label="train query")
    control.plot(*series(val_rows, "val_control_loss"), "o-", label="val query")
    control.set_yscale("log")
    control.set_title("control loss (normalised actions)")
    finish_axes((losses, accuracy, control), "step")
    return save(plt, fig, path)
