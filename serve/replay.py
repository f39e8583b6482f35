"""Offline bag replay: feed a recorded bag (ROS 2 .db3 / .mcap directory, or a ROS 1 .bag) through the same
server core on the bag's clock and write every command it would have sent — the way to try a policy on
recorded robot data before it touches hardware. Inference runs inline, so a replay is deterministic for a
seeded policy and does not depend on this machine's speed."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from .inference import PolicyRunner
from .mapping import RobotMapping
from .messages import ros2_type, split_seconds
from .safety import Decision
from .server import PolicyServer, TickInfo

log = logging.getLogger("diffpilot.serve.replay")
MAX_GAP_TICKS = 250  # a longer silence in the bag is skipped (everything is stale anyway), not ticked through


class CommandWriter:
    """Commands to JSON lines (`*.jsonl`) or to a new ROS 2 bag directory (sqlite3) holding the command topic
    and the status topic, stamped with the bag time they would have been sent at."""

    def __init__(self, path: str | Path, mapping: RobotMapping):
        self.path, self.mapping = Path(path), mapping
        self.jsonl = self.path.suffix == ".jsonl"
        if self.jsonl:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w")  # noqa: SIM115 — closed in close()
        else:
            from rosbags.rosbag2 import Writer
            from rosbags.typesys import Stores, get_typestore

            self.typestore = get_typestore(Stores.ROS2_HUMBLE)
            self._writer = Writer(self.path, version=8)
            self._writer.open()
            self._cmd = self._writer.add_connection(
                mapping.action.topic, ros2_type(mapping.action.type), typestore=self.typestore
            )
            status_topic = mapping.status_topic or "/diffpilot/status"
            self._status = self._writer.add_connection(status_topic, "std_msgs/msg/String", typestore=self.typestore)

    def write(self, t: float, decision: Decision, info: TickInfo) -> None:
        status = info.status(decision) | {"time": t, "sent": decision.command is not None}
        if self.jsonl:
            self._file.write(json.dumps(status) + "\n")
            return
        ns = round(t * 1e9)
        types = self.typestore.types
        if decision.command is not None:
            values = np.asarray(decision.command, dtype=np.float64)
            if self.mapping.action.type == "sensor_msgs/JointState":
                sec, nanosec = split_seconds(t)
                header = types["std_msgs/msg/Header"](
                    stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id=""
                )
                empty = np.zeros(0, np.float64)
                msg = types["sensor_msgs/msg/JointState"](
                    header=header, name=list(self.mapping.action.names), position=values, velocity=empty, effort=empty
                )
            else:
                layout = types["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
                msg = types["std_msgs/msg/Float64MultiArray"](layout=layout, data=values)
            self._writer.write(self._cmd, ns, self.typestore.serialize_cdr(msg, msg.__msgtype__))
        string = types["std_msgs/msg/String"](data=json.dumps(status))
        self._writer.write(self._status, ns, self.typestore.serialize_cdr(string, "std_msgs/msg/String"))

    def close(self) -> None:
        if self.jsonl:
            self._file.close()
        else:
            self._writer.close()


def replay_bag(
    bag: str | Path,
    mapping: RobotMapping,
    runner: PolicyRunner,
    n_obs_steps: int,
    n_action_steps: int,
    output: str | Path,
) -> dict:
    """Replay `bag` through the server; returns the metrics summary (and writes `output`)."""
    from rosbags.highlevel import AnyReader

    bag = Path(bag)
    if not bag.exists():
        raise FileNotFoundError(f"bag={str(bag)!r}: no such file or directory")
    sim = {"now": 0.0}
    writer = CommandWriter(output, mapping)
    server = PolicyServer(
        runner,
        mapping,
        n_obs_steps,
        n_action_steps,
        send=lambda decision, info: writer.write(info.time, decision, info),
        sync=True,
        clock=lambda: sim["now"],
    )
    keys_by_topic: dict[str, list[str]] = {}
    for key, source in mapping.observations.items():
        keys_by_topic.setdefault(source.topic, []).append(key)
    estop = mapping.safety.estop_topic
    period = mapping.period
    messages = skipped = 0
    try:
        with AnyReader([bag]) as reader:
            wanted = [c for c in reader.connections if c.topic in keys_by_topic or c.topic == estop]
            missing = sorted(set(keys_by_topic) - {c.topic for c in wanted})
            if missing:
                log.warning("bag %s has no messages on %s: those features stay stale (commands hold)", bag, missing)
            t0, k = None, 0
            for connection, timestamp, raw in reader.messages(connections=wanted):
                t = timestamp * 1e-9
                if t0 is None:
                    t0 = t
                while t0 + k * period <= t:  # run the control ticks due before this message arrives
                    if (t - (t0 + k * period)) / period > MAX_GAP_TICKS:
                        jump = int((t - t0) / period) - k
                        skipped, k = skipped + jump, k + jump
                        continue
                    sim["now"] = t0 + k * period
                    server.tick(k, sim["now"])
                    k += 1
                sim["now"] = t
                msg = reader.deserialize(raw, connection.msgtype)
                messages += 1
                if connection.topic == estop:
                    server.set_estop(bool(msg.data))
                    continue
                for key in keys_by_topic[connection.topic]:
                    server.observe_message(key, msg)
            if t0 is not None:  # one last tick after the final message
                sim["now"] = t0 + k * period
                server.tick(k, sim["now"])
    finally:
        server.close()
        writer.close()
    summary = server.metrics.summary() | {"messages": messages, "skipped_ticks": skipped, "output": str(output)}
    return summary
