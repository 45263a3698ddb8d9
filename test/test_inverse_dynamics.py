"""Inverse dynamics and computed-torque control on the arm model (no ROS)."""

import mujoco
import numpy as np
import pytest

from il_robot.robot import panda_like
from il_robot.robot.computed_torque import ComputedTorqueController, JointInputError, Mode, StaleReference
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
    assert ctl.command(0.0) == (None, Mode.STALE)  # nothing yet: nothing to send
    ctl.set_joint_state(names, HOME, np.zeros(7), 0.0)
    tau, mode = ctl.command(0.01)
    assert mode is Mode.HOLD
    np.testing.assert_allclose(tau, robot.inverse_dynamics(HOME, np.zeros(7), np.zeros(7)), atol=1e-9)
    ctl.set_desired(names, HOME + 0.1, np.zeros(7), np.zeros(7), 0.01, 0.01)
    assert ctl.command(0.02)[1] is Mode.TRACK
    ctl.set_joint_state(names, HOME, np.zeros(7), 0.6)
    assert ctl.command(0.6)[1] is Mode.HOLD  # desired is 0.59 s old
    tau, mode = ctl.command(0.7)  # joint state 0.1 s old
    assert mode is Mode.STALE and tau is None
    np.testing.assert_allclose(ctl.float_command(), robot.inverse_dynamics(HOME, np.zeros(7), np.zeros(7)))


@pytest.mark.parametrize("field, value", [("velocity", 1e300), ("velocity", 1e154), ("position", 1e308),
                                          ("velocity", 30.0), ("position", 4.0)])
def test_absurd_joint_states_are_rejected_not_turned_into_nan(robot, field, value):
    """Huge finite values gave NaN torques (ID of 1e300 rad/s); 10x a limit is already absurd."""
    ctl = ComputedTorqueController(robot, 400.0, 40.0)
    names = robot.joint_names
    ctl.set_joint_state(names, HOME, np.zeros(7), 0.0)
    q, qd = HOME.copy(), np.zeros(7)
    (qd if field == "velocity" else q)[:] = value
    with pytest.raises(JointInputError, match="sane range"):
        ctl.set_joint_state(names, q, qd, 0.002)
    np.testing.assert_array_equal(ctl.q, HOME)   # the previous state stays


@pytest.mark.parametrize("field", ["position", "velocity", "acceleration"])
def test_absurd_desired_motion_is_rejected(robot, field):
    ctl = ComputedTorqueController(robot, 400.0, 40.0)
    names = robot.joint_names
    values = {"position": HOME.copy(), "velocity": np.zeros(7), "acceleration": np.zeros(7)}
    values[field][2] = 1e308
    with pytest.raises(JointInputError, match="sane range"):
        ctl.set_desired(names, values["position"], values["velocity"], values["acceleration"], 0.0, 0.0)
    assert ctl.reference is None


def test_no_finite_input_gives_a_non_finite_or_over_limit_torque(robot):
    """Within the sane bounds, every command is finite and within the torque limits."""
    ctl = ComputedTorqueController(robot, 10000.0, 1.0)
    names = robot.joint_names
    rng = np.random.default_rng(0)
    lo, hi = robot.limits.q_min - 0.49, robot.limits.q_max + 0.49
    for i in range(300):
        q, q_des = rng.uniform(lo, hi), rng.uniform(lo, hi)
        qd, qd_des = (rng.uniform(-9.9, 9.9, 7) * robot.limits.qd_max for _ in range(2))
        qdd_des = rng.uniform(-9.9, 9.9, 7) * robot.limits.qdd_max
        ctl.set_joint_state(names, q, qd, i * 10.0)
        ctl.set_desired(names, q_des, qd_des, qdd_des, i * 10.0, i * 10.0)
        tau, mode = ctl.command(i * 10.0)
        assert mode is Mode.TRACK and np.all(np.isfinite(tau))
        assert np.all(np.abs(tau) <= robot.limits.tau_max)


