"""il-robot: launch the pushing graph, evaluate policies, benchmark the stack."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from il_robot import __version__


def build_parser() -> argparse.ArgumentParser:
    from il_robot.cli import (bench_cmd, dataset_cmd, dds_profile_cmd, demo_cmd, eval_cmd, export_cmd, launch_cmd,
                              record_cmd, train_cmd)

    parser = argparse.ArgumentParser(
        prog="il-robot",
        description="Few-shot imitation for ROS 2 arms. DDS stays on localhost unless "
                    "ROS_AUTOMATIC_DISCOVERY_RANGE is set.")
    parser.add_argument("--version", action="version", version=f"il_robot {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (demo_cmd, launch_cmd, eval_cmd, bench_cmd, record_cmd, dataset_cmd, train_cmd, export_cmd,
                   dds_profile_cmd):
        module.add_parser(sub)
    return parser


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    # Ctrl-C and SIGTERM stop whatever runs (and the nodes it started) cleanly, also when started
    # in the background, where a shell hands SIGINT down as ignored and Python would keep it so.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (ValueError, FileNotFoundError, TimeoutError, RuntimeError) as err:
        print(f"il-robot {args.command}: error: {err}", file=sys.stderr)
        return 2


def _exit(code: int) -> None:
    """A torchrun worker leaves without the interpreter's teardown, its output flushed: gloo's threads can
    abort that teardown after a finished training ("terminate called without an active exception", seen
    in CI on a rank that had passed the final barrier and left the process group; pytorch/pytorch#179291)."""
    if "TORCHELASTIC_RUN_ID" in os.environ:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    _exit(main())
