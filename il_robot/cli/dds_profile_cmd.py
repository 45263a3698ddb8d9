"""il-robot dds-profile: the robot host's Fast DDS profile for a graph split across two hosts."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub) -> None:
    p = sub.add_parser(
        "dds-profile", help="write the robot host's DDS profile (two hosts: bind to one interface)",
        description="Write a Fast DDS profile for the robot host of a split graph (role:=robot): DDS "
                    "uses only the network interface that faces the policy host (and loopback), so "
                    "hosts on other networks cannot reach the arm's nodes, and the torque path's "
                    "subscriptions (torque commands, joint states, clock) accept only this host's own "
                    "processes. Every process on the robot host then runs with "
                    "FASTDDS_DEFAULT_PROFILES_FILE set to the file.",
        epilog="example:\n  il-robot dds-profile --interface eth1 --out ~/robot_dds.xml\n"
               "  export FASTDDS_DEFAULT_PROFILES_FILE=~/robot_dds.xml ROS_STATIC_PEERS=<policy host IP>\n"
               "  il-robot launch pushing role:=robot\n"
               "what it protects and what it does not: docs/two_hosts.md",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--interface", required=True,
                   help="the robot host's interface that faces the policy host (`ip -br addr` lists them)")
    p.add_argument("--out", help="file to write (default: standard output)")
    p.set_defaults(func=run)


def run(args) -> int:
    from il_robot.dds_profile import robot_host_profile

    xml = robot_host_profile(args.interface)
    if args.out:
        with open(args.out, "w") as f:
            f.write(xml)
        print(f"wrote {args.out}; on the robot host: export FASTDDS_DEFAULT_PROFILES_FILE={args.out}",
              file=sys.stderr)
    else:
        sys.stdout.write(xml)
    return 0
