"""Standard ROS 2 messages as rosbags objects, built from numpy, for writers without rclpy.

In-process data generation writes bags without a ROS graph; these builders
mirror `il_robot.ros.conversions` (same fields, frames and stamp rounding) so a
bag looks the same whichever way it was made.
"""

from __future__ import annotations

import struct
from functools import lru_cache

import numpy as np
from rosbags.typesys import Stores, get_typestore

from il_robot.data.bag_format import TYPESTORE

_NS = 1_000_000_000
BASE_FRAME = "panda_link0"
CAMERA_FRAME = "camera_optical_frame"
WORLD_FRAME = "world"


@lru_cache(maxsize=1)
def typestore():
    """The ROS 2 standard message types (Kilted = Jazzy for every type a demo bag uses)."""
    return get_typestore(Stores(TYPESTORE))


def _type(name: str):
    return typestore().types[name]


def to_ns(seconds: float) -> int:
    return int(round(float(seconds) * _NS))


def stamp(seconds: float):
    ns = to_ns(seconds)
    return _type("builtin_interfaces/msg/Time")(sec=ns // _NS, nanosec=ns % _NS)


def header_stamp_ns(data: bytes | memoryview) -> int:
    """Header stamp (ns) of a serialized stamped message, without deserializing it: the header is
    the first field after the 4-byte CDR encapsulation (byte 1 says the byte order)."""
    sec, nsec = struct.unpack_from("<iI" if data[1] == 1 else ">iI", data, 4)
    return sec * _NS + nsec


def stamp_ns(time_msg) -> int:
    """builtin_interfaces Time -> integer nanoseconds (exact, for matching stamps)."""
    return int(time_msg.sec) * _NS + int(time_msg.nanosec)


def header(t: float, frame_id: str = ""):
    return _type("std_msgs/msg/Header")(stamp=stamp(t), frame_id=frame_id)


def _f64(values) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(values, dtype=np.float64).reshape(-1))


def joint_state(names, q, qd, effort, t: float):
    return _type("sensor_msgs/msg/JointState")(
        header=header(t), name=[str(n) for n in names], position=_f64(q), velocity=_f64(qd),
        effort=_f64(effort) if effort is not None else _f64([]))


def image(rgb: np.ndarray, t: float, frame_id: str = CAMERA_FRAME):
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    h, w = rgb.shape[:2]
    return _type("sensor_msgs/msg/Image")(
        header=header(t, frame_id), height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3,
        data=np.ascontiguousarray(rgb).reshape(-1))


def camera_info(width: int, height: int, fx: float, fy: float, cx: float, cy: float, t: float,
                frame_id: str = CAMERA_FRAME):
    roi = _type("sensor_msgs/msg/RegionOfInterest")(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return _type("sensor_msgs/msg/CameraInfo")(
        header=header(t, frame_id), height=int(height), width=int(width), distortion_model="plumb_bob",
        d=_f64([0.0] * 5), k=_f64([fx, 0, cx, 0, fy, cy, 0, 0, 1]), r=_f64([1, 0, 0, 0, 1, 0, 0, 0, 1]),
        p=_f64([fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0]), binning_x=0, binning_y=0, roi=roi)


def twist_stamped(v, t: float, frame_id: str = BASE_FRAME):
    """Linear velocity (3,) in m/s; angular zero."""
    vec3 = _type("geometry_msgs/msg/Vector3")
    x, y, z = (float(c) for c in np.asarray(v, dtype=float).reshape(3))
    twist = _type("geometry_msgs/msg/Twist")(linear=vec3(x=x, y=y, z=z), angular=vec3(x=0.0, y=0.0, z=0.0))
    return _type("geometry_msgs/msg/TwistStamped")(header=header(t, frame_id), twist=twist)


def desired_motion(names, q, qd, qdd, t: float):
    """JointTrajectory with one point (positions at header.stamp), as the policy node sends."""
    point = _type("trajectory_msgs/msg/JointTrajectoryPoint")(
        positions=_f64(q), velocities=_f64(qd), accelerations=_f64(qdd), effort=_f64([]),
        time_from_start=_type("builtin_interfaces/msg/Duration")(sec=0, nanosec=0))
    return _type("trajectory_msgs/msg/JointTrajectory")(
        header=header(t), joint_names=[str(n) for n in names], points=[point])


def pose_array(poses, t: float, frame_id: str = WORLD_FRAME):
    """Each pose: (x, y, z) or (x, y, z, qw, qx, qy, qz) -- MuJoCo's quaternion order, w first."""
    point, quat, pose = (_type(f"geometry_msgs/msg/{n}") for n in ("Point", "Quaternion", "Pose"))
    out = []
    for p in poses:
        p = [float(c) for c in p]
        if len(p) not in (3, 7):
            raise ValueError(f"pose needs 3 (xyz) or 7 (xyz + wxyz) numbers, got {len(p)}")
        w, qx, qy, qz = p[3:] if len(p) == 7 else (1.0, 0.0, 0.0, 0.0)
        out.append(pose(position=point(x=p[0], y=p[1], z=p[2]), orientation=quat(x=qx, y=qy, z=qz, w=w)))
    return _type("geometry_msgs/msg/PoseArray")(header=header(t, frame_id), poses=out)


def string(text: str):
    return _type("std_msgs/msg/String")(data=str(text))


def serialize(msg, msgtype: str) -> bytes:
    """CDR bytes with the 4-byte encapsulation header: what rclpy raw subscriptions and rosbag2 store."""
    return bytes(typestore().serialize_cdr(msg, msgtype))


def deserialize(data: bytes | memoryview, msgtype: str):
    return typestore().deserialize_cdr(data, msgtype)
