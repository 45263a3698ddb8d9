"""Pictures of PlaNet training: loss curves and open-loop prediction error against horizon.

Built on the TecNet plotting helpers (Agg backend, files only).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from il_robot.learning.plots import _pyplot, _save, _series, finish_axes


def plot_curves(train_rows: list[dict], val_rows: list[dict], path: str | Path) -> Path:
    """Negative ELBO and its parts; reward error (train batch, val open loop); planner episodes."""
    plt = _pyplot()
    fig, (losses, reward, episodes) = plt.subplots(1, 3, figsize=(15, 4.5))
    for key in ("loss", "image_loss", "joint_loss", "reward_loss", "kl"):
        losses.plot(*_series(train_rows, key), label=key)
    losses.set_yscale("log")
    losses.set_title("training losses (negative ELBO and parts)")
    reward.plot(*_series(train_rows, "reward_rmse"), label="train batch (filtered)")
    reward.plot(*_series(val_rows, "val_reward_mae_open_loop"), "o-", label="val open loop (mean over horizon)")
    reward.set_yscale("log")
    reward.set_title("reward error (reward units, m)")
    episodes.plot(*_series(train_rows, "planner_final_distance"), "o", label="planner episode final distance (m)")
    episodes.plot(*_series(val_rows, "val_image_mse_open_loop"), "s-", label="val open-loop image MSE")
    episodes.set_title("collected episodes / open-loop image error")
    finish_axes((losses, reward, episodes), "step")
    return _save(plt, fig, path)


def plot_open_loop(horizon: np.ndarray, image_mse: np.ndarray, reward_mae: np.ndarray, context: int,
                   path: str | Path) -> Path:
    """Prediction error against steps predicted open loop (after `context` filtered frames)."""
    plt = _pyplot()
    fig, (img, rew) = plt.subplots(1, 2, figsize=(11, 4.2))
    img.plot(horizon, image_mse, "o-")
    img.set_ylabel("image MSE (pixels in [0, 1])")
    rew.plot(horizon, reward_mae, "o-", color="tab:red")
    rew.set_ylabel("reward abs error (m)")
    for ax in (img, rew):
        ax.set_xlabel("model steps predicted open loop")
        ax.grid(alpha=0.3)
    fig.suptitle(f"open-loop prediction error on val episodes ({context} context frames filtered first)")
    return _save(plt, fig, path)
