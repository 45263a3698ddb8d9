"""The simulator's camera_delay, through real rclpy topics: in realtime mode a frame (image,
camera_info, object poses) keeps the stamp of its capture and goes out camera_delay later in
sim time, as a real camera pipeline's latency would; a lockstep simulator refuses a delay.

"When a frame arrives" is judged on the transport's reception timestamps (MessageInfo), not on
the order this process's executor happens to run callbacks in: the /clock seen at a frame's
arrival is the latest /clock message received before the frame was.
"""

import json
import os
import subprocess
import sys
import threading

import pytest
from geometry_msgs.msg import PoseArray
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from conftest import wait_until
from il_robot import topics
from il_robot.ros import conversions as conv
from il_robot.ros.latched import LATCHED
from il_robot.ros.sim_node import SimNode

CAMERA_RATE = 20.0     # Hz (the simulator's default)
CLOCK_RATE = 100.0     # Hz (the simulator's default): a frame may overtake the /clock published before it


class Watcher:
    """Keeps every /clock, image, object-pose and episode message with the transport's timestamps."""

    def __init__(self, ros):
        import rclpy
        self.node = ros.add(rclpy.create_node("camera_delay_watcher", context=ros.context))
        self.cv = threading.Condition()
        self.clocks: list[tuple[int, float]] = []            # (received ns, clock)
        self.frames: dict[str, list[tuple[int, int, float]]] = {topics.IMAGE: [], topics.OBJECT_POSES: []}
        self.episodes: list[tuple[int, dict]] = []          # (source ns, announcement)
        self.results: dict[int, dict] = {}
        # /clock first: it is also taken first when several topics are ready at once.
        self.node.create_subscription(Clock, topics.CLOCK, self._on_clock, 1000)
        self.node.create_subscription(Image, topics.IMAGE, self._frame(topics.IMAGE), 100)
        self.node.create_subscription(PoseArray, topics.OBJECT_POSES, self._frame(topics.OBJECT_POSES), 100)
        self.node.create_subscription(String, topics.EPISODE, self._on_episode, LATCHED)
        self.node.create_subscription(String, topics.EPISODE_RESULT, self._on_result, LATCHED)
        self.reset = self.node.create_client(Trigger, topics.SIM_RESET)

    def _on_clock(self, msg, info):
        with self.cv:
            self.clocks.append((info["received_timestamp"], conv.from_time(msg.clock)))

    def _frame(self, topic):
        def on_frame(msg, info):
            with self.cv:
                self.frames[topic].append((info["received_timestamp"], info["source_timestamp"],
                                           conv.from_time(msg.header.stamp)))
                self.cv.notify_all()
        return on_frame

    def _on_episode(self, msg, info):
        with self.cv:
            self.episodes.append((info["source_timestamp"], json.loads(msg.data)))

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

    def latest_clock(self) -> float:
        with self.cv:
            return max((c for _, c in self.clocks), default=float("-inf"))

    def clock_seen_at(self, received_ns: int) -> float:
        with self.cv:
            return max((c for r, c in self.clocks if r <= received_ns), default=float("-inf"))

    def stamps(self, topic: str, start: float, end: float) -> list[float]:
        with self.cv:
            return [s for _, _, s in self.frames[topic] if start - 1e-9 <= s <= end + 1e-9]

    def wait(self, predicate, what: str, timeout: float = 30.0):
        with self.cv:
            assert self.cv.wait_for(predicate, timeout), f"timed out waiting for {what}"


def _realtime_sim(ros, delay: float, duration: float) -> SimNode:
    return ros.add(SimNode(context=ros.context, parameter_overrides=[
        Parameter("mode", value="realtime"), Parameter("camera_delay", value=delay),
        Parameter("episode_duration", value=duration)]))


def _heard_the_camera(watcher: Watcher) -> None:
    """DDS matches each direction on its own: a frame received proves this node hears the simulator."""
    wait_until(watcher.reset.service_is_ready, timeout=30, what="the reset service")
    watcher.wait(lambda: all(watcher.frames.values()), "a first image and object poses")


