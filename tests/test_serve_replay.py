"""Offline bag replay: a ROS 2 bag written with rosbags goes through the real server core and the commands it
would have sent are written out (JSON lines through `diffpilot serve`, or a new bag)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import Writer
from rosbags.typesys import Stores, get_typestore

from diffpilot.policies.registry import load_policy
from diffpilot.serve.inference import PolicyRunner
from diffpilot.serve.mapping import load_mapping
from diffpilot.serve.replay import replay_bag
from tests.serve_support import HIGH, LOW, MAX_VELOCITY, robot_mapping, robot_policy

TS = get_typestore(Stores.ROS2_HUMBLE)
T = TS.types
GAP = (1.0, 1.5)  # joint states missing in this window of bag time
MALFORMED_AT = 0.6  # joint states with one joint at this time


def stamp(t: float):
    return T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=int(t), nanosec=int((t % 1) * 1e9)), frame_id="base"
    )


def write_bag(path, seconds: float = 2.5, t0: float = 1000.0):
    """JointState at 100 Hz (a gap and a few malformed ones), PoseStamped at 50 Hz (stamps jump back 500 s halfway),
    rgb8 Image at 25 Hz; log times from t0."""
    with Writer(path, version=8) as w:
        joints = w.add_connection("/robot/joint_states", "sensor_msgs/msg/JointState", typestore=TS)
        pose = w.add_connection("/robot/pose", "geometry_msgs/msg/PoseStamped", typestore=TS)
        image = w.add_connection("/robot/image", "sensor_msgs/msg/Image", typestore=TS)
        other = w.add_connection("/unrelated", "std_msgs/msg/String", typestore=TS)
        empty = np.zeros(0)
        for i in range(int(seconds * 100)):
            t = i / 100
            ns = int((t0 + t) * 1e9)
            if not GAP[0] <= t < GAP[1]:
                bad = abs(t - MALFORMED_AT) < 0.035
                names, pos = (["x"], np.array([200.0])) if bad else (["x", "y"], np.array([200.0 + t, 300.0]))
                msg = T["sensor_msgs/msg/JointState"](
                    header=stamp(t0 + t), name=names, position=pos, velocity=empty, effort=empty
                )
                w.write(joints, ns, TS.serialize_cdr(msg, msg.__msgtype__))
            if i % 2 == 0:
                jump = -500.0 if t > seconds / 2 else 0.0
                p = T["geometry_msgs/msg/Pose"](
                    position=T["geometry_msgs/msg/Point"](x=100.0, y=120.0, z=0.0),
                    orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
                )
                msg = T["geometry_msgs/msg/PoseStamped"](header=stamp(t0 + t + jump), pose=p)
                w.write(pose, ns, TS.serialize_cdr(msg, msg.__msgtype__))
            if i % 4 == 0:
                data = np.full(16 * 16 * 3, i % 256, np.uint8)
                msg = T["sensor_msgs/msg/Image"](
                    header=stamp(t0 + t), height=16, width=16, encoding="rgb8", is_bigendian=0, step=48, data=data
                )
                w.write(image, ns, TS.serialize_cdr(msg, msg.__msgtype__))
            if i % 50 == 0:
                w.write(other, ns, TS.serialize_cdr(T["std_msgs/msg/String"](data="x"), "std_msgs/msg/String"))
    return path


@pytest.fixture(scope="module")
def replay_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("replay")
    return robot_policy(root / "policy"), robot_mapping(root / "robot.yaml"), write_bag(root / "bag")


def check_commands(rows, period=0.02):
    """Every sent command is finite, inside the limits and within max_velocity of the previous one; holds repeat
    it; the gap and the malformed messages hold within one control period."""
    last = None
    max_step = np.array(MAX_VELOCITY) * period + 1e-6
    for row in rows:
        if row["command"] is None:
            continue
        c = np.array(row["command"])
        assert np.all(np.isfinite(c)) and np.all(c >= LOW) and np.all(c <= HIGH)
        if last is not None:
            assert np.all(np.abs(c - last) <= max_step), (row, last)
            if row["state"] == "hold":
                assert np.array_equal(c, last)
        last = c
    t0 = rows[0]["time"]
    in_gap = [r for r in rows if GAP[0] + 0.1 + period <= r["time"] - t0 < GAP[1]]  # max_age 0.1 + one period
    assert in_gap and all(r["state"] == "hold" and r["reason"].startswith("stale") for r in in_gap)
    assert any(r["state"] == "ok" for r in rows if r["time"] - t0 > GAP[1] + 0.2)  # resumed after the gap


def test_serve_replays_a_bag_and_writes_the_commands(replay_files, tmp_path):
    policy, robot, bag = replay_files
    out = tmp_path / "commands.jsonl"
    metrics = tmp_path / "metrics.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [f"policy={policy}", f"robot={robot}", f"bag={bag}", f"output={out}", f"metrics_path={metrics}"]
    proc = subprocess.run(
        [sys.executable, "-m", "diffpilot.cli", "serve", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "replayed" in proc.stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == pytest.approx(2.5 * 50, abs=3)
    check_commands(rows)
    summary = json.loads(metrics.read_text())
    assert summary["malformed_messages"] == {"observation.state": 7}
    assert summary["clock_jumps"] == 1 and summary["missed_ticks"] == 0
    assert proc.stdout.count("dropping malformed message") == 1  # logged once
    assert proc.stdout.count("clock jump") == 1


def test_replay_into_a_bag_is_deterministic_and_readable(replay_files, tmp_path):
    policy_dir, robot, bag = replay_files
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what serve uses; two threads on a busy CI box are several times slower
    try:
        outputs = [replay_to_bag(policy_dir, robot, bag, tmp_path / f"out{i}") for i in range(2)]
    finally:
        torch.set_num_threads(threads)
    assert len(outputs[0]) > 50 and outputs[0] == outputs[1]


def replay_to_bag(policy_dir, robot, bag, out):
    policy = load_policy(policy_dir)
    mapping = load_mapping(robot, policy.config)
    runner = PolicyRunner(policy, {"enabled": True, "start": 2, "num_steps": 2})
    torch.manual_seed(0)
    summary = replay_bag(bag, mapping, runner, 2, 8, out)
    assert summary["commands_sent"] > 50
    with AnyReader([out]) as reader:
        cmds = [
            reader.deserialize(raw, c.msgtype).position.tolist()
            for c, _, raw in reader.messages()
            if c.topic == "/robot/command"
        ]
        assert {c.topic for c in reader.connections} == {"/robot/command", "/diffpilot/status"}
    assert len(cmds) == summary["commands_sent"]
    return cmds


def test_replay_rejects_a_missing_bag_and_bad_mapping(replay_files, tmp_path):
    policy, _, bag = replay_files
    bad = robot_mapping(tmp_path / "bad.yaml")
    bad.write_text(bad.read_text().replace("sensor_msgs/Image", "sensor_msgs/CompressedImage"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "diffpilot.cli", "serve", f"policy={policy}", f"robot={bad}", f"bag={bag}", "output=x"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 2
    assert "observations.observation.image.type is 'sensor_msgs/CompressedImage'" in proc.stderr
    assert "unknown topic type" in proc.stderr
