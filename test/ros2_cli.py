"""The real ROS 2 command line (ros2 launch / param / topic) against il_robot, for tests.

`ros2 launch` runs in a process group of its own, as in a terminal, so a test can
press Ctrl-C the way a terminal does: SIGINT to every process of the group.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from il_robot.ament_prefix import install, ros_env
from output_process import OutputProcess

STARTED = re.compile(r"\[INFO\] \[([\w-]+)\]: process started with pid \[(\d+)\]")
# What an unclean stop prints: a traceback, an interrupt raised into Python, a node killed by a signal.
UNCLEAN = ("Traceback", "KeyboardInterrupt", "process has died", "exit code -", "RCLError",
           "terminate called", "SIGKILL", "SIGTERM")


def require_ros2_cli():
    """Skip unless the ROS 2 CLI wheels are installed (scripts/setup.sh does, from ../shared/ros2-cli)."""
    missing = [m for m in ("launch_ros", "ros2launch", "ros2param", "ros2topic")
               if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"the ROS 2 CLI is not installed ({', '.join(missing)}): bash ../shared/ros2-cli/install.sh .venv")
    install()   # the venv as an ament prefix holding il_robot (idempotent)


def cli_env() -> dict:
    return ros_env({**os.environ, "PYTHONUNBUFFERED": "1", "RCUTILS_COLORIZED_OUTPUT": "0"})


def ros2(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """`ros2 ...`; asked again while it says 'Node not found': the ros2 daemon it starts may not have
    discovered the graph yet (polling for discovery, with a deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        done = subprocess.run([shutil.which("ros2", path=cli_env()["PATH"]), *args], capture_output=True,
                              text=True, timeout=timeout, env=cli_env())
        if "Node not found" not in done.stderr or time.monotonic() > deadline:
            return done


class Launch(OutputProcess):
    """`ros2 launch il_robot FILE args...`, its output collected line by line."""

    def __init__(self, launch_file: str, *args: str):
        super().__init__([shutil.which("ros2", path=cli_env()["PATH"]), "launch", "il_robot", launch_file, *args],
                         env=cli_env())

    def node_pids(self) -> dict[str, int]:
        with self._cv:
            return {m.group(1): int(m.group(2)) for m in map(STARTED.search, self.lines) if m}

    def kill(self) -> int:
        """Test cleanup: whatever is left of the group goes, and any node that left the group."""
        code = super().kill()
        for pid in self.node_pids().values():
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        return code


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split(")")[-1].split()[0] != "Z"   # a zombie has exited
    except OSError:
        return False


def unclean_lines(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if any(word in ln for word in UNCLEAN)]
