"""The pushing graph split across two hosts (network namespaces): robot side and policy side.

The robot host runs the simulator and the torque loop (`role:=robot`), the policy host the policy
node (`role:=policy`); DDS finds the other host through ROS_STATIC_PEERS, as on two machines.
Needs root; CI runs these as root. docs/two_hosts.md.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import time

import pytest

from netns import Capture, Hosts, require_root

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "il_robot.cli.main"]
# DDS (RTPS ports 7400-7700 of any domain) or anything of the namespaces' subnets on a real interface.
LEAK = "udp portrange 7400-7700 or net 10.230.0.0/16"
STAMP = re.compile(r"\[(\d+\.\d+)\]")   # a ROS log line's wall-clock stamp


def _stamp(line: re.Match) -> float:
    """The wall-clock stamp of the ROS log line a match was found in."""
    return float(STAMP.search(line.string).group(1))


def host_env(hosts: Hosts, host: str, peer: str) -> dict:
    """What a user sets on each machine: discovery on localhost plus the other host as a static peer."""
    return {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
            "ROS_STATIC_PEERS": hosts.ip[(peer, host)], "PYTHONUNBUFFERED": "1", "RCUTILS_COLORIZED_OUTPUT": "0"}


def test_scripted_eval_passes_across_two_hosts_and_nothing_leaves_the_machine(tmp_path):
    require_root()
    with Hosts("policy") as hosts:
        capture = Capture(LEAK)
        leaked = None
        policy = None
        evaluation = hosts.run("robot", [*CLI, "eval", "--role", "robot", "--policy", "scripted", "--episodes", "2",
                                         "--policy-wait", "120", "--json", str(tmp_path / "eval.json")],
                               host_env(hosts, "robot", "policy"))
        try:
            # The evaluator prints the policy host's command; the test runs it as a user would.
            command = evaluation.wait_for(r"^\s+(il-robot launch pushing role:=policy .*)$", 120).group(1)
            policy = hosts.run("policy", [*CLI, *shlex.split(command)[1:]], host_env(hosts, "policy", "robot"))
            assert evaluation.wait(300) == 0, evaluation.output
        finally:
            for proc in (evaluation, policy):
                if proc is not None:
                    proc.stop()
            leaked = capture.stop()
        summary = json.loads((tmp_path / "eval.json").read_text())
        assert summary["episodes"] == 2 and summary["successes"] == 2, evaluation.output
        assert "policy (pid" in policy.output and "sim (pid" not in policy.output
        assert leaked == [], f"packets on the machine's real interfaces: {leaked[:5]}"


def test_the_robot_holds_while_the_link_or_the_policy_is_gone_and_resumes_without_a_restart():
    """Realtime, as on an arm: the link pulled and put back, then the policy host's process killed
    and started again. The robot side holds the arm (and says so) each time and tracks again once
    desired motion comes back; none of its processes is restarted."""
    require_root()
    robot_args = ["launch", "pushing", "role:=robot", "episode_duration:=600.0", "render:=false"]
    policy_args = ["launch", "pushing", "role:=policy", "policy:=scripted"]
    with Hosts("policy") as hosts:
        robot = hosts.run("robot", [*CLI, *robot_args], host_env(hosts, "robot", "policy"))
        policy = hosts.run("policy", [*CLI, *policy_args], host_env(hosts, "policy", "robot"))
        try:
            robot.wait_for(r"\[inverse_dynamics\]: tracking desired motion", 120)
            pids = robot.wait_for(r"launched pushing: (.*)", 5).group(1)
            times = {}
            for fault, cut, restore in (
                    ("link down", lambda: hosts.link("policy", up=False), lambda: hosts.link("policy", up=True)),
                    ("policy killed", lambda: policy.kill(), None)):
                start = len(robot.lines)
                t_cut = time.time()
                cut()
                held = robot.wait_for(r"\[inverse_dynamics\]: no fresh desired motion: holding", 30, after=start)
                after_hold = len(robot.lines)
                t_restore = time.time()
                if restore is not None:
                    restore()
                else:
                    policy = hosts.run("policy", [*CLI, *policy_args], host_env(hosts, "policy", "robot"))
                back = robot.wait_for(r"\[inverse_dynamics\]: tracking desired motion", 120, after=after_hold)
                times[fault] = {"hold after (s)": round(_stamp(held) - t_cut, 3),
                                "tracking after restore (s)": round(_stamp(back) - t_restore, 3)}
                assert robot.proc.poll() is None, robot.output
            out = robot.output
            assert "stopped commanding torque" not in out and "exited" not in out, out
            assert robot.wait_for(r"launched pushing: (.*)", 5).group(1) == pids   # nothing restarted
            print("robot side across faults:", json.dumps(times))
        finally:
            policy.stop()
            robot.stop()


def test_only_the_policy_host_reaches_the_robot_and_only_with_desired_motion(tmp_path):
    """The robot host runs with `il-robot dds-profile`'s profile. A publisher on a third network
    (`lan`, the office) sends desired motion and torque commands to the robot host's address: none
    arrives. The policy host's desired motion arrives; torque commands sent from the policy host
    do not (the torque path listens on loopback only)."""
    require_root()
    from il_robot.dds_profile import robot_host_profile

    probe = [sys.executable, os.path.join(os.path.dirname(__file__), "dds_probe.py")]
    with Hosts("policy", "lan") as hosts:
        profile = tmp_path / "robot_dds.xml"
        profile.write_text(robot_host_profile(hosts.dev[("robot", "policy")]))
        robot_env = {**host_env(hosts, "robot", "policy"), "FASTDDS_DEFAULT_PROFILES_FILE": str(profile)}
        # The stranger tries its hardest: multicast discovery on its subnet and the robot as a static peer.
        lan_env = {**host_env(hosts, "lan", "robot"), "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}
        procs = [hosts.run("robot", [*CLI, "launch", "pushing", "role:=robot", "episode_duration:=600.0",
                                     "render:=false"], robot_env),
                 hosts.run("policy", [*CLI, "launch", "pushing", "role:=policy", "policy:=scripted"],
                           host_env(hosts, "policy", "robot"))]
        try:
            robot = procs[0]
            robot.wait_for(r"\[inverse_dynamics\]: tracking desired motion", 120)
            listener = hosts.run("robot", [*probe, "listen"], robot_env)
            procs.append(listener)
            listener.wait_for(r'"desired from the policy"', 60)
            senders = [hosts.run("lan", [*probe, "send", "lan"], lan_env),
                       hosts.run("policy", [*probe, "send", "policy-host"], host_env(hosts, "policy", "robot"))]
            procs += senders
            # The policy host's sender is heard (its desired motion), so it is connected and sending...
            listener.wait_for(r'"desired from policy-host": [1-9]\d{2}', 120)
            listener.wait_for(r'"torque from the controller": [1-9]', 60)   # its own torque path, once matched
            for sender in senders:
                sender.wait_for(r"^sent [1-9]\d{2}", 60)
            counts = json.loads(listener.lines[-1])
            # ... and of all it and the stranger sent, only that desired motion arrived.
            assert counts.get("torque from the controller", 0) > 0, counts
            assert not any(k in counts for k in ("desired from lan", "torque from lan", "torque from policy-host")), counts
            assert robot.proc.poll() is None, robot.output
        finally:
            for proc in reversed(procs):
                proc.stop()
