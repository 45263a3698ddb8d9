"""Renders camera frames on a thread of its own, so a 500 Hz realtime physics loop never waits on GL.

The physics thread hands over a copied pose (microseconds); this thread owns
the GL context, draws the pose and publishes the frame with the pose's stamp.
A frame still waiting when the next is due is dropped (counted, and its stamp
returned to the caller), like a camera that cannot keep up; wait_idle lets the
simulator publish an episode's last frame before its result.
"""

from __future__ import annotations

import threading
from typing import Callable

import numpy as np

from il_robot.ros.thread_priority import set_normal_priority
from il_robot.sim.camera import Camera


class CameraWorker:
    def __init__(self, height: int, width: int, publish: Callable[[np.ndarray, float], None]):
        self._camera = Camera(height, width)
        self._publish = publish
        self._cv = threading.Condition()
        self._job = None
        self._busy = False    # drawing or publishing a frame
        self._stop = False
        self.dropped = 0
        self.native_id: int | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="camera", daemon=True)
        self._thread.start()
        self._started.wait(5.0)

    def submit(self, t: float, model, qpos: np.ndarray) -> float | None:
        """Queue a frame; returns the stamp of the waiting frame it replaced (dropped), if any."""
        with self._cv:
            dropped = None
            if self._job is not None:
                self.dropped += 1
                dropped = self._job[0]
            self._job = (t, model, qpos)
            self._cv.notify()
        return dropped

    def wait_idle(self, timeout: float) -> bool:
        """Block until every submitted frame is published (or dropped); False on timeout."""
        with self._cv:
            return self._cv.wait_for(lambda: (self._job is None and not self._busy) or self._stop, timeout)

    def _run(self) -> None:
        # Rendering is background work in a realtime simulator: this thread, and the renderer's
        # worker threads it starts, stay on the default scheduler.
        set_normal_priority()
        self.native_id = threading.get_native_id()
        self._started.set()
        try:
            while True:
                with self._cv:
                    self._cv.wait_for(lambda: self._job is not None or self._stop)
                    if self._stop:
                        return
                    (t, model, qpos), self._job = self._job, None
                    self._busy = True
                try:
                    self._publish(self._camera.render_pose(model, qpos), t)
                finally:
                    with self._cv:
                        self._busy = False
                        self._cv.notify_all()
        finally:
            self._camera.close()

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._thread.join(timeout=2.0)
