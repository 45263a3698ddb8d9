"""Every command in the README runs as written, and every link in the docs resolves.

The README's code blocks are read as a shell reads them. Each command is either run here, with the
tiny arguments of RUN substituted where the README's are long (an explicit, reviewed mapping), or
named in SKIP with the reason. A command the README gains that is in neither list fails the test,
and so does an entry of either list the README no longer has: the lists cannot rot. Every
`il-robot` command line, in a block or inline, is also parsed by the real argument parser.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from output_process import OutputProcess

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BIN = Path(sys.executable).parent          # the venv the README calls .venv/bin
DOCS = [README, *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "models").glob("*/MODEL.md"))]

# Code blocks that are not commands, by their first line (whitespace collapsed).
NOT_COMMANDS = {
    "/camera/image_raw, /camera/camera_info (20 Hz)": "the graph's diagram",
    "il_robot/robot/ arm model (MJCF/URDF), inverse dynamics, resolved rate": "the source layout",
}

# Commands not run here, and why (each still parses, below, and the files it names exist).
SKIP = {
    "bash scripts/setup.sh && .venv/bin/il-robot demo":
        "setup.sh installs system packages and the venv; `il-robot demo` runs in test_demo_cmd.py (slow)",
    "IL_ROBOT_EXTRAS=train bash scripts/setup.sh && .venv/bin/python -m pytest -v":
        "the setup and the whole test suite",
    ".venv/bin/il-robot record --operator keyboard --tasks train --out demos/mine":
        "a person drives at a terminal",
    ".venv/bin/il-robot train tecnet --recipe tecnet --out runs/tecnet-recipe": "hours of training",
    ".venv/bin/il-robot train planet --recipe planet --out runs/planet-recipe": "hours of training",
    ".venv/bin/il-robot train tecnet --recipe tecnet-tiny --out /tmp/tiny":
        "minutes, with the training extras: test_recipes.py runs both tiny recipes (slow)",
    ".venv/bin/il-robot dataset dagger data/pushing --labeller human --operator joy --model-dir models/tecnet "
    "--round 1": "a person with a joystick; test_human_dagger.py runs a round with the simulated corrector",
    ".venv/bin/il-robot dds-profile --interface eth1 --out robot_dds.xml":
        "names a real interface; test_two_hosts.py writes the profile for its namespaces and uses it",
    "FASTDDS_DEFAULT_PROFILES_FILE=robot_dds.xml .venv/bin/il-robot launch pushing role:=robot":
        "two hosts: test_two_hosts.py runs both halves in network namespaces (root)",
    ".venv/bin/il-robot launch pushing role:=policy policy:=tecnet": "two hosts, as above",
}


@dataclass
class Tiny:
    """How a README command runs here: `replace` swaps the value after an option (or a positional
    token itself) and must find it; `add` appends options the command does not have. {tmp} is the
    test's directory."""
    test: str
    replace: dict[str, str] = field(default_factory=dict)
    add: list[str] = field(default_factory=list)


RUN = {
    ".venv/bin/il-robot record --operator sim:expert,sim:okay,sim:poor --tasks train --num-tasks 200 "
    "--demos-per-task 6 --workers 2 --out demos/train":
        Tiny("test_record_check_build", {"--num-tasks": "1", "--demos-per-task": "1", "--workers": "1",
                                         "--out": "{tmp}/demos/train"}),
    ".venv/bin/il-robot dataset check demos/train":
        Tiny("test_record_check_build", {"demos/train": "{tmp}/demos/train"}),
    ".venv/bin/il-robot dataset build demos/train --out data/pushing":
        Tiny("test_record_check_build", {"demos/train": "{tmp}/demos/train", "--out": "{tmp}/data/pushing"}),
    "ros2 launch il_robot pushing.launch.py sim:=false use_sim_time:=false robot_description:=/path/to/arm.urdf "
    "policy:=<policy>":
        Tiny("test_real_arm_launch_starts_the_controller_and_policy",
             {"robot_description:=/path/to/arm.urdf": "robot_description:=builtin", "policy:=<policy>": "policy:=hold"}),
    ".venv/bin/il-robot launch pushing policy:=scripted": Tiny("test_launch_and_swap_policies"),
    "ros2 param set /policy policy hold": Tiny("test_launch_and_swap_policies"),
    "ros2 param set /policy policy scripted": Tiny("test_launch_and_swap_policies"),
    ".venv/bin/il-robot launch pushing policy:=tecnet": Tiny("test_launch_tecnet"),
    ".venv/bin/il-robot bench": Tiny("test_bench", add=["--seconds", "1"]),
    ".venv/bin/il-robot bench realtime":
        Tiny("test_bench", add=["--policies", "scripted", "--realtime-seconds", "10"]),
    ".venv/bin/il-robot eval --policy scripted --episodes 20 --json eval.json":
        Tiny("test_eval", {"--episodes": "1", "--json": "{tmp}/eval.json"}),
    ".venv/bin/il-robot eval --policy tecnet --model-dir models/tecnet --demo-dir demos/heldout --shots 1":
        Tiny("test_eval", {"--demo-dir": "models/tecnet/demos"}, ["--episodes", "1"]),   # its demo of heldout/000
    ".venv/bin/il-robot eval --policy scripted --episodes 5 --video videos/":
        Tiny("test_eval", {"--episodes": "1", "--video": "{tmp}/videos/"}),
    ".venv/bin/il-robot eval --policy scripted --mode realtime --camera-delay 0.1":
        Tiny("test_eval", add=["--episodes", "1"]),
}


