"""Realtime scheduling for the torque path's threads, as ros2_control gives its control loop.

A 500 Hz loop shares two cores with rendering, the policy and training jobs;
under the default scheduler a torque thread that wakes waits behind them for a
time slice (on this 2-core machine: 3.7 % of physics steps without a fresh
torque, 0.25 % with the controller's and the simulator's processes at FIFO
priority). Only the torque path gets it: the controller's process and the
realtime simulator's, but not its renderer; they sleep every tick, and the
kernel keeps 5 % of each second for everything else (sched_rt_runtime_us).
Without the right (not root, no rtprio limit) they run on the default
scheduler and say so.
"""

from __future__ import annotations

import os

DEFAULT_PRIORITY = 50   # ros2_control's default for its control loop thread
PRIORITY_RANGE = (0, 99)


def set_thread_priority(priority: int) -> str | None:
    """SCHED_FIFO at `priority` for the calling thread (0: leave it as it is). None when done, else
    why it could not be."""
    if priority <= 0:
        return None
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(int(priority)))   # 0 = this thread
    except OSError as err:
        return f"cannot run at realtime priority {priority} ({err.strerror}); running at normal priority"
    return None


def set_normal_priority() -> None:
    """The calling thread back to the default scheduler (background work in a realtime process;
    threads it starts inherit this)."""
    try:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except OSError:
        pass


def set_process_priority(priority: int, keep=()) -> str | None:
    """SCHED_FIFO at `priority` for every thread of this process but those in `keep` (native thread
    ids) and the GL renderer's (llvmpipe) workers. None when done, else why not."""
    keep = set(keep)
    for task in os.listdir("/proc/self/task"):
        tid = int(task)
        if tid in keep:
            continue
        try:
            with open(f"/proc/self/task/{task}/comm") as f:
                if f.read().startswith("llvmpipe"):
                    continue
            os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(int(priority)))
        except FileNotFoundError:
            continue   # the thread ended meanwhile
        except OSError as err:
            return f"cannot run at realtime priority {priority} ({err.strerror}); running at normal priority"
    return None
