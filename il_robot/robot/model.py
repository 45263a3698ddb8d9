"""The arm's rigid-body model: joints by name, limits, inverse dynamics, kinematics.

Loaded from MJCF or URDF (MuJoCo compiles both), so a real arm's own
description can replace the built-in Panda-like one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import mujoco
import numpy as np

from il_robot.robot import panda_like


class RobotModelError(ValueError):
    """The robot description cannot be used (missing file, no joints, bad names)."""


@dataclass(frozen=True)
class JointLimits:
    q_min: np.ndarray
    q_max: np.ndarray
    tau_max: np.ndarray
    qd_max: np.ndarray    # rad/s; inf where unknown (MJCF and MuJoCo's URDF import carry none)
    qdd_max: np.ndarray   # rad/s^2; inf where unknown


def datasheet_limits(joint_names, table) -> np.ndarray:
    """Per joint, the built-in arm's datasheet value for a joint of that name, else inf."""
    by_name = dict(zip(panda_like.JOINT_NAMES, table))
    return np.array([by_name.get(n, np.inf) for n in joint_names], dtype=float)


def load_mjmodel(description: str = "") -> mujoco.MjModel:
    """'' -> built-in arm; an existing path -> that file; otherwise XML text (MJCF or URDF)."""
    if not description:
        return mujoco.MjModel.from_xml_string(panda_like.arm_mjcf())
    try:
        if description.lstrip().startswith("<"):
            return mujoco.MjModel.from_xml_string(description)
        if not os.path.isfile(description):
            raise RobotModelError(f"robot description file not found: {description}")
        return mujoco.MjModel.from_xml_path(description)
    except ValueError as err:  # mujoco raises ValueError on parse/compile errors
        if isinstance(err, RobotModelError):
            raise
        raise RobotModelError(f"cannot compile robot description: {err}") from err


class RobotModel:
    """Controlled joints of an MjModel, in a fixed order, with dynamics helpers.

    The joint order here is the controller's order (that of the torque command);
    incoming messages are matched to it by name, never by position.
    """

    def __init__(self, model: mujoco.MjModel, joint_names: list[str] | None = None,
                 tip_site: str = panda_like.TIP_SITE, velocity_limits=None):
        self.model = model
        self.data = mujoco.MjData(model)
        if not joint_names:
            joint_names = [
                mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j)
                for j in range(model.njnt)
                if int(model.jnt_type[j]) in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
            ]
        if not joint_names:
            raise RobotModelError("robot description has no hinge or slide joints")
        self.joint_names = list(joint_names)
        ids = []
        for name in self.joint_names:
            jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
            if jid < 0:
                raise RobotModelError(f"joint '{name}' is not in the robot description")
            ids.append(jid)
        self.joint_ids = np.array(ids)
        self.qpos_adr = model.jnt_qposadr[self.joint_ids].copy()
        self.dof_adr = model.jnt_dofadr[self.joint_ids].copy()
        self.n = len(ids)
        self.limits = JointLimits(
            q_min=np.where(model.jnt_limited[self.joint_ids], model.jnt_range[self.joint_ids, 0], -np.inf),
            q_max=np.where(model.jnt_limited[self.joint_ids], model.jnt_range[self.joint_ids, 1], np.inf),
            tau_max=self._torque_limits(),
            qd_max=self._velocity_limits(velocity_limits),
            qdd_max=datasheet_limits(self.joint_names, panda_like.QDD_MAX),
        )
        self.tip_site_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, tip_site)
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    @classmethod
    def load(cls, description: str = "", joint_names: list[str] | None = None,
             tip_site: str = panda_like.TIP_SITE, velocity_limits=None) -> "RobotModel":
        return cls(load_mjmodel(description), joint_names, tip_site, velocity_limits)

    def _velocity_limits(self, given) -> np.ndarray:
        """Given limits (one per joint, or one for all), else the datasheet's by joint name."""
        if given is None or len(given) == 0:
            return datasheet_limits(self.joint_names, panda_like.QD_MAX)
        values = np.asarray(given, dtype=float).ravel()
        if values.size == 1:
            values = np.full(self.n, values[0])
        if values.size != self.n or not np.all(np.isfinite(values)) or np.any(values <= 0):
            raise RobotModelError(f"velocity limits need 1 or {self.n} positive finite values, got {given}")
        return values

    def _torque_limits(self) -> np.ndarray:
        """From each joint's motor (ctrlrange x gear) or actuatorfrcrange; inf if neither."""
        tau = np.full(self.n, np.inf)
        m = self.model
        for k, jid in enumerate(self.joint_ids):
            if m.jnt_actfrclimited[jid]:
                tau[k] = np.max(np.abs(m.jnt_actfrcrange[jid]))
            for a in range(m.nu):
                if int(m.actuator_trntype[a]) == int(mujoco.mjtTrn.mjTRN_JOINT) and m.actuator_trnid[a, 0] == jid \
                        and m.actuator_ctrllimited[a]:
                    tau[k] = min(tau[k], np.max(np.abs(m.actuator_ctrlrange[a])) * abs(m.actuator_gear[a, 0]))
        return tau

    # -- dynamics ------------------------------------------------------------
    def inverse_dynamics(self, q: np.ndarray, qd: np.ndarray, qdd: np.ndarray) -> np.ndarray:
        """Joint torques that produce acceleration qdd at state (q, qd): mj_inverse."""
        d = self.data
        d.qpos[self.qpos_adr] = q
        d.qvel[self.dof_adr] = qd
        d.qacc[self.dof_adr] = qdd
        mujoco.mj_inverse(self.model, d)
        return d.qfrc_inverse[self.dof_adr].copy()

    def clip_torque(self, tau: np.ndarray) -> np.ndarray:
        return np.clip(tau, -self.limits.tau_max, self.limits.tau_max)

    # -- kinematics ----------------------------------------------------------
    def _require_tip(self) -> None:
        if self.tip_site_id < 0:
            raise RobotModelError("robot description has no tool tip site")

    def tip_pose(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tip position (3,) and rotation matrix (3, 3) in the base frame."""
        self._require_tip()
        d = self.data
        d.qpos[self.qpos_adr] = q
        mujoco.mj_kinematics(self.model, d)
        return d.site_xpos[self.tip_site_id].copy(), d.site_xmat[self.tip_site_id].reshape(3, 3).copy()

    def tip_jacobian(self, q: np.ndarray) -> np.ndarray:
        """6 x n Jacobian (linear; angular) of the tip over the controlled joints."""
        self._require_tip()
        d = self.data
        d.qpos[self.qpos_adr] = q
        mujoco.mj_kinematics(self.model, d)
        mujoco.mj_comPos(self.model, d)
        mujoco.mj_jacSite(self.model, d, self._jacp, self._jacr, self.tip_site_id)
        return np.vstack([self._jacp[:, self.dof_adr], self._jacr[:, self.dof_adr]])
