"""Human-gated DAgger: an operator takes the arm from a learned policy, and the frames they drove become
correction episodes that the dataset takes and the trainer samples.

Fast tests: the takeover rules without ROS, the policy node's takeover through real topics (a simulator
stand-in publishes clock, joints and object poses; an operator stand-in the takeover and commands), the
simulated corrector's judgement, correction bags into a dataset. The slow test runs the whole correction
graph (simulator, controller, policy, joy_teleop, the simulated corrector on /joy, recorder) and then
`dataset add` and the TecNet batch sampler on what it recorded.
"""

import json
import threading

import numpy as np
import pytest

from conftest import wait_until

from il_robot.ros.runner import SideExecutor   # as run_node spins the policy node's two halves
from il_robot.teleop.takeover import Driver, TakeoverArbiter

OPERATOR_V = np.array([0.0, 0.07, -0.02])   # what the operator commands in the tests
POLICY_V = np.array([0.05, 0.0, 0.0])       # what the test policy commands


# -- the takeover rules, without ROS ---------------------------------------------------------------------

def test_takeover_is_held_released_and_lost_when_the_device_goes_silent():
    arb = TakeoverArbiter(timeout=0.5)
    assert arb.driver_at(0.0) is Driver.POLICY
    assert arb.heard(False, 0.0) is Driver.POLICY and arb.takeovers == 0
    assert arb.heard(True, 1.0) is Driver.OPERATOR and arb.takeovers == 1
    assert arb.driver_at(1.4) is Driver.OPERATOR
    assert arb.driver_at(1.6) is Driver.LOST          # silent for 0.6 s mid-takeover: hold
    assert arb.driver_at(100.0) is Driver.LOST        # and it stays held, however long
    assert arb.heard(False, 100.1) is Driver.POLICY   # only the device itself ends it: released...
    assert arb.heard(True, 101.0) is Driver.OPERATOR and arb.takeovers == 2
    assert arb.driver_at(0.5) is Driver.LOST          # ...a clock gone back leaves the age unknown: hold
    assert arb.heard(True, 0.6) is Driver.OPERATOR and arb.takeovers == 2   # ...or held again (same takeover)
    assert arb.driver_at(5.0) is Driver.LOST
    arb.heard(False, 5.0)
    assert arb.driver_at(1000.0) is Driver.POLICY     # the policy driving never times out
    with pytest.raises(ValueError):
        TakeoverArbiter(timeout=0.0)


def test_joystick_takeover_button_takes_over_and_steers():
    from il_robot.teleop.joy import JoyMapping

    joy = JoyMapping(axes=(1, 0, 4), scale=(0.2, 0.2, 0.1), deadman_button=4, deadzone=0.1, takeover_button=5)
    axes = [0.5, 1.0, 0.0, 0.0, -0.5]
    assert not joy.takeover([0] * 6) and np.allclose(joy.velocity(axes, [0] * 6), 0)
    held = [0, 0, 0, 0, 0, 1]
    assert joy.takeover(held)
    assert np.allclose(joy.velocity(axes, held), [0.2, 0.1, -0.05])   # the takeover button enables motion
    with pytest.raises(ValueError, match="takeover button 5 not on this device"):
        joy.takeover([0, 0])
    assert not JoyMapping().takeover([0, 0])   # no takeover button configured: never held


def test_keyboard_t_toggles_the_takeover_and_stops_the_tool():
    from il_robot.teleop.keyboard import KeyboardTeleop

    kb = KeyboardTeleop(speed=0.1)
    kb.key("w", 0.0)
    kb.key("t", 0.1)
    assert kb.takeover and np.allclose(kb.velocity(0.2), 0)
    kb.key("a", 0.3)
    assert np.allclose(kb.velocity(0.4), [0, 0.1, 0])
    kb.key("t", 0.5)
    assert not kb.takeover and np.allclose(kb.velocity(0.6), 0)


# -- the simulated corrector's judgement ------------------------------------------------------------------

def _obs(t, tip, target, distractor=(0.4, -0.15, 0.03), goal=(0.6, 0.0, 0.0)):
    from il_robot.policies.base import Observation

    q = np.zeros(7)
    objects = {"target": np.array(target, float), "distractor": np.array(distractor, float),
               "goal": np.array(goal, float)}
    return Observation(t, q, q, np.array(tip, float), None, objects)


