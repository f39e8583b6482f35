"""Record one scripted-expert episode of a robomimic (or LIBERO) task with everything robomimic's hdf5 layout stores:
observations before and after each action, actions, rewards, done flags and the flattened MuJoCo states."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diffpilot.envs.experts.robomimic import expert_for
from diffpilot.envs.robomimic import make_robomimic_env

_ENVS: dict[tuple, object] = {}


@dataclass
class RecordedDemo:
    """Arrays of length T: obs / next_obs key → (T, …), actions (T, 7), rewards (T,), dones (T,), states (T, S)."""

    seed: int
    success: bool
    obs: dict[str, np.ndarray]
    next_obs: dict[str, np.ndarray]
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    states: np.ndarray
    model_file: str | None = None  # the scene's MJCF, when the env stores it (robomimic's per-demo attribute)
    official_distance: float | None = None  # LIBERO: the start's distance to the nearest evaluation state (m)

    @property
    def length(self) -> int:
        return len(self.actions)


def record_robomimic_demo(
    task: str,
    obs_mode: str,
    seed: int,
    max_episode_steps: int | None = None,
    cameras: tuple[str, ...] | None = None,
    control: str = "delta",
) -> RecordedDemo:
    """Run the task's scripted expert on `seed` until success or the horizon (the state is taken before each step).

    In image mode `cameras` are rendered (None: the env's default, agentview and robot0_eye_in_hand), each
    stored as obs/<camera>_image (T, 84, 84, 3) uint8 beside the low-dimensional keys. With `control="absolute"`
    the env takes absolute pose actions (10,), recorded as such (files store robosuite's (7,) form).
    """
    cameras = tuple(cameras) if cameras and obs_mode == "image" else None
    key = (task, obs_mode, max_episode_steps, cameras, control)
    if key not in _ENVS:  # one env per process and setting: a reset with a seed fixes the whole episode
        kwargs = {"cameras": cameras} if cameras else {}
        _ENVS[key] = make_robomimic_env(task, obs_mode, max_episode_steps, control=control, **kwargs)
    env = _ENVS[key]
    return record_demo(env, expert_for(env.unwrapped.task, seed, control), seed, restore=True)


def record_demo(env, expert, seed: int, restore: bool = False) -> RecordedDemo:
    """Run `expert` (a ScriptedExpert) in `env` (a robosuite-backed Gymnasium env with `get_state()`) from
    `reset(seed=seed)` until success or the time limit; the state is taken before each step.

    An env with `model_xml()` keeps the scene's MJCF as `model_file`. With `restore`, the episode starts from that
    scene reloaded the way robomimic's `reset_to` reloads a demo's `model_file` and first state: robomimic's
    `playback_dataset.py --use-actions` then reproduces the recorded states exactly."""
    obs, _ = env.reset(seed=seed)
    model_file = env.unwrapped.model_xml() if hasattr(env.unwrapped, "model_xml") else None
    if restore:
        obs = env.unwrapped.restore(model_file, env.unwrapped.get_state())
    expert.reset(env.unwrapped.sim)
    obs_list, next_list, actions, rewards, dones, states = [], [], [], [], [], []
    success = False
    while True:
        states.append(env.unwrapped.get_state())
        action = expert.act()
        next_obs, reward, terminated, truncated, info = env.step(action)
        obs_list.append(obs)
        next_list.append(next_obs)
        actions.append(action)
        rewards.append(reward)
        success = bool(info["is_success"])
        dones.append(int(success))  # robomimic's dones: 1 where the task is solved
        obs = next_obs
        if terminated or truncated:
            break
    return RecordedDemo(
        seed=seed,
        success=success,
        obs={k: np.stack([o[k] for o in obs_list]) for k in obs_list[0]},
        next_obs={k: np.stack([o[k] for o in next_list]) for k in next_list[0]},
        actions=np.stack(actions).astype(np.float64),
        rewards=np.asarray(rewards, dtype=np.float64),
        dones=np.asarray(dones, dtype=np.int64),
        states=np.stack(states),
        model_file=model_file,
    )
