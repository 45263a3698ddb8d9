"""il-robot record: demonstrations into rosbag2 bags, one episode per bag.

Simulated operators (sim:expert|okay|poor) are generated in parallel processes
without DDS (bulk training data) or, with --via ros, recorded off the running
ROS graph like a human's; keyboard and joy operators drive the ROS graph live.
"""

from __future__ import annotations

import json
import os

from il_robot.sim.tasks import TASK_SET_SIZES

HUMAN_OPERATORS = ("keyboard", "joy")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "record", help="record demonstrations (simulated or human operators) as rosbag2 bags",
        description="Records one episode per bag (MCAP by default) with the camera, joint states, the "
                    "operator's command, the action label (/tip_velocity_command), the desired motion and "
                    "the episode metadata (task, operator, success, final distance). Simulated operators "
                    "(sim:expert, sim:okay, sim:poor; a comma list cycles through them per demo) run in "
                    "--workers parallel processes; bags that already exist are skipped, so an interrupted "
                    "run resumes. keyboard/joy: a human drives the ROS graph (see docs/dataset.md).")
    p.add_argument("--operator", default="sim:expert",
                   help="sim:expert | sim:okay | sim:poor (comma list: demo k uses entry k mod n) | keyboard | joy")
    p.add_argument("--tasks", default="train", choices=sorted(TASK_SET_SIZES), help="task set")
    p.add_argument("--num-tasks", type=int, default=10, help="tasks 0..N-1 of the set (default 10)")
    p.add_argument("--first-task", type=int, default=0, help="start at this task index")
    p.add_argument("--demos-per-task", type=int, default=1, help="demos (episodes) per task")
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 1)),
                   help="parallel sim processes (default: one per core)")
    p.add_argument("--seed", type=int, default=0, help="episode seeds are fixed by (seed, task, demo)")
    p.add_argument("--episode-duration", type=float, default=10.0, help="s of sim time per episode")
    p.add_argument("--storage", default="mcap", choices=("mcap", "sqlite3"), help="rosbag2 storage")
    p.add_argument("--via", default="inprocess", choices=("inprocess", "ros"),
                   help="simulated operators: in-process (fast, parallel) or through the ROS graph "
                        "(operator node -> teleop -> inverse dynamics -> sim, recorded by the recorder node)")
    p.add_argument("--realtime", action="store_true",
                   help="with --via ros: run the simulator on the wall clock (as with a human) instead of lockstep")
    p.add_argument("--out", required=True, help="output directory (one bag directory per episode)")
    p.add_argument("--json", metavar="FILE", help="also write the summary as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from il_robot.cli.json_file import write_json

    if args.operator in HUMAN_OPERATORS:
        from il_robot.cli.record_ros import record_human
        return record_human(args)
    from il_robot.teleop.operators import parse_operator

    skills = [parse_operator(s.strip()) for s in args.operator.split(",")]
    if args.via == "ros":
        from il_robot.cli.record_ros import record_simulated_via_ros
        summary = record_simulated_via_ros(args, skills)
    else:
        from il_robot.data.generate import generate, plan_jobs
        jobs = plan_jobs(args.out, args.tasks, args.num_tasks, args.demos_per_task, skills, args.seed,
                         args.storage, args.episode_duration, args.first_task)
        print(f"recording {len(jobs)} demos ({args.num_tasks} tasks x {args.demos_per_task}) with "
              f"{', '.join('sim:' + s for s in skills)} in {args.workers} process(es) -> {args.out}", flush=True)
        summary = generate(jobs, args.workers)
    print_summary(summary)
    write_json(args.json, summary)
    return 1 if summary["failed"] else 0


def print_summary(summary: dict) -> None:
    print(f"recorded {summary['recorded']} demos ({summary['skipped_existing']} already there) in "
          f"{summary['wall_time']:.0f} s; {summary['bytes_on_disk'] / 1e9:.2f} GB on disk")
    for skill, s in sorted(summary["by_skill"].items()):
        print(f"  {skill:7s} {s['episodes']:5d} episodes, success {s['success_rate'] * 100:5.1f}%")
    for f in summary["failed"]:
        print(f"  FAILED {f['path']}: {f['error']}")
    if summary["failed"]:
        print(json.dumps({"failed": len(summary["failed"])}))
