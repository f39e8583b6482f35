"""Vectorised policy rollouts: success rate with a Wilson 95 % interval, mean max coverage,
per-episode records and mp4 videos of the first episodes. Works with any policy object that has
`reset()` and `select_action(obs_batch) -> (B, A)`."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from diffpilot.errors import ConfigError

from .env_pool import InlineEnvs, SubprocessEnvs, make_env_pool
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


EXECUTORS = ("inline", "subprocess", "ray")
DEFAULT_EPISODES = 50  # `diffpilot eval` rollouts when the task has no protocol of its own


def evaluate(
    policy: Policy,
    make_env: Callable[[], gym.Env],
    n_episodes: int,
    seed: int = 100_000,
    n_envs: int = 10,
    video_dir: str | Path | None = None,
    n_videos: int = 0,
    progress: bool = True,
    executor: str = "inline",
) -> EvalResult:
    """Roll out `n_episodes` on seeds seed, seed+1, …, `n_envs` episodes at a time (one env each, the policy
    batched over them). Each batch samples from torch's generator seeded with its first episode's seed, so an
    episode's result depends only on its batch, and the caller's generator is left as it was. `executor`: inline
    (the envs in this process), subprocess (each env in its own process, stepped in parallel) or ray (whole batches
    on the workers of a Ray cluster, see `ray_batches`); all three give the same episodes."""
    if n_episodes < 1:
        raise ValueError(f"n_episodes={n_episodes}: expected ≥ 1")
    if executor not in EXECUTORS:
        raise ConfigError(f"executor={executor!r}: expected one of {list(EXECUTORS)}")
    n_envs = max(1, min(n_envs, n_episodes))
    batches = []
    for batch_start in range(0, n_episodes, n_envs):
        count = min(n_envs, n_episodes - batch_start)
        n_record = min(count, max(0, n_videos - batch_start)) if video_dir is not None else 0
        batches.append(([seed + batch_start + i for i in range(n_envs)], count, n_record))
    records: list[EpisodeRecord] = []
    videos: list[str] = []
    start = time.perf_counter()
    bar = tqdm(total=n_episodes, desc="eval", unit="ep", disable=not progress)

    def take(seeds: list[int], count: int, n_record: int, batch: list[EpisodeRecord], frames, fps: float) -> None:
        records.extend(batch[:count])
        for i in range(n_record):
            path = Path(video_dir) / f"episode_{seeds[i]}.mp4"
            write_mp4(path, frames[i], fps=fps)
            videos.append(str(path))
        bar.update(count)
        bar.set_postfix(success=f"{np.mean([r.success for r in records]):.2f}")

    try:
        if executor == "ray":
            for (seeds, count, n_record), (batch, frames, fps) in ray_batches(policy, make_env, batches):
                take(seeds, count, n_record, batch, frames, fps)
        else:
            envs = make_env_pool(make_env, n_envs, executor)
            try:
                for seeds, count, n_record in batches:
                    batch, frames = run_batch(policy, envs, seeds, count, n_record)
                    take(seeds, count, n_record, batch, frames, envs.metadata.get("render_fps", 10))
            finally:
                envs.close()
    finally:
        bar.close()
    return EvalResult(records, time.perf_counter() - start, videos)


def stack_observations(observations: list[Any]) -> Any:
    """Per-env observations (arrays, or dicts of arrays) -> one batch with a leading env axis."""
    if isinstance(observations[0], dict):
        return {k: np.stack([o[k] for o in observations]) for k in observations[0]}
    return np.stack(observations)


def run_batch(policy: Policy, envs: InlineEnvs | SubprocessEnvs, seeds: list[int], count: int, n_record: int):
    """Roll out one batch of episodes, one per env, until each ends, with torch's generator seeded by seeds[0] (and
    put back as it was afterwards). An env whose episode has ended is not stepped again (its last observation stays
    in the policy's batch, its action is dropped): finished episodes cost no simulation or rendering, and the envs
    still running see nothing of the others' ends. Envs past `count` (padding of the last batch) start done."""
    import torch

    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seeds[0])
        return _roll_out(policy, envs, seeds, count, n_record)


