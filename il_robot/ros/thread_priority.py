"""Realtime scheduling for the torque path's threads, as ros2_control gives its control loop.

A 500 Hz loop shares two cores with rendering, the policy and training jobs;
under the default scheduler a torque thread that wakes waits behind them for a
time slice. SCHED_FIFO lets it run at once. Only the torque path's own threads
get it (each sets it for itself): they sleep every tick, and the kernel keeps
5 % of each second for everything else (sched_rt_runtime_us). Without the right
(not root, no rtprio limit) the thread runs on the default scheduler and says so.
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
