"""A process started as from a terminal (its own process group), its output awaited line by line."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time


class OutputProcess:
    def __init__(self, argv: list[str], env: dict | None = None, cwd: str | None = None):
        env = {**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        self.lines: list[str] = []
        self._cv = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._cv:
                self.lines.append(line.rstrip("\n"))
                self._cv.notify_all()
        with self._cv:
            self._cv.notify_all()

    @property
    def output(self) -> str:
        with self._cv:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 90.0, after: int = 0) -> re.Match:
        """The first output line from index `after` on that matches (regex); AssertionError with the
        output so far when none comes in `timeout` s or the process ends first."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                hit = next((m for m in map(regex.search, self.lines[after:]) if m), None)
                if hit is not None:
                    return hit
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no line matching {pattern!r} in {timeout} s; output:\n"
                                         + "\n".join(self.lines[-60:]))
                self._cv.wait(min(left, 0.5))

    def wait(self, timeout: float = 30.0) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(timeout=5.0)
        return code

    def ctrl_c(self, timeout: float = 30.0) -> int:
        """SIGINT to the whole process group, as a terminal's Ctrl-C; its exit code."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        return self.wait(timeout)

    def stop(self, timeout: float = 30.0) -> int:
        """Test cleanup: Ctrl-C, and SIGKILL to the group if that does not stop it in time."""
        try:
            return self.ctrl_c(timeout)
        except subprocess.TimeoutExpired:
            return self.kill()

    def kill(self) -> int:
        """SIGKILL to the process group this test started (a host's process dying, children with it)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return self.wait(10)