def _pushing_obs(t, target, lateral, goal=(0.9, 0.0, 0.0), z=0.02):
    """The tool low behind `target`, in contact along the target->goal line, `lateral` m to its side."""
    from il_robot.robot.panda_like import TOOL_RADIUS

    target = np.asarray(target, float)
    d = (np.asarray(goal[:2]) - target[:2]) / np.linalg.norm(np.asarray(goal[:2]) - target[:2])
    side = np.array([-d[1], d[0]])
    tip = target[:2] - (0.025 + TOOL_RADIUS) * d + lateral * side
    return _obs(t, (*tip, z), target, goal=goal)


def test_corrector_takes_over_when_the_push_drifts_off_its_line_and_hands_back_on_track():
    from il_robot.teleop.corrector import DRIFT, DRIFT_TIME, ON_TRACK_TIME, SimulatedCorrector

    c = SimulatedCorrector("expert", seed=0)
    c.reset({"task": {"target": {"shape": "cylinder", "size": 0.025}}})   # target radius 2.5 cm
    t, x = 0.0, 0.40
    for _ in range(20):      # pushing on the line: nothing to correct
        held, v = c.step(_pushing_obs(t, (x, 0.0, 0.03), 0.005))
        assert not held and np.allclose(v, 0)
        t, x = t + 0.05, x + 0.004
    beyond = None            # the contact slides off to the side
    lateral = 0.005
    while not held:
        lateral += 0.002
        if beyond is None and lateral > DRIFT * 0.025:
            beyond = t
        held, v = c.step(_pushing_obs(t, (x, 0.0, 0.03), lateral))
        t, x = t + 0.05, x + 0.004
        assert t < 10.0, "never taken over"
    assert c.reason == "drift" and c.takeovers == ["drift"] and np.linalg.norm(v) > 0
    assert DRIFT_TIME <= t - 0.05 - beyond < DRIFT_TIME + 0.1    # only once it lasted DRIFT_TIME
    start = t                # the operator brings the tool back onto the line: handed back after ON_TRACK_TIME
    while held:
        held, _ = c.step(_pushing_obs(t, (x, 0.0, 0.03), 0.003))
        t, x = t + 0.05, x + 0.004
        assert t - start < ON_TRACK_TIME + 0.2, "not handed back while pushing on track"
    assert t - start >= ON_TRACK_TIME
    held, v = c.step(_pushing_obs(t, (x, 0.0, 0.03), 0.003))
    assert not held and np.allclose(v, 0)


def test_a_short_slip_of_the_contact_is_not_taken_over():
    from il_robot.teleop.corrector import DRIFT_TIME, SimulatedCorrector

    c = SimulatedCorrector("expert", seed=0)
    c.reset({"task": {"target": {"shape": "cylinder", "size": 0.025}}})
    t, x = 0.0, 0.40
    for k in range(40):      # 0.3 s of 3 cm off the line every second: the expert's own pushes do that
        lateral = 0.03 if (k % 20) * 0.05 < DRIFT_TIME - 0.2 else 0.005
        held, _ = c.step(_pushing_obs(t, (x, 0.0, 0.03), lateral))
        assert not held
        t, x = t + 0.05, x + 0.004


@pytest.mark.parametrize("what", ["stalled", "wrong object", "away"])
def test_corrector_takes_over_when_the_policy_stalls_or_pushes_the_wrong_way(what):
    from il_robot.teleop.corrector import STALL_TIME, SimulatedCorrector

    c = SimulatedCorrector("expert", seed=0)
    c.reset({})
    t, held = 0.0, False
    for k in range(int(3 * STALL_TIME / 0.05)):
        s = 0.003 * k
        if what == "stalled":      # hovering a few cm up beside the target
            held, _ = c.step(_obs(t, (0.35, 0.05, 0.06), (0.45, 0.0, 0.03)))
        elif what == "wrong object":
            held, _ = c.step(_obs(t, (0.3 + s, -0.15, 0.02), (0.45, 0.0, 0.03), distractor=(0.4 + s, -0.15, 0.03)))
        else:                      # the target pushed along its line, but away from the goal
            held, _ = c.step(_obs(t, (0.5 - s, 0.0, 0.02), (0.45 - s, 0.0, 0.03)))
        t += 0.05
        if held:
            break
    assert held and c.reason == what
    if what == "stalled":
        assert t >= STALL_TIME


