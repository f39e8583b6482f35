"""PushT through the real `gym-pusht` package, with observations named as LeRobot's PushT datasets name them:
`observation.state` (agent x, y), `observation.environment_state` (8 T keypoints, 16 values) and
`observation.image` (96×96×3 uint8)."""

from __future__ import annotations

import functools
from typing import Any, Literal

import gym_pusht  # noqa: F401  (registers gym_pusht/PushT-v0)
import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .registry import EnvEntry, register_env

ObsMode = Literal["state", "pixels", "all"]
OBS_MODES = ("state", "pixels", "all")
MAX_EPISODE_STEPS = 300
FPS = 10


class PushTEnv(gym.Env):
    """gym-pusht's PushT with dict observations; `obs_mode` picks which features are produced:
    state → state + keypoints, pixels → state + image, all → the three (for recording demos)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": FPS}

    def __init__(self, obs_mode: ObsMode = "state", render_size: int = 384, image_size: int = 96):
        if obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode={obs_mode!r}: expected one of {OBS_MODES}")
        self.obs_mode = obs_mode
        self.render_mode = "rgb_array"
        self._env = gym.make(
            "gym_pusht/PushT-v0",
            obs_type="environment_state_agent_pos",
            render_mode="rgb_array",
            observation_width=image_size,
            observation_height=image_size,
            visualization_width=render_size,
            visualization_height=render_size,
        ).unwrapped
        features: dict[str, spaces.Space] = {
            "observation.state": spaces.Box(0.0, 512.0, (2,), np.float32),
        }
        if obs_mode in ("state", "all"):
            features["observation.environment_state"] = spaces.Box(-512.0, 1024.0, (16,), np.float32)
        if obs_mode in ("pixels", "all"):
            features["observation.image"] = spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
        self.observation_space = spaces.Dict(features)
        self.action_space = spaces.Box(0.0, 512.0, (2,), np.float32)

    @property
    def sim(self) -> Any:
        """The underlying gym-pusht env (privileged state for scripted experts)."""
        return self._env

    def _observe(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        obs = {"observation.state": np.clip(raw["agent_pos"], 0.0, 512.0).astype(np.float32)}
        if "observation.environment_state" in self.observation_space.spaces:
            obs["observation.environment_state"] = np.clip(raw["environment_state"], -512, 1024).astype(np.float32)
        if "observation.image" in self.observation_space.spaces:
            obs["observation.image"] = self._env._render(visualize=False)
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        raw, info = self._env.reset(seed=seed, options=options)
        return self._observe(raw), self._info(info, coverage=0.0)

    def step(self, action):
        action = np.asarray(action, dtype=np.float64).reshape(2)
        if not np.isfinite(action).all():
            raise ValueError(f"action {action.tolist()}: expected two finite numbers (target x, y)")
        raw, reward, terminated, truncated, info = self._env.step(action)
        return self._observe(raw), float(reward), bool(terminated), bool(truncated), self._info(info, info["coverage"])

    @staticmethod
    def _info(info: dict, coverage: float) -> dict:
        return {"is_success": bool(info.get("is_success", False)), "coverage": float(coverage)}

    def render(self) -> np.ndarray:
        return self._env.render()

    def close(self) -> None:
        self._env.close()


def make_pusht_env(obs_mode: ObsMode = "state", max_episode_steps: int = MAX_EPISODE_STEPS, **kwargs) -> gym.Env:
    """A PushT env with the benchmark's 300-step time limit."""
    return gym.wrappers.TimeLimit(PushTEnv(obs_mode, **kwargs), max_episode_steps=max_episode_steps)


def pusht_env_constructor(task: dict[str, Any], max_episode_steps: int | None) -> functools.partial:
    """The task config's PushT env (`obs_mode`: state | pixels | all)."""
    return functools.partial(make_pusht_env, task.get("obs_mode", "state"), max_episode_steps or MAX_EPISODE_STEPS)


register_env(EnvEntry("pusht", pusht_env_constructor))
