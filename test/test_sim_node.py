"""The simulator node in lockstep, through real rclpy topics and services: episode bookkeeping.

What the simulator says it published in an episode is what recorders check their bags
against, so it must match what went out, whenever a reset lands in the physics loop.
"""

import json
import random
import threading
import time

import numpy as np
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
        for _ in range(24):
            info = driver.call_reset()
            episode, start = info["episode_id"], round(info["start_time"] * NS)
            driver.wait(lambda: episode in driver.results, f"episode {episode}'s result")
            result = driver.results[episode]
            end = start + round(result["duration"] * NS)
            # The simulator keeps stepping after an episode ends; states come in order, so one
            # stamped past the end means every state of the episode has arrived.
            driver.wait(lambda: driver.stamps and driver.stamps[-1] > end, "a state after the episode")
            with driver.cv:
                seen = sorted({s for s in driver.stamps if start <= s <= end})
            assert seen[0] == start, f"episode {episode} lacks its start state"
            assert np.all(np.diff(seen) == dt), f"episode {episode}: states not one physics step apart"
            assert result["published"][topics.JOINT_STATES] == len(seen), (episode, result["published"], len(seen))
            assert result["loop"]["steps"] == len(seen) - 1
            assert len(seen) == round(duration * NS / dt) + 1
            checked += 1
            # Vary where the next reset lands: while idling in the lock step, or mid-step.
            time.sleep(rng.uniform(0.0, 0.01))   # jitter, not synchronisation
        assert checked == 24
    finally:
        sim.close()
