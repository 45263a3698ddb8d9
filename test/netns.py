"""Hosts made of Linux network namespaces, for tests of a graph split across machines.

Each host is a namespace joined to the robot host by a veth pair on a private /24; nothing is
routed out of them, so DDS between them stays on this machine. Needs root (`ip netns`). The
namespaces are removed on exit, on failure too; deleting a namespace removes its veth ends.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from output_process import OutputProcess

# 10.230.<n>.0/24 per link; n from the pid so two test runs on one machine do not collide.
SUBNET_BASE = "10.230"


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (CI runs as root)")
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        pytest.skip("`ip netns` is not available (apt install iproute2)")


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


class Hosts:
    """`robot`, and hosts linked to it by their own veth pair: Hosts("policy", "lan")."""

    def __init__(self, *others: str):
        tag = os.getpid() % 10000
        self.ns = {name: f"ilr{tag}{name}" for name in ("robot", *others)}
        self.ip: dict[tuple[str, str], str] = {}   # (host, peer host) -> host's address on that link
        self.dev: dict[tuple[str, str], str] = {}  # (host, peer host) -> host's interface on that link
        self._others = others
        self._tag = tag

    def __enter__(self):
        try:
            for ns in self.ns.values():
                _ip("netns", "add", ns)
                _ip("-n", ns, "link", "set", "lo", "up")
            for i, other in enumerate(self._others):
                subnet = f"{SUBNET_BASE}.{(self._tag * 4 + i) % 250 + 1}"
                robot_dev, other_dev = f"ilr{self._tag}r{i}", f"ilr{self._tag}{other[0]}{i}"
                _ip("link", "add", robot_dev, "type", "veth", "peer", "name", other_dev)
                for host, dev, addr in (("robot", robot_dev, f"{subnet}.1"), (other, other_dev, f"{subnet}.2")):
                    _ip("link", "set", dev, "netns", self.ns[host])
                    _ip("-n", self.ns[host], "addr", "add", f"{addr}/24", "dev", dev)
                    _ip("-n", self.ns[host], "link", "set", dev, "up")
                self.ip[("robot", other)], self.ip[(other, "robot")] = f"{subnet}.1", f"{subnet}.2"
                self.dev[("robot", other)], self.dev[(other, "robot")] = robot_dev, other_dev
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        for ns in self.ns.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    def link(self, other: str, up: bool) -> None:
        """Take the robot host's end of the link to `other` down or up (a cable pulled, put back)."""
        _ip("-n", self.ns["robot"], "link", "set", self.dev[("robot", other)], "up" if up else "down")

    def run(self, host: str, argv: list[str], env: dict) -> OutputProcess:
        """argv started inside the host's namespace (same PID: `ip netns exec` execs it)."""
        return OutputProcess(["ip", "netns", "exec", self.ns[host], *argv], env)


class Capture:
    """tcpdump on this machine's real interfaces (not loopback): what left the machine."""

    def __init__(self, bpf: str):
        if shutil.which("tcpdump") is None:
            raise AssertionError("tcpdump is missing: apt-get install tcpdump (scripts/setup.sh does, as root)")
        ifaces = [i for i in os.listdir("/sys/class/net") if i != "lo" and _is_up(i)]
        self.procs = [OutputProcess(["tcpdump", "-n", "-l", "-i", i, bpf], os.environ.copy()) for i in ifaces]
        for p in self.procs:
            p.wait_for(r"listening on", 30)

    def stop(self) -> list[str]:
        """The packets captured (one line each)."""
        for p in self.procs:
            p.ctrl_c(10)
        return [ln for p in self.procs for ln in p.lines
                if ln and not re.match(r"(tcpdump:|listening on|\d+ packets? )", ln)]


def _is_up(iface: str) -> bool:
    try:
        with open(f"/sys/class/net/{iface}/operstate") as f:
            return f.read().strip() in ("up", "unknown")
    except OSError:
        return False
