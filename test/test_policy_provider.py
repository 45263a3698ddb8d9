"""The policy node says which onnxruntime provider its model really runs on: `device` is only
what was asked for (cuda asked on a CPU-only install runs on the CPU)."""

import threading

import onnxruntime
import pytest
from rclpy.parameter import Parameter
from std_msgs.msg import String

from conftest import wait_until
from il_robot.ros.latched import LATCHED
from il_robot.ros.policy_node import PolicyNode


def _provider_topic(ros, node) -> list[str]:
    import rclpy
    seen: list[str] = []
    lock = threading.Lock()
    listener = ros.add(rclpy.create_node("provider_listener", context=ros.context))

    def on_provider(msg):
        with lock:
            seen.append(msg.data)

    listener.create_subscription(String, f"{node.get_fully_qualified_name()}/active_provider", on_provider, LATCHED)
    return seen


@pytest.mark.skipif("CUDAExecutionProvider" in onnxruntime.get_available_providers(),
                    reason="this install has CUDA: asking for it gets it")
def test_cuda_asked_on_a_cpu_install_reports_the_cpu_provider(ros):
    node = ros.add(PolicyNode(context=ros.context, parameter_overrides=[
        Parameter("use_sim_time", value=False), Parameter("policy", value="tecnet"),
        Parameter("device", value="cuda")]))
    seen = _provider_topic(ros, node)
    wait_until(lambda: seen, 20, "the latched provider")
    assert seen[-1] == "CPUExecutionProvider"
    assert node.get_parameter("device").value == "cuda"   # what was asked for stays readable


def test_a_policy_without_a_model_reports_none_and_a_swap_reports_anew(ros):
    node = ros.add(PolicyNode(context=ros.context, parameter_overrides=[Parameter("use_sim_time", value=False)]))
    seen = _provider_topic(ros, node)
    wait_until(lambda: seen == ["none"], 20, "'none' for the scripted policy")
    assert node.set_parameters([Parameter("policy", value="tecnet")])[0].successful
    wait_until(lambda: seen[-1] == "CPUExecutionProvider", 20, "the provider after the swap")
