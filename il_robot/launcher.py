"""Start a node graph as processes, the way `ros2 launch` would, for pip users.

Reads the same Graph as launch/*.launch.py, passes the same parameter file and
launch-argument overrides (`--ros-args --params-file ... -p name:=value`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import yaml

from il_robot.exit_codes import EXIT_CANNOT_START
from il_robot.graph import BUILTIN_PARAMS, Graph, builtin_or
from il_robot.paths import config_file
from il_robot.ros.env import ensure_localhost_discovery


def parse_launch_args(graph: Graph, items: list[str]) -> dict[str, str]:
    """['policy:=scripted', ...] -> values for every argument, defaults filled in."""
    values = graph.defaults()
    for item in items:
        if ":=" not in item:
            raise ValueError(f"launch arguments look like name:=value, got '{item}'")
        key, value = item.split(":=", 1)
        if key not in values:
            raise ValueError(f"unknown launch argument '{key}'; known: {', '.join(sorted(values))}")
        values[key] = value
    return values


@dataclass
class NodeCommand:
    name: str
    argv: list[str]
    required: bool = False   # graph.NodeSpec.required: its exit stops the graph


def node_commands(graph: Graph, values: dict[str, str], extra_params: dict | None = None) -> list[NodeCommand]:
    params_file = str(config_file(graph.params_file))
    commands = []
    for spec in graph.nodes:
        if not graph.starts(spec, values):
            continue
        argv = [sys.executable, "-m", spec.module, "--ros-args", "-r", f"__node:={spec.name}",
                "--params-file", params_file]
        overrides = {param: builtin_or(values[arg]) if param in BUILTIN_PARAMS else values[arg]
                     for param, arg in spec.params.items()}
        overrides.update({param: "true" if values[arg] == value else "false"
                          for param, (arg, value) in spec.flags.items()})
        overrides.update((extra_params or {}).get(spec.name, {}))
        for param, value in overrides.items():
            text = value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).strip()
            if text == "":
                continue  # keep the parameter file's value
            argv += ["-p", f"{param}:={text}"]
        commands.append(NodeCommand(spec.name, argv, spec.required))
    return commands


class GraphProcesses:
    """The running nodes; stop() sends SIGINT, then SIGTERM/SIGKILL to stragglers (by PID)."""

    def __init__(self, commands: list[NodeCommand], env: dict | None = None, log_dir: str | None = None,
                 quiet: bool = False):
        env = ensure_localhost_discovery(dict(os.environ if env is None else env))
        env.setdefault("MUJOCO_GL", "egl")
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.procs: dict[str, subprocess.Popen] = {}
        self.required = {cmd.name for cmd in commands if cmd.required}
        self._reported: set[str] = set()
        self._logs = []
        for cmd in commands:
            out = None
            if log_dir:
                os.makedirs(log_dir, exist_ok=True)
                out = open(os.path.join(log_dir, f"{cmd.name}.log"), "w")
                self._logs.append(out)
            elif quiet:
                out = subprocess.DEVNULL
            self.procs[cmd.name] = subprocess.Popen(cmd.argv, env=env, stdout=out, stderr=subprocess.STDOUT
                                                    if out is not None else None)

    def last_lines(self, name: str, count: int = 15) -> list[str]:
        """The end of a node's log (with log_dir), to say why it died."""
        log = next((f for f in self._logs if os.path.basename(f.name) == f"{name}.log"), None)
        if log is None:
            return []
        log.flush()
        with open(log.name, errors="replace") as f:
            return [line.rstrip("\n") for line in f.readlines()[-count:]]

    def raise_if_exited(self) -> None:
        """RuntimeError naming each node that exited, with its exit code and last log lines."""
        exited = self.poll()
        if exited:
            raise RuntimeError("; ".join(
                f"node {name} exited (exit code {code})" + "".join(f"\n    {ln}" for ln in self.last_lines(name))
                for name, code in exited.items()))

    def poll(self) -> dict[str, int]:
        """Nodes that have exited, with their exit codes."""
        return {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}

    def watch(self) -> str | None:
        """Report nodes that exited since the last call; the reason to stop the graph, if any:
        a required node exited (the simulator, the controller) or a node could not start. Any
        other node's death is reported loudly and the graph runs on (the controller holds the
        arm when the policy dies), as under ros2 launch."""
        reason = None
        for name, code in self.poll().items():
            if name in self._reported:
                continue
            self._reported.add(name)
            if code == EXIT_CANNOT_START:
                reason = f"{name} cannot start (exit code {code}; its log says why)"
            elif name in self.required:
                reason = f"{name} exited (exit code {code})"
            elif code != 0:
                print(f"ERROR: {name} died (exit code {code}); the rest of the graph runs on", file=sys.stderr,
                      flush=True)
        return reason

    def stop(self, timeout: float = 5.0) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout
        for p in self.procs.values():
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for f in self._logs:
            f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
