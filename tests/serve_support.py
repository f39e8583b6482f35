"""Helpers for the serving tests and bench/serve.py: a policy whose features the fake robot publishes, and a
real rosmaster / fake robot / `diffpilot serve` on loopback (processes, no mocks)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from diffpilot.policies.diffusion_config import DiffusionPolicyConfig
from diffpilot.policies.diffusion_policy import DiffusionPolicy

ROBOT_FEATURES = {
    "observation.state": {"kind": "state", "shape": [2]},
    "observation.pose": {"kind": "state", "shape": [3]},
    "observation.image": {"kind": "image", "shape": [3, 16, 16]},
}
LOW, HIGH, MAX_VELOCITY = [50.0, 50.0], [450.0, 450.0], [300.0, 300.0]


def robot_policy(directory: Path, image: bool = True, nan: bool = False, **overrides) -> Path:
    """An untrained policy with state/pose(/image) features and action stats over [0, 512]; `nan` poisons its
    output layer so every chunk is NaN."""
    features = dict(ROBOT_FEATURES) if image else {k: v for k, v in ROBOT_FEATURES.items() if "image" not in k}
    values = dict(
        input_features=features,
        action_dim=2,
        network={"type": "unet", "down_dims": (16, 32), "time_embed_dim": 16, "n_groups": 4},
        sampler={"name": "ddim", "num_inference_steps": 4},
        vision={"crop_shape": None, "feature_dim": 16},
    )
    values.update(overrides)
    torch.manual_seed(0)
    policy = DiffusionPolicy(DiffusionPolicyConfig.from_dict(values)).eval()
    stats = {"action": {"min": np.zeros(2), "max": np.full(2, 512.0)}}
    stats["observation.state"] = {"min": np.zeros(2), "max": np.full(2, 512.0)}
    stats["observation.pose"] = {"min": np.zeros(3), "max": np.array([512.0, 512.0, 1.0])}
    policy.load_stats(stats)
    if nan:
        with torch.no_grad():
            for p in policy.net.parameters():
                p.fill_(float("nan"))
    policy.save_pretrained(directory)
    return directory


def robot_mapping(
    path: Path, control_hz: float = 50.0, image: bool = True, position_from: str | None = None, **top
) -> Path:
    observations = {
        "observation.state": {
            "topic": "/robot/joint_states",
            "type": "sensor_msgs/JointState",
            "field": "position",
            "names": ["x", "y"],
            "max_age": 0.1,
        },
        "observation.pose": {
            "topic": "/robot/pose",
            "type": "geometry_msgs/PoseStamped",
            "fields": ["pose.position.x", "pose.position.y", "pose.orientation.w"],
            "max_age": 0.1,
        },
    }
    if image:
        observations["observation.image"] = {"topic": "/robot/image", "type": "sensor_msgs/Image", "max_age": 0.15}
    data = {
        "control_hz": control_hz,
        "observations": observations,
        "action": {
            "topic": "/robot/command",
            "type": "sensor_msgs/JointState",
            "names": ["x", "y"],
            "low": LOW,
            "high": HIGH,
            "max_velocity": MAX_VELOCITY,
            "position_from": position_from,
        },
        "safety": {"on_fault": "hold", "estop_topic": "/diffpilot/estop"},
        "status_topic": "/diffpilot/status",
    }
    data.update(top)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ros_env(port: int, ros_home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROS_")}
    return env | {
        "ROS_MASTER_URI": f"http://127.0.0.1:{port}",
        "ROS_IP": "127.0.0.1",
        "ROS_HOME": str(ros_home),
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
        "HYDRA_FULL_ERROR": "1",
    }


class RosMaster:
    """A real rosmaster on loopback; `restart()` kills it and starts a fresh one on the same port."""

    def __init__(self, workdir: Path):
        if shutil.which("rosmaster") is None:
            raise RuntimeError("rosmaster not found: run `make ros-deps` (apt packages python3-rosmaster & co.)")
        self.port = free_port()
        self.home = workdir / "ros_home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.env = ros_env(self.port, self.home)
        self.proc = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["rosmaster", "--core", "-p", str(self.port)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("rosmaster did not start within 20 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


class FakeRobot:
    """`python -m diffpilot.serve.fake_robot` as a subprocess, driven through its stdin."""

    def __init__(self, env: dict, record: Path, *args: str):
        self.record = record
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "diffpilot.serve.fake_robot", "--record", str(record), *args],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"fake robot did not start: {line!r} {self.proc.stderr.read()[-2000:]}")

    def send(self, line: str) -> float:
        """Send a control line; returns the wall time it was acknowledged."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        ack = self.proc.stdout.readline()
        assert ack.strip() == f"ack {line}", ack
        return time.time()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def serve_process(env: dict, *overrides: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "diffpilot.cli", "serve", *overrides],
        env=env,
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
    )


def read_records(path: Path) -> tuple[list[dict], list[dict]]:
    commands, statuses = [], []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        (commands if row["kind"] == "command" else statuses).append(row)
    return commands, statuses


def wait_for(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def websocket_serve(*overrides: str, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """`diffpilot serve adapter=websocket port=0 <overrides>` as a process, and its ws:// URL once it listens."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "diffpilot.cli", "serve", "adapter=websocket", "port=0", *overrides],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    line = ""
    while "serving on ws://" not in line:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            raise RuntimeError(f"serve exited before listening: {proc.stdout.read()[-3000:]}")
    return proc, line.split("serving on ")[1].split()[0]