def test_a_delayed_frame_keeps_its_capture_stamp_and_goes_out_after_the_delay(ros):
    delay, duration = 0.1, 1.0
    sim = _realtime_sim(ros, delay, duration)
    watcher = Watcher(ros)
    try:
        _heard_the_camera(watcher)
        info = watcher.call_reset()
        episode, start = info["episode_id"], info["start_time"]
        end = start + duration
        watcher.wait(lambda: episode in watcher.results, f"episode {episode}'s result")
        result = watcher.results[episode]
        assert abs(result["duration"] - duration) < 1e-9   # scored at its end, not when the result went out
        published = result["published"]
        for topic in (topics.IMAGE, topics.OBJECT_POSES):   # every frame counted for the episode arrives
            watcher.wait(lambda: len(watcher.stamps(topic, start, end)) >= published[topic], f"{topic} frames")
        poses = watcher.stamps(topics.OBJECT_POSES, start, end)
        images = watcher.stamps(topics.IMAGE, start, end)
        # Stamps are the capture instants: on the camera period grid from the episode's start, the end
        # frame included, each once, in order.
        grid = [start + i / CAMERA_RATE for i in range(round(duration * CAMERA_RATE) + 1)]
        assert len(poses) == len(grid) and all(abs(s - g) < 1e-6 for s, g in zip(poses, grid)), poses
        assert images == sorted(set(images)) and all(
            abs(s - start - round((s - start) * CAMERA_RATE) / CAMERA_RATE) < 1e-6 for s in images), images
        assert images   # (the camera thread may drop a frame it cannot keep up with: counted off)
        assert published[topics.OBJECT_POSES] == len(poses) and published[topics.IMAGE] == len(images)
        assert result["loop"]["frames"] == len(grid) - 1   # each frame but the end one judged once
        # Each frame arrived after the simulator's clock passed its stamp + delay (one /clock period
        # of slack: a frame may overtake the /clock message published just before it).
        with watcher.cv:
            arrivals = {t: [(r, s) for r, _, s in watcher.frames[t] if start - 1e-9 <= s <= end + 1e-9]
                        for t in watcher.frames}
        for topic, frames in arrivals.items():
            for received, stamp in frames:
                seen = watcher.clock_seen_at(received)
                assert seen >= stamp + delay - 1 / CLOCK_RATE - 1e-9, (topic, stamp, seen)
    finally:
        sim.close()


def test_a_reset_within_the_delay_after_an_episode_still_gives_its_result_and_no_old_frame(ros):
    """A reset that lands while the episode's last frames are still due: the result goes out with what
    was published, and nothing captured in the ended episode is published into the next one."""
    delay, duration = 0.5, 0.5
    sim = _realtime_sim(ros, delay, duration)
    watcher = Watcher(ros)
    try:
        _heard_the_camera(watcher)
        info = watcher.call_reset()
        episode, start = info["episode_id"], info["start_time"]
        end = start + duration
        wait_until(lambda: watcher.latest_clock() >= end, timeout=30, what="the episode's end")
        second = watcher.call_reset()
        watcher.wait(lambda: episode in watcher.results, f"episode {episode}'s result")
        result = watcher.results[episode]
        assert abs(result["duration"] - duration) < 1e-9
        assert result["published"][topics.OBJECT_POSES] == len(watcher.stamps(topics.OBJECT_POSES, start, end))
        # Episode 2's own frames come, and no object poses of episode 1 were published after its start.
        watcher.wait(lambda: watcher.stamps(topics.OBJECT_POSES, second["start_time"], float("inf")),
                     "a frame of the next episode")
        with watcher.cv:
            announced = next(src for src, e in watcher.episodes if e["episode_id"] == second["episode_id"])
            late = [s for _, src, s in watcher.frames[topics.OBJECT_POSES]
                    if s < second["start_time"] - 1e-9 and src > announced]
        assert late == []
    finally:
        sim.close()


def test_a_lockstep_simulator_refuses_a_camera_delay_and_says_it_cannot_start():
    env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "MUJOCO_GL": "egl"}
    out = subprocess.run([sys.executable, "-m", "il_robot.ros.sim_node", "--ros-args", "-p", "mode:=lockstep",
                          "-p", "camera_delay:=0.1"], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 78, out.stderr[-2000:]
    assert "cannot start" in out.stderr and "camera_delay 0.1 s needs mode realtime" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("delay", [-0.1, 0.6])
def test_a_camera_delay_out_of_range_is_refused(ros, delay):
    from rclpy.exceptions import ParameterException
    with pytest.raises(ParameterException, match="camera_delay"):
        SimNode(context=ros.context, parameter_overrides=[Parameter("camera_delay", value=delay)])
