"""ROS message ↔ array conversion shared by every adapter (rospy, rclpy and rosbags messages all expose the
same field names). Nothing here imports ROS."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


class MessageError(ValueError):
    """A message that cannot become the feature it is mapped to (malformed, wrong shape, non-finite)."""


# Observation message types → the extraction fields they accept.
OBSERVATION_TYPES = {
    "sensor_msgs/JointState": ("position", "velocity", "effort"),
    "sensor_msgs/Image": (),
    "geometry_msgs/PoseStamped": None,  # `fields`: dotted paths into the message (default: the 7-D pose)
    "std_msgs/Float32MultiArray": ("data",),
    "std_msgs/Float64MultiArray": ("data",),
}
COMMAND_TYPES = ("sensor_msgs/JointState", "std_msgs/Float64MultiArray")
POSE_FIELDS = (
    "pose.position.x",
    "pose.position.y",
    "pose.position.z",
    "pose.orientation.x",
    "pose.orientation.y",
    "pose.orientation.z",
    "pose.orientation.w",
)
IMAGE_ENCODINGS = {"rgb8": (3, False), "bgr8": (3, True), "mono8": (1, False)}


def canonical_type(name: str) -> str:
    """'sensor_msgs/msg/JointState' (ROS 2) or 'sensor_msgs/JointState' (ROS 1) → 'sensor_msgs/JointState'."""
    parts = str(name).split("/")
    if len(parts) == 3 and parts[1] == "msg":
        parts = [parts[0], parts[2]]
    return "/".join(parts)


def ros2_type(name: str) -> str:
    package, msg = canonical_type(name).split("/")
    return f"{package}/msg/{msg}"


def stamp_seconds(msg: Any) -> float | None:
    """The header stamp in seconds (ROS 1 secs/nsecs or ROS 2 sec/nanosec), None without a header."""
    header = getattr(msg, "header", None)
    stamp = getattr(header, "stamp", None)
    if stamp is None:
        return None
    if hasattr(stamp, "secs"):
        return stamp.secs + stamp.nsecs * 1e-9
    if hasattr(stamp, "sec"):
        return stamp.sec + stamp.nanosec * 1e-9
    return None


def _path(msg: Any, dotted: str) -> Any:
    value = msg
    for part in dotted.split("."):
        if not hasattr(value, part):
            raise MessageError(f"message has no field {dotted!r}")
        value = getattr(value, part)
    return value


def _as_vector(values: Any, what: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise MessageError(f"{what}: not numeric ({err})") from None
    return array


def extract(msg: Any, source) -> np.ndarray:
    """The feature array one message carries for `source` (a mapping.ObservationSource); MessageError if the
    message is malformed, has the wrong shape or holds non-finite values."""
    kind = source.type
    if kind == "sensor_msgs/Image":
        value = image_array(msg, source.shape)
    elif kind == "sensor_msgs/JointState":
        values = _as_vector(_path(msg, source.field), f"{source.topic} {source.field}")
        if source.names:
            names = list(getattr(msg, "name", []) or [])
            if len(names) != len(values):
                raise MessageError(f"{source.topic}: {len(names)} joint names but {len(values)} {source.field} values")
            missing = [n for n in source.names if n not in names]
            if missing:
                raise MessageError(f"{source.topic}: joint(s) {missing} missing; message has {names}")
            values = np.array([values[names.index(n)] for n in source.names])
        value = values
    elif kind == "geometry_msgs/PoseStamped":
        value = np.array([float(_path(msg, f)) for f in source.fields])
    else:  # multi-arrays
        value = _as_vector(_path(msg, source.field), f"{source.topic} {source.field}")
        if source.indices:
            if max(source.indices) >= len(value):
                raise MessageError(f"{source.topic}: index {max(source.indices)} out of range for {len(value)} values")
            value = value[list(source.indices)]
    return checked(value, source)


def checked(value: np.ndarray, source) -> np.ndarray:
    """`value` as the policy takes it — uint8 images, float32 states — after checking its shape and that it is
    finite as float32; MessageError names the source otherwise."""
    if tuple(value.shape) != tuple(source.shape):
        raise MessageError(f"{source.topic}: got shape {tuple(value.shape)}; expected {tuple(source.shape)}")
    if value.dtype == np.uint8:
        return value
    with np.errstate(over="ignore"):
        single = value.astype(np.float32)  # what the policy sees: a finite float64 beyond ±3.4e38 becomes inf here
    if not np.all(np.isfinite(single)):
        raise MessageError(f"{source.topic}: non-finite value (as float32) in {value.tolist()}")
    return single


def array_feature(value, source) -> np.ndarray:
    """A numpy array sent for `source` (e.g. over the websocket): numeric; an image as uint8 (3, H, W) or (H, W, 3)."""
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
        kind = type(value).__name__ if not isinstance(value, np.ndarray) else f"array of {value.dtype}"
        raise MessageError(f"{source.topic}: got a {kind}; expected a numeric array of shape {tuple(source.shape)}")
    if source.type == "sensor_msgs/Image":
        if value.dtype != np.uint8:
            raise MessageError(f"{source.topic}: image of {value.dtype}; expected uint8")
        if value.ndim == 3 and value.shape[-1] == 3 and value.shape[0] != 3:
            value = np.ascontiguousarray(value.transpose(2, 0, 1))
        return checked(value, source)
    return checked(value.astype(np.float64), source)


def image_array(msg: Any, shape: tuple[int, ...]) -> np.ndarray:
    """sensor_msgs/Image (rgb8 | bgr8 | mono8) → uint8 (3, H, W), checked against the feature's shape."""
    encoding = str(getattr(msg, "encoding", ""))
    if encoding not in IMAGE_ENCODINGS:
        raise MessageError(f"image encoding {encoding!r}: expected one of {sorted(IMAGE_ENCODINGS)}")
    channels, bgr = IMAGE_ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if (3, height, width) != tuple(shape):
        raise MessageError(f"image is {height}×{width}; expected {shape[1]}×{shape[2]}")
    data = msg.data
    raw = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes | bytearray) else np.asarray(data, np.uint8)
    if step < width * channels or raw.size != step * height:
        raise MessageError(f"image data has {raw.size} bytes; expected step·height = {step}·{height}")
    pixels = raw.reshape(height, step)[:, : width * channels].reshape(height, width, channels)
    if channels == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    elif bgr:
        pixels = pixels[..., ::-1]
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def split_seconds(t: float) -> tuple[int, int]:
    """Seconds → (whole seconds, nanoseconds) for a header stamp."""
    whole = math.floor(t)
    return int(whole), min(round((t - whole) * 1e9), 999_999_999)
