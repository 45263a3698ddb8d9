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

from il_robot.graph import Graph
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


def is_true(value: str) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes", "on")


@dataclass
class NodeCommand:
    name: str
    argv: list[str]


def node_commands(graph: Graph, values: dict[str, str], extra_params: dict | None = None) -> list[NodeCommand]:
    params_file = str(config_file(graph.params_file))
    commands = []
    for spec in graph.nodes:
        if spec.condition and not is_true(values[spec.condition]):
            continue
        argv = [sys.executable, "-m", spec.module, "--ros-args", "-r", f"__node:={spec.name}",
                "--params-file", params_file]
        overrides = {param: values[arg] for param, arg in spec.params.items()}
        overrides.update((extra_params or {}).get(spec.name, {}))
        for param, value in overrides.items():
            text = value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).strip()
            if text == "":
                continue  # keep the parameter file's value
            argv += ["-p", f"{param}:={text}"]
        commands.append(NodeCommand(spec.name, argv))
    return commands


class GraphProcesses:
    """The running nodes; stop() sends SIGINT, then SIGTERM/SIGKILL to stragglers (by PID)."""

    def __init__(self, commands: list[NodeCommand], env: dict | None = None, log_dir: str | None = None,
                 quiet: bool = False):
        env = ensure_localhost_discovery(dict(os.environ if env is None else env))
        env.setdefault("MUJOCO_GL", "egl")
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.procs: dict[str, subprocess.Popen] = {}
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

    def poll(self) -> dict[str, int]:
        """Nodes that have exited, with their exit codes."""
        return {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}

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
