"""The simulator node in lockstep, through real rclpy topics and services: episode bookkeeping.

What the simulator says it published in an episode is what recorders check their bags
against, so it must match what went out, whenever a reset lands in the physics loop.
"""

import json
import random
import threading
import time

import numpy as np
import pytest
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger

from conftest import wait_until
from il_robot import topics
from il_robot.ros.latched import LATCHED
from il_robot.ros.sim_node import SimNode

NS = 1_000_000_000


class Driver:
    """Answers every joint state with a torque (as the inverse-dynamics node does) and keeps the
    stamps it saw, the episode results, and a client for the reset service."""

    def __init__(self, ros):
        import rclpy
        self.node = ros.add(rclpy.create_node("sim_test_driver", context=ros.context))
        self.cv = threading.Condition()
        self.stamps: list[int] = []
        self.results: dict[int, dict] = {}
        self.pub = self.node.create_publisher(Float64MultiArray, topics.EFFORT_COMMANDS, 10)
        self.node.create_subscription(JointState, topics.JOINT_STATES, self._on_state, 1000)
        self.node.create_subscription(String, topics.EPISODE_RESULT, self._on_result, LATCHED)
        self.reset = self.node.create_client(Trigger, topics.SIM_RESET)

    def _on_state(self, msg):
        self.pub.publish(Float64MultiArray(data=[0.0] * len(msg.name)))
        with self.cv:
            self.stamps.append(msg.header.stamp.sec * NS + msg.header.stamp.nanosec)
            self.cv.notify_all()

    def _on_result(self, msg):
        result = json.loads(msg.data)
        with self.cv:
            self.results[result["episode_id"]] = result
            self.cv.notify_all()

    def call_reset(self) -> dict:
        future = self.reset.call_async(Trigger.Request())
        wait_until(future.done, timeout=30, what="the reset service")
        assert future.result().success, future.result().message
        return json.loads(future.result().message)

    def wait(self, predicate, what: str):
        with self.cv:
            assert self.cv.wait_for(predicate, 30), f"timed out waiting for {what}"


def test_every_episode_publishes_its_start_state_once_and_counts_what_went_out(ros):
    """Resets land at random points of the physics loop (stepping, publishing, waiting): each
    episode still starts with the reset state, steps once per physics period, and its result's
    `published` count is the number of distinct joint states that went out."""
    duration = 0.5
    sim = SimNode(context=ros.context, parameter_overrides=[
        Parameter("mode", value="lockstep"), Parameter("render", value=False),
        Parameter("episode_duration", value=duration), Parameter("task_set", value="train")])
    ros.add(sim)
    driver = Driver(ros)
    try:
        wait_until(lambda: driver.reset.service_is_ready(), timeout=30, what="the reset service")
        dt = round(sim.world.timestep * NS)
        rng = random.Random(0)
        checked = 0
        windows = []
        for _ in range(24):
            info = driver.call_reset()
            episode, start = info["episode_id"], round(info["start_time"] * NS)
            driver.wait(lambda: episode in driver.results, f"episode {episode}'s result")
            result = driver.results[episode]
            end = start + round(result["duration"] * NS)
            # States come in order: the final one means every state of the episode has arrived.
            driver.wait(lambda: driver.stamps and driver.stamps[-1] >= end, "the episode's final state")
            with driver.cv:
                seen = sorted({s for s in driver.stamps if start <= s <= end})
            assert seen[0] == start, f"episode {episode} lacks its start state"
            assert np.all(np.diff(seen) == dt), f"episode {episode}: states not one physics step apart"
            assert result["published"][topics.JOINT_STATES] == len(seen), (episode, result["published"], len(seen))
            assert result["loop"]["steps"] == len(seen) - 1
            assert len(seen) == round(duration * NS / dt) + 1
            checked += 1
            windows.append((start, end))
            # Vary where the next reset lands: while answering the final state, or holding after it.
            time.sleep(rng.uniform(0.0, 0.01))   # jitter, not synchronisation
        assert checked == 24
        # Between an episode's end and the next reset the world holds: no state outside an episode.
        with driver.cv:
            between = [s for s in driver.stamps if s >= windows[0][0] and not any(a <= s <= b for a, b in windows)]
        assert between == []
    finally:
        sim.close()


def _code(stamp_ns: int) -> float:
    """The torque (joint 1, N m) a test controller answers a state with: says which state it answers."""
    return ((stamp_ns // 2_000_000) % 500) * 0.01


@pytest.mark.parametrize("sync_policy", [False, True])
def test_each_step_applies_the_answer_to_its_own_state_also_after_re_sends(ros, sync_policy):
    """A controller that answers some states late (after the simulator re-sent them), and then twice:
    the duplicate answer must not be taken for the next state's torque, or a replay would differ.
    Each state's effort shows the torque applied in the step before it."""
    import rclpy
    from geometry_msgs.msg import PoseArray
    from trajectory_msgs.msg import JointTrajectory

    sim = SimNode(context=ros.context, parameter_overrides=[
        Parameter("mode", value="lockstep"), Parameter("render", value=False),
        Parameter("episode_duration", value=0.5), Parameter("sync_policy", value=sync_policy)])
    ros.add(sim)
    node = ros.add(rclpy.create_node("late_controller", context=ros.context))
    cv = threading.Condition()
    states: dict[int, float] = {}       # stamp -> effort of joint 1
    held: set[int] = set()
    pub = node.create_publisher(Float64MultiArray, topics.EFFORT_COMMANDS, 10)
    desired = node.create_publisher(JointTrajectory, topics.CONTROLLER_REFERENCE, 10)

    def answer(stamp, n):
        for _ in range(n):
            pub.publish(Float64MultiArray(data=[_code(stamp)] + [0.0] * 6))

    def on_state(msg):
        stamp = msg.header.stamp.sec * NS + msg.header.stamp.nanosec
        with cv:
            first = stamp not in states
            states[stamp] = msg.effort[0]
            cv.notify_all()
        if first and (stamp // 2_000_000) % 40 == 7:
            held.add(stamp)              # no answer until the simulator sends it again
        elif stamp in held:
            held.discard(stamp)
            answer(stamp, 2)             # late: the original's answer and the re-send's
        else:
            answer(stamp, 1)

    def on_frame(msg):                   # the policy's answer to each frame
        reply = JointTrajectory()
        reply.header.stamp = msg.header.stamp
        desired.publish(reply)

    node.create_subscription(JointState, topics.JOINT_STATES, on_state, 1000)
    node.create_subscription(PoseArray, topics.OBJECT_POSES, on_frame, 100)
    try:
        info = None
        reset = node.create_client(Trigger, topics.SIM_RESET)
        wait_until(reset.service_is_ready, timeout=30, what="the reset service")
        future = reset.call_async(Trigger.Request())
        wait_until(future.done, timeout=30, what="the reset")
        info = json.loads(future.result().message)
        start = round(info["start_time"] * NS)
        dt = round(sim.world.timestep * NS)
        end = start + 250 * dt
        with cv:
            assert cv.wait_for(lambda: end in states, 60), "the episode did not run to its end"
            stamps = sorted(s for s in states if start <= s <= end)
        late = [s for s in stamps if (s // 2_000_000) % 40 == 7]
        assert len(late) >= 5 and sim.loop.torque_missed >= 5   # the re-sends happened
        for before, after in zip(stamps, stamps[1:]):
            assert after - before == dt
            assert abs(states[after] - _code(before)) < 1e-9, (before, states[after], _code(before))
    finally:
        sim.close()
