"""Tasks, episodes and the success criterion of the MuJoCo pushing world."""

import numpy as np
import pytest

from il_robot.policies.scripted import ScriptedPusher
from il_robot.rollout import InProcessStack
from il_robot.sim.tasks import GOAL_XY, draw_positions, make_task, task_set
from il_robot.sim.world import PushingWorld


def test_task_sets_are_reproducible_and_disjoint():
    assert make_task("train", 5) == make_task("train", 5)
    train = {(t.target, t.distractor) for t in task_set("train")}
    heldout = {(t.target, t.distractor) for t in task_set("heldout")}
    assert len(train) == 200 and not train & heldout
    with pytest.raises(ValueError, match="unknown task set"):
        make_task("test", 0)


def test_episode_positions_come_from_the_seed():
    task = make_task("heldout", 2)
    a, b = draw_positions(task, 7), draw_positions(task, 7)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.allclose(draw_positions(task, 8)[0], a[0])


def test_world_renders_and_scores():
    world = PushingWorld(make_task("heldout", 1), image_size=(48, 64))
    info = world.reset(3)
    image = world.render()
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8 and image.std() > 5
    out = world.outcome()
    expected = np.linalg.norm(np.asarray(info["target_xy"]) - GOAL_XY)
    assert out.final_distance == pytest.approx(expected, abs=1e-3) and not out.success
    adr = world._obj_qadr["target"]
    world.data.qpos[adr:adr + 2] = (GOAL_XY[0] + 0.03, GOAL_XY[1])
    assert world.outcome().success
    world.close()


def test_scripted_expert_in_process():
    """The expert pushes held-out targets home without ROS in the loop (fast check)."""
    results = []
    for i in range(6):
        stack = InProcessStack(PushingWorld(make_task("heldout", i)))
        results.append(stack.run_episode(ScriptedPusher(), seed=i, duration=10.0))
    assert sum(r.success for r in results) >= 5, [r.final_distance for r in results]
