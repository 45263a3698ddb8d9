"""MJCF of the pushing world for one task: table, arm, two objects, goal, camera."""

from __future__ import annotations

import numpy as np

from il_robot.robot import panda_like
from il_robot.sim.tasks import GOAL_RADIUS, GOAL_XY, ObjectSpec, Task

CAMERA_NAME = "front"
CAMERA_POS = (1.3, 0.0, 1.0)
CAMERA_TARGET = (0.5, 0.0, 0.05)
CAMERA_FOVY = 34.0


def _camera_axes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(right, up, forward) unit vectors of the front camera, world frame."""
    pos, target = np.asarray(CAMERA_POS), np.asarray(CAMERA_TARGET)
    forward = (target - pos) / np.linalg.norm(target - pos)
    right = np.cross(forward, (0.0, 0.0, 1.0))
    right /= np.linalg.norm(right)
    up = np.cross(-forward, right)
    return right, up, forward


def _camera_xyaxes() -> str:
    right, up, _ = _camera_axes()
    return " ".join(f"{v:.6f}" for v in (*right, *up))


def camera_pixels(points, height: int, width: int) -> np.ndarray:
    """(..., 2) image coordinates (u right, v down, in pixels from the top-left corner; pixel k spans
    k..k+1) where the front camera sees world points (..., 3): the pinhole model of the MJCF camera, for
    supervising where an object is in a frame without rendering."""
    right, up, forward = _camera_axes()
    rel = np.asarray(points, dtype=np.float64) - np.asarray(CAMERA_POS)
    depth = rel @ forward
    focal = 0.5 * height / np.tan(np.deg2rad(CAMERA_FOVY) / 2)
    return np.stack([width / 2 + focal * (rel @ right) / depth, height / 2 - focal * (rel @ up) / depth], axis=-1)


def _object_xml(name: str, spec: ObjectSpec) -> str:
    if spec.shape == "box":
        geom = f'type="box" size="{spec.size} {spec.size} {spec.height}"'
    else:
        geom = f'type="cylinder" size="{spec.size} {spec.height}"'
    rgba = " ".join(f"{c:.4f}" for c in spec.rgba)
    return (
        f'<body name="{name}" pos="0 0 {spec.height}">'
        f'<freejoint name="{name}_joint"/>'
        f'<geom name="{name}_geom" {geom} rgba="{rgba}" mass="{spec.mass}" '
        f'friction="{spec.friction} 0.005 0.0001" condim="4"/>'
        f"</body>"
    )


def scene_mjcf(task: Task, timestep: float = 0.002) -> str:
    gx, gy = GOAL_XY
    return (
        '<mujoco model="pushing_world">'
        '<compiler angle="radian" autolimits="true"/>'
        f'<option timestep="{timestep}" gravity="0 0 -9.81" integrator="implicitfast"/>'
        '<visual><global offwidth="640" offheight="480"/><quality shadowsize="1024" offsamples="2"/></visual>'
        f"<default>{panda_like.arm_defaults_xml()}</default>"
        "<asset>"
        '<texture name="grid" type="2d" builtin="checker" rgb1="0.55 0.45 0.35" rgb2="0.5 0.4 0.3" '
        'width="256" height="256"/>'
        '<material name="table" texture="grid" texrepeat="6 6"/>'
        "</asset>"
        "<worldbody>"
        '<light pos="0.5 0 2.0" dir="0 0 -1" diffuse="0.8 0.8 0.8" castshadow="false"/>'
        '<light pos="1.5 0.5 1.5" dir="-1 -0.3 -1" diffuse="0.3 0.3 0.3" castshadow="false"/>'
        '<geom name="table" type="box" pos="0.45 0 -0.02" size="0.6 0.6 0.02" material="table" '
        'friction="0.5 0.005 0.0001"/>'
        f'<geom name="goal" type="cylinder" pos="{gx} {gy} 0.0005" size="{GOAL_RADIUS} 0.0005" '
        'rgba="0.1 0.9 0.2 0.6" contype="0" conaffinity="0"/>'
        f'<camera name="{CAMERA_NAME}" pos="{" ".join(map(str, CAMERA_POS))}" '
        f'xyaxes="{_camera_xyaxes()}" fovy="{CAMERA_FOVY}"/>'
        '<body name="panda_link0" childclass="arm">'
        '<geom class="link" type="cylinder" size="0.07 0.05" pos="0 0 0.05"/>'
        f"{panda_like.arm_body_xml()}</body>"
        f'{_object_xml("target", task.target)}'
        f'{_object_xml("distractor", task.distractor)}'
        "</worldbody>"
        f"{panda_like.actuators_xml()}"
        "</mujoco>"
    )
