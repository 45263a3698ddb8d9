"""Start, spin and stop one node the same way for every executable.

Ctrl-C in a terminal sends SIGINT to every process of the group, and `ros2 launch`
then sends its own SIGINT: a node gets two. rclpy's signal handler shuts the context
down (which ends the spin); the Python-level handler installed here only notes the
signal, so neither SIGINT raises KeyboardInterrupt into the shutdown path
(`destroy_node`, a thread join), and once interrupted a late SIGINT is ignored
through interpreter exit: the node exits 0, not by signal (-2).
"""

from __future__ import annotations

import signal
import sys
import threading

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.signals import uninstall_signal_handlers

from il_robot.exit_codes import EXIT_CANNOT_START
from il_robot.ros.env import ensure_localhost_discovery
from il_robot.ros.thread_priority import set_process_priority

# A thread that wakes for the torque path waits for the GIL up to this long while another thread of the
# node runs Python (Python's default, 5 ms, is two and a half torque ticks).
GIL_SWITCH_INTERVAL = 0.0005   # s

# Expected at start: a parameter out of its declared range or of the wrong type.
START_ERRORS = (ParameterException,)


class _Interrupts:
    """SIGINT noted, not raised: rclpy's own handler (chained in front of this one) ends the spin."""

    def __init__(self):
        self.count = 0
        self._previous = signal.signal(signal.SIGINT, self._note)

    def _note(self, signum, frame) -> None:
        self.count += 1

    def restore(self) -> None:
        # Interrupted: the process is on its way out and launch's own SIGINT may still come. Python's
        # finalization resets a handled signal to its default (death by SIGINT, exit code -2), but
        # leaves an ignored one ignored.
        signal.signal(signal.SIGINT, signal.SIG_IGN if self.count else self._previous)


SPIN_CHECK = 0.1        # s: longest wait of an executor before it looks at the context and its stop flag
SIDE_STOP_TIMEOUT = 2.0  # s: the longest a stop waits for a side executor's callback to end


def _spin_quietly(executor, stop: threading.Event | None = None) -> None:
    """Spin until shutdown, or until `stop` is set (side executors: see SideExecutor).

    Not executor.spin(): its wait has no timeout, and the wake-up a Ctrl-C sends it (rclpy's
    signal thread triggers a guard condition) was missed about once in 70 stops here: the
    context was down, every other thread had ended, and the main thread waited on until launch
    escalated to SIGTERM. Waking every SPIN_CHECK s bounds that."""
    try:
        while (stop is None or not stop.is_set()) and executor.context.ok():
            executor.spin_once(timeout_sec=SPIN_CHECK)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise
        # Shutdown (Ctrl-C) landed while a message was taken or a callback published: expected.


class SideExecutor:
    """A node spun in a thread of its own, stopped by joining that thread before anything is torn down.

    rclpy's Executor.shutdown() does not wait for a spin in another thread (its wait for outstanding
    work is skipped once the shutdown flag is set) and destroys the executor's guard conditions under
    that thread's wait. This thread looks at its stop flag at least every SPIN_CHECK s; the executor
    is shut down only after the thread has ended."""

    def __init__(self, node):
        self.executor = SingleThreadedExecutor(context=node.context)
        self.executor.add_node(node)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=_spin_quietly, args=(self.executor, self._stop), daemon=True)
        self.thread.start()

    def stop(self, timeout: float = SIDE_STOP_TIMEOUT) -> bool:
        """True when the thread ended (its node may then be destroyed)."""
        self._stop.set()
        self.thread.join(timeout)
        if self.thread.is_alive():
            return False   # a callback still running: leave the executor and the node to process exit
        self.executor.shutdown(timeout_sec=0.0)
        return True


def _realtime(node) -> None:
    """A node on the torque path (realtime_priority() > 0) runs at that SCHED_FIFO priority in all its
    threads, the middleware's receive threads included (they hand each message over), except the
    ones it names as background work (rendering)."""
    priority = getattr(node, "realtime_priority", lambda: 0)()
    if priority <= 0:
        return
    why_not = set_process_priority(priority, keep=getattr(node, "background_threads", lambda: ())())
    if why_not:
        node.get_logger().warning(why_not)
    else:
        node.get_logger().info(f"torque path at realtime priority {priority} (SCHED_FIFO)")


def run_node(node_cls, args=None, errors: tuple = (), executor_cls=SingleThreadedExecutor, **node_kwargs) -> int:
    """Spin node_cls until shutdown. A configuration error in `errors` is one clear log line and
    exit code EXIT_CANNOT_START (both launchers then stop the graph), not a traceback."""
    ensure_localhost_discovery()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    interrupts = _Interrupts()   # before rclpy.init: rclpy chains its handler in front of this one
    rclpy.init(args=sys.argv if args is None else args)
    node = None
    failed = False   # a topic thread died: exit 1, so the launcher sees it
    sides: list = []
    try:
        if interrupts.count:
            return 0
        # The executor before the node: a Ctrl-C right after the node says it is ready (launch tests do
        # that) found the executor half built on a context going down, and its __del__ printed tracebacks.
        executor = executor_cls()   # (rclpy's EventsExecutor spun at 100 % CPU here and stopped answering)
        node = node_cls(**node_kwargs)
        if interrupts.count or not rclpy.ok():
            return 0   # Ctrl-C while the node was built: no spinning on a context that is gone
        _realtime(node)
        executor.add_node(node)
        # Nodes that must not wait behind this one's callbacks get an executor thread each.
        for extra in getattr(node, "extra_nodes", lambda: [])():
            sides.append(SideExecutor(extra))
        if not interrupts.count:   # a SIGINT before rclpy's handler was in place is only noted
            _spin_quietly(executor)
    except (*errors, *START_ERRORS) as err:
        if interrupts.count or not rclpy.ok():
            return 0   # interrupted while starting: the error is the interruption's
        rclpy.logging.get_logger(node_cls.__name__).fatal(f"cannot start: {err}")
        return EXIT_CANNOT_START
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok() and not interrupts.count:
            raise
        # Ctrl-C landed while the node was being built (its context went away under it).
    finally:
        # rclpy's signal thread triggers every executor's signal guard condition on each SIGINT, and a
        # second one (launch sends its own after the terminal's) raced the teardown's destruction of
        # those guard conditions: a segmentation fault in rcl_trigger_guard_condition about once in
        # 30 stops here. Its handlers go first (the thread is joined); a later SIGINT is only noted.
        uninstall_signal_handlers()
        topic_threads = list(getattr(node, "topic_threads", ()))
        for topic_thread in topic_threads:   # they use the node's handles: stopped before it goes
            topic_thread.close()
        if any(topic_thread.error is not None for topic_thread in topic_threads):
            failed = True
        # Side executors end before their nodes go: no wait or callback on a destroyed node. One still
        # in a callback after the timeout keeps the nodes alive until the process exits.
        stopped = all([side.stop(timeout=SIDE_STOP_TIMEOUT) for side in sides])
        if node is not None and not stopped:
            node.get_logger().warning(f"a callback ran on {SIDE_STOP_TIMEOUT} s after the stop: its node is "
                                      "left to the process's exit")
        elif node is not None:
            close = getattr(node, "close", None)
            if close:
                close()
            node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()
        interrupts.restore()
    return 1 if failed else 0
