"""A node for the two-host tests, run inside a host's namespace (`python dds_probe.py MODE`).

listen: counts desired motion and torque commands by who sent them, printing the counts as a
  JSON line whenever they change.
latency SECONDS: what a process on the robot host sees for that long, as JSON: joint state ->
  torque command (each torque against the last state before it) and camera frame (image or object
  poses, whichever comes first) -> desired motion of that frame's stamp, arrival to arrival, in ms.
send NAME: publishes desired motion (header.frame_id NAME) and torque commands (every value
  TORQUE_MARK[NAME]) at 50 Hz, printing "sent N" every 50 messages: a stranger talking to the arm.
"""

from __future__ import annotations

import json
import re
import sys
import time

import numpy as np
import rclpy
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from il_robot import topics
from il_robot.robot import panda_like
from il_robot.ros import conversions as conv

TORQUE_MARK = {"lan": 4.25, "policy-host": 3.75}   # values the controller never commands at home


def listen(node) -> None:
    counts: dict[str, int] = {}

    def count(key: str) -> None:
        counts[key] = counts.get(key, 0) + 1
        print(json.dumps(counts, sort_keys=True), flush=True)

    node.create_subscription(JointTrajectory, topics.DESIRED_MOTION,
                             lambda m: count("desired from " + (m.header.frame_id or "the policy")), 100)
    marks = {v: k for k, v in TORQUE_MARK.items()}
    node.create_subscription(Float64MultiArray, topics.EFFORT_COMMANDS,
                             lambda m: count("torque from " + marks.get(m.data[0] if len(m.data) else 0.0,
                                                                          "the controller")), 100)
    rclpy.spin(node)


def latency(node, seconds: float) -> None:
    from geometry_msgs.msg import PoseArray
    from sensor_msgs.msg import Image, JointState

    clock = time.perf_counter
    state_at, torque_lat, frame_at, desired_at = [0.0], [], {}, {}

    def stamp(m):
        return m.header.stamp.sec, m.header.stamp.nanosec

    node.create_subscription(JointState, topics.JOINT_STATES, lambda m: state_at.__setitem__(0, clock()), 100)
    node.create_subscription(Float64MultiArray, topics.EFFORT_COMMANDS,
                             lambda m: state_at[0] and torque_lat.append(clock() - state_at[0]), 100)
    # A frame is its image and its object poses (the scripted expert answers the poses, which go out
    # before the image is drawn): the first of the two to arrive. Paired after the run.
    node.create_subscription(Image, topics.IMAGE, lambda m: frame_at.setdefault(stamp(m), clock()), 100)
    node.create_subscription(PoseArray, topics.OBJECT_POSES, lambda m: frame_at.setdefault(stamp(m), clock()), 100)
    node.create_subscription(JointTrajectory, topics.DESIRED_MOTION, lambda m: desired_at.setdefault(stamp(m), clock()),
                             100)
    end = clock() + seconds
    while clock() < end:
        rclpy.spin_once(node, timeout_sec=0.1)
    desired_lat = [desired_at[k] - frame_at[k] for k in frame_at if k in desired_at]

    def stats(samples):
        a = np.asarray(samples) * 1e3
        return {"n": int(a.size), "p50_ms": float(np.median(a)) if a.size else None,
                "p99_ms": float(np.percentile(a, 99)) if a.size else None}

    print(json.dumps({"joint_state_to_torque": stats(torque_lat), "camera_to_desired_motion": stats(desired_lat),
                      "frames": len(frame_at)}), flush=True)


def send(node, name: str) -> None:
    desired = node.create_publisher(JointTrajectory, topics.DESIRED_MOTION, 10)
    torque = node.create_publisher(Float64MultiArray, topics.EFFORT_COMMANDS, 10)
    q, zero = np.array(panda_like.HOME_Q), np.zeros(panda_like.N_JOINTS)
    sent = 0
    while rclpy.ok():
        msg = conv.desired_motion(list(panda_like.JOINT_NAMES), q, zero, zero, time.time())
        msg.header.frame_id = name
        desired.publish(msg)
        torque.publish(Float64MultiArray(data=[TORQUE_MARK[name]] * panda_like.N_JOINTS))
        sent += 1
        if sent % 50 == 0:
            print(f"sent {sent}", flush=True)
        rclpy.spin_once(node, timeout_sec=0.02)


if __name__ == "__main__":
    rclpy.init()
    probe = rclpy.create_node(re.sub(r"\W", "_", f"probe_{sys.argv[1]}_{sys.argv[2] if len(sys.argv) > 2 else ''}"))
    try:
        if sys.argv[1] == "listen":
            listen(probe)
        elif sys.argv[1] == "latency":
            latency(probe, float(sys.argv[2]))
        else:
            send(probe, sys.argv[2])
    except KeyboardInterrupt:
        pass
    finally:
        probe.destroy_node()
        rclpy.try_shutdown()
