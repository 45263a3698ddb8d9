"""Inverse dynamics and computed-torque control on the arm model (no ROS)."""

import mujoco
import numpy as np
import pytest

from il_robot.robot import panda_like
from il_robot.robot.computed_torque import ComputedTorqueController, Mode
from il_robot.robot.model import RobotModel, RobotModelError

HOME = np.array(panda_like.HOME_Q)


@pytest.fixture(scope="module")
def robot():
    return RobotModel.load()


def test_torques_reproduce_commanded_accelerations(robot):
    """ID torques applied in forward dynamics give back qdd (to 1e-6) over random states."""
    model, data = robot.model, mujoco.MjData(robot.model)
    rng = np.random.default_rng(1)
    worst = 0.0
    for _ in range(200):
        q = HOME + rng.uniform(-0.4, 0.4, 7)
        qd, qdd = rng.normal(0, 0.5, 7), rng.normal(0, 2.0, 7)
        tau = robot.inverse_dynamics(q, qd, qdd)
        assert np.all(np.abs(tau) < robot.limits.tau_max), "test states should need feasible torques"
        data.qpos[:], data.qvel[:], data.ctrl[:] = q, qd, tau
        mujoco.mj_forward(model, data)
        worst = max(worst, np.abs(data.qacc - qdd).max())
    assert worst < 1e-6


def simulate(robot, controller, q0, seconds, reference=None):
    """Closed loop at 500 Hz on the arm model; returns joint and tip trajectories."""
    model, data = robot.model, mujoco.MjData(robot.model)
    data.qpos[:] = q0
    mujoco.mj_forward(model, data)
    names = robot.joint_names
    qs, tips = [], []
    for k in range(int(seconds / model.opt.timestep)):
        t = k * model.opt.timestep
        controller.set_joint_state(names, data.qpos, data.qvel, t)
        if reference is not None:
            q, qd, qdd = reference(t)
            controller.set_desired(names, q, qd, qdd, t, t)
        tau, _ = controller.command(t)
        data.ctrl[:] = tau
        mujoco.mj_step(model, data)
        qs.append(data.qpos.copy())
        tips.append(data.site_xpos[robot.tip_site_id].copy())
    return np.array(qs), np.array(tips)


def test_gravity_compensation_holds_the_arm(robot):
    """No motion commanded, no feedback gains: the arm drifts < 1 mm in 5 s of sim time."""
    ctl = ComputedTorqueController(robot, kp=0.0, kd=0.0, desired_timeout=0.5)
    q0 = HOME + 0.1
    _, tips = simulate(robot, ctl, q0, 5.0)
    drift = np.linalg.norm(tips - tips[0], axis=1).max()
    print(f"gravity-compensation drift over 5 s: {drift * 1e3:.4f} mm")
    assert drift < 1e-3


def test_without_compensation_the_arm_falls(robot):
    """Control for the test above: zero torque does move the arm by far more than 1 mm."""
    model, data = robot.model, mujoco.MjData(robot.model)
    data.qpos[:] = HOME + 0.1
    mujoco.mj_forward(model, data)
    tip0 = data.site_xpos[robot.tip_site_id].copy()
    for _ in range(500):
        mujoco.mj_step(model, data)
    assert np.linalg.norm(data.site_xpos[robot.tip_site_id] - tip0) > 0.01


def test_tracks_a_joint_trajectory(robot):
    ctl = ComputedTorqueController(robot, kp=400.0, kd=40.0)
    amp, w = 0.3, 2 * np.pi * 0.5

    def ref(t):
        s = np.sin(w * t)
        return HOME + amp * s, amp * w * np.cos(w * t) * np.ones(7), -amp * w * w * s * np.ones(7)

    qs, _ = simulate(robot, ctl, HOME, 4.0, ref)
    ts = (np.arange(len(qs)) + 1) * robot.model.opt.timestep
    target = np.array([ref(t)[0] for t in ts])
    rms = np.sqrt(np.mean((qs - target) ** 2))
    print(f"trajectory tracking RMS error: {rms:.2e} rad")
    assert rms < 5e-3  # 0.3 deg; discretisation at 500 Hz dominates


def test_modes_follow_input_freshness(robot):
    ctl = ComputedTorqueController(robot, 400.0, 40.0, joint_state_timeout=0.05, desired_timeout=0.5)
    names = robot.joint_names
    assert ctl.command(0.0)[1] is Mode.ZERO  # nothing yet
    ctl.set_joint_state(names, HOME, np.zeros(7), 0.0)
    tau, mode = ctl.command(0.01)
    assert mode is Mode.HOLD
    np.testing.assert_allclose(tau, robot.inverse_dynamics(HOME, np.zeros(7), np.zeros(7)), atol=1e-9)
    ctl.set_desired(names, HOME + 0.1, np.zeros(7), np.zeros(7), 0.01, 0.01)
    assert ctl.command(0.02)[1] is Mode.TRACK
    ctl.set_joint_state(names, HOME, np.zeros(7), 0.6)
    assert ctl.command(0.6)[1] is Mode.HOLD  # desired is 0.59 s old
    tau, mode = ctl.command(0.7)  # joint state 0.1 s old
    assert mode is Mode.ZERO and not tau.any()


def test_torque_is_clipped_to_model_limits(robot):
    ctl = ComputedTorqueController(robot, 1e6, 0.0)
    names = robot.joint_names
    ctl.set_joint_state(names, HOME, np.zeros(7), 0.0)
    ctl.set_desired(names, HOME + 1.0, np.zeros(7), np.zeros(7), 0.0, 0.0)
    tau, _ = ctl.command(0.0)
    np.testing.assert_allclose(np.abs(tau), robot.limits.tau_max)


def test_bad_description_is_a_clear_error(tmp_path):
    with pytest.raises(RobotModelError, match="not found"):
        RobotModel.load(str(tmp_path / "missing.urdf"))
    broken = tmp_path / "broken.xml"
    broken.write_text("<mujoco><worldbody><body></mujoco>")
    with pytest.raises(RobotModelError, match="cannot compile"):
        RobotModel.load(str(broken))


def test_loads_a_urdf_description(tmp_path):
    """A real arm's own URDF can replace the built-in model."""
    urdf = tmp_path / "arm.urdf"
    urdf.write_text("""<robot name="two_link">
      <link name="base"/>
      <link name="l1"><inertial><mass value="1"/><origin xyz="0 0 0.2"/>
        <inertia ixx="0.01" iyy="0.01" izz="0.01" ixy="0" ixz="0" iyz="0"/></inertial></link>
      <joint name="j1" type="revolute"><parent link="base"/><child link="l1"/><axis xyz="0 1 0"/>
        <limit lower="-2" upper="2" effort="30" velocity="2"/></joint>
    </robot>""")
    robot = RobotModel.load(str(urdf))
    assert robot.joint_names == ["j1"]
    assert abs(robot.inverse_dynamics(np.zeros(1), np.zeros(1), np.ones(1))[0]) > 0