# --- reading the README ------------------------------------------------------------------------

def code_blocks(text: str) -> list[list[str]]:
    """Fenced blocks and indented (4-space) blocks after a blank line, as lists of lines."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        if lines[i].startswith("```"):
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            blocks.append(lines[i + 1:end])
            i = end + 1
        elif lines[i].startswith("    ") and lines[i].strip() and (i == 0 or not lines[i - 1].strip()):
            end = i
            while end < len(lines) and (lines[end].startswith("    ") or not lines[end].strip()):
                end += 1
            blocks.append([ln[4:] for ln in lines[i:end] if ln.strip()])
            i = end
        else:
            i += 1
    return blocks


def block_commands(block: list[str]) -> list[str]:
    """Logical command lines (backslash continuations joined, comments dropped, spaces collapsed)."""
    commands, pending = [], ""
    for line in block:
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        commands.append(" ".join(shlex.split(pending, comments=True)))
        pending = ""
    return [c for c in commands if c]


def readme_commands() -> list[str]:
    commands = []
    for block in code_blocks(README.read_text()):
        if " ".join(block[0].split()) in NOT_COMMANDS:
            continue
        commands += block_commands(block)
    return commands


def inline_spans() -> list[str]:
    text = re.sub(r"```.*?```", "", README.read_text(), flags=re.S)
    return re.findall(r"`([^`\n]+)`", text)


# --- il-robot's own parser ---------------------------------------------------------------------

def subparsers(parser):
    import argparse
    return next((a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)), {})


def command_parser(words: list[str]):
    """The (sub)parser that `il-robot WORDS...` ends in: descends while a word names a subcommand."""
    from il_robot.cli.main import build_parser
    parser = build_parser()
    for word in words:
        if word.startswith("-"):
            break
        if word in subparsers(parser):
            parser = subparsers(parser)[word]
        elif subparsers(parser):
            raise AssertionError(f"il-robot has no subcommand {word!r} there: {' '.join(words)}")
    return parser


def options_of(parser) -> set[str]:
    return {opt for action in parser._actions for opt in action.option_strings}


def all_options() -> set[str]:
    from il_robot.cli.main import build_parser
    found, todo = set(), [build_parser()]
    while todo:
        parser = todo.pop()
        found |= options_of(parser)
        todo += list(subparsers(parser).values())
    return found


def il_robot_parts(command: str) -> list[list[str]]:
    """The `il-robot` invocations of a command line (split at &&), without the program name."""
    parts, current = [], []
    for word in shlex.split(command) + ["&&"]:
        if word == "&&":
            if current and current[0].rsplit("/", 1)[-1] == "il-robot":
                parts.append(current[1:])
            current = []
        else:
            current.append(word)
    return parts


# --- running -----------------------------------------------------------------------------------

def argv_for(command: str, tmp: Path) -> list[str]:
    tiny = RUN[command]
    words = shlex.split(command)
    for old, new in tiny.replace.items():
        new = new.format(tmp=tmp)
        assert old in words, f"RUN[{command!r}] replaces {old!r}, which the command does not have"
        at = words.index(old)
        if old.startswith("-"):
            words[at + 1] = new
        else:
            words[at] = new
    for word in tiny.add:
        assert not (word.startswith("-") and word in words), f"RUN[{command!r}] adds {word}, already there"
    words += [w.format(tmp=tmp) for w in tiny.add]
    if words[0].startswith(".venv/bin/"):
        words[0] = str(BIN / words[0].removeprefix(".venv/bin/"))
    return words


def run(argv: list[str], timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    assert done.returncode == 0, f"{shlex.join(argv)} -> {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    return done


def commands_of(test: str) -> list[str]:
    return [c for c, tiny in RUN.items() if tiny.test == test]


@pytest.fixture
def running():
    started: list[OutputProcess] = []

    def start(argv: list[str]) -> OutputProcess:
        started.append(OutputProcess(argv, cwd=ROOT))
        return started[-1]

    yield start
    for proc in started:
        proc.kill()


# --- the lists are complete and every command parses (fast) ------------------------------------

def test_every_readme_command_is_run_or_skipped_with_a_reason():
    commands = readme_commands()
    assert len(commands) == len(set(commands)), "a command appears twice in the README"
    unlisted = [c for c in commands if c not in RUN and c not in SKIP]
    assert not unlisted, "README commands in neither RUN nor SKIP of this test (add each, tiny or with a reason):\n" \
        + "\n".join(unlisted)
    gone = [c for c in [*RUN, *SKIP] if c not in commands]
    assert not gone, "RUN/SKIP entries the README no longer has:\n" + "\n".join(gone)
    assert not set(RUN) & set(SKIP)
    tests = {name for name in globals() if name.startswith("test_")}
    assert {tiny.test for tiny in RUN.values()} <= tests


def test_readme_code_blocks_that_are_not_commands_are_still_there():
    firsts = {" ".join(b[0].split()) for b in code_blocks(README.read_text())}
    assert set(NOT_COMMANDS) <= firsts


def test_every_il_robot_command_in_the_readme_parses():
    """Block commands in full (subcommands, options, required arguments), as the CLI reads them,
    without running them."""
    from il_robot.cli.main import build_parser

    parsed = 0
    for command in readme_commands():
        for words in il_robot_parts(command):
            command_parser(words)   # a clear message for an unknown subcommand
            try:
                build_parser().parse_args(words)
            except SystemExit as exit_:
                raise AssertionError(f"il-robot {' '.join(words)} does not parse (exit {exit_.code})")
            parsed += 1
    assert parsed > 15


def test_every_il_robot_option_named_inline_exists():
    """Inline `il-robot VERB --opt ...` spans: the subcommand and its options exist; a span of bare
    options (`--shots K`): each option exists in some subcommand."""
    everywhere = all_options()
    checked = 0
    for span in inline_spans():
        words = span.replace("[", " ").replace("]", " ").split()
        if words[0] == "il-robot":
            known = options_of(command_parser(words[1:]))
        elif words[0].startswith("--"):
            known = everywhere
        else:
            continue
        for word in words:
            if word.startswith("--"):
                assert word.split("=")[0] in known, f"README names {word} in `{span}`: no such il-robot option"
                checked += 1
    assert checked > 20   # the figures table alone names more


def test_recipes_and_scripts_the_skipped_commands_name_exist():
    for command in SKIP:
        words = shlex.split(command)
        if "--recipe" in words:
            assert (ROOT / "config" / "recipes" / f"{words[words.index('--recipe') + 1]}.yaml").is_file(), command
        for word in words:
            if word.startswith("scripts/"):
                assert (ROOT / word).is_file(), command


def test_launch_arguments_in_the_readme_exist_and_ros2_launch_shows_them():
    """The launch arguments named in the README are the graph's; `ros2 launch ... --show-args`
    (the real CLI) lists those of the real-arm command without starting anything."""
    from ros2_cli import cli_env, require_ros2_cli

    from il_robot.graph import PUSHING
    from il_robot.launcher import parse_launch_args

    for command in readme_commands():
        words = shlex.split(command)
        if "pushing" in words or "pushing.launch.py" in words:
            parse_launch_args(PUSHING, [w for w in words if ":=" in w])   # refuses an unknown name
    require_ros2_cli()
    real_arm = next(c for c in RUN if c.startswith("ros2 launch"))
    words = shlex.split(real_arm)
    shown = run([shutil.which("ros2", path=cli_env()["PATH"]), *words[1:], "--show-args"], env=cli_env(),
                timeout=60).stdout
    for word in words:
        if ":=" in word:
            assert f"'{word.split(':=')[0]}':" in shown, shown


def test_record_check_build(tmp_path):
    """The README's recording section in order: record (one demo), check the bags, build a dataset."""
    record, check, build = commands_of("test_record_check_build")
    out = run(argv_for(record, tmp_path)).stdout
    assert "recorded 1 demos" in out, out
    bags = list((tmp_path / "demos" / "train").iterdir())
    assert len(bags) == 1
    out = run(argv_for(check, tmp_path)).stdout
    assert out.startswith(f"OK {bags[0]}"), out
    out = run(argv_for(build, tmp_path)).stdout
    assert "1 episodes, 1 tasks, 200 frames" in out and (tmp_path / "data" / "pushing" / "dataset.json").is_file()