def test_corrector_hands_back_where_the_pusher_it_steers_as_calls_the_target_home():
    """Held on there, it would record 'stand still' labels: the pusher stops within CLOSE_ENOUGH."""
    from il_robot.policies.scripted import CLOSE_ENOUGH
    from il_robot.teleop.corrector import STALL_TIME, SimulatedCorrector

    c = SimulatedCorrector("expert", seed=0)
    c.reset({})
    t, held = 0.0, False
    while not held:          # the tool hovers beside a target 10 cm from the goal at (0.6, 0)
        held, _ = c.step(_obs(t, (0.45, 0.05, 0.06), (0.5, 0.0, 0.03)))
        t += 0.05
        assert t < 2 * STALL_TIME
    held, v = c.step(_obs(t, (0.45, 0.05, 0.06), (0.6 - CLOSE_ENOUGH - 0.003, 0.0, 0.03)))
    assert held and np.linalg.norm(v) > 0                    # just outside: still correcting
    held, v = c.step(_obs(t + 0.05, (0.45, 0.05, 0.06), (0.6 - CLOSE_ENOUGH + 0.003, 0.0, 0.03)))
    assert not held and np.allclose(v, 0)


def test_joy_axes_command_the_correctors_velocity_through_the_mapping():
    from il_robot.ros.corrector_node import joy_axes_and_buttons
    from il_robot.teleop.joy import JoyMapping

    mapping = JoyMapping(axes=(1, 0, 4), scale=(0.15, -0.15, 0.1), deadman_button=4, deadzone=0.0, takeover_button=5)
    axes, buttons = joy_axes_and_buttons(np.array([0.03, 0.06, -0.5]), True, mapping)
    assert buttons[5] == 1 and mapping.takeover(buttons)
    assert np.allclose(mapping.velocity(axes, buttons), [0.03, 0.06, -0.1])   # z clipped to the stick's travel
    axes, buttons = joy_axes_and_buttons(np.zeros(3), False, mapping)
    assert not mapping.takeover(buttons)


# -- the policy node's takeover, through real topics --------------------------------------------------------


