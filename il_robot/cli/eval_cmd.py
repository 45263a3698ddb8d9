"""il-robot eval: run episodes of a policy through the real ROS graph and score them."""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np

from il_robot.sim.tasks import TASK_SET_SIZES


def add_parser(sub) -> None:
    p = sub.add_parser(
        "eval", help="evaluate a policy on pushing tasks through the ROS graph",
        description="Launches the pushing graph with a lockstep simulator (results do not depend on "
                    "machine speed), runs N episodes and reports success rate (target within 5 cm "
                    "of the goal centre at the end), final distance and episode time.")
    p.add_argument("--policy", default="scripted", help="registered policy name (default: scripted)")
    p.add_argument("--model-dir", default="", help="model directory of a learned policy")
    p.add_argument("--demo", action="append", default=[], help="demo bag for few-shot policies (repeatable)")
    p.add_argument("--tasks", default="heldout", choices=sorted(TASK_SET_SIZES), help="task set")
    p.add_argument("--episodes", type=int, default=20, help="number of episodes (task i mod set size)")
    p.add_argument("--seed", type=int, default=0, help="same seed -> same tasks and initial states")
    p.add_argument("--episode-duration", type=float, default=10.0, help="seconds of sim time per episode")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    p.add_argument("--log-dir", help="node logs (default: a temporary directory)")
    p.set_defaults(func=run)


def episode_plan(task_set: str, episodes: int, seed: int) -> list[tuple[int, int]]:
    """(task_index, episode_seed) per episode: deterministic in the seed."""
    n = TASK_SET_SIZES[task_set]
    return [(i % n, seed * 100_000 + i) for i in range(episodes)]


def run(args) -> int:
    import rclpy

    from il_robot.cli.main import write_json
    from il_robot.graph import PUSHING
    from il_robot.launcher import GraphProcesses, node_commands, parse_launch_args
    from il_robot.ros.env import ensure_localhost_discovery
    from il_robot.ros.episode_client import EpisodeClient, spin_in_background

    if args.episodes < 1:
        raise ValueError("--episodes must be at least 1")
    ensure_localhost_discovery()
    plan = episode_plan(args.tasks, args.episodes, args.seed)
    demo = "[" + ",".join(f"'{d}'" for d in args.demo) + "]" if args.demo else "['']"
    values = parse_launch_args(PUSHING, [
        f"policy:={args.policy}", f"model_dir:={args.model_dir}", f"demo:={demo}", "mode:=lockstep",
        "sync_policy:=true", "auto_reset:=false", f"task_set:={args.tasks}", f"task_index:={plan[0][0]}",
        f"seed:={plan[0][1]}", f"episode_duration:={args.episode_duration}"])
    log_dir = args.log_dir or tempfile.mkdtemp(prefix="il_robot_eval_")
    results = []
    wall_start = time.monotonic()
    rclpy.init()
    client = EpisodeClient()
    executor, _ = spin_in_background(client)
    try:
        with GraphProcesses(node_commands(PUSHING, values), log_dir=log_dir) as procs:
            for i, (task_index, seed) in enumerate(plan):
                t0 = time.monotonic()
                result = client.run_episode(args.tasks, task_index, seed)
                exited = procs.poll()
                if exited:
                    raise RuntimeError(f"node(s) exited during evaluation: {exited}; logs in {log_dir}")
                result["wall_time"] = time.monotonic() - t0
                results.append(result)
                print(f"[{i + 1}/{len(plan)}] {result['task']} seed {seed}: "
                      f"{'success' if result['success'] else 'failure'}, "
                      f"{result['final_distance'] * 100:.1f} cm, {result['wall_time']:.1f} s wall", flush=True)
    finally:
        executor.shutdown()
        client.destroy_node()
        rclpy.try_shutdown()
    summary = summarize(args, results, time.monotonic() - wall_start)
    print(f"{args.policy} on {args.tasks}: success {summary['success_rate'] * 100:.0f}% "
          f"({summary['successes']}/{summary['episodes']}), final distance median "
          f"{summary['final_distance_median'] * 100:.1f} cm, {summary['wall_time']:.0f} s wall; logs in {log_dir}")
    write_json(args.json, summary)
    return 0


def summarize(args, results: list[dict], wall_time: float) -> dict:
    dist = np.array([r["final_distance"] for r in results])
    return {
        "policy": args.policy,
        "tasks": args.tasks,
        "seed": args.seed,
        "episodes": len(results),
        "successes": int(sum(r["success"] for r in results)),
        "success_rate": float(np.mean([r["success"] for r in results])),
        "final_distance_mean": float(dist.mean()),
        "final_distance_median": float(np.median(dist)),
        "episode_duration": args.episode_duration,
        "wall_time": wall_time,
        "per_episode": [{"task": r["task"], "seed": r["seed"], "success": r["success"],
                         "final_distance": r["final_distance"], "duration": r["duration"],
                         "wall_time": r["wall_time"]} for r in results],
        "cwd": os.getcwd(),
    }
