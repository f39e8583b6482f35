"""A multi-task PushT suite built from gym-pusht: the tasks differ only in the T's goal pose, which the
observation does not show, so a policy must read the task (its index or its instruction) to succeed.

Each env adds `task_index` (shape (1,), int64) to PushT's state observation. The scripted expert reads
the goal from the simulator, so it solves every task unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .pusht import MAX_EPISODE_STEPS, PushTEnv


@dataclass(frozen=True)
class PushTTask:
    """One task: the goal pose (x, y in pixels, angle in radians) and its instruction."""

    goal: tuple[float, float, float]
    instruction: str


PUSHT_TASKS: tuple[PushTTask, ...] = (
    PushTTask((256.0, 256.0, np.pi / 4), "Push the T to the centre, turned a quarter to the right."),
    PushTTask((256.0, 256.0, -np.pi / 4), "Push the T to the centre, turned a quarter to the left."),
    PushTTask((200.0, 300.0, np.pi), "Push the T to the left side, upside down."),
)
TASK_KEY = "task_index"


def check_task(task_id: int) -> PushTTask:
    if not 0 <= int(task_id) < len(PUSHT_TASKS):
        raise ValueError(f"task_id={task_id}: expected 0 … {len(PUSHT_TASKS) - 1} (the PushT suite's tasks)")
    return PUSHT_TASKS[int(task_id)]


class MultiTaskPushTEnv(PushTEnv):
    """PushT (state observations) whose goal pose is task `task_id`'s; obs gains `task_index` (1,)."""

    def __init__(self, task_id: int, **kwargs):
        super().__init__("state", **kwargs)
        self.task_id = int(task_id)
        self.task = check_task(task_id)
        self.observation_space = spaces.Dict(
            {**self.observation_space.spaces, TASK_KEY: spaces.Box(0, len(PUSHT_TASKS) - 1, (1,), np.int64)}
        )

    def _observe(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        obs = super()._observe(raw)
        obs[TASK_KEY] = np.array([self.task_id], dtype=np.int64)
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = super().reset(seed=seed, options=options)
        self.sim.goal_pose = np.array(self.task.goal, dtype=np.float64)  # gym-pusht's reset restores its default
        return obs, info


def make_multitask_pusht_env(task_id: int, max_episode_steps: int = MAX_EPISODE_STEPS) -> gym.Env:
    """Task `task_id` of the suite with the benchmark's 300-step time limit."""
    return gym.wrappers.TimeLimit(MultiTaskPushTEnv(task_id), max_episode_steps=max_episode_steps)
