"""Subscriptions served by a thread of their own, outside the node's executor.

rclpy's executor spends 0.4-1 ms of CPU per callback on this machine (it
rebuilds its wait set from every entity of its nodes and wraps each callback in
a task); a 500 Hz torque loop pays that at both ends of every tick, and /clock
at 100 Hz in every node on sim time. A TopicThread waits on its own
subscriptions alone and calls their callbacks directly (about 0.05 ms): the
torque path (/joint_states, the desired motion and /clock in the controller,
the torque commands in the simulator) runs here; parameters and services stay
on the executor.

The thread also calls `on_idle` every `idle_period` s of steady time, whether
messages come or not (a watchdog beside the callbacks, in the same thread), and
with `priority` runs at that realtime priority (see thread_priority).
"""

from __future__ import annotations

import threading
import time
import traceback
from contextlib import ExitStack
from typing import Callable

from rclpy.callback_groups import CallbackGroup
from rclpy.exceptions import InvalidHandle
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.node import Node
from rclpy.subscription import Subscription

from il_robot.ros.thread_priority import set_thread_priority

STOP_CHECK = 0.1   # s: longest wait before the thread looks at the stop flag and the context


class _NotForExecutors(CallbackGroup):
    """Entities in this group are never taken by an executor: the topic thread takes them."""

    def can_execute(self, entity) -> bool:
        return False

    def beginning_execution(self, entity) -> bool:
        return False

    def ending_execution(self, entity) -> None:
        pass


class TopicThread:
    def __init__(self, node: Node, name: str, *, on_idle: Callable[[], None] | None = None,
                 idle_period: float = STOP_CHECK, priority: int = 0,
                 on_error: Callable[[BaseException], None] | None = None):
        self._node = node
        self._name = name
        self._group = _NotForExecutors()
        self._subs: list[Subscription] = []
        self._on_idle = on_idle
        self._idle_period = idle_period
        self._priority = priority
        self._on_error = on_error
        self._wake = node.create_guard_condition(lambda: None, callback_group=self._group)
        self._stop = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def subscribe(self, msg_type, topic: str, callback: Callable, qos, raw: bool = False) -> Subscription:
        """A subscription whose callback runs on this thread (call before start); raw: the callback
        gets the serialized bytes."""
        sub = self._node.create_subscription(msg_type, topic, callback, qos, callback_group=self._group, raw=raw)
        self._subs.append(sub)
        return sub

    def follow_clock(self, node: Node | None = None) -> bool:
        """Serve the /clock subscription (use_sim_time) of this thread's node, or of another node of
        its context, here instead of on the executor: the node's clock then moves without an
        executor callback per /clock message. False when the node does not follow /clock."""
        node = node or self._node
        sub = getattr(getattr(node, "_time_source", None), "_clock_sub", None)
        if sub is None:
            return False
        # Its QoS event handlers go along: left on the executor without their subscription, one stays
        # ready and the executor spins on it at 100 % CPU.
        for entity in (sub, *getattr(sub, "event_handlers", ())):
            entity.callback_group = self._group
        self._subs.append(sub)
        return True

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        why_not = set_thread_priority(self._priority)
        if why_not:
            self._node.get_logger().warning(f"{self._name} thread: {why_not}")
        context = self._node.context
        timeout_ns = int(min(self._idle_period, STOP_CHECK) * 1e9)
        next_idle = time.monotonic() + self._idle_period
        try:
            wait_set = _rclpy.WaitSet(len(self._subs), 1, 0, 0, 0, 0, context.handle)
            while not self._stop and context.ok() and self._subs:
                with ExitStack() as in_use:   # no handle is destroyed while the wait holds it
                    in_use.enter_context(self._wake.handle)
                    wait_set.clear_entities()
                    wait_set.add_guard_condition(self._wake.handle)
                    live = []
                    for sub in self._subs:
                        try:
                            in_use.enter_context(sub.handle)
                        except InvalidHandle:
                            continue   # destroyed by its owner (use_sim_time turned off): no longer served
                        wait_set.add_subscription(sub.handle)
                        live.append(sub)
                    self._subs = live
                    wait_set.wait(timeout_ns)
                for sub in self._subs:
                    self._drain(sub)
                if self._on_idle is not None and time.monotonic() >= next_idle:
                    next_idle = time.monotonic() + self._idle_period
                    self._on_idle()
        except Exception as err:  # noqa: BLE001
            if self._stop or not context.ok():
                return   # shutdown (Ctrl-C) took the handles away under this thread: expected
            self.error = err
            self._node.get_logger().fatal(f"{self._name} thread stopped: "
                                          f"{''.join(traceback.format_exception(err)).strip()}")
            if self._on_error is not None:
                self._on_error(err)
            else:   # the node cannot work without these topics: end its spin (run_node exits 1)
                context.try_shutdown()

    def _drain(self, sub: Subscription) -> None:
        try:
            with sub.handle:
                while not self._stop:
                    taken = sub.handle.take_message(sub.msg_type, sub.raw)
                    if taken is None:
                        return
                    sub.callback(taken[0])
        except InvalidHandle:
            pass

    def close(self) -> None:
        """Stop the thread (before the node is destroyed: it uses the node's handles)."""
        self._stop = True
        try:
            self._wake.trigger()
        except Exception:  # noqa: BLE001  (the context is already gone: the thread exits on its own)
            pass
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
