"""il-robot eval: run episodes of a policy through the real ROS graph and score them."""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np

from il_robot.rates import CONTROL_RATE_HZ
from il_robot.sim.tasks import MAX_SEED, TASK_SET_SIZES

EPISODE_SEED_STRIDE = 100_000   # episode i of seed S runs on seed S * stride + i
MODES = ("lockstep", "realtime")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "eval", help="evaluate a policy on pushing tasks through the ROS graph",
        description="Launches the pushing graph, runs N episodes and reports success rate (target within "
                    "5 cm of the goal centre at the end), final distance, episode time and the loop "
                    "figures. --mode lockstep (default): the simulator waits for every answer, results "
                    "do not depend on machine speed and a run replays. --mode realtime: the simulator "
                    "runs on the wall clock like an arm (the default of `il-robot launch pushing`), "
                    "optionally with the camera delayed (--camera-delay): what a policy achieves when "
                    "nothing waits for it.")
    p.add_argument("--policy", default="scripted", help="registered policy name (default: scripted)")
    p.add_argument("--model-dir", default="", help="model directory of a learned policy")
    p.add_argument("--demo", action="append", default=[], help="demo bag for few-shot policies (repeatable)")
    p.add_argument("--demo-dir", help="few-shot policies: directory of demo bags named like "
                   "'heldout-007_demo00_expert' (as `il-robot record` writes them); each episode is "
                   "conditioned on --shots bags of its own task, swapped in through the `demo` parameter. "
                   "Default for a few-shot policy's shipped model: models/<policy>/demos")
    p.add_argument("--shots", type=int, default=1, help="demos per task with --demo-dir (default 1)")
    p.add_argument("--demo-skill", default="any", help="use only demos of this operator skill "
                   "(expert, okay, poor; default any)")
    p.add_argument("--tasks", default="heldout", choices=sorted(TASK_SET_SIZES), help="task set")
    p.add_argument("--episodes", type=int, default=20, help="number of episodes (task i mod set size)")
    p.add_argument("--seed", type=int, default=0, help="same seed -> same tasks and initial states")
    p.add_argument("--episode-duration", type=float, default=10.0, help="seconds of sim time per episode")
    p.add_argument("--mode", choices=MODES, default="lockstep",
                   help="simulator mode: lockstep (deterministic, default) or realtime (wall clock)")
    p.add_argument("--camera-delay", type=float, default=0.0, metavar="SECONDS",
                   help="realtime only: camera latency in s of sim time (the simulator's camera_delay, "
                        "default 0): frames and object poses keep their capture stamp and go out this "
                        "much later")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON (fields: docs/running.md)")
    p.add_argument("--video", metavar="DIR", help="write one MP4 rollout per episode from the camera")
    p.add_argument("--log-dir", help="node logs (default: a temporary directory)")
    p.add_argument("--role", choices=("all", "robot"), default="all",
                   help="all (default): launch the whole graph here; robot: launch the simulator and the "
                        "torque loop here and drive a policy node that runs on another host (the command "
                        "to start it there is printed; docs/two_hosts.md)")
    p.add_argument("--policy-wait", type=float, default=300.0, metavar="SECONDS",
                   help="--role robot: how long to wait for the other host's policy node (default 300)")
    p.set_defaults(func=run)


def episode_plan(task_set: str, episodes: int, seed: int) -> list[tuple[int, int]]:
    """(task_index, episode_seed) per episode: deterministic in the seed."""
    n = TASK_SET_SIZES[task_set]
    return [(i % n, seed * EPISODE_SEED_STRIDE + i) for i in range(episodes)]


def check_seed(seed: int, episodes: int) -> None:
    """Every episode seed must fit the simulator's seed (a non-negative int64): refused up front."""
    highest = (MAX_SEED - (episodes - 1)) // EPISODE_SEED_STRIDE
    if not 0 <= seed <= highest:
        raise ValueError(f"--seed must be in 0..{highest} (episode i runs on seed * {EPISODE_SEED_STRIDE} + i, "
                         f"a non-negative 64-bit integer); got {seed}")


def check_mode(mode: str, camera_delay: float) -> None:
    """A delayed camera needs the realtime simulator (a lockstep one publishes each frame as captured)."""
    from il_robot.ros.sim_node import MAX_CAMERA_DELAY

    if not 0.0 <= camera_delay <= MAX_CAMERA_DELAY:
        raise ValueError(f"--camera-delay must be in 0..{MAX_CAMERA_DELAY:g} s; got {camera_delay:g}")
    if camera_delay > 0 and mode != "realtime":
        raise ValueError(f"--camera-delay needs --mode realtime (got --mode {mode}): the lockstep simulator "
                         "publishes each frame as it captures it and waits for the answer")


