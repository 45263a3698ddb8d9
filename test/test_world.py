"""Tasks, episodes and the success criterion of the MuJoCo pushing world."""

import numpy as np
import pytest

from il_robot.policies.scripted import ScriptedPusher
from il_robot.rollout import InProcessStack
from il_robot.sim.tasks import GOAL_XY, TASK_SET_SIZES, draw_positions, make_task, task_set
from il_robot.sim.world import PushingWorld


def test_task_sets_are_reproducible_and_disjoint():
    assert make_task("train", 5) == make_task("train", 5)
    train = {(t.target, t.distractor) for t in task_set("train")}
    heldout = {(t.target, t.distractor) for t in task_set("heldout")}
    assert len(train) == TASK_SET_SIZES["train"] == 600 and not train & heldout
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


def test_funnel_expert_tells_a_hovering_tip_to_descend():
    """1.5 cm from the approach point at travel height, the plain expert only creeps closer (it descends
    past an 8 mm switch); the funnel labeller already says go down, and it still pushes targets home."""
    from il_robot.policies.base import Observation
    from il_robot.policies.scripted import Z_HIGH, Phase

    target, goal = np.array([0.45, 0.05, 0.03]), np.array([GOAL_XY[0], GOAL_XY[1], 0.0])
    plain, funnel = ScriptedPusher(), ScriptedPusher(arrive_radius=0.008, funnel_radius=0.04)
    d = (goal[:2] - target[:2]) / np.linalg.norm(goal[:2] - target[:2])
    behind = target[:2] - d * plain._standoff()
    tip = np.array([*(behind + np.array([0.0, 0.015])), Z_HIGH])
    obs = Observation(t=0.0, q=np.zeros(7), qd=np.zeros(7), tip=tip, objects={"target": target, "goal": goal})
    for expert in (plain, funnel):
        expert.phase = Phase.TRAVEL
    assert abs(plain.act(obs)[2]) < 0.01
    assert funnel.act(obs)[2] < -0.1
    results = [InProcessStack(PushingWorld(make_task("heldout", i))).run_episode(
        ScriptedPusher(arrive_radius=0.02, funnel_radius=0.04), seed=i, duration=10.0) for i in range(3)]
    assert sum(r.success for r in results) >= 2, [r.final_distance for r in results]


def test_memoryless_expert_answers_a_pose_the_same_after_any_history():
    """At the approach point, mid-height, the phased expert says "up" after a slip (LIFT) and "down" when
    arriving (DESCEND): a memoryless learner cannot tell the two apart. The memoryless labeller answers
    the pose alone: down there, and a low tip far from the approach point rises before it moves sideways.
    It still pushes targets home."""
    from il_robot.policies.base import Observation
    from il_robot.policies.scripted import Z_PUSH, Phase

    target, goal = np.array([0.45, 0.05, 0.03]), np.array([GOAL_XY[0], GOAL_XY[1], 0.0])
    phased = ScriptedPusher(arrive_radius=0.02, funnel_radius=0.04)
    d = (goal[:2] - target[:2]) / np.linalg.norm(goal[:2] - target[:2])
    behind = target[:2] - d * phased._standoff()
    at_approach = Observation(t=0.0, q=np.zeros(7), qd=np.zeros(7), tip=np.array([*behind, 0.07]),
                              objects={"target": target, "goal": goal})
    answers = []
    for phase in (Phase.LIFT, Phase.DESCEND):
        phased.phase = phase
        answers.append(phased.act(at_approach)[2])
    assert answers[0] > 0.05 and answers[1] < -0.05          # the phased expert: up or down, by its history
    memoryless = ScriptedPusher(arrive_radius=0.02, memoryless=True)
    first = memoryless.act(at_approach)
    memoryless.act(Observation(0.0, np.zeros(7), np.zeros(7), np.array([0.3, -0.2, 0.3]), objects=at_approach.objects))
    np.testing.assert_array_equal(memoryless.act(at_approach), first)
    assert first[2] < -0.1
    far_low = Observation(0.0, np.zeros(7), np.zeros(7), np.array([*(behind - 0.08 * d), Z_PUSH]),
                          objects=at_approach.objects)
    v = memoryless.act(far_low)
    assert v[2] > 0.2 and np.linalg.norm(v[:2]) < 1e-9
    results = [InProcessStack(PushingWorld(make_task("heldout", i))).run_episode(
        ScriptedPusher(arrive_radius=0.02, memoryless=True), seed=i, duration=10.0) for i in range(3)]
    assert sum(r.success for r in results) >= 2, [r.final_distance for r in results]


