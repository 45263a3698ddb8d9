"""Message <-> numpy, in one place: stamps, joint arrays, images, trajectories, torques."""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import Pose, TwistStamped
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray, MultiArrayDimension
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

_NS = 1_000_000_000


def to_time(seconds: float) -> Time:
    ns = int(round(seconds * _NS))
    return Time(sec=ns // _NS, nanosec=ns % _NS)


def from_time(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def to_duration(seconds: float) -> Duration:
    ns = int(round(seconds * _NS))
    return Duration(sec=ns // _NS, nanosec=ns % _NS)


def joint_state(names, q, qd, effort, t: float) -> JointState:
    msg = JointState()
    msg.header.stamp = to_time(t)
    msg.name = list(names)
    msg.position = np.asarray(q, dtype=float).tolist()
    msg.velocity = np.asarray(qd, dtype=float).tolist()
    msg.effort = np.asarray(effort, dtype=float).tolist()
    return msg


def effort_command(tau) -> Float64MultiArray:
    msg = Float64MultiArray()
    tau = np.asarray(tau, dtype=float)
    msg.layout.dim = [MultiArrayDimension(label="joints", size=tau.size, stride=tau.size)]
    msg.data = tau.tolist()
    return msg


def checked_effort(tau: np.ndarray, n: int) -> np.ndarray:
    """tau itself when it holds n finite torques; raises ValueError otherwise."""
    if tau.shape != (n,):
        raise ValueError(f"effort command has {tau.size} values, expected {n}")
    if not np.all(np.isfinite(tau)):
        raise ValueError(f"effort command contains NaN or Inf: {tau.tolist()}")
    return tau


def desired_motion(names, positions, velocities, accelerations, t: float) -> JointTrajectory:
    msg = JointTrajectory()
    msg.header.stamp = to_time(t)
    msg.joint_names = list(names)
    point = JointTrajectoryPoint()
    point.positions = np.asarray(positions, dtype=float).tolist()
    point.velocities = np.asarray(velocities, dtype=float).tolist()
    point.accelerations = np.asarray(accelerations, dtype=float).tolist()
    point.time_from_start = to_duration(0.0)
    msg.points = [point]
    return msg


def twist_stamped(v, t: float, frame_id: str = "panda_link0") -> TwistStamped:
    msg = TwistStamped()
    msg.header.stamp = to_time(t)
    msg.header.frame_id = frame_id
    msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = (float(x) for x in v)
    return msg


def pose(xyz, quat_wxyz=(1.0, 0.0, 0.0, 0.0)) -> Pose:
    p = Pose()
    p.position.x, p.position.y, p.position.z = (float(x) for x in xyz)
    p.orientation.w, p.orientation.x, p.orientation.y, p.orientation.z = (float(x) for x in quat_wxyz)
    return p


def image(rgb: np.ndarray, t: float, frame_id: str = "camera_optical_frame") -> Image:
    msg = Image()
    msg.header.stamp = to_time(t)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = msg.width * 3
    msg.data = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
    return msg


_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}


def image_to_rgb(msg: Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB from an 8-bit Image; raises ValueError for anything else."""
    if msg.encoding not in _CHANNELS:
        raise ValueError(f"unsupported image encoding '{msg.encoding}' (need one of {sorted(_CHANNELS)})")
    c = _CHANNELS[msg.encoding]
    if msg.step < msg.width * c or len(msg.data) < msg.step * msg.height:
        raise ValueError(f"image buffer too small: {len(msg.data)} bytes for {msg.width}x{msg.height} "
                         f"{msg.encoding}, step {msg.step}")
    buf = np.frombuffer(msg.data, dtype=np.uint8, count=msg.step * msg.height).reshape(msg.height, msg.step)
    arr = buf[:, : msg.width * c].reshape(msg.height, msg.width, c)
    if msg.encoding == "mono8":
        return np.repeat(arr, 3, axis=2)
    if msg.encoding.startswith("bgr"):
        arr = arr[:, :, 2::-1]
    return np.ascontiguousarray(arr[:, :, :3])


def camera_info(width: int, height: int, fx: float, fy: float, cx: float, cy: float, t: float,
                frame_id: str = "camera_optical_frame") -> CameraInfo:
    msg = CameraInfo()
    msg.header.stamp = to_time(t)
    msg.header.frame_id = frame_id
    msg.width, msg.height = width, height
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg
