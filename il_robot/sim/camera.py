"""Offscreen camera: renders a MuJoCo state to RGB. One per thread (its GL context lives there)."""

from __future__ import annotations

import os

# Mesa's software renderer (llvmpipe, what EGL gives on a machine without a GPU) splits each frame over
# one thread per core. A 64x64 frame is one tile: the extra threads only add hand-offs. One thread
# renders the same pixels (byte for byte) in about half the time here, and leaves the other core to
# physics or a second worker. Read when the GL context is made, so set before any renderer exists.
os.environ.setdefault("LP_NUM_THREADS", "1")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from il_robot.sim.scene import CAMERA_NAME  # noqa: E402


class Camera:
    def __init__(self, height: int, width: int, camera: str = CAMERA_NAME):
        self.height, self.width, self.camera = height, width, camera
        self._renderer: mujoco.Renderer | None = None
        self._model = None
        self._pose_data: mujoco.MjData | None = None

    def render(self, model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
        """(H, W, 3) uint8 RGB; the renderer is rebuilt when the model changes (a new task)."""
        if self._renderer is None or self._model is not model:
            self._close_renderer()
            self._renderer = mujoco.Renderer(model, self.height, self.width)
            self._model = model
        self._renderer.update_scene(data, camera=self.camera)
        return self._renderer.render()

    def render_pose(self, model: mujoco.MjModel, qpos: np.ndarray) -> np.ndarray:
        """Render a copied pose (see PushingWorld.snapshot): positions are all a picture needs."""
        if self._pose_data is None or self._pose_data.model is not model:
            self._pose_data = mujoco.MjData(model)
        self._pose_data.qpos[:] = qpos
        mujoco.mj_kinematics(model, self._pose_data)
        mujoco.mj_camlight(model, self._pose_data)
        data = self._pose_data
        return self.render(model, data)

    def _close_renderer(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
            self._model = None

    def close(self) -> None:
        self._close_renderer()
        self._pose_data = None