def test_low_lift_expert_ends_a_lift_where_arriving_descends():
    """After a slip the phased expert lifts to the full travel height, so at the approach point, mid-height,
    it says "up" where arriving it says "down". The low-lift labeller keeps the phases but ends the lift at
    the funnel's height: there it says "down" in either phase. Far from the approach point it still rises."""
    from il_robot.policies.base import Observation
    from il_robot.policies.scripted import Z_PUSH, Phase

    target, goal = np.array([0.45, 0.05, 0.03]), np.array([GOAL_XY[0], GOAL_XY[1], 0.0])
    low_lift = ScriptedPusher(arrive_radius=0.02, funnel_radius=0.04, low_lift=True)
    d = (goal[:2] - target[:2]) / np.linalg.norm(goal[:2] - target[:2])
    behind = target[:2] - d * low_lift._standoff()
    at_approach = Observation(t=0.0, q=np.zeros(7), qd=np.zeros(7), tip=np.array([*behind, 0.07]),
                              objects={"target": target, "goal": goal})
    for phase in (Phase.LIFT, Phase.DESCEND):
        low_lift.phase = phase
        assert low_lift.act(at_approach)[2] < -0.05, phase
    low_lift.phase = Phase.LIFT
    far_low = Observation(0.0, np.zeros(7), np.zeros(7), np.array([*(behind - 0.08 * d), Z_PUSH]),
                          objects=at_approach.objects)
    v = low_lift.act(far_low)
    assert v[2] > 0.05 and np.linalg.norm(v[:2]) < 1e-9 and low_lift.phase is Phase.LIFT


def test_continuous_expert_has_no_edge_and_no_still_point_near_the_approach_point():
    """A learner that puts the approach point 2 cm off fits the labels it sees there blurred by that error; an
    edge in the labels (the memoryless expert switches from "rise first" to "descend" at arrive_radius) blurs
    to a hover. The continuous labeller changes smoothly along a line out of the approach point, moves
    everywhere there, and still pushes targets home."""
    from il_robot.learning.dagger import make_labeller
    from il_robot.policies.base import Observation

    target, goal = np.array([0.45, 0.05, 0.03]), np.array([GOAL_XY[0], GOAL_XY[1], 0.0])
    d = (goal[:2] - target[:2]) / np.linalg.norm(goal[:2] - target[:2])
    side = np.array([-d[1], d[0]])

    def field(labeller, z):
        behind = target[:2] - d * labeller._standoff()
        return np.array([labeller.act(Observation(0.0, np.zeros(7), np.zeros(7), np.array([*(behind + r * side), z]),
                                                  objects={"target": target, "goal": goal}))
                         for r in np.arange(0.0, 0.07, 0.001)])

    memoryless, continuous = make_labeller("memoryless"), make_labeller("continuous")
    assert np.abs(np.diff(field(memoryless, 0.05), axis=0)).max() > 0.1      # the edge
    for z in (0.04, 0.05, 0.07, 0.1):
        v = field(continuous, z)
        assert np.abs(np.diff(v, axis=0)).max() < 0.02, z                    # per mm
        assert np.linalg.norm(v, axis=1).min() > 0.02, z
    results = [InProcessStack(PushingWorld(make_task("heldout", i))).run_episode(
        make_labeller("continuous"), seed=i, duration=10.0) for i in range(3)]
    assert all(r.success for r in results), [r.final_distance for r in results]


def test_the_cli_offers_exactly_the_labellers_dagger_makes():
    """dataset_cmd keeps its own copy of the labeller names so that parsing imports nothing heavy."""
    from il_robot.cli.dataset_cmd import LABELLERS as CLI_LABELLERS
    from il_robot.learning.dagger import LABELLERS, make_labeller

    assert CLI_LABELLERS == LABELLERS
    assert all(isinstance(make_labeller(name), ScriptedPusher) for name in LABELLERS)
    with pytest.raises(ValueError, match="choose one of phased, memoryless, low-lift, continuous"):
        make_labeller("greedy")


def test_an_episode_replays_exactly_from_any_whole_second_of_the_lockstep_epoch():
    """Contact makes the push chaotic (a start one binade lower already moves the target), yet an
    episode started on any whole second in [2^20, 2^21) s runs on the same times to the last bit:
    what lets a lockstep evaluation replay however many episodes came before."""
    from il_robot.ros.sim_node import LOCKSTEP_EPOCH

    def final_distance(start: float) -> float:
        world = PushingWorld(make_task("heldout", 3))
        try:
            world.clock = start
            return InProcessStack(world).run_episode(ScriptedPusher(), seed=3, duration=4.0).final_distance
        finally:
            world.close()

    runs = [final_distance(LOCKSTEP_EPOCH + s) for s in (0, 17, 300_001)]
    assert runs[0] == runs[1] == runs[2]
    assert final_distance(LOCKSTEP_EPOCH - 1) != runs[0]
