"""Run one `il-robot` command of a stage, showing its output live and keeping it in the run's log.

Stages run as child processes: a stage that crashes or leaks memory cannot take the run with it, and
each stage is exactly a command a user could type (the report lists them). The terminal sees the
child's output as it comes (progress bars included); the log keeps the lines, and of a progress bar
only its last state.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path


CHILD_SAVE_TIMEOUT = 60.0  # s an interrupted stage's command has to save what it can before it is killed


class StageFailed(RuntimeError):
    pass


def stop_child(proc: subprocess.Popen) -> None:
    """The runner was interrupted: stop the stage's command as a Ctrl-C at a terminal would, and wait.

    The command runs in a session of its own, so a terminal's Ctrl-C reaches the runner alone, as
    does a signal sent to the runner's PID (kill -INT, a supervisor's SIGTERM): each Ctrl-C the
    runner gets is forwarded once. The first asks the command to save what it can (a checkpoint,
    whole bags) and stop; a second hurries it, as it would at a terminal. Killed after
    CHILD_SAVE_TIMEOUT s.
    """
    deadline = time.monotonic() + CHILD_SAVE_TIMEOUT
    proc.send_signal(signal.SIGINT)
    while True:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            return
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return
        except KeyboardInterrupt:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)


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

    def run(self, argv: list[str], env: dict | None = None, nproc_per_node: int = 1) -> str:
        """Run `il-robot ARGV`; returns the command as a user would type it. Raises StageFailed on a non-zero exit.
        With nproc_per_node > 1, under torchrun on that many processes of this machine (PyTorch DDP)."""
        if nproc_per_node > 1:
            launch = ["--standalone", "--nproc-per-node", str(nproc_per_node), "-m", "il_robot.cli.main", *argv]
            return self.run_command([sys.executable, "-m", "torch.distributed.run", *launch],
                                    "torchrun " + shlex.join(launch), env)
        shown = "il-robot " + shlex.join(argv)
        return self.run_command([sys.executable, "-m", "il_robot.cli.main", *argv], shown, env)

    def run_command(self, cmd: list[str], shown: str, env: dict | None = None) -> str:
        """Run `cmd`, shown and logged as `shown`; see run()."""
        self.say(f"$ {shown}")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})}, start_new_session=True)   # stop_child
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
            stop_child(proc)
            raise
        finally:
            if pending:
                self.line(pending.decode(errors="replace").rsplit("\r", 1)[-1].rstrip())
        if code != 0:
            raise StageFailed(f"{shown} exited with {code} (its output is in {self.path})")
        return shown