# --- the commands that start the graph (slow) --------------------------------------------------

@pytest.mark.slow
def test_launch_and_swap_policies(running):
    from ros2_cli import require_ros2_cli, ros2

    require_ros2_cli()
    launch, *swaps = commands_of("test_launch_and_swap_policies")
    graph = running(argv_for(launch, ROOT))
    graph.wait_for(r"\[policy\]: policy 'scripted' at 20 Hz")
    graph.wait_for(r"\[inverse_dynamics\]: tracking desired motion")
    try:
        for swap in swaps:
            words = shlex.split(swap)
            done = ros2(*words[1:])
            assert "Set parameter successful" in done.stdout, done.stdout + done.stderr
            graph.wait_for(rf"\[policy\]: swapped to policy '{words[-1]}'")
    finally:
        ros2("daemon", "stop")   # `ros2 param` started it: nothing outlives the test
    assert graph.ctrl_c() == 0, graph.output[-3000:]
    assert "Traceback" not in graph.output


@pytest.mark.slow
def test_launch_tecnet(running):
    (launch,) = commands_of("test_launch_tecnet")
    graph = running(argv_for(launch, ROOT))
    graph.wait_for(r"tecnet: no `demo` given, conditioning on the shipped demo")
    graph.wait_for(r"\[policy\]: policy 'tecnet' at 20 Hz")
    graph.wait_for(r"\[inverse_dynamics\]: tracking desired motion")
    assert graph.ctrl_c() == 0, graph.output[-3000:]
    assert "Traceback" not in graph.output


