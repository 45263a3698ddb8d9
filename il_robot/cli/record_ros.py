"""`il-robot record` through the ROS graph: simulated operators episode by episode, or a human live."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from il_robot.graph import RECORD_DEMOS


def record_simulated_via_ros(args, skills: list[str]) -> dict:
    import rclpy

    from il_robot.data.bag_check import missing_messages
    from il_robot.data.bag_reader import metadata_counts
    from il_robot.data.generate import plan_jobs, recording_summary
    from il_robot.launcher import GraphProcesses, node_commands, parse_launch_args
    from il_robot.ros.env import ensure_localhost_discovery
    from il_robot.ros.episode_client import EpisodeClient, spin_in_background

    if len(skills) != 1:
        raise ValueError("--via ros records one simulated operator per run; give a single sim:SKILL")
    ensure_localhost_discovery()
    jobs = plan_jobs(args.out, args.tasks, args.num_tasks, args.demos_per_task, skills, args.seed,
                     args.storage, args.episode_duration, args.first_task)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    values = parse_launch_args(RECORD_DEMOS, [
        f"out_dir:={out.resolve()}", f"storage:={args.storage}", "sim_operator:=true", f"skill:={skills[0]}",
        f"operator_seed:={args.seed}", f"mode:={'realtime' if args.realtime else 'lockstep'}",
        f"sync_policy:={'false' if args.realtime else 'true'}", "auto_reset:=false",
        f"task_set:={args.tasks}", f"task_index:={jobs[0].task_index}", f"seed:={jobs[0].seed}",
        f"episode_duration:={args.episode_duration}"])
    log_dir = tempfile.mkdtemp(prefix="il_robot_record_")
    done, failed = [], []
    t_start, t_start_wall = time.monotonic(), time.time()
    rclpy.init()
    client = EpisodeClient("il_robot_record")
    executor, _ = spin_in_background(client)
    try:
        with GraphProcesses(node_commands(RECORD_DEMOS, values), log_dir=log_dir) as procs:
            for i, job in enumerate(jobs):
                result = client.run_episode(job.task_set, job.task_index, job.seed,
                                            timeout=60.0 + 5.0 * args.episode_duration)
                bag = out / f"demo_{job.task_set}-{job.task_index:03d}_seed{job.seed}"
                deadline = time.monotonic() + 30.0
                while not (bag / "metadata.yaml").exists():   # the recorder closes it after the result
                    if time.monotonic() > deadline or procs.poll():
                        raise RuntimeError(f"recorder wrote no {bag} (logs in {log_dir}); nodes exited: "
                                           f"{procs.poll()}")
                    time.sleep(0.05)
                counts = metadata_counts(bag)
                published = result.get("published", {})
                lost = missing_messages(published, counts)
                entry = {"path": str(bag), "skill": skills[0], "success": result["success"],
                         "final_distance": result["final_distance"], "counts": counts, "published": published,
                         "lost": lost}
                (failed if lost else done).append(entry if not lost else {**entry, "error": f"lost {lost}"})
                print(f"[{i + 1}/{len(jobs)}] {bag.name}: {'success' if result['success'] else 'failure'}, "
                      f"{result['final_distance'] * 100:.1f} cm; stored {sum(counts.values())} messages"
                      + (f", LOST {lost}" if lost else ", none lost"), flush=True)
    finally:
        executor.shutdown()
        client.destroy_node()
        rclpy.try_shutdown()
    for stray in out.glob("demo_*_incomplete"):   # the episode the simulator starts with, cut by our reset
        if stray.stat().st_mtime >= t_start_wall:
            shutil.rmtree(stray)
    summary = recording_summary(len(jobs), 0, done, failed, time.monotonic() - t_start, [d["path"] for d in done])
    return {**summary, "log_dir": log_dir}


def record_human(args) -> int:
    """A person drives the realtime sim: keyboard here in this terminal, or a joystick via /joy."""
    from il_robot.launcher import GraphProcesses, node_commands, parse_launch_args
    from il_robot.ros.env import ensure_localhost_discovery

    ensure_localhost_discovery()
    out = Path(args.out).resolve()
    values = parse_launch_args(RECORD_DEMOS, [
        f"out_dir:={out}", f"storage:={args.storage}", f"joy:={'true' if args.operator == 'joy' else 'false'}",
        "mode:=realtime", "auto_reset:=true", f"task_set:={args.tasks}", f"task_index:={args.first_task}",
        f"seed:={args.seed}", f"episode_duration:={args.episode_duration}"])
    log_dir = tempfile.mkdtemp(prefix="il_robot_record_")
    print(f"recording to {out} (one bag per episode; node logs in {log_dir}); Ctrl-C or q to stop", flush=True)
    with GraphProcesses(node_commands(RECORD_DEMOS, values), log_dir=log_dir) as procs:
        if args.operator == "keyboard":
            from il_robot.ros.keyboard_teleop_node import main as keyboard_main
            return keyboard_main([])
        try:
            while not procs.poll():
                time.sleep(0.2)
        except KeyboardInterrupt:
            return 0
    return 1
