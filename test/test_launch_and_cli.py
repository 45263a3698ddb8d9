"""One node-graph description for ros2 launch and il-robot launch; the CLI explains itself."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from il_robot.graph import PUSHING
from il_robot.launcher import node_commands, parse_launch_args

ROOT = Path(__file__).resolve().parent.parent


def test_launch_file_is_a_valid_launch_description():
    if importlib.util.find_spec("launch_ros") is None:
        pytest.skip("launch_ros is not installed (it ships with ROS 2, not on PyPI); "
                    "covered under a ROS 2 install")
    spec = importlib.util.spec_from_file_location("pushing_launch", ROOT / "launch" / "pushing.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    from launch_ros.actions import Node
    nodes = [a for a in description.entities if isinstance(a, Node)]
    assert len(nodes) == len(PUSHING.nodes)


def test_launch_file_reads_the_shared_graph():
    text = (ROOT / "launch" / "pushing.launch.py").read_text()
    assert "from il_robot.graph import PUSHING" in text and "PUSHING.nodes" in text


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


@pytest.mark.parametrize("command", ["launch", "eval", "bench"])
def test_every_subcommand_has_help(command):
    out = subprocess.run([sys.executable, "-m", "il_robot.cli.main", command, "--help"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "usage: il-robot " + command in out.stdout


def test_bench_id_prints_figures(tmp_path):
    out = subprocess.run([sys.executable, "-m", "il_robot.cli.main", "bench", "id", "--json",
                          str(tmp_path / "b.json")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "inverse dynamics step" in out.stdout
    assert (tmp_path / "b.json").exists()