class _Stage:
    """A simulator and an operator stand-in around a real policy node with `takeover` on: frames at chosen
    sim times, takeover messages and commands when the test says, every action and correction seen."""

    def __init__(self, ros, policy: str, **params):
        import rclpy
        from geometry_msgs.msg import PoseArray, TwistStamped
        from rclpy.parameter import Parameter
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Bool

        from il_robot import topics
        from il_robot.robot import panda_like
        from il_robot.ros import conversions as conv
        from il_robot.ros.policy_node import PolicyNode

        self.conv, self.Clock, self.Bool, self.PoseArray, self.topics = conv, Clock, Bool, PoseArray, topics
        overrides = [Parameter("use_sim_time", value=True), Parameter("policy", value=policy),
                     Parameter("takeover", value=True)] + [Parameter(k, value=v) for k, v in params.items()]
        self.policy = PolicyNode(context=ros.context, parameter_overrides=overrides)
        self.spinners = [SideExecutor(self.policy), SideExecutor(self.policy.control_node)]
        node = self.node = ros.add(rclpy.create_node("stage", context=ros.context))
        self.cv = threading.Condition()
        self.actions: dict[float, np.ndarray] = {}
        self.corrections: dict[float, np.ndarray] = {}

        def on(store):
            def cb(msg):
                with self.cv:
                    store[conv.from_time(msg.header.stamp)] = np.array(
                        [msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z])
                    self.cv.notify_all()
            return cb

        node.create_subscription(TwistStamped, topics.TIP_VELOCITY, on(self.actions), 100)
        node.create_subscription(TwistStamped, topics.CORRECTION, on(self.corrections), 100)
        self.clock = node.create_publisher(Clock, topics.CLOCK, 10)
        self.js = node.create_publisher(JointState, topics.JOINT_STATES, 10)
        self.poses = node.create_publisher(PoseArray, topics.OBJECT_POSES, 10)
        self.takeover = node.create_publisher(Bool, topics.TAKEOVER, 10)
        self.cmd = node.create_publisher(TwistStamped, topics.TELEOP_CMD, 10)
        wait_until(lambda: self.clock.get_subscription_count() >= 2 and self.js.get_subscription_count() >= 1
                   and self.poses.get_subscription_count() >= 1 and self.takeover.get_subscription_count() >= 1
                   and self.cmd.get_subscription_count() >= 1 and node.count_publishers(topics.CORRECTION) >= 1
                   and node.count_publishers(topics.TIP_VELOCITY) >= 1, timeout=30, what="discovery")
        self.names, self.q = list(panda_like.JOINT_NAMES), np.array(panda_like.HOME_Q)

    def at(self, t: float) -> None:
        """Move every clock to t (the takeover's age is judged on the policy's clock)."""
        self.clock.publish(self.Clock(clock=self.conv.to_time(t)))
        wait_until(lambda: abs(self.policy.control_node.get_clock().now().nanoseconds * 1e-9 - t) < 1e-6,
                   what="the policy's clock")

    def operator(self, held: bool, v=OPERATOR_V, t: float = 0.0) -> None:
        """One message of the operator's device: the command (stamped t), then the button."""
        n = self.policy.takeover.messages
        self.cmd.publish(self.conv.twist_stamped(v, t))
        self.takeover.publish(self.Bool(data=held))
        wait_until(lambda: self.policy.takeover.messages > n, what="the takeover message")

    def frame(self, t: float) -> np.ndarray:
        """A camera period at t; returns the action the policy node sent for it."""
        self.at(t)
        self.js.publish(self.conv.joint_state(self.names, self.q, np.zeros(7), np.zeros(7), t))
        poses = self.PoseArray()
        poses.header.stamp = self.conv.to_time(t)
        poses.poses = [self.conv.pose(p) for p in ((0.45, 0.1, 0.03), (0.4, -0.15, 0.03), (0.55, 0.0, 0.0))]
        self.poses.publish(poses)
        with self.cv:
            assert self.cv.wait_for(lambda: t in self.actions, 10.0), f"frame {t} not answered"
            return self.actions[t]

    def stop(self):
        for s in self.spinners:
            s.stop()
        self.policy.close()
        self.policy.destroy_node()


@pytest.fixture
def stage(ros):
    from il_robot.policies.base import Policy, register

    @register("constant_test_policy")
    class Constant(Policy):
        needs_privileged = True   # ticks on the object poses

        def __init__(self, config=None):
            pass

        def reset(self, context):
            pass

        def act(self, obs):
            return POLICY_V

    made = []

    def make(**params):
        made.append(_Stage(ros, "constant_test_policy", **params))
        return made[-1]
    yield make
    for s in made:
        s.stop()


def test_takeover_overrides_the_policy_and_each_driven_frame_is_a_correction(stage):
    s = stage(takeover_timeout=0.5)
    t = 100.0
    s.at(t)
    s.operator(False, t=t)
    assert np.allclose(s.frame(t), POLICY_V)
    s.operator(True, t=t + 0.05)
    for k in range(1, 4):   # the operator's command drives while they hold the takeover
        s.operator(True, t=t + 0.05 * k)
        assert np.allclose(s.frame(t + 0.05 * k), OPERATOR_V)
    s.operator(False, t=t + 0.2)
    assert np.allclose(s.frame(t + 0.2), POLICY_V)
    with s.cv:
        assert sorted(s.corrections) == [t + 0.05, t + 0.1, t + 0.15]   # exactly the driven frames
        assert all(np.allclose(v, OPERATOR_V) for v in s.corrections.values())
    assert s.policy.takeover.takeovers == 1 and s.policy.corrections == 3


