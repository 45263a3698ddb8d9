"""Start, spin and stop one node the same way for every executable."""

from __future__ import annotations

import os
import sys
import threading

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

from il_robot.ros.env import ensure_localhost_discovery


def _spin_quietly(executor) -> None:
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise
        # Shutdown (Ctrl-C) landed while a message was taken or a callback published: expected.


def run_node(node_cls, args=None, errors: tuple = (), executor_cls=SingleThreadedExecutor, **node_kwargs) -> int:
    """Spin node_cls until shutdown. A configuration error in `errors` is one clear log
    line and exit code 1, not a traceback (and not a respawn-worthy crash loop)."""
    ensure_localhost_discovery()
    rclpy.init(args=sys.argv if args is None else args)
    node = None
    sides: list = []
    try:
        node = node_cls(**node_kwargs)
        if os.environ.get("IL_ROBOT_EXECUTOR") == "events" and executor_cls is SingleThreadedExecutor:
            from rclpy.experimental import EventsExecutor
            executor = EventsExecutor()
        else:
            executor = executor_cls()
        executor.add_node(node)
        # Nodes that must not wait behind this one's callbacks get an executor thread each.
        for extra in getattr(node, "extra_nodes", lambda: [])():
            side = SingleThreadedExecutor()
            side.add_node(extra)
            thread = threading.Thread(target=_spin_quietly, args=(side,), daemon=True)
            thread.start()
            sides.append((side, thread))
        _spin_quietly(executor)
    except errors as err:
        rclpy.logging.get_logger(node_cls.__name__).fatal(f"cannot start: {err}")
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
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
    return 0