def launch_values(args, plan: list[tuple[int, int]], demo: str) -> list[str]:
    """Launch arguments of the evaluated graph. Lockstep: the simulator waits for the policy at each
    frame. Realtime: nothing waits, as on an arm; the camera may lag by --camera-delay."""
    mode = ["mode:=lockstep", "sync_policy:=true"] if args.mode == "lockstep" else [
        "mode:=realtime", "sync_policy:=false", f"camera_delay:={float(args.camera_delay)}"]
    return [f"policy:={args.policy}", f"model_dir:={args.model_dir}", f"demo:={demo}", *mode,
            "auto_reset:=false", f"task_set:={args.tasks}", f"task_index:={plan[0][0]}",
            f"seed:={plan[0][1]}", f"episode_duration:={args.episode_duration}", f"role:={args.role}"]


def policy_host_command(launch_args: list[str]) -> str:
    """The command that starts the policy's half of the evaluated graph on the other host."""
    import shlex

    from il_robot.graph import PUSHING

    defaults = PUSHING.defaults()
    kept = [a for a in launch_args if a.startswith("policy:=")
            or a.partition(":=")[2] not in ("", defaults[a.partition(":=")[0]])]
    return "il-robot launch pushing role:=policy " + " ".join(shlex.quote(a) for a in kept if not a.startswith("role:="))


def run(args) -> int:
    import rclpy

    from il_robot.cli.json_file import write_json
    from il_robot.graph import PUSHING
    from il_robot.launcher import GraphProcesses, node_commands, parse_launch_args
    from il_robot.ros.env import ensure_localhost_discovery
    from il_robot.ros.episode_client import EpisodeClient, spin_in_background, stop_background

    if args.episodes < 1:
        raise ValueError("--episodes must be at least 1")
    check_seed(args.seed, args.episodes)
    check_mode(args.mode, args.camera_delay)
    ensure_localhost_discovery()
    plan = episode_plan(args.tasks, args.episodes, args.seed)
    shipped_demos = False
    if not args.demo_dir and not args.demo and not args.model_dir:
        from il_robot.paths import models_dir
        shipped = models_dir() / args.policy / "demos"   # few-shot policies ship demos with their model
        if shipped.is_dir():
            args.demo_dir, shipped_demos = str(shipped), True
            print(f"conditioning on the shipped demos in {shipped}")
    if args.demo_dir:   # fail before launching anything when a task has too few demos
        for task_index, _ in plan:
            try:
                task_demos(args.demo_dir, args.tasks, task_index, args.shots, args.demo_skill)
            except FileNotFoundError as e:
                if not shipped_demos:
                    raise
                raise FileNotFoundError(
                    f"{e}. The shipped demos name only their own task(s); for {args.tasks}/{task_index:03d}, "
                    f"give --demo-dir DIR with demos of every task evaluated (il-robot record --tasks "
                    f"{args.tasks} --num-tasks {args.episodes} ...), or evaluate fewer episodes") from None
        if not args.demo:   # the node starts conditioned on the first episode's demos
            args.demo = task_demos(args.demo_dir, args.tasks, plan[0][0], args.shots, args.demo_skill)
    demo = "[" + ",".join(f"'{d}'" for d in args.demo) + "]" if args.demo else "['']"
    launch_args = launch_values(args, plan, demo)
    values = parse_launch_args(PUSHING, launch_args)
    log_dir = args.log_dir or tempfile.mkdtemp(prefix="il_robot_eval_")
    results = []
    wall_start = time.monotonic()
    rclpy.init()
    procs = None
    client = EpisodeClient(record_frames=bool(args.video), health_check=lambda: procs and procs.raise_if_exited())
    executor, thread = spin_in_background(client)
    try:
        with GraphProcesses(node_commands(PUSHING, values), log_dir=log_dir) as procs:
            if args.role == "robot":
                print(f"waiting for the policy node; on the policy host run:\n  {policy_host_command(launch_args)}",
                      flush=True)
                client.wait_for_node("policy", args.policy_wait)
            client.warm_up(args.tasks, plan[0][0], plan[0][1], args.episode_duration)
            for i, (task_index, seed) in enumerate(plan):
                t0 = time.monotonic()
                demos = None
                if args.demo_dir:
                    demos = task_demos(args.demo_dir, args.tasks, task_index, args.shots, args.demo_skill)
                    client.set_parameters("/policy", timeout=120.0, demo=demos)
                result = client.run_episode(args.tasks, task_index, seed)
                if demos:
                    result["demos"] = demos
                procs.raise_if_exited()
                result["wall_time"] = time.monotonic() - t0
                frames = result.pop("frames")
                if args.video:
                    result["video"] = str(save_video(args.video, i, result, frames))
                results.append(result)
                loop = loop_figures(result)
                print(f"[{i + 1}/{len(plan)}] {result['task']} seed {seed}: "
                      f"{'success' if result['success'] else 'failure'}, "
                      f"{result['final_distance'] * 100:.1f} cm, {result['wall_time']:.1f} s wall; "
                      f"policy {loop['policy_rate_hz']:.1f} Hz, torque {loop['torque_rate_hz']:.0f} Hz, "
                      f"missed {loop['policy_missed']}/{loop['torque_missed']}", flush=True)
    except (RuntimeError, TimeoutError) as err:
        raise RuntimeError(f"{err}\n  (node logs in {log_dir})") from None
    finally:
        stop_background(executor, thread, client)
    summary = summarize(args, results, time.monotonic() - wall_start)
    print(f"{args.policy} on {args.tasks}, {mode_label(args)}: success {summary['success_rate'] * 100:.0f}% "
          f"({summary['successes']}/{summary['episodes']}), final distance median "
          f"{summary['final_distance_median'] * 100:.1f} cm, {summary['wall_time']:.0f} s wall; "
          f"policy {summary['loop']['policy_rate_hz']:.1f} Hz, torque {summary['loop']['torque_rate_hz']:.0f} Hz, "
          f"missed ticks policy {summary['loop']['policy_missed']} torque {summary['loop']['torque_missed']}; "
          f"logs in {log_dir}")
    write_json(args.json, summary)
    return 0