def test_an_operator_device_gone_silent_mid_takeover_holds_the_arm_until_heard_again(stage):
    """The safe state of the takeover: neither the policy the operator was correcting nor a stale command."""
    s = stage(takeover_timeout=0.5, command_timeout=5.0)
    t = 100.0
    s.at(t)
    s.operator(True, t=t)
    assert np.allclose(s.frame(t + 0.05), OPERATOR_V)
    assert np.allclose(s.frame(t + 0.6), 0.0)    # 0.6 s silent: held still (the command itself is still fresh)
    assert np.allclose(s.frame(t + 5.0), 0.0)    # and held, however long the silence
    with s.cv:
        assert sorted(s.corrections) == [t + 0.05]   # holding still is no operator's label
    s.operator(False, t=t + 5.0)                  # the device is back, button released: the policy drives
    assert np.allclose(s.frame(t + 5.05), POLICY_V)


def test_a_stale_or_non_finite_operator_command_holds_still_while_taken_over(stage):
    s = stage(takeover_timeout=5.0, command_timeout=0.5)
    t = 100.0
    s.at(t)
    s.operator(True, t=t)
    assert np.allclose(s.frame(t + 0.6), 0.0)   # their command is 0.6 s old: released, zero
    s.operator(True, v=[float("nan"), 0.0, 0.0], t=t + 0.6)   # ignored (logged); the old one is stale
    assert np.allclose(s.frame(t + 0.65), 0.0)
    s.operator(True, t=t + 0.7)
    assert np.allclose(s.frame(t + 0.7), OPERATOR_V)
    with s.cv:
        assert sorted(s.corrections) == [t + 0.7]    # held still on no fresh command: no label recorded


def test_an_operator_command_from_before_the_episode_began_does_not_drive_it(stage):
    """The simulator resets between episodes: a command still in flight from the last one is not this one's."""
    from il_robot.ros.latched import LATCHED_LATEST
    from std_msgs.msg import String

    s = stage(takeover_timeout=5.0, command_timeout=0.5)
    episodes = s.node.create_publisher(String, s.topics.EPISODE, LATCHED_LATEST)
    t = 100.0
    s.at(t)
    episodes.publish(String(data=json.dumps({"episode_id": 2, "start_time": t, "task": {}})))
    wait_until(lambda: s.policy._episode_start == t, what="the episode")
    s.operator(True, t=t - 0.1)                  # fresh by age (0.15 s), but from the episode before
    assert np.allclose(s.frame(t + 0.05), 0.0)
    s.operator(True, t=t + 0.05)
    assert np.allclose(s.frame(t + 0.1), OPERATOR_V)
    with s.cv:
        assert sorted(s.corrections) == [t + 0.1]


def test_without_the_takeover_parameter_the_operator_cannot_take_over(ros):
    from rclpy.parameter import Parameter

    from il_robot.ros.policy_node import PolicyNode

    node = PolicyNode(context=ros.context, parameter_overrides=[Parameter("use_sim_time", value=False)])
    try:
        assert node.takeover is None and not node.control_node.get_subscriptions_info_by_topic("/teleop/takeover")
    finally:
        node.close()
        node.destroy_node()


# -- correction bags into the dataset --------------------------------------------------------------------

def _correction_bag(path, corrected_frames, round_="2", index=3, frames=12, operator_skill="okay"):
    """A bag of an episode the policy drove, with the operator's corrections at `corrected_frames`."""
    from il_robot import topics
    from il_robot.data import messages as msg
    from il_robot.data.bag_format import OPERATOR
    from il_robot.data.corrections import CORRECTION_ROUND_KEY
    from il_robot.data.bag_writer import EpisodeBagWriter
    from il_robot.robot.panda_like import JOINT_NAMES

    start = 2.0
    stamps = start + 0.05 * np.arange(frames)
    info = {"task": {"name": f"train/{index:03d}", "task_set": "train", "index": index}, "seed": 9,
            "start_time": start, "episode_id": 1, "episode_duration": 0.05 * frames}
    policy_v, operator_v = np.array([0.01, 0.0, 0.0]), np.array([0.0, 0.05, 0.0])
    bag = EpisodeBagWriter(path)
    bag.write_msg(topics.EPISODE, "std_msgs/msg/String", start, msg.string(json.dumps(info)))
    bag.write_msg(OPERATOR, "std_msgs/msg/String", start,
                  msg.string(json.dumps({"operator": "sim:corrector", "skill": operator_skill})))
    rgb = np.full((64, 64, 3), 40 * index, np.uint8)   # frame i of task `index` is all 40 * index + i
    for t in np.arange(start - 0.01, stamps[-1] + 0.01, 0.002):
        bag.write_msg(topics.JOINT_STATES, "sensor_msgs/msg/JointState", t,
                      msg.joint_state(JOINT_NAMES, np.zeros(7), np.zeros(7), np.zeros(7), t))
    for i, t in enumerate(stamps):
        bag.write_msg(topics.IMAGE, "sensor_msgs/msg/Image", t, msg.image(rgb + i, t))
        v = operator_v if i in corrected_frames else policy_v
        bag.write_msg(topics.TIP_VELOCITY, "geometry_msgs/msg/TwistStamped", t, msg.twist_stamped(v, t))
        if i in corrected_frames:
            bag.write_msg(topics.CORRECTION, "geometry_msgs/msg/TwistStamped", t, msg.twist_stamped(v, t))
    bag.write_msg(topics.EPISODE_RESULT, "std_msgs/msg/String", stamps[-1], msg.string(json.dumps(
        {"episode_id": 1, "task": info["task"]["name"], "seed": 9, "success": True, "final_distance": 0.02,
         "duration": 0.05 * frames})))
    bag.close({CORRECTION_ROUND_KEY: round_} if round_ is not None else None)
    return operator_v