@pytest.mark.slow
def test_real_arm_launch_starts_the_controller_and_policy():
    """The real-arm command with the built-in arm's description and `hold`: no driver answers here,
    so the controller and the policy start, wait for joint states, and stop clean on Ctrl-C."""
    from ros2_cli import Launch, require_ros2_cli, unclean_lines

    require_ros2_cli()
    (command,) = commands_of("test_real_arm_launch_starts_the_controller_and_policy")
    words = argv_for(command, ROOT)
    launch = Launch(words[3], *words[4:])   # ros2 launch il_robot FILE ARGS...
    try:
        launch.wait_for(r"\[inverse_dynamics\]: computed-torque control of")
        launch.wait_for(r"\[policy\]: policy 'hold' at 20 Hz")
        assert "[sim]" not in launch.output     # sim:=false: the driver's place is empty
        assert launch.ctrl_c() == 0, launch.output[-3000:]
        assert not unclean_lines(launch.output), launch.output[-3000:]
    finally:
        launch.kill()


@pytest.mark.slow
@pytest.mark.parametrize("command", commands_of("test_eval"))
def test_eval(command, tmp_path):
    done = run(argv_for(command, tmp_path))
    assert re.search(r"on heldout, (lockstep|realtime)[^:]*: success \d+% \(\d/1\)", done.stdout), done.stdout
    if "--json" in command:
        assert json.loads((tmp_path / "eval.json").read_text())["episodes"] == 1
    if "--video" in command:
        assert len(list((tmp_path / "videos").glob("*.mp4"))) == 1


@pytest.mark.slow
@pytest.mark.parametrize("command", commands_of("test_bench"))
def test_bench(command, tmp_path):
    out = run(argv_for(command, tmp_path), timeout=400).stdout
    if command.endswith("bench"):   # the default benches: id, sim, loop, swap
        for figure in ("inverse dynamics step:", "simulator: real-time factor", "ROS torque loop:", "swaps: -> "):
            assert figure in out, out
    else:
        assert re.search(r"realtime scripted \(1 x 10 s", out), out


# --- links and anchors in the docs (fast) ------------------------------------------------------

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation but - and _ dropped, spaces to -, repeats -1, -2."""
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", text, flags=re.M):
        heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        n, unique = 0, slug
        while unique in found:
            n += 1
            unique = f"{slug}-{n}"
        found.add(unique)
    return found


def test_every_relative_link_and_anchor_in_the_docs_resolves():
    broken = []
    for doc in DOCS:
        text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target):
                continue   # http(s), mailto: not checked here
            path, _, anchor = target.partition("#")
            resolved = (doc.parent / path).resolve() if path else doc
            if not resolved.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                broken.append(f"{doc.relative_to(ROOT)}: {target} (no heading #{anchor})")
    assert not broken, "\n".join(broken)


def test_anchor_slugs_follow_github():
    assert anchors(ROOT / "docs" / "running.md") >= {"il-robot-eval---json-fields"}
