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


def _spin_quietly(executor) -> None:
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise
        # Shutdown (Ctrl-C) landed while a message was taken or a callback published: expected.


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
        node = node_cls(**node_kwargs)
        if interrupts.count or not rclpy.ok():
            return 0   # Ctrl-C while the node was built: no executor on a context that is gone
        _realtime(node)
        executor = executor_cls()   # (rclpy's EventsExecutor spun at 100 % CPU here and stopped answering)
        executor.add_node(node)
        # Nodes that must not wait behind this one's callbacks get an executor thread each.
        for extra in getattr(node, "extra_nodes", lambda: [])():
            side = SingleThreadedExecutor()
            side.add_node(extra)
            thread = threading.Thread(target=_spin_quietly, args=(side,), daemon=True)
            thread.start()
            sides.append((side, thread))
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
        topic_threads = list(getattr(node, "topic_threads", ()))
        for topic_thread in topic_threads:   # they use the node's handles: stopped before it goes
            topic_thread.close()
        if any(topic_thread.error is not None for topic_thread in topic_threads):
            failed = True
        for side, thread in sides:   # stopped before their nodes go: no callback on a destroyed node
            side.shutdown(timeout_sec=2.0)
            thread.join(timeout=2.0)
        if node is not None:
            close = getattr(node, "close", None)
            if close:
                close()
            node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()
        interrupts.restore()
    return 1 if failed else 0
