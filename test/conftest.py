"""Test environment: DDS on loopback, a ROS domain of this run's own, headless EGL."""

import os

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("MUJOCO_GL", "egl")
# Each test run picks its own domain so parallel runs (and other sessions) never cross.
os.environ["ROS_DOMAIN_ID"] = os.environ.get("IL_ROBOT_TEST_DOMAIN_ID", str(100 + os.getpid() % 100))

import threading  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end tests through the whole ROS graph (run in CI)")


@pytest.fixture
def ros():
    """rclpy initialised for one test, with a background executor to add nodes to."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    context = rclpy.Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()

    class Ros:
        def __init__(self):
            self.context = context
            self.executor = executor

        def add(self, node):
            executor.add_node(node)
            return node

    yield Ros()
    nodes = list(executor.get_nodes())   # Executor.shutdown() forgets its nodes without destroying them
    executor.shutdown()
    for node in nodes:
        node.destroy_node()   # else a failed test's traceback keeps them, latched messages and all, for the next
    rclpy.try_shutdown(context=context)
    thread.join(timeout=5)


@pytest.fixture(autouse=True)
def stays_off_realtime_scheduling():
    """No test may leave this process on a realtime scheduler: every process it starts afterwards
    (graphs, ros2 launch) would inherit it and could starve the machine (SVT-AV1 did, as root)."""
    yield
    if hasattr(os, "sched_getscheduler") and os.sched_getscheduler(0) != os.SCHED_OTHER:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        pytest.fail("the test left the test process on a realtime scheduler")


def wait_until(predicate, timeout: float = 10.0, what: str = "condition"):
    """Poll an event-like condition (message arrived, counter reached) with a deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.002)