def mode_label(args) -> str:
    """'lockstep', 'realtime' or 'realtime, camera +50 ms': how the figures were taken."""
    return args.mode + (f", camera +{args.camera_delay * 1e3:g} ms" if args.camera_delay else "")


def task_demos(demo_dir: str, task_set: str, task_index: int, shots: int, skill: str = "any") -> list[str]:
    """The first `shots` demo bags of a task (sorted by name), optionally of one operator skill."""
    from pathlib import Path

    pattern = f"{task_set}-{task_index:03d}_demo*" + ("" if skill == "any" else f"_{skill}")
    bags = sorted(str(p) for p in Path(demo_dir).glob(pattern) if (p / "metadata.yaml").exists())
    if len(bags) < shots:
        raise FileNotFoundError(f"{demo_dir}: {len(bags)} demo bag(s) match '{pattern}', --shots needs {shots}")
    return bags[:shots]


def save_video(directory: str, i: int, result: dict, frames: list) -> str:
    from il_robot.video import write_video

    name = f"episode_{i:03d}_{result['task'].replace('/', '-')}_{'success' if result['success'] else 'failure'}"
    fps = len(frames) / result["duration"] if result["duration"] > 0 else CONTROL_RATE_HZ
    caption = f"{result['task']} seed {result['seed']}"
    return str(write_video(os.path.join(directory, name + ".mp4"), frames, fps, caption))


def loop_figures(result: dict) -> dict:
    """Achieved rates (per second of sim time) and missed ticks of one episode."""
    loop = result.get("loop", {})
    duration = max(result["duration"], 1e-9)
    steps, missed = loop.get("steps", 0), loop.get("torque_missed", 0)
    return {"policy_ticks": result.get("policy_ticks", 0),
            "policy_rate_hz": result.get("policy_ticks", 0) / duration,
            "policy_missed": loop.get("policy_missed", 0), "frames": loop.get("frames", 0),
            "torque_ticks": steps - missed, "torque_rate_hz": (steps - missed) / duration,
            "torque_missed": missed, "torque_late": loop.get("torque_late", 0), "physics_steps": steps,
            "longest_gap_ms": loop.get("longest_gap_ms", 0.0), "longest_gap_at": loop.get("longest_gap_at", 0.0),
            "real_time_factor": result["duration"] / loop["wall_time"] if loop.get("wall_time") else None}


def summarize(args, results: list[dict], wall_time: float) -> dict:
    dist = np.array([r["final_distance"] for r in results])
    loops = [loop_figures(r) for r in results]
    return {
        "policy": args.policy,
        "tasks": args.tasks,
        "shots": args.shots if args.demo_dir else None,
        "demo_skill": args.demo_skill if args.demo_dir else None,
        "seed": args.seed,
        "mode": args.mode,
        "camera_delay": args.camera_delay,
        "episodes": len(results),
        "successes": int(sum(r["success"] for r in results)),
        "success_rate": float(np.mean([r["success"] for r in results])),
        "final_distance_mean": float(dist.mean()),
        "final_distance_median": float(np.median(dist)),
        "episode_duration": args.episode_duration,
        "wall_time": wall_time,
        "loop": {
            "policy_rate_hz": float(np.mean([lp["policy_rate_hz"] for lp in loops])),
            "policy_missed": int(sum(lp["policy_missed"] for lp in loops)),
            "torque_rate_hz": float(np.mean([lp["torque_rate_hz"] for lp in loops])),
            "torque_missed": int(sum(lp["torque_missed"] for lp in loops)),
        },
        "per_episode": [{"task": r["task"], "seed": r["seed"], "success": r["success"],
                         "final_distance": r["final_distance"], "duration": r["duration"],
                         "wall_time": r["wall_time"], "loop": lp,
                         **{k: r[k] for k in ("demos", "video") if k in r}}
                        for r, lp in zip(results, loops)],
    }