def test_extra_joints_in_states_are_ignored_missing_ones_refused(robot):
    ctl = ComputedTorqueController(robot, 400.0, 40.0)
    names = list(robot.joint_names)
    ctl.set_joint_state(names + ["panda_finger_joint1", "panda_finger_joint2"],
                        np.r_[HOME, 0.04, np.nan], np.r_[np.zeros(7), 0.0, 0.0], 0.0)
    np.testing.assert_array_equal(ctl.q, HOME)
    with pytest.raises(JointInputError, match="missing"):
        ctl.set_joint_state(names[:6] + ["panda_finger_joint1"], HOME, np.zeros(7), 0.002)
    with pytest.raises(JointInputError, match="unknown"):   # a desired motion names exactly our joints
        ctl.set_desired(names + ["panda_finger_joint1"], np.r_[HOME, 0.0], [], [], 0.0, 0.0)


def test_a_pose_jump_drops_the_reference_and_re_anchors_the_hold(robot):
    """A reset moves the measured pose further than the speed limits allow: the hold is re-anchored
    there, where it used to drive the arm back to the old pose at saturated torque."""
    ctl = ComputedTorqueController(robot, 400.0, 40.0, desired_timeout=0.05)
    names = robot.joint_names
    held = HOME + np.array([0.4, 0.3, -0.3, 0.3, 0.4, -0.3, 0.4])
    ctl.set_joint_state(names, held, np.zeros(7), 0.0)
    ctl.set_desired(names, held, np.zeros(7), np.zeros(7), 0.0, 0.0)
    ctl.set_joint_state(names, held, np.zeros(7), 0.1)
    assert ctl.command(0.1)[1] is Mode.HOLD       # policy stalled: holding `held`
    event = ctl.set_joint_state(names, HOME, np.zeros(7), 0.102)   # the reset
    assert event and "jumped" in event and ctl.reference is None
    tau, mode = ctl.command(0.102)
    assert mode is Mode.HOLD
    np.testing.assert_allclose(tau, robot.inverse_dynamics(HOME, np.zeros(7), np.zeros(7)), atol=1e-9)
    assert ctl.set_joint_state(names, HOME + 0.004, np.zeros(7), 0.104) is None   # real motion is not a jump


def test_a_reference_computed_before_a_pose_jump_is_refused_and_a_newer_one_taken(robot):
    """A policy's answer to a frame from before a reset arrives after it: tracking it would drive the arm
    back toward the old pose (what made realtime episodes start with a lunge and fail 20 cm out)."""
    ctl = ComputedTorqueController(robot, 400.0, 40.0)
    names = robot.joint_names
    old = HOME + 0.4
    ctl.set_joint_state(names, old, np.zeros(7), 1.0)
    assert ctl.set_joint_state(names, HOME, np.zeros(7), 1.010, measured_at=1.008)   # the reset
    with pytest.raises(StaleReference, match="before the measured pose jumped"):
        ctl.set_desired(names, old, np.zeros(7), np.zeros(7), 0.995, 1.012)
    assert ctl.reference is None
    tau, mode = ctl.command(1.012)
    assert mode is Mode.HOLD
    np.testing.assert_allclose(tau, robot.inverse_dynamics(HOME, np.zeros(7), np.zeros(7)), atol=1e-9)
    ctl.set_desired(names, HOME, np.zeros(7), np.zeros(7), 1.008, 1.012)   # a frame of the jump's instant
    assert ctl.mode(1.012) is Mode.TRACK


def test_commanded_motion_respects_the_speed_limits(robot):
    """A far target (1 rad on every joint) is approached within the speed limits, in simulation."""
    ctl = ComputedTorqueController(robot, 400.0, 40.0)
    target = np.clip(HOME + 1.0, robot.limits.q_min + 0.1, robot.limits.q_max - 0.1)
    qs, _ = simulate(robot, ctl, HOME, 2.0, lambda t: (target, np.zeros(7), np.zeros(7)))
    speeds = np.abs(np.diff(qs, axis=0)) / robot.model.opt.timestep
    print(f"peak speed / limit: {np.max(speeds / robot.limits.qd_max):.3f}")
    assert np.all(speeds <= robot.limits.qd_max)
    assert np.abs(qs[-1] - target).max() < 0.05   # and still gets there


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
