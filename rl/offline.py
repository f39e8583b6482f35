"""Offline chunk transitions from a demonstration dataset with per-step rewards `next.reward` in [0, 1],
1 meaning success (LeRobot v3 as `diffpilot data` writes it, robomimic hdf5, zarr), for DSRL-NA's
action-space critic: the demonstrations' executed actions need no latent noise, so Q^A learns from them
directly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from diffpilot.policies.datasets.loading import load_episodes

from .chunk_env import shaping_potential

REWARD_KEY = "next.reward"


def demo_transitions(
    root: str | Path, fmt: str, policy, reward: str = "env", shaping: float = 0.0, gamma: float = 1.0
) -> dict[str, np.ndarray]:
    """Cut every episode into chunks of n_action_steps, the way ChunkEnv executes them.

    Returns the replay fields (M, …): obs and next_obs are the policy's conditions of the observation
    windows (n_obs_steps, first frame repeated at the start), action the normalised executed chunk
    (M, n_action_steps·A; the last chunk of an episode is padded with its final action), reward the mean
    of r − 1 over the chunk's real steps (0 on success; `reward="success"`: r is 1 on success, else 0, as
    ChunkEnv's sparse reward) plus ChunkEnv's potential-based shaping `shaping`·(`gamma`·r_end − r_before) when
    `shaping` > 0, done 1 on the episode's successful last chunk.
    `noise` is zero: demonstrations have none (only the NA critic reads these rows' actions).
    """
    cfg = policy.config
    keys = [*cfg.input_features, cfg.action_key]
    data, _ = load_episodes(root, fmt, [*keys, REWARD_KEY])
    k, n_obs = cfg.n_action_steps, cfg.n_obs_steps
    windows, next_windows, actions, rewards, dones = [], [], [], [], []
    for start, end in data.episode_ranges:
        length = int(end - start)
        for t in range(0, length, k):
            real = min(k, length - t)
            windows.append([start + max(t - j, 0) for j in reversed(range(n_obs))])
            last = min(t + k, length - 1)
            next_windows.append([start + max(last - j, 0) for j in reversed(range(n_obs))])
            idx = [start + min(t + i, length - 1) for i in range(k)]
            actions.append(idx)
            step_rewards = data.arrays[REWARD_KEY][start + t : start + t + real].astype(np.float32).reshape(-1)
            success = step_rewards >= 1.0
            if reward == "success":
                step_rewards = success.astype(np.float32)
            shaped = 0.0
            if shaping > 0:  # Φ = the env reward of the step before the chunk (0 at the start) and of its last step
                before = shaping_potential(float(data.arrays[REWARD_KEY][start + t - 1])) if t > 0 else 0.0
                after = shaping_potential(float(data.arrays[REWARD_KEY][start + t + real - 1]))
                shaped = shaping * (gamma * after - before)
            rewards.append(float(np.mean(step_rewards - 1.0)) + shaped)
            dones.append(float(success.any()))
    obs = _conditions(policy, data.arrays, np.asarray(windows))
    next_obs = _conditions(policy, data.arrays, np.asarray(next_windows))
    act = torch.as_tensor(data.arrays[cfg.action_key][np.asarray(actions)]).float()
    act = policy.normalizer.normalize(cfg.action_key, act).flatten(1).numpy()
    return {
        "obs": obs,
        "noise": np.zeros((len(obs), cfg.horizon * cfg.action_dim), np.float32),
        "action": act,
        "reward": np.asarray(rewards, np.float32),
        "next_obs": next_obs,
        "done": np.asarray(dones, np.float32),
    }


@torch.no_grad()
def _conditions(policy, arrays: dict[str, np.ndarray], index: np.ndarray) -> np.ndarray:
    """Frame-index windows (M, n_obs) → policy conditions (M, C)."""
    window = {key: torch.as_tensor(arrays[key][index]) for key in policy.config.input_features}
    return policy.encode(window).numpy()
