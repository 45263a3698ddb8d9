"""Work shared out over this machine's cores (no torch, no ROS: anything may use it)."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context


def usable_cores() -> int:
    """Cores this process may run on (its affinity, which a container or `taskset` may narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def share_out(work, items: list, workers: int, *args) -> list:
    """[work(part, *args) for each part], the items dealt round-robin to min(workers, len(items)) parts.
    With more than one part each runs in a spawned process (a fresh interpreter: MuJoCo's GL context and
    onnxruntime sessions are not shared), so `work` and its arguments must pickle; with one it runs here."""
    workers = max(1, min(workers, len(items)))
    if workers == 1:
        return [work(items, *args)]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(work, items[w::workers], *args) for w in range(workers)]
        return [f.result() for f in futures]
