"""Drives episodes of a running simulator: choose task and seed, reset, await the outcome."""

from __future__ import annotations

import json
import threading
import time

import rclpy
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from std_msgs.msg import String
from std_srvs.srv import Trigger

from il_robot import topics


class EpisodeClient(Node):
    def __init__(self, name: str = "il_robot_episodes"):
        super().__init__(name)
        self._results: dict[int, dict] = {}
        self._cv = threading.Condition()
        self.create_subscription(String, topics.EPISODE_RESULT, self._on_result,
                                 QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.reset_client = self.create_client(Trigger, topics.SIM_RESET)
        self.param_client = self.create_client(SetParameters, "/sim/set_parameters")

    def _on_result(self, msg: String) -> None:
        result = json.loads(msg.data)
        with self._cv:
            self._results[result["episode_id"]] = result
            self._cv.notify_all()

    def _call(self, client, request, timeout: float):
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"service {client.srv_name} not available after {timeout:.0f} s")
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"service {client.srv_name} did not answer in {timeout:.0f} s")
            time.sleep(0.005)
        return future.result()

    def set_sim_parameters(self, timeout: float = 30.0, **values) -> None:
        request = SetParameters.Request()
        for name, value in values.items():
            if isinstance(value, bool):
                pv = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
            elif isinstance(value, int):
                pv = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
            elif isinstance(value, float):
                pv = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
            else:
                pv = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(value))
            request.parameters.append(Parameter(name=name, value=pv))
        response = self._call(self.param_client, request, timeout)
        refused = [r.reason for r in response.results if not r.successful]
        if refused:
            raise ValueError(f"simulator refused parameters: {refused}")

    def run_episode(self, task_set: str, task_index: int, seed: int, timeout: float = 600.0) -> dict:
        """Start an episode and block until its result arrives (spin this node elsewhere)."""
        self.set_sim_parameters(task_set=task_set, task_index=task_index, seed=seed)
        response = self._call(self.reset_client, Trigger.Request(), 30.0)
        if not response.success:
            raise RuntimeError(f"simulator refused the reset: {response.message}")
        episode_id = json.loads(response.message)["episode_id"]
        with self._cv:
            if not self._cv.wait_for(lambda: episode_id in self._results, timeout):
                raise TimeoutError(f"episode {episode_id} gave no result within {timeout:.0f} s")
            return self._results[episode_id]


def spin_in_background(node: Node):
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    return executor, thread
