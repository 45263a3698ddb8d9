"""il-robot launch GRAPH name:=value ...: the pip users' `ros2 launch`."""

from __future__ import annotations

import sys
import time

from il_robot.graph import GRAPHS


def add_parser(sub) -> None:
    graphs = "\n".join(
        f"  {g.name}: " + ", ".join(f"{a.name} (default '{a.default}')" for a in g.arguments)
        for g in GRAPHS.values())
    p = sub.add_parser("launch", help="start a node graph (same nodes and parameters as ros2 launch)",
                       description="Start the nodes of launch/<graph>.launch.py with the same parameter "
                                   "file and launch arguments, as processes. Ctrl-C stops them.",
                       epilog="graphs and their arguments:\n" + graphs,
                       formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("graph", choices=sorted(GRAPHS), help="which graph")
    p.add_argument("arguments", nargs="*", metavar="name:=value", help="launch arguments")
    p.add_argument("--log-dir", help="write each node's output to DIR/<node>.log instead of the terminal")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: run "
                                                                 "until Ctrl-C)")
    p.set_defaults(func=run)


def run(args) -> int:
    from il_robot.launcher import GraphProcesses, node_commands, parse_launch_args

    graph = GRAPHS[args.graph]
    values = parse_launch_args(graph, args.arguments)
    commands = node_commands(graph, values)
    start = time.monotonic()
    with GraphProcesses(commands, log_dir=args.log_dir) as procs:
        print(f"launched {graph.name}: " + ", ".join(f"{n} (pid {p.pid})" for n, p in procs.procs.items()),
              flush=True)
        try:
            while args.duration is None or time.monotonic() - start < args.duration:
                reason = procs.watch()
                if reason:
                    print(f"{reason}: stopping the graph", file=sys.stderr, flush=True)
                    return 1
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
    return 0
