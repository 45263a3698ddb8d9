"""Pictures of PlaNet training: loss curves and open-loop prediction error against horizon.

Built on learning/plots.py's helpers (Agg backend, files only).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from il_robot.learning.plots import finish_axes, pyplot, save, series


def plot_curves(train_rows: list[dict], val_rows: list[dict], path: str | Path) -> Path:
    """Negative ELBO and its parts; reward error (train batch, val open loop); planner episodes."""
    plt = pyplot()
    fig, (losses, reward, episodes) = plt.subplots(1, 3, figsize=(15, 4.5))
    for key in ("loss", "image_loss", "joint_loss", "reward_loss", "kl"):
        losses.plot(*series(train_rows, key), label=key)
    losses.set_yscale("log")
    losses.set_title("training losses (negative ELBO and parts)")
    reward.plot(*series(train_rows, "reward_rmse"), label="train batch (filtered)")
    reward.plot(*series(val_rows, "val_reward_mae_open_loop"), "o-", label="val open loop (mean over horizon)")
    reward.set_yscale("log")
    reward.set_title("reward error (reward units, m)")
    episodes.plot(*series(train_rows, "planner_final_distance"), "o", label="planner episode final distance (m)")
    episodes.plot(*series(val_rows, "val_image_mse_open_loop"), "s-", label="val open-loop image MSE")
    episodes.set_title("collected episodes / open-loop image error")
    finish_axes((losses, reward, episodes), "step")
    return save(plt, fig, path)


def plot_open_loop(horizon: np.ndarray, image_mse: np.ndarray, reward_mae: np.ndarray, context: int,
                   path: str | Path) -> Path:
    """Prediction error against steps predicted open loop (after `context` filtered frames)."""
    plt = pyplot()
    fig, (img, rew) = plt.subplots(1, 2, figsize=(11, 4.2))
    img.plot(horizon, image_mse, "o-")
    img.set_ylabel("image MSE (pixels in [0, 1])")
    rew.plot(horizon, reward_mae, "o-", color="tab:red")
    rew.set_ylabel("reward abs error (m)")
    for ax in (img, rew):
        ax.set_xlabel("model steps predicted open loop")
        ax.grid(alpha=0.3)
    fig.suptitle(f"open-loop prediction error on val episodes ({context} context frames filtered first)")
    return save(plt, fig, path)


def plot_position_curves(rows: list[dict], path: str | Path) -> Path:
    """The position world model's three parts: locator, tip head, dynamics (errors in cm)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, phase, title in zip(axes, ("locator", "tip", "dynamics"),
                                ("locator: target xy error", "tip head: tip error", "dynamics: one-step object error")):
        part = [r for r in rows if r["phase"] == phase]
        for key, label in (("train_error", "train (mean)"), ("val_error", "val (median)" if phase == "locator"
                                                                        else "val (mean)")):
            x, y = series(part, key)
            if len(x):
                ax.plot(x, np.asarray(y) * 100, "o-" if key == "val_error" else "-", label=label)
        ax.set_yscale("log")
        ax.set_ylabel("cm")
        ax.set_title(title)
    x, y = series([r for r in rows if r["phase"] == "dynamics"], "planner_final_distance")
    if len(x):
        twin = axes[2].twinx()
        twin.plot(x, np.asarray(y) * 100, "s", color="tab:green", label="planner episode final distance")
        twin.set_ylabel("planner episode final distance (cm)")
        twin.legend(loc="upper right", fontsize=8)
    finish_axes(axes, "step")
    return save(plt, fig, path)


def plot_position_open_loop(result: dict, path: str | Path) -> Path:
    """Target and tip xy error against model steps predicted open loop (recorded commands, val episodes)."""
    plt = pyplot()
    fig, (target, tip) = plt.subplots(1, 2, figsize=(11, 4.2))
    h = result["horizon"]
    target.plot(h, result["target_error_true"] * 100, "o-", label="from the true positions")
    target.plot(h, result["target_error_located"] * 100, "s-", label="from the located positions")
    target.plot(h, result["still_target_error"] * 100, "--", color="grey", label="a target that stays put")
    target.set_ylabel("target xy error (cm)")
    tip.plot(h, result["tip_error_true"] * 100, "o-", label="from the true positions")
    tip.plot(h, result["tip_error_located"] * 100, "s-", label="from the located positions")
    tip.set_ylabel("tip xy error (cm)")
    for ax in (target, tip):
        ax.set_xlabel("model steps predicted open loop (0.2 s each)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"open-loop prediction error, {result['starts']} starts on val episodes")
    return save(plt, fig, path)