def test_dataset_add_takes_the_driven_frames_as_a_correction_episode_of_its_round(tmp_path):
    from il_robot.data.dataset import Dataset, add_to_dataset, build_dataset

    _correction_bag(tmp_path / "demo", [], round_=None)      # no round: an ordinary demo
    build_dataset([tmp_path / "demo"], tmp_path / "ds", progress=False)
    operator_v = _correction_bag(tmp_path / "corr", [2, 3, 4, 8, 9])
    _correction_bag(tmp_path / "untouched", [], index=4)     # never taken over: nothing to learn from
    summary = add_to_dataset([tmp_path / "corr", tmp_path / "untouched"], tmp_path / "ds", progress=False)
    assert summary["added"] == 1 and summary["corrections_added"] == 1 and summary["no_takeover"] == 1
    ds = Dataset(tmp_path / "ds")
    corr, demo = sorted(ds.episode_meta("train"), key=lambda e: e["key"])   # keys corr, demo
    assert demo["skill"] == "okay" and "dagger" not in demo and demo["frames"] == 12
    assert corr["skill"] == "correction" and corr["operator"] == "sim:corrector"
    assert corr["dagger"] == {"round": 2, "labeller": "human", "operator_skill": "okay", "takeovers": 2,
                              "episode_frames": 12}
    (_, arrays), = [(m, a) for m, a in ds.episodes("train") if m["key"] == corr["key"]]
    assert corr["frames"] == len(arrays["t"]) == 5
    assert np.allclose(arrays["action"], operator_v)          # labelled with the operator's command
    assert np.allclose(arrays["t"], 0.05 * np.array([2, 3, 4, 8, 9]))
    assert [int(i[0, 0, 0]) for i in arrays["image"]] == [3 * 40 + i for i in (2, 3, 4, 8, 9)]


@pytest.mark.parametrize("held_to_the_end", [True, False])
def test_the_recorder_awaits_the_last_frames_correction_while_the_operator_holds(tmp_path, held_to_the_end):
    """The correction answering an episode's last frame comes on a topic of its own, maybe after the action:
    the bag waits for it when the frame before had one, and does not when the operator had let go."""
    from il_robot import topics
    from il_robot.data import messages as msg
    from splitter_feed import SplitterFeed

    feed = SplitterFeed(tmp_path, image_size=8)
    splitter = feed.splitter
    feed.start({"episode_id": 1, "start_time": 10.0})
    frames = [10.0, 10.05, 10.1]
    for i, t in enumerate(frames):
        feed.frames(topics.IMAGE, [t])
        feed.send(t, topics.TIP_VELOCITY, msg.twist_stamped(OPERATOR_V, t))
        if i == 0 or i == 1 and held_to_the_end:
            feed.send(t, topics.CORRECTION, msg.twist_stamped(OPERATOR_V, t))
    feed.result({"episode_id": 1, "duration": 0.1, "published": {topics.IMAGE: 3}}, 10.1)
    if held_to_the_end:
        assert splitter.recordings and not splitter.closed     # the last frame's correction is awaited
        feed.send(10.1, topics.CORRECTION, msg.twist_stamped(OPERATOR_V, 10.1))
    assert not splitter.recordings and splitter.closed[0].complete
    assert splitter.closed[0].counts[topics.CORRECTION] == (3 if held_to_the_end else 1)


