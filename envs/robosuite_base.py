"""What the robosuite-backed Gymnasium envs (robomimic's tasks, LIBERO's) share: a validated, clipped OSC_POSE
step that terminates on the task's success, a MuJoCo-rendered frame for videos, and closing.

A subclass sets `self._env` (an object whose `step(action)` returns robosuite's (obs, reward, done, info)),
`self._renderer = None`, `render_size`, `render_camera`, `action_space`, and defines `sim` (the robosuite env),
`is_success()` and `_observe(raw)`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np

from diffpilot.errors import ConfigError


def check_scene_cameras(cameras: tuple[str, ...] | list[str], scene_cameras: tuple[str, ...]) -> tuple[str, ...]:
    """`cameras` as a tuple, or a ConfigError naming the ones not among `scene_cameras`."""
    cameras = tuple(cameras)
    if not cameras:
        raise ConfigError("cameras=[]: image mode needs at least one camera, e.g. ['agentview']")
    unknown = [c for c in cameras if c not in scene_cameras]
    if unknown:
        raise ConfigError(
            f"cameras={list(cameras)}: {unknown} not in the scene; expected some of {list(scene_cameras)}"
        )
    return cameras


# robosuite builds a model (Lift's cube size, for one) from numpy's global RNG: every env of a task is built with
# this seed, so two envs reset with the same seed are the same scene (evaluations repeat across processes).
MODEL_SEED = 0


@contextlib.contextmanager
def global_numpy_seed(seed: int) -> Iterator[None]:
    """numpy's global RNG seeded with `seed` inside the block (robosuite draws from it), the caller's state after."""
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(saved)


class RobosuiteTaskEnv(gym.Env):
    """Base class; see the module docstring for what a subclass provides."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}
    _env: Any = None
    _renderer: Any = None

    @property
    def sim(self) -> Any:
        raise NotImplementedError

    def is_success(self) -> bool:
        raise NotImplementedError

    def _observe(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def robosuite_action(self, action: np.ndarray) -> np.ndarray:
        """The action robosuite's controller takes for an action of this env (the same, unless a subclass differs)."""
        return action

    def _open_gripper_ramp(self) -> None:
        """A soft reset keeps the gripper's command ramp: start it from open."""
        for robot in self.sim.robots:
            robot.gripper.current_action = np.zeros_like(robot.gripper.current_action)

    def step(self, action):
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != self.action_space.shape or not np.isfinite(action).all():
            raise ValueError(f"action {action.tolist()}: expected {self.action_space.shape[0]} finite numbers")
        clipped = np.clip(action, self.action_space.low, self.action_space.high)
        raw, reward, _, _ = self._env.step(self.robosuite_action(clipped))
        success = self.is_success()
        return self._observe(raw), float(reward), success, False, {"is_success": success}

    def render(self) -> np.ndarray:
        """An upright (render_size, render_size, 3) uint8 frame from `render_camera`."""
        import mujoco

        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.sim.sim.model._model, self.render_size, self.render_size)
        self._renderer.update_scene(self.sim.sim.data._data, camera=self.render_camera)
        return self._renderer.render().copy()

    def _drop_renderer(self) -> None:
        """Close the video renderer (a hard reset rebuilds the model it was made for)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def close(self) -> None:
        self._drop_renderer()
        if self._env is not None:
            self._env.close()
            self._env = None