def _roll_out(policy: Policy, envs: InlineEnvs | SubprocessEnvs, seeds: list[int], count: int, n_record: int):
    n = len(envs)
    observations = envs.reset(seeds)
    policy.reset()
    done = np.arange(n) >= count
    success = np.zeros(n, dtype=bool)
    max_cov = np.zeros(n)
    has_coverage = False
    steps = np.zeros(n, dtype=np.int64)
    frames: list[list[np.ndarray]] = [[] for _ in range(n)]
    while not done.all():
        recording = [i for i in range(n_record) if not done[i]]
        for i, frame in zip(recording, envs.render(recording)):
            frames[i].append(frame)
        action = np.asarray(policy.select_action(stack_observations(observations)), dtype=np.float32)
        running = np.flatnonzero(~done)
        for i, (obs, _, terminated, truncated, info) in zip(running, envs.step(running, action[running])):
            observations[i] = obs
            steps[i] += 1
            if "coverage" in info:  # PushT's goal coverage; tasks without one (robomimic) report success only
                has_coverage = True
                max_cov[i] = max(max_cov[i], float(info["coverage"]))
            success[i] |= bool(info["is_success"])
            if terminated or truncated:
                done[i] = True
        ended = [i for i in recording if done[i]]
        for i, frame in zip(ended, envs.render(ended)):
            frames[i].append(frame)  # the terminal state
    cov = [float(c) if has_coverage else None for c in max_cov]
    records = [EpisodeRecord(s, bool(ok), c, int(k)) for s, ok, c, k in zip(seeds, success, cov, steps)]
    return records, frames


def ray_batches(policy: Policy, make_env: Callable[[], gym.Env], batches: list[tuple[list[int], int, int]]):
    """Yield, in order, (batch, (records, frames, fps)) for every batch, each rolled out by a Ray task on a one-CPU
    worker with its own envs and a CPU copy of the policy, run with this process's torch thread count (the same
    arithmetic, so the same episodes). Joins the cluster at RAY_ADDRESS when set, else
    starts a local one (`ray.init()`); a Ray session already open is used as it is."""
    import ray
    import torch

    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)
    policy_ref = ray.put(copy.deepcopy(policy).cpu() if hasattr(policy, "cpu") else policy)  # workers have no GPU
    rollout = ray.remote(num_cpus=1)(_ray_rollout)
    threads = torch.get_num_threads()
    futures = [rollout.remote(policy_ref, make_env, threads, *batch) for batch in batches]
    for batch, future in zip(batches, futures):
        yield batch, ray.get(future)


def _ray_rollout(policy: Policy, make_env: Callable[[], gym.Env], threads: int, seeds: list[int], count: int,
                 n_record: int):  # fmt: skip
    import torch

    torch.set_num_threads(threads)
    envs = InlineEnvs(make_env, len(seeds))
    try:
        records, frames = run_batch(policy, envs, seeds, count, n_record)
        return records, frames, envs.metadata.get("render_fps", 10)
    finally:
        envs.close()


def evaluate_task(
    policy: Policy,
    task: dict[str, Any],
    episodes: int | None,
    seed: int,
    n_envs: int,
    output_dir: str | Path | None = None,
    videos: int = 0,
    executor: str = "inline",
) -> dict[str, Any]:
    """Evaluate on a task config: its benchmark's own protocol where its env registered one (LIBERO: every task of
    the suite; driving: NAVSIM's open loop), else `episodes` (None: 50) seeded rollouts with videos in
    output_dir/videos; returns the summary with per-episode (or per-task) records. A protocol may write its own files
    there."""
    from .registry import env_entry, env_factory

    entry = env_entry(task["env"])
    if entry.protocol is not None:
        return entry.protocol(policy, task, episodes, seed, n_envs, output_dir, videos, executor=executor)
    video_dir = Path(output_dir) / "videos" if output_dir is not None else None
    episodes = episodes or DEFAULT_EPISODES
    return evaluate(policy, env_factory(task), episodes, seed, n_envs, video_dir, videos, executor=executor).to_dict()