def test_a_correction_bag_with_an_unreadable_round_is_refused(tmp_path):
    from il_robot.data.bag_check import check_bag

    _correction_bag(tmp_path / "bad", [1, 2], round_="zero")
    assert any("il_robot.correction_round='zero' is not a round number" in str(p) for p in check_bag(tmp_path / "bad"))


def test_the_trainer_samples_corrections_of_the_tasks_that_have_them(tmp_path):
    """A person corrects only where the policy goes wrong: a batch whose tasks have corrections only in part
    still draws them (for those tasks, conditioned on their sentences)."""
    torch = pytest.importorskip("torch")
    from il_robot.data.dataset import Dataset, add_to_dataset, build_dataset
    from il_robot.learning.tecnet.config import TecNetConfig
    from il_robot.learning.tecnet.data import Normalisation, TaskBatchSampler, load_demos
    from il_robot.learning.tecnet.model import TecNet, state_layout
    from il_robot.learning.tecnet.train import batch_losses

    demos = []
    for index in range(3):
        for k in range(2):
            demos.append(tmp_path / f"demo{index}{k}")
            _correction_bag(demos[-1], [], round_=None, index=index)
    build_dataset(demos, tmp_path / "ds", progress=False)
    operator_v = _correction_bag(tmp_path / "corr", [2, 3, 4], index=1)
    add_to_dataset([tmp_path / "corr"], tmp_path / "ds", progress=False)
    config = TecNetConfig()
    cfg = config.data
    cfg.tasks_per_batch, cfg.timesteps_per_demo, cfg.corrections_per_task = 3, 2, 4
    loaded = load_demos(Dataset(tmp_path / "ds"), "train", cfg, state_layout(config.model))
    norm = Normalisation.from_demos(loaded)
    sampler = TaskBatchSampler(loaded, cfg, norm, np.random.default_rng(0))
    for _ in range(5):
        batch = sampler.sample()
        assert batch["correction_images"].shape[:2] == (1, 4)            # task 1's, only
        assert {int(i[0, 0, 0]) for i in batch["correction_images"][0]} <= {42, 43, 44}   # its frames 2-4
        assert np.allclose(batch["correction_action"].reshape(-1, 3), norm.action(np.tile(operator_v, (4, 1))))
        position = batch["correction_task"]          # which of the batch's tasks they belong to...
        assert position.shape == (1, 4) and len(set(position.ravel())) == 1
        first_frame = batch["frames"][position[0, 0], 0, 0]     # ...task 1: its demos' first frames are 40
        assert np.all(first_frame == 40)
    losses = batch_losses(TecNet(config.model), {k: torch.from_numpy(v) for k, v in batch.items()}, config)
    assert losses["correction_control_loss"].item() > 0


def test_a_human_round_refuses_what_it_cannot_run_before_starting_anything(tmp_path, capsys, monkeypatch):
    from il_robot.cli.main import main
    from il_robot.data.dataset import build_dataset
    from il_robot.human_dagger import parse_operator

    with pytest.raises(ValueError, match="choose from joy, keyboard, sim:expert"):
        parse_operator("sim:godlike")
    _correction_bag(tmp_path / "demo", [], round_=None)
    build_dataset([tmp_path / "demo"], tmp_path / "ds", progress=False)
    dagger = ["dataset", "dagger", str(tmp_path / "ds"), "--labeller", "human", "--model-dir", "models/tecnet"]
    assert main(dagger + ["--beta", "0.5"]) == 2
    assert "leave --beta at 0" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(dagger + ["--operator", "keyboard"]) == 2
    assert "stdin is not one" in capsys.readouterr().err
    (tmp_path / "demo" / "metadata.yaml").unlink()       # the demo the policy would be conditioned on is gone
    assert main(dagger) == 2
    assert "1 conditioning demo bag(s) named in" in capsys.readouterr().err
    assert not (tmp_path / "ds-corrections").exists()


