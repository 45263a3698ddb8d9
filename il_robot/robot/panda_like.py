"""A 7-DoF Franka-Panda-like arm with a pusher tool, as MJCF.

Kinematics are the Panda's published modified-DH parameters; joint position,
velocity and torque limits are Franka's public datasheet values; link masses
are the public identified values (rounded). Geometry is primitive capsules:
good enough to render and to push with, no meshes to ship.
"""

from __future__ import annotations

import math

JOINT_NAMES = tuple(f"panda_joint{i}" for i in range(1, 8))
N_JOINTS = len(JOINT_NAMES)    # the joint count every joint array has

# Modified DH (Craig): a_{i-1}, d_i, alpha_{i-1} for joints 1..7; flange d=0.107.
DH_A = (0.0, 0.0, 0.0, 0.0825, -0.0825, 0.0, 0.088)
DH_D = (0.333, 0.0, 0.316, 0.0, 0.384, 0.0, 0.0)
DH_ALPHA = (0.0, -math.pi / 2, math.pi / 2, math.pi / 2, -math.pi / 2, math.pi / 2, math.pi / 2)
FLANGE_D = 0.107

Q_MIN = (-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973)
Q_MAX = (2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973)
QD_MAX = (2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61)
QDD_MAX = (15.0, 7.5, 10.0, 12.5, 15.0, 20.0, 20.0)
TAU_MAX = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)
LINK_MASS = (4.97, 0.65, 3.23, 3.59, 1.23, 1.67, 0.74)
# Reflected rotor inertia; also keeps the explicit integrator well conditioned.
ARMATURE = (0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05)
DAMPING = 0.5

# "Ready" posture with the tool pointing down.
HOME_Q = (0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.785)

TOOL_LENGTH = 0.12
TOOL_RADIUS = 0.02
TIP_SITE = "pusher_tip"


def _fmt(values) -> str:
    return " ".join(f"{v:.6g}" for v in values)


def _body_frame(i: int) -> tuple[tuple[float, float, float], tuple[float, float, float, float]]:
    """Position and quaternion of link i+1 in link i (modified DH, joint about z)."""
    a, d, al = DH_A[i], DH_D[i], DH_ALPHA[i]
    pos = (a, -math.sin(al) * d, math.cos(al) * d)
    quat = (math.cos(al / 2), math.sin(al / 2), 0.0, 0.0)
    return pos, quat


def _link_geom(i: int) -> str:
    """A capsule from this link's origin toward the next link's origin (visual only)."""
    if i + 1 < N_JOINTS:
        nxt, _ = _body_frame(i + 1)
    else:
        nxt = (0.0, 0.0, FLANGE_D)
    if math.dist(nxt, (0, 0, 0)) < 1e-6:
        return '<geom class="link" type="sphere" size="0.06"/>'
    return (f'<geom class="link" type="capsule" size="0.055" fromto="0 0 0 {_fmt(nxt)}"/>')


def _inertial(i: int) -> str:
    if i + 1 < N_JOINTS:
        nxt, _ = _body_frame(i + 1)
    else:
        nxt = (0.0, 0.0, FLANGE_D)
    com = tuple(0.5 * c for c in nxt)
    m = LINK_MASS[i]
    inertia = m * 0.004 + 0.002  # solid-cylinder-like, small links stay well conditioned
    return f'<inertial pos="{_fmt(com)}" mass="{m}" diaginertia="{inertia} {inertia} {inertia}"/>'


def arm_body_xml() -> str:
    """The arm's kinematic tree, to be placed in a <worldbody>."""
    opened = []
    for i in range(N_JOINTS):
        pos, quat = _body_frame(i)
        name = f"panda_link{i + 1}"
        opened.append(
            f'<body name="{name}" pos="{_fmt(pos)}" quat="{_fmt(quat)}">'
            f'<joint name="{JOINT_NAMES[i]}" range="{Q_MIN[i]} {Q_MAX[i]}" '
            f'armature="{ARMATURE[i]}"/>'
            f"{_inertial(i)}{_link_geom(i)}"
        )
    tool = (
        f'<body name="pusher" pos="0 0 {FLANGE_D}">'
        f'<inertial pos="0 0 {TOOL_LENGTH / 2}" mass="0.5" diaginertia="0.002 0.002 0.001"/>'
        f'<geom class="link" type="cylinder" size="0.04 0.01" pos="0 0 0.01"/>'
        f'<geom name="pusher_geom" class="tool" type="capsule" size="{TOOL_RADIUS}" '
        f'fromto="0 0 0.02 0 0 {TOOL_LENGTH - TOOL_RADIUS}"/>'
        f'<site name="{TIP_SITE}" pos="0 0 {TOOL_LENGTH}" size="0.005"/>'
        f"</body>"
    )
    return "".join(opened) + tool + "</body>" * N_JOINTS


def arm_defaults_xml() -> str:
    return (
        '<default class="arm">'
        f'<joint damping="{DAMPING}" limited="true"/>'
        '<default class="link"><geom contype="0" conaffinity="0" rgba="0.92 0.92 0.95 1"/></default>'
        '<default class="tool"><geom contype="1" conaffinity="1" rgba="0.2 0.2 0.2 1" '
        'friction="0.4 0.005 0.0001" condim="3"/></default>'
        "</default>"
    )


def actuators_xml() -> str:
    motors = "".join(
        f'<motor name="{j}_motor" joint="{j}" ctrlrange="{-t} {t}" ctrllimited="true"/>'
        for j, t in zip(JOINT_NAMES, TAU_MAX)
    )
    return f"<actuator>{motors}</actuator>"


def arm_mjcf(timestep: float = 0.002) -> str:
    """The arm alone (fixed base at the origin): what the inverse-dynamics node loads."""
    return (
        '<mujoco model="panda_like"><compiler angle="radian" autolimits="true"/>'
        f'<option timestep="{timestep}" gravity="0 0 -9.81"/>'
        f"<default>{arm_defaults_xml()}</default>"
        f'<worldbody><body name="panda_link0" childclass="arm">'
        '<geom class="link" type="cylinder" size="0.07 0.05" pos="0 0 0.05"/>'
        f"{arm_body_xml()}</body></worldbody>"
        f"{actuators_xml()}</mujoco>"
    )
