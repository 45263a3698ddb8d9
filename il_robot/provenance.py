"""Where a result came from: the source commit and the machine (no torch, no ROS: anything may use it)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from il_robot.parallel import usable_cores

REPO = Path(__file__).resolve().parents[1]


def git_commit() -> dict:
    """The source checkout this code runs from, best effort (None outside a git checkout)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                                    capture_output=True, text=True, timeout=5, check=True).stdout.strip())
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def machine() -> dict:
    """CPU model, cores this process may use, memory and GPU presence: what a wall time depends on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem_gib = None
    return {"cpu": cpu, "cores": usable_cores(), "memory_gib": round(mem_gib, 1) if mem_gib else None,
            "host": platform.node(), "python": platform.python_version()}