# -- the whole correction graph ----------------------------------------------------------------------------

@pytest.mark.slow
def test_corrections_recorded_through_the_graph_join_the_dataset_and_the_batches(tmp_path):
    """Simulator, controller, the policy node (a policy that never moves: every episode needs correcting),
    joy_teleop and the simulated corrector working it through /joy, the recorder: the corrector takes over
    (the executed action is its command exactly on the frames marked as corrections), the bags carry the
    round, dataset add files the takeovers as correction episodes of it, the trainer's batches draw them,
    and running the round again records nothing twice."""
    from il_robot import topics
    from il_robot.data import bag_reader
    from il_robot.data.corrections import CORRECTION_ROUND_KEY
    from il_robot.data.dataset import Dataset, build_dataset
    from il_robot.data.generate import generate, plan_jobs
    from il_robot.human_dagger import collect_human_corrections

    jobs = plan_jobs(str(tmp_path / "demos"), "train", 2, 2, ["expert"], 0, duration=4.0)
    assert not generate(jobs, workers=1, progress=False)["failed"]
    build_dataset([j.path for j in jobs], tmp_path / "data", progress=False)

    def round_3():
        return collect_human_corrections(tmp_path / "data", "", 3, operator="sim:expert", policy="hold",
                                         episode_duration=6.0, log_dir=str(tmp_path / "logs"), progress=print)

    summary = round_3()
    assert summary["episodes"] == 2 and summary["incomplete"] == 0, summary
    assert summary["taken_over"] == 2 and summary["corrections_added"] == 2 and summary["learner_success"] == 0
    for row in summary["per_episode"]:
        contents = bag_reader.read_bag(row["bag"])
        assert contents.custom_data[CORRECTION_ROUND_KEY] == "3"
        executed = bag_reader.actions(contents)
        corrected = bag_reader.actions(contents, topics.CORRECTION)
        assert 0 < corrected.stamp_ns.size == row["takeover_frames"] < executed.stamp_ns.size
        by_stamp = dict(zip(executed.stamp_ns.tolist(), executed.v))
        assert all(np.allclose(by_stamp[s], v) for s, v in zip(corrected.stamp_ns.tolist(), corrected.v))
        policy_frames = [v for s, v in by_stamp.items() if s not in set(corrected.stamp_ns.tolist())]
        assert np.allclose(policy_frames, 0.0)                            # the hold policy's own action
        assert any(np.linalg.norm(v) > 0.01 for v in corrected.v)         # the corrector moved the arm
        assert bag_reader.operator_info(contents)["operator"] == "sim:corrector"
    corrections = [e for e in Dataset(tmp_path / "data").episode_meta("train") if e["skill"] == "correction"]
    assert len(corrections) == 2
    for entry, row in zip(sorted(corrections, key=lambda e: e["bag"]), sorted(summary["per_episode"],
                                                                             key=lambda r: r["bag"])):
        assert entry["dagger"]["round"] == 3 and entry["dagger"]["labeller"] == "human"
        assert entry["dagger"]["operator_skill"] == "expert" and entry["dagger"]["takeovers"] >= 1
        assert 0 < entry["frames"] <= row["takeover_frames"]

    again = round_3()                       # resumed: both episodes are recorded, both bags are in
    assert again["episodes"] == 2 and again["corrections_added"] == 0 and again["already_in"] == 2
    assert len([e for e in Dataset(tmp_path / "data").episode_meta() if e["skill"] == "correction"]) == 2

    torch = pytest.importorskip("torch")
    from il_robot.learning.tecnet.config import TecNetConfig
    from il_robot.learning.tecnet.data import Normalisation, TaskBatchSampler, load_demos
    from il_robot.learning.tecnet.model import state_layout

    config = TecNetConfig()
    config.data.tasks_per_batch = 2
    loaded = load_demos(Dataset(tmp_path / "data"), "train", config.data, state_layout(config.model))
    sampler = TaskBatchSampler(loaded, config.data, Normalisation.from_demos(loaded), np.random.default_rng(0))
    batch = sampler.sample()
    assert batch["correction_images"].shape[:2] == (2, config.data.corrections_per_task)
    assert torch.from_numpy(batch["correction_task"]).unique().numel() == 2
