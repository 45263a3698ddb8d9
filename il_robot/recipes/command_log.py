"""Run one `il-robot` command of a stage, showing its output live and keeping it in the run's log.

Stages run as child processes: a stage that crashes or leaks memory cannot take the run with it, and
each stage is exactly a command a user could type (the report lists them). The terminal sees the
child's output as it comes (progress bars included); the log keeps the lines, and of a progress bar
only its last state.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path


class StageFailed(RuntimeError):
    pass


class RunLog:
    """RUN/log.txt: what every stage printed, with a time stamp per line."""

    def __init__(self, path: Path, echo: bool = True):
        self.path, self.echo = path, echo
        path.parent.mkdir(parents=True, exist_ok=True)

    def line(self, text: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.path, "a") as f:
            for part in text.splitlines() or [""]:
                f.write(f"{stamp} {part}\n")

    def say(self, text: str) -> None:
        """A line of the runner itself: on the terminal and in the log."""
        if self.echo:
            print(text, flush=True)
        self.line(text)

    def run(self, argv: list[str], env: dict | None = None) -> str:
        """Run `il-robot ARGV`; returns the command as a user would type it. Raises StageFailed on a non-zero exit."""
        shown = "il-robot " + shlex.join(argv)
        self.say(f"$ {shown}")
        cmd = [sys.executable, "-m", "il_robot.cli.main", *argv]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})})
        pending = b""
        try:
            while chunk := os.read(proc.stdout.fileno(), 65536):
                if self.echo:
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.buffer.flush()
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    # A progress bar redraws with carriage returns: keep its last state only.
                    self.line(raw.decode(errors="replace").rsplit("\r", 1)[-1].rstrip())
            code = proc.wait()
        except KeyboardInterrupt:
            # The child got the same Ctrl-C (one process group) and saves what it can; wait for that.
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
        finally:
            if pending:
                self.line(pending.decode(errors="replace").rsplit("\r", 1)[-1].rstrip())
        if code != 0:
            raise StageFailed(f"{shown} exited with {code} (its output is in {self.path})")
        return shown
