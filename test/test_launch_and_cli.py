"""One node-graph description for ros2 launch and il-robot launch; the CLI explains itself."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from il_robot.graph import PUSHING
from il_robot.launcher import node_commands, parse_launch_args

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("launch_file,graph", [("pushing.launch.py", "pushing"),
                                               ("record_demos.launch.py", "record_demos"),
                                               ("correct.launch.py", "correct")])
def test_launch_file_is_a_valid_launch_description(launch_file, graph, monkeypatch):
    from ros2_cli import cli_env, require_ros2_cli
    require_ros2_cli()
    monkeypatch.setenv("AMENT_PREFIX_PATH", cli_env()["AMENT_PREFIX_PATH"])
    from il_robot.graph import GRAPHS
    spec = importlib.util.spec_from_file_location("launch_file", ROOT / "launch" / launch_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    from launch_ros.actions import Node
    nodes = [a for a in description.entities if isinstance(a, Node)]
    assert len(nodes) == len(GRAPHS[graph].nodes)


@pytest.mark.parametrize("launch_file,graph", [("pushing.launch.py", "PUSHING"),
                                               ("record_demos.launch.py", "RECORD_DEMOS"),
                                               ("correct.launch.py", "CORRECT")])
def test_launch_files_read_the_shared_graph(launch_file, graph):
    """No second node list: each launch file hands its il_robot.graph entry to one translator."""
    text = (ROOT / "launch" / launch_file).read_text()
    assert f"from il_robot.graph import {graph}" in text and f"graph_launch_description({graph})" in text
    assert "Node(" not in text


def test_every_graph_config_section_matches_a_node():
    import yaml

    from il_robot.graph import GRAPHS
    from il_robot.paths import config_file
    for graph in GRAPHS.values():
        sections = set(yaml.safe_load(config_file(graph.params_file).read_text()))
        assert sections == {n.name for n in graph.nodes}, graph.name


def test_pip_launcher_uses_params_file_and_overrides():
    values = parse_launch_args(PUSHING, ["policy:=hold", "sim:=false"])
    commands = {c.name: c.argv for c in node_commands(PUSHING, values)}
    assert set(commands) == {"inverse_dynamics", "policy"}  # sim:=false: a real arm's driver instead
    argv = commands["policy"]
    assert argv[argv.index("--params-file") + 1].endswith("config/pushing.yaml")
    assert "policy:=hold" in argv and "__node:=policy" in argv


def test_unknown_launch_argument_is_refused():
    with pytest.raises(ValueError, match="unknown launch argument 'polcy'"):
        parse_launch_args(PUSHING, ["polcy:=x"])


@pytest.mark.parametrize("command", ["launch", "eval", "bench", "record", "dataset"])
def test_every_subcommand_has_help(command):
    out = subprocess.run([sys.executable, "-m", "il_robot.cli.main", command, "--help"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "usage: il-robot " + command in out.stdout


def test_bench_id_prints_figures(tmp_path):
    out = subprocess.run([sys.executable, "-m", "il_robot.cli.main", "bench", "id", "--json",
                          str(tmp_path / "b.json")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "inverse dynamics step" in out.stdout
    assert (tmp_path / "b.json").exists()


def test_bench_precision_shows_the_expert_needs_to_know_where_the_target_is(tmp_path):
    """Seeing the target where it is, the expert pushes it home; seeing it 8 cm off, it misses."""
    out = subprocess.run([sys.executable, "-m", "il_robot.cli.main", "bench", "precision", "--offsets", "0,8",
                          "--precision-episodes", "2", "--json", str(tmp_path / "p.json")],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = json.loads((tmp_path / "p.json").read_text())["precision"]["rows"]
    assert [r["offset_cm"] for r in rows] == [0.0, 8.0]
    assert rows[0]["success_rate"] == 1.0 and rows[1]["success_rate"] == 0.0
    assert "expert seeing the target 8 cm off" in out.stdout


def test_eval_on_the_shipped_demo_beyond_its_task_says_what_to_give(tmp_path):
    """The shipped TecNet demo names heldout/000 only: a 2-episode eval is refused before any node starts,
    with the way out (--demo-dir), instead of failing mid-run."""
    env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    out = subprocess.run([sys.executable, "-m", "il_robot.cli.main", "eval", "--policy", "tecnet", "--episodes", "2",
                          "--log-dir", str(tmp_path / "logs")], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode != 0
    assert "heldout-001_demo*" in out.stderr and "--demo-dir DIR with demos of every task" in out.stderr
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").iterdir())


def _il_robot(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    return subprocess.run([sys.executable, "-m", "il_robot.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_eval_runs_any_seed_a_user_may_type():
    """Seed 90417 made episode seed 9041700000, beyond the simulator's old int32 range: the sim died."""
    out = _il_robot("eval", "--seed", "90417", "--episodes", "1", "--episode-duration", "1")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "seed 9041700000" in out.stdout


