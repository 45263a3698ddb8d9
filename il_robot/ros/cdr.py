"""The torque loop's two messages in their wire format (CDR), without a Python message object.

At 500 Hz rclpy's conversion between a serialized message and a Python message
object is the largest cost of the torque path on this machine: taking a
JointState costs about 0.12 ms (each field converted and type-checked in
Python), against about 0.02 ms to read the same bytes with numpy. The
controller takes /joint_states and publishes its torque command as bytes, and
the simulator does the reverse. Only the plain little-endian CDR that ROS 2's
middlewares send is read here; anything else (another encapsulation) goes
through rclpy's own deserialization, so a reader never guesses.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

CDR_LE = b"\x00\x01\x00\x00"   # encapsulation header: plain CDR, little endian
_HEADER = 4                     # CDR alignment counts from after the encapsulation header
_U32 = struct.Struct("<I")
_STAMP = struct.Struct("<iI")


@dataclass(frozen=True)
class JointStateData:
    """What the controller reads from a JointState: stamp (s), names, and float arrays."""
    stamp: float
    name: tuple[str, ...]
    position: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = _HEADER

    def align(self, n: int) -> None:
        self.pos += -(self.pos - _HEADER) % n

    def u32(self) -> int:
        self.align(4)
        (value,) = _U32.unpack_from(self.data, self.pos)
        self.pos += 4
        return value

    def string(self) -> str:
        size = self.u32()   # bytes, the terminating NUL included
        if size == 0 or self.pos + size > len(self.data):
            raise ValueError("malformed CDR string")
        text = self.data[self.pos:self.pos + size - 1].decode("utf-8")
        self.pos += size
        return text

    def doubles(self) -> np.ndarray:
        count = self.u32()
        if count == 0:
            return np.zeros(0)
        self.align(8)
        end = self.pos + 8 * count
        if end > len(self.data):
            raise ValueError("malformed CDR sequence")
        values = np.frombuffer(self.data, dtype="<f8", count=count, offset=self.pos).astype(float)
        self.pos = end
        return values


class _Writer:
    def __init__(self):
        self.parts = [CDR_LE]
        self.size = 0   # bytes after the encapsulation header

    def _pad(self, n: int) -> None:
        pad = -self.size % n
        if pad:
            self.parts.append(b"\x00" * pad)
            self.size += pad

    def raw(self, data: bytes) -> None:
        self.parts.append(data)
        self.size += len(data)

    def u32(self, value: int) -> None:
        self._pad(4)
        self.raw(_U32.pack(value))

    def string(self, text: str) -> None:
        encoded = text.encode("utf-8") + b"\x00"
        self.u32(len(encoded))
        self.raw(encoded)

    def doubles(self, values) -> None:
        values = np.ascontiguousarray(values, dtype="<f8")
        self.u32(values.size)
        if values.size:
            self._pad(8)
            self.raw(values.tobytes())

    def bytes(self) -> bytes:
        return b"".join(self.parts)


def read_joint_state(data: bytes) -> JointStateData:
    """A serialized sensor_msgs/JointState; ValueError when malformed."""
    if data[:4] != CDR_LE:
        msg = deserialize_message(data, JointState)
        return JointStateData(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9, tuple(msg.name),
                              np.asarray(msg.position, dtype=float), np.asarray(msg.velocity, dtype=float),
                              np.asarray(msg.effort, dtype=float))
    try:
        r = _Reader(data)
        sec, nanosec = _STAMP.unpack_from(data, r.pos)
        r.pos += 8
        r.string()   # frame_id
        names = tuple(r.string() for _ in range(r.u32()))
        return JointStateData(sec + nanosec * 1e-9, names, r.doubles(), r.doubles(), r.doubles())
    except (struct.error, UnicodeDecodeError) as err:
        raise ValueError(f"malformed JointState: {err}") from None


def read_stamp(data: bytes) -> float:
    """The header stamp (s) of a serialized message that starts with a std_msgs/Header."""
    if data[:4] != CDR_LE:
        return read_joint_state(data).stamp
    if len(data) < 12:
        raise ValueError("malformed message: shorter than its stamp")
    sec, nanosec = _STAMP.unpack_from(data, _HEADER)
    return sec + nanosec * 1e-9


def joint_state(names, position, velocity, effort, stamp_ns: int, frame_id: str = "") -> bytes:
    """A serialized sensor_msgs/JointState (stamp in integer nanoseconds)."""
    w = _Writer()
    w.raw(_STAMP.pack(stamp_ns // 1_000_000_000, stamp_ns % 1_000_000_000))
    w.string(frame_id)
    w.u32(len(names))
    for name in names:
        w.string(name)
    w.doubles(position)
    w.doubles(velocity)
    w.doubles(effort)
    return w.bytes()


def float64_array(values, label: str = "joints") -> bytes:
    """A serialized std_msgs/Float64MultiArray with one dimension (what effort controllers take)."""
    values = np.asarray(values, dtype=float)
    w = _Writer()
    w.u32(1)             # layout.dim: one MultiArrayDimension
    w.string(label)
    w.u32(values.size)   # size
    w.u32(values.size)   # stride
    w.u32(0)             # layout.data_offset
    w.doubles(values)
    return w.bytes()


def read_float64_array(data: bytes) -> np.ndarray:
    """The data of a serialized std_msgs/Float64MultiArray; ValueError when malformed."""
    if data[:4] != CDR_LE:
        return np.asarray(deserialize_message(data, Float64MultiArray).data, dtype=float)
    try:
        r = _Reader(data)
        for _ in range(r.u32()):
            r.string()
            r.u32()
            r.u32()
        r.u32()   # data_offset
        return r.doubles()
    except (struct.error, UnicodeDecodeError) as err:
        raise ValueError(f"malformed Float64MultiArray: {err}") from None


__all__ = ["JointStateData", "float64_array", "joint_state", "read_float64_array", "read_joint_state",
           "read_stamp"]

