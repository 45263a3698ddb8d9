"""Human-gated DAgger through the ROS graph: a learned policy drives each train task, an operator corrects it.

The real-arm way to DAgger (Kelly et al., HG-DAgger, ICRA 2019): no simulator
expert labels every frame; a person watches the policy push and takes over with
the joystick (or keyboard) where it goes wrong, and the frames they drove,
labelled with their command, join the dataset as correction episodes of the
round. In simulation the person can be the simulated corrector (sim:SKILL), so
the recipe's DAgger stage runs it unattended.

One episode per train task of the dataset (the policy conditioned on the task's
first demo in it), through the `correct` graph (il_robot.graph.CORRECT), one bag
per episode; then `dataset add` of the bags. Bags already recorded are kept and
their episodes not run again, so an interrupted round resumes.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from il_robot.data.bag_format import INCOMPLETE_SUFFIX
from il_robot.data.corrections import CORRECTION_SKILL
from il_robot.graph import CORRECT
from il_robot.teleop.operators import SKILLS

SEED_BASE = 800_000       # episode seeds SEED_BASE + 1000 * round + task (the expert's DAgger rounds: 700_000)
WARM_UP_SEED = 799_999    # the episode the simulator starts with and the warm-up's (their bags are removed)
HUMAN_OPERATORS = ("joy", "keyboard")
BAG_WAIT = 60.0           # s (wall) for the recorder to close an episode's bag after its result


def parse_operator(spec: str) -> str:
    """'joy' | 'keyboard' | 'sim:SKILL' -> itself; ValueError naming the choices."""
    if spec in HUMAN_OPERATORS or spec.startswith("sim:") and spec[4:] in SKILLS:
        return spec
    raise ValueError(f"unknown correcting operator '{spec}'; choose from joy, keyboard, "
                     + ", ".join(f"sim:{s}" for s in SKILLS))


def conditioning_bags(meta: dict) -> dict[int, str]:
    """Train task index -> the bag of its first demo (by key) in dataset.json: what the policy is conditioned on."""
    bags: dict[int, str] = {}
    for ep in sorted(meta["episodes"], key=lambda e: e["key"]):
        if ep["split"] == "train" and ep.get("skill") != CORRECTION_SKILL and ep.get("bag"):
            bags.setdefault(int(ep["task"]["index"]), ep["bag"])
    return bags


def default_bag_dir(dataset: str | Path, round_: int) -> Path:
    """Beside the dataset (a dataset rebuilt with --force keeps them): DATASET-corrections/roundR."""
    dataset = Path(dataset).resolve()
    return dataset.with_name(f"{dataset.name}-corrections") / f"round{round_}"


def episode_seed(round_: int, task_index: int) -> int:
    return SEED_BASE + 1000 * round_ + task_index


def bag_name(task_index: int, seed: int, incomplete: bool = False) -> str:
    """As the correct graph's recorder names it (prefix correction, task train/NNN)."""
    return f"correction_train-{task_index:03d}_seed{seed}" + (INCOMPLETE_SUFFIX if incomplete else "")


def launch_values(operator: str, model_dir: str, policy: str, bags: Path, round_: int, first_task: int,
                  first_demo: str, episode_duration: float, storage: str) -> list[str]:
    """A person drives on the wall clock; the simulated corrector in lockstep (its figures do not depend on the
    machine's speed), working the joystick like a person through the joy_teleop node."""
    common = [f"policy:={policy}", f"model_dir:={model_dir}", f"demo:=['{first_demo}']", f"out_dir:={bags}",
              f"storage:={storage}", f"round:={round_}", "auto_reset:=false", "task_set:=train",
              f"task_index:={first_task}", f"seed:={WARM_UP_SEED}", f"episode_duration:={episode_duration}"]
    if operator.startswith("sim:"):
        skill = operator[4:]
        return common + ["mode:=lockstep", "sync_policy:=true", "sim_operator:=true", f"corrector_skill:={skill}",
                         "operator:=sim:corrector", f"skill:={skill}", "joy_deadzone:=0.0"]
    return common + ["mode:=realtime", "sync_policy:=false", f"joy:={'true' if operator == 'joy' else 'false'}",
                     f"operator:=human:{operator}"]


def _wait_for_bag(bags: Path, task_index: int, seed: int, procs) -> Path:
    """The episode's bag once the recorder has closed it (complete, or flagged incomplete)."""
    deadline = time.monotonic() + BAG_WAIT
    while True:
        for incomplete in (False, True):
            bag = bags / bag_name(task_index, seed, incomplete)
            if (bag / "metadata.yaml").exists():
                return bag
        procs.raise_if_exited()
        if time.monotonic() > deadline:
            raise RuntimeError(f"the recorder wrote no bag {bags / bag_name(task_index, seed)} within {BAG_WAIT:.0f} s")
        time.sleep(0.05)


def collect_human_corrections(dataset: str | Path, model_dir: str | Path, round_: int, operator: str = "sim:expert",
                              num_tasks: int | None = None, bag_dir: str | Path | None = None,
                              policy: str = "tecnet", episode_duration: float = 10.0, storage: str = "mcap",
                              log_dir: str | None = None, progress=print) -> dict:
    """One corrected episode per train task of `dataset` (tasks 0..num_tasks-1 when given), recorded into
    `bag_dir` (default: default_bag_dir) and added to the dataset as correction episodes of `round_`.
    operator: sim:SKILL (unattended), joy (a person's joystick on /joy) or keyboard (this terminal)."""
    import rclpy

    from il_robot.data.bag_reader import metadata_counts
    from il_robot.data.dataset import add_to_dataset
    from il_robot.launcher import GraphProcesses, NodeCommand, node_commands, parse_launch_args
    from il_robot.ros.env import ensure_localhost_discovery
    from il_robot.ros.episode_client import EpisodeClient, spin_in_background, stop_background
    from il_robot import topics

    parse_operator(operator)
    if operator == "keyboard" and not sys.stdin.isatty():
        raise ValueError("--operator keyboard reads the keys from this terminal, and stdin is not one")
    if round_ < 1:
        raise ValueError(f"the round must be 1 or more, got {round_}")
    if episode_duration <= 0:
        raise ValueError("episode_duration must be positive")
    dataset = Path(dataset)
    meta_path = dataset / "dataset.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{dataset} is not a dataset (no dataset.json)")
    demos = conditioning_bags(json.loads(meta_path.read_text()))
    tasks = sorted(i for i in demos if num_tasks is None or i < num_tasks)
    if not tasks:
        raise ValueError(f"{dataset} holds no train demos with a bag to condition the policy on"
                         + (f" among tasks 0..{num_tasks - 1}" if num_tasks else ""))
    missing = [demos[i] for i in tasks if not (Path(demos[i]) / "metadata.yaml").is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} conditioning demo bag(s) named in {meta_path} are gone, "
                                f"e.g. {missing[0]}")
    bags = Path(bag_dir) if bag_dir else default_bag_dir(dataset, round_)
    bags.mkdir(parents=True, exist_ok=True)
    bags = bags.resolve()
    todo = [i for i in tasks if not (bags / bag_name(i, episode_seed(round_, i)) / "metadata.yaml").exists()]
    ensure_localhost_discovery()
    log_dir = log_dir or tempfile.mkdtemp(prefix="il_robot_corrections_")
    t_start, t_start_wall = time.monotonic(), time.time()
    progress(f"round {round_}: {policy} ({model_dir}) drives {len(tasks)} train tasks, {operator} corrects; "
             f"{len(tasks) - len(todo)} recorded already; bags in {bags}, node logs in {log_dir}")
    interrupted = False
    if todo:
        first = todo[0]
        values = parse_launch_args(CORRECT, launch_values(
            operator, str(model_dir), policy, bags, round_, first, demos[first], episode_duration, storage))
        rclpy.init()
        procs = keyboard = None
        client = EpisodeClient("il_robot_corrections", health_check=lambda: procs and procs.raise_if_exited())
        executor, thread = spin_in_background(client)
        try:
            with GraphProcesses(node_commands(CORRECT, values), log_dir=log_dir) as procs:
                if operator == "keyboard":   # in this terminal (it reads the keys), its help on screen
                    keyboard = GraphProcesses([NodeCommand("keyboard_teleop", [
                        sys.executable, "-m", "il_robot.ros.keyboard_teleop_node", "--ros-args",
                        "-p", "use_sim_time:=true", "-p", "skill:=unknown"])])
                client.warm_up("train", first, WARM_UP_SEED, episode_duration)
                for n, i in enumerate(todo):
                    if keyboard is not None and keyboard.poll():   # q at the keyboard: the round ends here
                        interrupted = True
                        progress("keyboard teleop quit: adding what was recorded so far")
                        break
                    seed = episode_seed(round_, i)
                    client.set_parameters("/policy", timeout=120.0, demo=[demos[i]])
                    if operator in HUMAN_OPERATORS:
                        progress(f"train/{i:03d}: the policy drives for {episode_duration:g} s; "
                                 + ("hold the takeover button to correct it" if operator == "joy"
                                    else "t takes over, t again hands back"))
                    result = client.run_episode("train", i, seed, timeout=120.0 + 10.0 * episode_duration)
                    bag = _wait_for_bag(bags, i, seed, procs)
                    taken = metadata_counts(bag).get(topics.CORRECTION, 0)
                    progress(f"[{n + 1}/{len(todo)}] train/{i:03d} seed {seed}: "
                             + (f"taken over for {taken} frames" if taken else "not taken over")
                             + f", {'success' if result['success'] else 'failure'} "
                             f"({result['final_distance'] * 100:.1f} cm)"
                             + (" -- recorder flagged the bag incomplete" if bag.name.endswith(INCOMPLETE_SUFFIX)
                                else ""))
        except KeyboardInterrupt:
            interrupted = True
            progress("interrupted: adding what was recorded so far")
        except (RuntimeError, TimeoutError) as err:
            raise RuntimeError(f"{err}\n  (node logs in {log_dir})") from None
        finally:
            if keyboard is not None:
                keyboard.stop()
            stop_background(executor, thread, client)
        for stray in bags.glob(f"correction_*_seed{WARM_UP_SEED}*"):   # the warm-up's, the simulator's first
            if stray.stat().st_mtime >= t_start_wall:
                shutil.rmtree(stray)
    recorded = [bags / bag_name(i, episode_seed(round_, i)) for i in tasks]
    complete = [b for b in recorded if (b / "metadata.yaml").is_file()]
    summary = add_to_dataset([str(b) for b in complete], dataset, progress=False) if complete else {}
    episodes = _episode_figures(complete)
    out = {"round": round_, "operator": operator, "labeller": "human", "model_dir": str(model_dir),
           "tasks": len(tasks), "episodes": len(complete), "incomplete": len(recorded) - len(complete),
           "taken_over": sum(e["takeover_frames"] > 0 for e in episodes),
           "takeover_frames": sum(e["takeover_frames"] for e in episodes),
           "success": _rate([e["success"] for e in episodes]),   # the policy's and the operator's work together
           "learner_success": _rate([e["success"] and not e["takeover_frames"] for e in episodes]),  # the policy alone
           "corrections_added": summary.get("corrections_added", 0), "already_in": summary.get("already_in", 0),
           "bags": str(bags), "wall_time": time.monotonic() - t_start, "interrupted": interrupted,
           "per_episode": episodes}
    return out


def _episode_figures(bags: list[Path]) -> list[dict]:
    from il_robot import topics
    from il_robot.data.bag_reader import episode_result, metadata_counts, read_bag

    rows = []
    for bag in bags:
        result = episode_result(read_bag(bag)) or {}
        rows.append({"bag": str(bag), "task": result.get("task"), "success": result.get("success"),
                     "final_distance": result.get("final_distance"),
                     "takeover_frames": metadata_counts(bag).get(topics.CORRECTION, 0)})
    return rows


def _rate(values: list) -> float | None:
    known = [bool(v) for v in values if v is not None]
    return sum(known) / len(known) if known else None
