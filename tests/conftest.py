"""Shared fixtures: tiny policies and small real datasets made here (no downloads)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "2")
torch.set_num_threads(2)


def diffpilot(
    *args: str, threads: int = 2, timeout: int = 540, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`diffpilot <args>` in a fresh process with `threads` OpenMP threads; Hydra's errors in one line. The timeout
    stays under pytest-timeout's 600 s, so a hung command is killed here and fails its test instead of outliving it."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HYDRA_FULL_ERROR": "0", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "diffpilot.cli", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def assert_robomimic_playback_is_exact(path, demos: int) -> None:
    """robomimic's own playback_dataset.py --use-actions on `path`: it plays every demo and reports no divergence."""
    cmd = [sys.executable, "-m", "diffpilot.envs.robomimic_tools", "playback_dataset", "--dataset", str(path)]
    out = subprocess.run([*cmd, "--use-actions"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("Playing back episode") == demos and "diverged" not in out.stdout


from diffpilot.policies.datasets.episodes import EpisodeData  # noqa: E402
from diffpilot.policies.diffusion_config import DiffusionPolicyConfig  # noqa: E402
from diffpilot.policies.diffusion_policy import DiffusionPolicy  # noqa: E402

STATE_FEATURES = {
    "observation.state": {"kind": "state", "shape": [2]},
    "observation.environment_state": {"kind": "state", "shape": [16]},
}


TINY = {
    "input_features": STATE_FEATURES,
    "action_dim": 2,
    "network": {"type": "unet", "down_dims": [16, 32], "time_embed_dim": 16, "n_groups": 4},
    "sampler": {"name": "ddim", "num_inference_steps": 5},
}


def tiny_config(**overrides) -> DiffusionPolicyConfig:
    """A small state policy; a dict given for a part (sampler, shortcut, vision, …) changes those fields of it, a
    network dict of another `type` replaces the tiny UNet."""
    values = copy.deepcopy(TINY)
    for key, value in overrides.items():
        keep = isinstance(value, dict) and isinstance(values.get(key), dict) and key != "input_features"
        if key == "network" and value.get("type", "unet") != "unet":
            keep = False
        values[key] = {**values[key], **value} if keep else value
    return DiffusionPolicyConfig.from_dict(values)


@pytest.fixture
def tiny_policy() -> DiffusionPolicy:
    torch.manual_seed(0)
    return DiffusionPolicy(tiny_config()).eval()


def synthetic_episodes(n_episodes: int = 4, seed: int = 0) -> EpisodeData:
    """State/action episodes of different lengths with smooth, learnable actions."""
    rng = np.random.default_rng(seed)
    arrays = {"observation.state": [], "observation.environment_state": [], "action": []}
    ranges, start = [], 0
    for e in range(n_episodes):
        length = 20 + 7 * e
        t = np.linspace(0, 1, length, dtype=np.float32)[:, None]
        pos = 100 + 300 * t * rng.uniform(0.5, 1.0, (1, 2)).astype(np.float32)
        arrays["observation.state"].append(pos)
        arrays["observation.environment_state"].append(
            np.repeat(pos, 8, axis=1) + rng.normal(0, 1, (length, 16)).astype(np.float32)
        )
        arrays["action"].append(pos + 5.0)
        ranges.append((start, start + length))
        start += length
    return EpisodeData({k: np.concatenate(v) for k, v in arrays.items()}, np.array(ranges), fps=10, source="synthetic")


@pytest.fixture(scope="session")
def lerobot_dataset(tmp_path_factory):
    """A small LeRobot v3 dataset of PushT-shaped state episodes, written by our writer."""
    from diffpilot.policies.datasets.lerobot_v3 import FeatureSpec, LeRobotV3Writer

    root = tmp_path_factory.mktemp("data") / "pusht_synthetic"
    data = synthetic_episodes(4)
    writer = LeRobotV3Writer(
        root,
        fps=10,
        robot_type="pusht",
        features={
            "observation.state": FeatureSpec("float32", (2,), ["x", "y"]),
            "observation.environment_state": FeatureSpec("float32", (16,), None),
            "action": FeatureSpec("float32", (2,), ["x", "y"]),
        },
    )
    for lo, hi in data.episode_ranges:
        writer.add_episode({k: v[lo:hi] for k, v in data.arrays.items()}, task="push")
    writer.finalize()
    return root
