"""The robot mapping: which topic and field feeds each policy observation feature, where commands go, the
control rate and the safety limits. Loaded from YAML and validated at start-up — every error names the field,
the value found and what was expected — before any ROS node starts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .messages import COMMAND_TYPES, OBSERVATION_TYPES, POSE_FIELDS, canonical_type

EXAMPLES_DIR = Path(__file__).parent / "robots"


class MappingError(ValueError):
    """An invalid robot mapping; the message names the field, its value and what was expected."""


@dataclass
class ObservationSource:
    key: str
    topic: str
    type: str
    shape: tuple[int, ...]
    max_age: float
    field: str = ""
    fields: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    indices: tuple[int, ...] = ()


@dataclass
class ActionSink:
    topic: str
    type: str
    names: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    max_velocity: tuple[float, ...]  # action units per second, per dimension
    # The observation feature that reports the commanded joints' positions in action units: the first command
    # (and the first after a stop that sent nothing) ramps from it, and nothing is sent until it is known.
    position_from: str | None = None


@dataclass
class SafetyConfig:
    on_fault: str = "hold"  # hold: repeat the last safe command | stop: send stop_command (or nothing)
    stop_command: tuple[float, ...] | None = None
    estop_topic: str | None = None
    clock_jump_tolerance: float = 1.0  # seconds of header-stamp vs arrival disagreement logged as a clock jump


@dataclass
class SchedulerConfig:
    mode: str = "queue"  # queue: execute the newest chunk | ensemble: temporal ensembling of overlapping chunks
    ensemble_decay: float = 0.1


@dataclass
class TimingConfig:
    # Seconds before a planning tick to start its chunk on the newest observation; "auto": from the warm-up
    # inference time (diffpilot serve); 0: plan at the tick itself.
    plan_lead: float | str = "auto"
    sync_to: str | None = None  # phase-lock control ticks to this observation feature's arrivals (ControlLoop)


@dataclass
class RobotMapping:
    control_hz: float
    observations: dict[str, ObservationSource]
    action: ActionSink
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    status_topic: str | None = "/diffpilot/status"
    source: str = "<dict>"
    timing: TimingConfig = field(default_factory=TimingConfig)

    @property
    def period(self) -> float:
        return 1.0 / self.control_hz


def _where(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


class _Reader:
    """Typed access to one YAML mapping node with errors naming the full field path."""

    def __init__(self, node: Any, path: str, origin: str):
        if not isinstance(node, dict):
            raise MappingError(f"{origin}: {path or 'top level'} is {node!r}; expected a mapping of keys to values")
        self.node, self.path, self.origin, self.used = node, path, origin, set()

    def fail(self, key: str, value: Any, expected: str) -> MappingError:
        return MappingError(f"{self.origin}: {_where(self.path, key)} is {value!r}; expected {expected}")

    def get(self, key: str, default: Any = ..., required: bool = False) -> Any:
        self.used.add(key)
        if key not in self.node or self.node[key] is None:
            if required or default is ...:
                raise MappingError(f"{self.origin}: {_where(self.path, key)} is missing")
            return default
        return self.node[key]

    def number(self, key: str, default: Any = ..., positive: bool = True) -> float:
        value = self.get(key, default)
        if value is None:
            return value
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.fail(key, value, "a finite number")
        if positive and value <= 0:
            raise self.fail(key, value, "a number > 0")
        return float(value)

    def text(self, key: str, default: Any = ..., choices: tuple[str, ...] | None = None) -> str:
        value = self.get(key, default)
        if value is None:
            return value
        if not isinstance(value, str) or not value:
            raise self.fail(key, value, "a non-empty string")
        if choices and value not in choices:
            raise self.fail(key, value, f"one of {list(choices)}")
        return value

    def topic(self, key: str, default: Any = ...) -> str | None:
        value = self.text(key, default)
        if value is not None and (not value.startswith("/") or " " in value):
            raise self.fail(key, value, "an absolute topic name such as '/robot/joint_states'")
        return value

    def numbers(self, key: str, length: int, default: Any = ..., positive: bool = False) -> tuple[float, ...] | None:
        value = self.get(key, default)
        if value is None:
            return None
        ok = isinstance(value, list) and all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value
        )
        if not ok:
            raise self.fail(key, value, f"a list of {length} finite numbers")
        if len(value) != length:
            raise self.fail(key, value, f"{length} numbers (one per action dimension), got {len(value)}")
        if positive and any(v <= 0 for v in value):
            raise self.fail(key, value, "numbers > 0")
        return tuple(float(v) for v in value)

    def strings(self, key: str, default: Any = ()) -> tuple[str, ...]:
        value = self.get(key, default)
        if value in (None, ()):
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(key, value, "a list of non-empty strings")
        if len(set(value)) != len(value):
            raise self.fail(key, value, "distinct names")
        return tuple(value)

    def finish(self) -> None:
        unknown = sorted(set(self.node) - self.used)
        if unknown:
            raise MappingError(
                f"{self.origin}: unknown key(s) {[_where(self.path, k) for k in unknown]}; "
                f"expected keys among {sorted(self.used)}"
            )


def _feature_shapes(policy_config) -> dict[str, tuple[tuple[int, ...], str]]:
    return {k: (tuple(f.shape), f.kind) for k, f in policy_config.input_features.items()}


def _observation(key: str, node: Any, shape: tuple[int, ...], kind: str, origin: str) -> ObservationSource:
    r = _Reader(node, f"observations.{key}", origin)
    topic = r.topic("topic")
    raw_type = r.text("type")
    msg_type = canonical_type(raw_type)
    if msg_type not in OBSERVATION_TYPES:
        raise r.fail("type", raw_type, f"one of {sorted(OBSERVATION_TYPES)} (unknown topic type)")
    max_age = r.number("max_age", 0.2)
    src = ObservationSource(key=key, topic=topic, type=msg_type, shape=shape, max_age=max_age)
    if msg_type == "sensor_msgs/Image":
        if kind != "image":
            raise r.fail("type", raw_type, f"a state message: policy feature {key!r} is a state of shape {shape}")
    elif kind == "image":
        raise r.fail("type", raw_type, f"sensor_msgs/Image: policy feature {key!r} is an image of shape {shape}")
    elif msg_type == "geometry_msgs/PoseStamped":
        src.fields = r.strings("fields") or POSE_FIELDS
        bad = [f for f in src.fields if f.split(".")[0] != "pose" or len(f.split(".")) != 3]
        if bad:
            raise r.fail("fields", list(src.fields), "paths such as 'pose.position.x' or 'pose.orientation.w'")
        if len(src.fields) != shape[0]:
            raise MappingError(
                f"{origin}: observations.{key}.fields selects {len(src.fields)} values; policy feature {key!r} "
                f"has shape {shape} (shape mismatch)"
            )
    else:
        allowed = OBSERVATION_TYPES[msg_type]
        src.field = r.text("field", allowed[0], choices=allowed)
        if msg_type == "sensor_msgs/JointState":
            src.names = r.strings("names")
            count, what = len(src.names), "names"
        else:
            indices = r.get("indices", ())
            if indices and not (isinstance(indices, list) and all(isinstance(i, int) and i >= 0 for i in indices)):
                raise r.fail("indices", indices, "a list of integers ≥ 0")
            src.indices = tuple(indices or ())
            count, what = len(src.indices), "indices"
        if count and count != shape[0]:
            raise MappingError(
                f"{origin}: observations.{key}.{what} selects {count} values; policy feature {key!r} has shape "
                f"{shape} (shape mismatch)"
            )
    r.finish()
    return src


def parse_mapping(data: Any, policy_config, origin: str = "<dict>") -> RobotMapping:
    """A validated RobotMapping for `policy_config` (the policy's config: input_features, action_dim)."""
    top = _Reader(data, "", origin)
    control_hz = top.number("control_hz")
    features = _feature_shapes(policy_config)
    obs_node = top.get("observations")
    obs_reader = _Reader(obs_node, "observations", origin)
    unknown = sorted(set(obs_node) - set(features))
    if unknown:
        raise MappingError(
            f"{origin}: observations has {unknown}, not features of the policy; expected the policy's features "
            f"{sorted(features)}"
        )
    missing = sorted(set(features) - set(obs_node))
    if missing:
        raise MappingError(
            f"{origin}: observations is missing policy feature(s) {missing}; every feature of the policy "
            f"({sorted(features)}) needs a topic"
        )
    observations = {}
    for key, (shape, kind) in features.items():
        observations[key] = _observation(key, obs_reader.get(key), shape, kind, origin)
    action_dim = int(policy_config.action_dim)
    a = _Reader(top.get("action"), "action", origin)
    raw_type = a.text("type", "sensor_msgs/JointState")
    cmd_type = canonical_type(raw_type)
    if cmd_type not in COMMAND_TYPES:
        raise a.fail("type", raw_type, f"one of {list(COMMAND_TYPES)} (unknown command type)")
    names = a.strings("names")
    if cmd_type == "sensor_msgs/JointState" and len(names) != action_dim:
        raise a.fail("names", list(names), f"{action_dim} joint names (the policy's action_dim), got {len(names)}")
    low = a.numbers("low", action_dim)
    high = a.numbers("high", action_dim)
    if any(lo >= hi for lo, hi in zip(low, high)):
        raise a.fail("high", list(high), f"values above action.low {list(low)} in every dimension")
    sink = ActionSink(
        topic=a.topic("topic"),
        type=cmd_type,
        names=names,
        low=low,
        high=high,
        max_velocity=a.numbers("max_velocity", action_dim, positive=True),
        position_from=a.text("position_from", None),
    )
    a.finish()
    if sink.position_from is not None and (
        sink.position_from not in features or features[sink.position_from] != ((action_dim,), "state")
    ):
        states = sorted(k for k, (shape, kind) in features.items() if shape == (action_dim,) and kind != "image")
        raise a.fail("position_from", sink.position_from, f"an observation feature of shape ({action_dim},): {states}")
    s = _Reader(top.get("safety", {}) or {}, "safety", origin)
    safety = SafetyConfig(
        on_fault=s.text("on_fault", "hold", choices=("hold", "stop")),
        stop_command=s.numbers("stop_command", action_dim, None),
        estop_topic=s.topic("estop_topic", None),
        clock_jump_tolerance=s.number("clock_jump_tolerance", 1.0),
    )
    s.finish()
    stop = safety.stop_command
    if stop is not None and any(not lo <= v <= hi for v, lo, hi in zip(stop, low, high)):
        raise s.fail("stop_command", list(stop), f"values inside action.low {list(low)} and action.high {list(high)}")
    c = _Reader(top.get("scheduler", {}) or {}, "scheduler", origin)
    scheduler = SchedulerConfig(
        mode=c.text("mode", "queue", choices=("queue", "ensemble")),
        ensemble_decay=c.number("ensemble_decay", 0.1, positive=False),
    )
    c.finish()
    status_topic = top.topic("status_topic", "/diffpilot/status")
    timing = _timing(_Reader(top.get("timing", {}) or {}, "timing", origin), 1.0 / control_hz, observations)
    top.finish()
    topics = [o.topic for o in observations.values()]
    duplicated = sorted({t for t in topics if topics.count(t) > 1})
    if duplicated and any(observations[k].type == "sensor_msgs/Image" for k in observations if k in duplicated):
        raise MappingError(f"{origin}: image topic(s) {duplicated} feed several features; expected one each")
    if sink.topic in topics:
        raise MappingError(f"{origin}: action.topic {sink.topic!r} is also an observation topic; expected its own")
    return RobotMapping(control_hz, observations, sink, safety, scheduler, status_topic, origin, timing)


def _timing(t: _Reader, period: float, observations: dict[str, ObservationSource]) -> TimingConfig:
    lead = t.get("plan_lead", "auto")
    if lead != "auto":
        lead = t.number("plan_lead", positive=False)
        if not 0 <= lead < period:
            raise t.fail("plan_lead", lead, f"'auto' or seconds in [0, one control period {period:g})")
    sync_to = t.text("sync_to", None)
    if sync_to is not None and sync_to not in observations:
        raise t.fail("sync_to", sync_to, f"one of the observation features {sorted(observations)}")
    t.finish()
    return TimingConfig(lead, sync_to)


def resolve_mapping_path(name: str | Path) -> Path:
    """A mapping file path, or the name of an example shipped in serve/robots/ (e.g. 'pusht_state')."""
    path = Path(name)
    if path.exists():
        return path
    example = EXAMPLES_DIR / f"{name}.yaml"
    if example.exists():
        return example
    shipped = sorted(p.stem for p in EXAMPLES_DIR.glob("*.yaml"))
    raise MappingError(f"robot={str(name)!r}: no such file; expected a mapping YAML path or one of {shipped}")


def load_mapping(path: str | Path, policy_config) -> RobotMapping:
    path = resolve_mapping_path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise MappingError(f"{path}: not valid YAML ({err})") from None
    return parse_mapping(data, policy_config, str(path))
