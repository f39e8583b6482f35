"""Record scripted-expert episodes: frames of observation, action, reward and done flags, kept only when
the expert succeeds (failed attempts are dropped, as the demonstrations must be successful)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm


@dataclass
class RecordedEpisode:
    seed: int
    success: bool
    frames: dict[str, np.ndarray]  # feature → (T, …); LeRobot names (observation.*, action, next.*)

    @property
    def length(self) -> int:
        return len(self.frames["action"])


def record_episode(make_env: Callable[[], gym.Env], make_expert: Callable[[int], object], seed: int) -> RecordedEpisode:
    """Run one expert episode on `seed`; obs at step t is paired with the action taken at t."""
    env = make_env()
    expert = make_expert(seed)
    obs, _ = env.reset(seed=seed)
    expert.reset(env.unwrapped.sim)
    columns: dict[str, list] = {k: [] for k in obs}
    columns.update({"action": [], "next.reward": [], "next.done": [], "next.success": []})
    success = False
    while True:
        action = np.asarray(expert.act(), dtype=np.float32)
        for key, value in obs.items():
            columns[key].append(value)
        obs, reward, terminated, truncated, info = env.step(action)
        columns["action"].append(action)
        columns["next.reward"].append(np.float32(reward))
        columns["next.done"].append(bool(terminated or truncated))
        columns["next.success"].append(bool(info["is_success"]))
        success = success or bool(info["is_success"])
        if terminated or truncated:
            break
    env.close()
    frames = {k: np.stack(v) for k, v in columns.items()}
    return RecordedEpisode(seed, success, frames)


class SuccessfulEpisodes:
    """`record(job)` over `jobs` in `workers` processes, yielding the successful results (`.success`) in job order
    until `episodes` are kept, with a progress bar of the kept count and the success rate so far; `attempts`
    counts the jobs finished. Shared by the LeRobot and robomimic demonstration writers."""

    def __init__(self, record, jobs, episodes: int, workers: int, desc: str):
        self.record, self.jobs, self.episodes, self.workers, self.desc = record, jobs, episodes, workers, desc
        self.attempts = 0

    def __iter__(self):
        kept = 0
        bar = tqdm(total=self.episodes, desc=self.desc, unit="ep")
        with ProcessPoolExecutor(self.workers) as pool:
            for episode in pool.map(self.record, self.jobs, chunksize=1):
                self.attempts += 1
                if episode.success:
                    kept += 1
                    bar.update(1)
                    yield episode
                bar.set_postfix(success=f"{kept / self.attempts:.2f}")
                if kept >= self.episodes:
                    break
            pool.shutdown(cancel_futures=True)
        bar.close()
