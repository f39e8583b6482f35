"""A simulated ROS 1 robot for dry runs, tests and the latency benchmark: a 2-axis point robot that moves
toward the commanded position, publishing JointState, PoseStamped, Image and a keypoint array at their own
rates, and recording every command and status it receives as JSON lines.

    python -m diffpilot.serve.fake_robot --record robot.jsonl

Lines on stdin change its behaviour while it runs (each is acknowledged with `ack <line>` on stdout):
`stop <topic>` / `start <topic>` (a sensor stops / resumes), `malformed <topic> <n>` (the next n messages on it
have the wrong shape), `alternate <topic> <n>` (the next n alternate malformed and valid), `overflow <n>` (the next
n joint states report 1e39: finite in float64, inf in float32), `freeze <seconds>` (nothing is published for that
long: a hung robot node), `clock <seconds>` (add an offset to every header stamp: a clock jump), `estop true|false`
(publish the e-stop), `quit`.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

import numpy as np

from .messages import split_seconds
from .ros1 import import_rospy, message_classes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", default="fake_robot")
    p.add_argument("--joint-topic", default="/robot/joint_states")
    p.add_argument("--pose-topic", default="/robot/pose")
    p.add_argument("--image-topic", default="/robot/image")
    p.add_argument("--keypoints-topic", default="")
    p.add_argument("--command-topic", default="/robot/command")
    p.add_argument("--status-topic", default="/diffpilot/status")
    p.add_argument("--estop-topic", default="/diffpilot/estop")
    p.add_argument("--joint-hz", type=float, default=100.0)
    p.add_argument("--pose-hz", type=float, default=50.0)
    p.add_argument("--image-hz", type=float, default=30.0)
    p.add_argument("--keypoints-hz", type=float, default=50.0)
    p.add_argument("--image-size", type=int, default=16)
    p.add_argument("--start", type=float, nargs=2, default=(256.0, 256.0))
    p.add_argument("--record", default="", help="append received commands and statuses here (JSON lines)")
    args = p.parse_args(argv)

    rospy = import_rospy()
    msgs = message_classes()
    rospy.init_node(args.name, anonymous=False, disable_signals=True)
    lock = threading.Lock()
    state = {"pos": np.array(args.start, np.float64), "target": None, "clock": 0.0, "overflow": 0, "frozen_until": 0.0}
    alternate: dict[str, int] = {}
    stopped: set[str] = set()
    malformed: dict[str, int] = {}
    record = open(args.record, "a", buffering=1) if args.record else None  # noqa: SIM115 — process lifetime

    def on_command(msg):
        received = time.time()
        stamp = msg.header.stamp.to_sec()
        with lock:
            state["target"] = np.array(msg.position, np.float64)
            if record:
                record.write(
                    json.dumps({"kind": "command", "recv": received, "stamp": stamp, "position": list(msg.position)})
                    + "\n"
                )

    def on_status(msg):
        if record:
            with lock:
                record.write(json.dumps({"kind": "status", "recv": time.time(), "status": json.loads(msg.data)}) + "\n")

    rospy.Subscriber(args.command_topic, msgs["sensor_msgs/JointState"], on_command, queue_size=100, tcp_nodelay=True)
    if args.status_topic:
        rospy.Subscriber(args.status_topic, msgs["std_msgs/String"], on_status, queue_size=100)
    estop_pub = rospy.Publisher(args.estop_topic, msgs["std_msgs/Bool"], queue_size=1, latch=True)
    pubs, rates = {}, {}
    for topic, kind, hz in (
        (args.joint_topic, "sensor_msgs/JointState", args.joint_hz),
        (args.pose_topic, "geometry_msgs/PoseStamped", args.pose_hz),
        (args.image_topic, "sensor_msgs/Image", args.image_hz),
        (args.keypoints_topic, "std_msgs/Float32MultiArray", args.keypoints_hz),
    ):
        if topic:
            pubs[topic] = (kind, rospy.Publisher(topic, msgs[kind], queue_size=10, tcp_nodelay=True))
            rates[topic] = hz

    def build(topic: str, kind: str, bad: bool, now: float):
        pos = state["pos"]
        if kind == "sensor_msgs/JointState":
            msg = msgs[kind]()
            msg.name, msg.position = (["x"], [pos[0]]) if bad else (["x", "y"], list(pos))
            if state["overflow"] > 0:
                state["overflow"] -= 1
                msg.position = [1e39, pos[1]]
        elif kind == "geometry_msgs/PoseStamped":
            msg = msgs[kind]()
            msg.pose.position.x, msg.pose.position.y = (float("nan"), 0.0) if bad else (pos[0], pos[1])
            msg.pose.orientation.w = 1.0
        elif kind == "sensor_msgs/Image":
            size = args.image_size // 2 if bad else args.image_size
            msg = msgs[kind](height=size, width=size, encoding="rgb8", step=size * 3)
            level = int(pos[0]) % 256
            msg.data = bytes([level]) * (size * size * 3)
        else:
            count = 3 if bad else 16
            return msgs[kind](data=list(np.resize(pos / 512.0, count)))
        msg.header.stamp = rospy.Time(*split_seconds(now + state["clock"]))
        return msg

    def control_stdin():
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            with lock:
                if words[0] == "stop":
                    stopped.add(words[1])
                elif words[0] == "start":
                    stopped.discard(words[1])
                elif words[0] == "malformed":
                    malformed[words[1]] = int(words[2])
                elif words[0] == "alternate":
                    alternate[words[1]] = int(words[2])
                elif words[0] == "overflow":
                    state["overflow"] = int(words[1])
                elif words[0] == "freeze":
                    state["frozen_until"] = time.monotonic() + float(words[1])
                elif words[0] == "clock":
                    state["clock"] += float(words[1])
                elif words[0] == "estop":
                    estop_pub.publish(msgs["std_msgs/Bool"](data=words[1] == "true"))
            print("ack", line.strip(), flush=True)
            if words[0] == "quit":
                break
        rospy.signal_shutdown("quit")

    threading.Thread(target=control_stdin, daemon=True).start()
    print("ready", flush=True)
    t0, base_hz, k = time.monotonic(), max(rates.values()), 0
    due = dict.fromkeys(rates, 0.0)
    while not rospy.is_shutdown():
        now_mono = time.monotonic()
        now = time.time()
        with lock:
            if state["target"] is not None:  # a first-order servo toward the commanded position
                state["pos"] += 0.5 * (state["target"] - state["pos"])
            for topic, (kind, pub) in pubs.items():
                if now_mono + 0.5 / base_hz < due[topic]:  # due within half a loop step: publish now
                    continue
                # the next one is due a period after this one was due (not after now), so loop jitter never
                # stretches the rate; after a pause the schedule restarts from now
                period = 1.0 / rates[topic]
                due[topic] = max(due[topic], now_mono - period) + period
                if topic in stopped or now_mono < state["frozen_until"]:
                    continue
                bad = malformed.get(topic, 0) > 0
                if bad:
                    malformed[topic] -= 1
                elif alternate.get(topic, 0) > 0:
                    alternate[topic] -= 1
                    bad = alternate[topic] % 2 == 1
                pub.publish(build(topic, kind, bad, now))
        k += 1
        delay = t0 + k / base_hz - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    if record:
        record.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
