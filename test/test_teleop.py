"""Teleop inputs and simulated operators (no ROS): what a person's keys, stick and skill turn into."""

import numpy as np
import pytest

from il_robot.teleop.joy import JoyMapping
from il_robot.teleop.keyboard import KeyboardTeleop
from il_robot.teleop.operators import SKILLS, SimulatedOperator, parse_operator


def test_keyboard_key_moves_while_repeats_come_and_stops_after():
    kb = KeyboardTeleop(speed=0.1, hold_time=0.5)
    assert np.allclose(kb.velocity(0.0), 0)
    kb.key("w", 1.0)
    assert np.allclose(kb.velocity(1.2), [0.1, 0, 0])
    kb.key("w", 1.4)                       # autorepeat keeps it on
    assert np.allclose(kb.velocity(1.8), [0.1, 0, 0])
    assert np.allclose(kb.velocity(2.0), 0)  # 0.6 s after the last repeat: released
    kb.key("f", 3.0)
    kb.key("+", 3.0)
    assert np.allclose(kb.velocity(3.1), [0, 0, -0.125])
    kb.key(" ", 3.2)
    assert np.allclose(kb.velocity(3.2), 0)
    kb.key("q", 3.3)
    assert kb.quit


def test_joy_needs_the_deadman_and_ignores_the_deadzone():
    joy = JoyMapping(axes=(1, 0, 4), scale=(0.2, -0.2, 0.1), deadman_button=4, deadzone=0.1)
    axes = [0.05, 1.0, 0.0, 0.0, -0.5]
    buttons = [0, 0, 0, 0, 0]
    assert np.allclose(joy.velocity(axes, buttons), 0)
    buttons[4] = 1
    assert np.allclose(joy.velocity(axes, buttons), [0.2, 0.0, -0.05])  # axis 0 (0.05) is in the deadzone
    with pytest.raises(ValueError, match="axis 4 not on this device"):
        joy.velocity([0.0, 0.0], buttons)
    with pytest.raises(ValueError, match="deadman button 4"):
        joy.velocity(axes, [1])


def test_operator_spec_is_checked():
    assert parse_operator("sim:poor") == "poor"
    with pytest.raises(ValueError, match="sim:expert, sim:okay, sim:poor"):
        parse_operator("sim:godlike")


def test_operator_reacts_late_by_its_skill():
    """An operator acts on the scene as it was `reaction_delay` ago."""
    from il_robot.policies.base import Observation

    op = SimulatedOperator("poor", seed=1)
    op.skill = SKILLS["poor"].__class__(**{**SKILLS["poor"].__dict__, "noise": 0.0, "hesitation_rate": 0.0,
                                           "gain": 1.0})
    op.reset({})
    delay_ticks = round(SKILLS["poor"].reaction_delay * 20)
    tip = np.array([0.4, 0.0, 0.12])
    far = {"target": np.array([0.45, 0.1, 0.03]), "goal": np.array([0.55, 0.0, 0.0])}
    near = {"target": np.array([0.45, -0.1, 0.03]), "goal": np.array([0.55, 0.0, 0.0])}
    q = np.zeros(7)
    first = [op.act(Observation(0.05 * i, q, q, tip, None, far)) for i in range(delay_ticks + 1)]
    after_move = [op.act(Observation(0.05 * (delay_ticks + 1 + i), q, q, tip, None, near))
                  for i in range(delay_ticks + 1)]
    # The target jumped to the other side: for `delay` ticks the operator still heads for the old one.
    assert all(np.sign(v[1]) == np.sign(first[-1][1]) for v in after_move[:delay_ticks])
    assert np.sign(after_move[-1][1]) != np.sign(first[-1][1])


def test_skill_levels_give_demos_of_different_quality():
    from il_robot.rollout import InProcessStack
    from il_robot.sim.tasks import make_task
    from il_robot.sim.world import PushingWorld

    world = PushingWorld(make_task("train", 0))
    stack = InProcessStack(world)
    distances = {}
    for skill in ("expert", "poor"):
        d = []
        for i in range(6):
            world.set_task(make_task("train", i))
            d.append(stack.run_episode(SimulatedOperator(skill, seed=i), seed=i, duration=10.0).final_distance)
        distances[skill] = np.array(d)
    world.close()
    assert np.mean(distances["expert"] <= 0.05) >= 0.8
    assert np.median(distances["expert"]) < np.median(distances["poor"])
