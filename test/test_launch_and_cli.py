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
                                               ("record_demos.launch.py", "record_demos")])
def test_launch_file_is_a_valid_launch_description(launch_file, graph):
    if importlib.util.find_spec("launch_ros") is None:
        pytest.skip("launch_ros is not installed (it ships with ROS 2, not on PyPI); "
                    "covered under a ROS 2 install")
    from il_robot.graph import GRAPHS
    spec = importlib.util.spec_from_file_location("launch_file", ROOT / "launch" / launch_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    from launch_ros.actions import Node
    nodes = [a for a in description.entities if isinstance(a, Node)]
    assert len(nodes) == len(GRAPHS[graph].nodes)


@pytest.mark.parametrize("launch_file,graph", [("pushing.launch.py", "PUSHING"),
                                               ("record_demos.launch.py", "RECORD_DEMOS")])
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