def test_eval_refuses_a_seed_beyond_the_range_up_front():
    out = _il_robot("eval", "--seed", str(10**14), "--episodes", "1")
    assert out.returncode == 2 and "--seed must be in 0..92233720368547" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_eval_refuses_a_camera_delay_in_lockstep_up_front(tmp_path):
    """The lockstep simulator publishes each frame as it captures it: a delay there is refused before
    any node starts, with what to give instead."""
    out = _il_robot("eval", "--mode", "lockstep", "--camera-delay", "0.1", "--episodes", "1",
                    "--log-dir", str(tmp_path / "logs"), timeout=120)
    assert out.returncode == 2 and "--camera-delay needs --mode realtime" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").iterdir())


def test_eval_reports_a_node_that_dies_at_start_with_its_log_and_exits_clean(tmp_path):
    out = _il_robot("eval", "--policy", "tecnet", "--model-dir", str(tmp_path / "no_model"), "--episodes", "1",
                    "--log-dir", str(tmp_path / "logs"), timeout=120)
    assert out.returncode == 2, (out.returncode, out.stderr[-3000:])   # not SIGABRT (-6)
    assert "node policy exited (exit code 78)" in out.stderr
    assert "cannot start: " in out.stderr and str(tmp_path / "no_model") in out.stderr   # the node's own log line
    assert "Traceback" not in out.stderr and "terminate called" not in out.stderr
    assert "not available after" not in out.stderr


def test_a_node_with_a_parameter_out_of_range_says_it_cannot_start():
    env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "MUJOCO_GL": "egl"}
    out = subprocess.run([sys.executable, "-m", "il_robot.ros.sim_node", "--ros-args", "-p", "seed:=-1"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 78, out.stderr[-2000:]
    assert "cannot start" in out.stderr and "seed" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
def test_pip_launcher_keeps_the_controller_when_the_policy_dies(ros, tmp_path):
    """kill -9 of the policy under `il-robot launch`: the death is reported, the simulator and the
    controller run on (torque keeps coming), and Ctrl-C then stops the rest with exit code 0."""
    import re
    import signal

    import rclpy
    from std_msgs.msg import Float64MultiArray

    from conftest import wait_until
    from il_robot import topics

    torques = [0]
    watch = ros.add(rclpy.create_node("torque_watch", context=ros.context))
    watch.create_subscription(Float64MultiArray, topics.EFFORT_COMMANDS,
                              lambda _m: torques.__setitem__(0, torques[0] + 1), 10)
    env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "il_robot.cli.main", "launch", "pushing", "render:=false",
                             "--log-dir", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)
    try:
        pids = dict((n, int(p)) for n, p in re.findall(r"(\w+) \(pid (\d+)\)", proc.stdout.readline()))
        assert set(pids) == {"sim", "inverse_dynamics", "policy"}
        wait_until(lambda: torques[0] > 200, 90, "torque commands")
        os.kill(pids["policy"], signal.SIGKILL)
        line = proc.stderr.readline()
        assert "ERROR: policy died (exit code -9); the rest of the graph runs on" in line, line
        seen = torques[0]
        wait_until(lambda: torques[0] > seen + 200, 30, "torque after the policy died")
        assert proc.poll() is None
        os.killpg(proc.pid, signal.SIGINT)   # a terminal's Ctrl-C
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
        for name in ("sim", "inverse_dynamics"):
            log = (tmp_path / f"{name}.log").read_text()
            assert "Traceback" not in log and "KeyboardInterrupt" not in log, log[-2000:]
        from ros2_cli import alive
        assert not [pid for pid in pids.values() if alive(pid)], "orphan node process(es)"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
