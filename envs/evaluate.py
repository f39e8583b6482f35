"""Vectorised policy rollouts: success rate with a Wilson 95 % interval, mean max coverage,
per-episode records and mp4 videos of the first episodes. Works with any policy object that has
`reset()` and `select_action(obs_batch) -> (B, A)`."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from .video import write_mp4


class Policy(Protocol):
    def reset(self) -> None: ...
    def select_action(self, obs: dict[str, np.ndarray]) -> np.ndarray: ...


@dataclass
class EpisodeRecord:
    seed: int
    success: bool
    max_coverage: float | None  # PushT's goal coverage; None for tasks that report success only (robomimic)
    steps: int


@dataclass
class EvalResult:
    episodes: list[EpisodeRecord]
    seconds: float
    videos: list[str] = field(default_factory=list)

    @property
    def success_rate(self) -> float:
        return float(np.mean([e.success for e in self.episodes])) if self.episodes else 0.0

    @property
    def mean_max_coverage(self) -> float | None:
        """None when the task reports no coverage (robomimic: success only)."""
        if any(e.max_coverage is None for e in self.episodes):
            return None
        return float(np.mean([e.max_coverage for e in self.episodes])) if self.episodes else 0.0

    def summary(self) -> dict[str, Any]:
        lo, hi = wilson_interval(sum(e.success for e in self.episodes), len(self.episodes))
        return {
            "episodes": len(self.episodes),
            "success_rate": self.success_rate,
            "success_ci95": [lo, hi],
            "mean_max_coverage": self.mean_max_coverage,
            "mean_steps": float(np.mean([e.steps for e in self.episodes])) if self.episodes else 0.0,
            "seconds": self.seconds,
            "videos": self.videos,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary(), "per_episode": [asdict(e) for e in self.episodes]}


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (well-behaved at 0 % and 100 %)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def evaluate(
    policy: Policy,
    make_env: Callable[[], gym.Env],
    n_episodes: int,
    seed: int = 100_000,
    n_envs: int = 10,
    video_dir: str | Path | None = None,
    n_videos: int = 0,
    progress: bool = True,
) -> EvalResult:
    """Roll out `n_episodes` on seeds seed, seed+1, …, `n_envs` episodes at a time (one env each, the policy
    batched over them)."""
    if n_episodes < 1:
        raise ValueError(f"n_episodes={n_episodes}: expected ≥ 1")
    n_envs = max(1, min(n_envs, n_episodes))
    envs = [make_env() for _ in range(n_envs)]
    records: list[EpisodeRecord] = []
    videos: list[str] = []
    start = time.perf_counter()
    bar = tqdm(total=n_episodes, desc="eval", unit="ep", disable=not progress)
    try:
        for batch_start in range(0, n_episodes, n_envs):
            count = min(n_envs, n_episodes - batch_start)
            seeds = [seed + batch_start + i for i in range(n_envs)]
            n_record = min(count, n_videos - len(videos)) if video_dir is not None else 0
            batch, frames = _run_batch(policy, envs, seeds, count, n_record)
            records.extend(batch[:count])
            if n_record > 0:
                fps = envs[0].metadata.get("render_fps", 10)
                for i in range(n_record):
                    path = Path(video_dir) / f"episode_{seeds[i]}.mp4"
                    write_mp4(path, frames[i], fps=fps)
                    videos.append(str(path))
            bar.update(count)
            bar.set_postfix(success=f"{np.mean([r.success for r in records]):.2f}")
    finally:
        bar.close()
        for env in envs:
            env.close()
    return EvalResult(records, time.perf_counter() - start, videos)


def stack_observations(observations: list[Any]) -> Any:
    """Per-env observations (arrays, or dicts of arrays) -> one batch with a leading env axis."""
    if isinstance(observations[0], dict):
        return {k: np.stack([o[k] for o in observations]) for k in observations[0]}
    return np.stack(observations)


def _run_batch(policy: Policy, envs: list[gym.Env], seeds: list[int], count: int, n_record: int):
    """Roll out one batch of episodes, one per env, until each ends. An env whose episode has ended is not
    stepped again (its last observation stays in the policy's batch, its action is dropped): finished episodes
    cost no simulation or rendering, and the envs still running see nothing of the others' ends. Envs past
    `count` (padding of the last batch) start done."""
    n = len(envs)
    observations = [env.reset(seed=s)[0] for env, s in zip(envs, seeds)]
    policy.reset()
    done = np.arange(n) >= count
    success = np.zeros(n, dtype=bool)
    max_cov = np.zeros(n)
    has_coverage = False
    steps = np.zeros(n, dtype=np.int64)
    frames: list[list[np.ndarray]] = [[] for _ in range(n)]
    while not done.all():
        for i in range(n_record):
            if not done[i]:
                frames[i].append(envs[i].render())
        action = np.asarray(policy.select_action(stack_observations(observations)), dtype=np.float32)
        for i in np.flatnonzero(~done):
            observations[i], _, terminated, truncated, info = envs[i].step(action[i])
            steps[i] += 1
            if "coverage" in info:  # PushT's goal coverage; tasks without one (robomimic) report success only
                has_coverage = True
                max_cov[i] = max(max_cov[i], float(info["coverage"]))
            success[i] |= bool(info["is_success"])
            if terminated or truncated:
                if i < n_record:
                    frames[i].append(envs[i].render())  # the terminal state
                done[i] = True
    cov = [float(c) if has_coverage else None for c in max_cov]
    records = [EpisodeRecord(s, bool(ok), c, int(k)) for s, ok, c, k in zip(seeds, success, cov, steps)]
    return records, frames


def evaluate_task(
    policy: Policy,
    task: dict[str, Any],
    episodes: int,
    seed: int,
    n_envs: int,
    output_dir: str | Path | None = None,
    videos: int = 0,
) -> dict[str, Any]:
    """Evaluate on a task config: its benchmark's own protocol where its env registered one (LIBERO: every task of
    the suite; driving: NAVSIM's open loop), else `episodes` seeded rollouts with videos in output_dir/videos;
    returns the summary with per-episode (or per-task) records. A protocol may write its own files there."""
    from .registry import env_entry, env_factory

    entry = env_entry(task["env"])
    if entry.protocol is not None:
        return entry.protocol(policy, task, episodes, seed, n_envs, output_dir, videos)
    video_dir = Path(output_dir) / "videos" if output_dir is not None else None
    return evaluate(policy, env_factory(task), episodes, seed, n_envs, video_dir, videos).to_dict()
