"""Drives episodes of a running simulator: choose task and seed, reset, await the outcome.

It also watches what an evaluator needs besides the outcome: the policy's
actions (its achieved tick rate) and, on request, the camera frames for a
rollout video.
"""

from __future__ import annotations

import json
import threading
import time

import rclpy
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.node import Node
from geometry_msgs.msg import TwistStamped
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from il_robot import topics
from il_robot.data.messages import stamp_ns, to_ns
from il_robot.ros import conversions as conv
from il_robot.ros.latched import LATCHED


LAST_PERIOD = 0.05 + 1e-6   # s (sim): the last camera period of an episode
ACTION_GRACE = 5.0          # s (wall) to wait for the episode's last actions after its result
WARM_UP_DURATION = 0.5      # s (sim): the shortest episode the simulator runs
HEALTH_PERIOD = 0.5         # s (wall): how often a wait on the graph checks that its nodes live


class EpisodeClient(Node):
    def __init__(self, name: str = "il_robot_episodes", record_frames: bool = False, health_check=None,
                 **kwargs):
        super().__init__(name, **kwargs)
        # Called while waiting on the graph; raises when a node it needs has died (a launcher's check),
        # so a dead node is reported as such, not as a service that never came.
        self._health_check = health_check or (lambda: None)
        self._results: dict[int, dict] = {}
        self._cv = threading.Condition()
        self._action_stamps: list[float] = []
        # Camera frames by stamp (ns): lockstep re-sends an unanswered step's frame with the step's state,
        # and a re-sent frame is the same frame, not one more in the video.
        self._frames: dict[int, object] = {}
        self.create_subscription(String, topics.EPISODE_RESULT, self._on_result, LATCHED)
        self._watched = [self.create_subscription(TwistStamped, topics.TIP_VELOCITY, self._on_action, 100)]
        self._record_frames = record_frames
        if record_frames:
            self._watched.append(self.create_subscription(Image, topics.IMAGE, self._on_image, 100))
        self._matched = False
        self.reset_client = self.create_client(Trigger, topics.SIM_RESET)
        self._param_clients: dict = {}

    def _on_result(self, msg: String) -> None:
        result = json.loads(msg.data)
        with self._cv:
            self._results[result["episode_id"]] = result
            self._cv.notify_all()

    def _on_action(self, msg: TwistStamped) -> None:
        with self._cv:
            self._action_stamps.append(conv.from_time(msg.header.stamp))
            self._cv.notify_all()

    def _on_image(self, msg: Image) -> None:
        try:
            frame = conv.image_to_rgb(msg)
        except ValueError as err:
            self.get_logger().error(f"video: skipped a frame: {err}", throttle_duration_sec=2.0)
            return
        with self._cv:
            self._frames.setdefault(stamp_ns(msg.header.stamp), frame)
            self._cv.notify_all()

    def frames_between(self, start: float, end: float) -> list:
        """The frames heard stamped in [start, end) s, in stamp order, each stamp once."""
        lo, hi = to_ns(start - 1e-9), to_ns(end - 1e-9)
        with self._cv:
            return [self._frames[s] for s in sorted(s for s in self._frames if lo <= s < hi)]

    def _call(self, client, request, timeout: float):
        deadline = time.monotonic() + timeout
        while not client.wait_for_service(timeout_sec=HEALTH_PERIOD):
            self._health_check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"service {client.srv_name} not available after {timeout:.0f} s")
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        checked = time.monotonic()
        while not future.done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"service {client.srv_name} did not answer in {timeout:.0f} s")
            if time.monotonic() - checked > HEALTH_PERIOD:
                self._health_check()
                checked = time.monotonic()
            time.sleep(0.005)
        return future.result()

    def set_sim_parameters(self, timeout: float = 30.0, **values) -> None:
        self.set_parameters("/sim", timeout, **values)

    def set_parameters(self, node: str, timeout: float = 30.0, **values) -> None:
        """`ros2 param set` for several parameters of one node; raises with the node's reason."""
        if node not in self._param_clients:
            self._param_clients[node] = self.create_client(SetParameters, f"{node}/set_parameters")
        request = SetParameters.Request()
        for name, value in values.items():
            if isinstance(value, bool):
                pv = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
            elif isinstance(value, int):
                pv = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
            elif isinstance(value, float):
                pv = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
            elif isinstance(value, (list, tuple)):
                pv = ParameterValue(type=ParameterType.PARAMETER_STRING_ARRAY, string_array_value=[str(v) for v in value])
            else:
                pv = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(value))
            request.parameters.append(Parameter(name=name, value=pv))
        response = self._call(self._param_clients[node], request, timeout)
        refused = [r.reason for r in response.results if not r.successful]
        if refused:
            raise ValueError(f"{node} refused parameters: {refused}")

    def run_episode(self, task_set: str, task_index: int, seed: int, timeout: float = 600.0) -> dict:
        """Start an episode and block until its result arrives (spin this node elsewhere).

        The result gains `policy_ticks` (actions stamped inside the episode) and,
        when frames are recorded, `frames` (RGB arrays of the episode, in order).
        """
        if not self._matched:   # count from the first frame: hear the policy (and camera) first
            deadline = time.monotonic() + 60.0
            while not all(sub.get_publisher_count() > 0 for sub in self._watched):
                if time.monotonic() > deadline:
                    self.get_logger().warning("no policy publishing actions: policy figures will read 0")
                    break
                time.sleep(0.01)
            self._matched = True
        self.set_sim_parameters(task_set=task_set, task_index=task_index, seed=seed)
        with self._cv:
            self._action_stamps.clear()
            self._frames.clear()
        response = self._call(self.reset_client, Trigger.Request(), 30.0)
        if not response.success:
            raise RuntimeError(f"simulator refused the reset: {response.message}")
        info = json.loads(response.message)
        episode_id = info["episode_id"]
        deadline = time.monotonic() + timeout
        with self._cv:
            while not self._cv.wait_for(lambda: episode_id in self._results, HEALTH_PERIOD):
                self._health_check()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"episode {episode_id} gave no result within {timeout:.0f} s")
            result = dict(self._results[episode_id])
            start, end = info["start_time"], info["start_time"] + result["duration"]
            # Actions and frames travel on their own topics and may still be queued here: wait
            # (briefly) for the ones answering the episode's last camera period.
            def last_period_in() -> bool:
                actions_in = bool(self._action_stamps) and max(self._action_stamps) >= end - LAST_PERIOD
                frames_in = not self._record_frames or (
                    bool(self._frames) and max(self._frames) * 1e-9 >= end - LAST_PERIOD)
                return actions_in and frames_in

            self._cv.wait_for(last_period_in, ACTION_GRACE)
            result["policy_ticks"] = sum(start - 1e-9 <= s < end - 1e-9 for s in set(self._action_stamps))
        result["frames"] = self.frames_between(start, end)
        return result


    def wait_for_node(self, name: str, timeout: float) -> None:
        """Wait until a node of this name is in the graph (one started on another host); TimeoutError
        naming what to check otherwise."""
        deadline = time.monotonic() + timeout
        while name not in {n for n, _ in self.get_node_names_and_namespaces()}:
            self._health_check()
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no node '{name}' appeared in {timeout:.0f} s: is it running on the other host, with the "
                    f"same ROS_DOMAIN_ID, and does ROS_STATIC_PEERS on each host name the other? "
                    f"(docs/two_hosts.md)")
            time.sleep(HEALTH_PERIOD)   # the graph has no event for a node's arrival in rclpy

    def warm_up(self, task_set: str, task_index: int, seed: int, episode_duration: float,
                attempts: int = 5) -> bool:
        """Run short unscored episodes until this node hears the policy (and camera).

        DDS matches each direction on its own: this node can see a publisher before that
        publisher sends to it, and the first scored episode would then lose its first
        actions and frames. A message received proves the match. Returns whether it came.
        """
        self.set_sim_parameters(episode_duration=WARM_UP_DURATION)
        try:
            for _ in range(attempts):
                result = self.run_episode(task_set, task_index, seed, timeout=120.0)
                if result["policy_ticks"] > 0 and (not self._record_frames or result["frames"]):
                    return True
            self.get_logger().warning(f"heard no policy in {attempts} warm-up episodes")
            return False
        finally:
            self.set_sim_parameters(episode_duration=float(episode_duration))


def spin_in_background(node: Node):
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    return executor, thread


def stop_background(executor, thread, node: Node) -> None:
    """Stop what spin_in_background started, the spin thread joined before rclpy shuts down: a daemon
    thread still inside rclpy's C++ at interpreter exit aborts the process ("terminate called without
    an active exception", SIGABRT) instead of letting it exit with its code."""
    executor.shutdown(timeout_sec=5.0)
    thread.join(timeout=5.0)
    node.destroy_node()
    rclpy.try_shutdown()
