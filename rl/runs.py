"""What every RL runner needs around its algorithm: the frozen/base policy and env factory from the run
config, config checks with clear errors, the latest checkpoint of a run, and a success evaluation."""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from diffpilot.atomic import atomic_write_json
from diffpilot.envs.registry import env_factory
from diffpilot.errors import ConfigError

from .chunk_env import REWARDS, ChunkVecEnv


@dataclass
class ChunkRLConfig:
    """Settings every chunk-RL algorithm has: the frozen sampler's steps, the parallel envs, the budget,
    checkpoints and the final evaluation (documented in configs/algo/*.yaml)."""

    num_inference_steps: int = 3
    n_envs: int = 8
    vector: str = "sync"
    env_steps: int = 200_000
    train_seed: int = 1_000_000
    checkpoint_every: int = 50_000
    eval_episodes: int = 100
    eval_seed: int = 100_000
    eval_n_envs: int = 10
    reward: str = "env"  # env: the env's own r − 1 per step; success: success − 1 (sparse)
    shaping: float = 0.0  # w: adds potential-based shaping w·(γ·r(s') − r(s)) to the chunk reward (0: none)

    def __post_init__(self) -> None:
        check_fields(
            self, positive=("num_inference_steps", "n_envs", "env_steps"), non_negative=("eval_episodes", "shaping")
        )
        if self.reward not in REWARDS:
            raise ValueError(f"algo.reward={self.reward!r}: expected one of {REWARDS}")


def training_envs(make_env, cfg: Any, policy_config: Any) -> ChunkVecEnv:
    """The run's parallel chunk envs: `cfg`'s env count, seeds, vector mode and reward (shaped with its per-chunk
    γ), executing the policy's n_action_steps and observing its n_obs_steps."""
    return ChunkVecEnv(
        make_env,
        cfg.n_envs,
        policy_config.n_obs_steps,
        policy_config.n_action_steps,
        cfg.train_seed,
        cfg.vector,
        cfg.reward,
        cfg.shaping,
        cfg.gamma,
    )


def check_fields(cfg: Any, positive: tuple[str, ...] = (), non_negative: tuple[str, ...] = ()) -> None:
    """Raise a ValueError naming the first algo field that is not > 0 (or ≥ 0)."""
    for name in positive:
        if not getattr(cfg, name) > 0:
            raise ValueError(f"algo.{name}={getattr(cfg, name)!r}: expected > 0")
    for name in non_negative:
        if not getattr(cfg, name) >= 0:
            raise ValueError(f"algo.{name}={getattr(cfg, name)!r}: expected ≥ 0")


def env_and_policy(cfg: DictConfig, num_inference_steps: int | None = None):
    """(the policy at cfg.policy_path sampled with DDIM over `num_inference_steps`, the task's env factory)."""
    from diffpilot.policies.registry import load_policy

    if not cfg.get("policy_path"):
        raise ConfigError("policy_path=None: expected the directory of a trained policy (config.json + weights)")
    path = Path(cfg.policy_path)
    if not (path / "config.json").is_file():
        raise ConfigError(f"policy_path={str(path)!r}: no config.json there; expected a saved policy directory")
    policy = load_policy(path)
    if num_inference_steps is not None:
        policy = with_ddim(policy, num_inference_steps)
    task = OmegaConf.to_container(cfg.task, resolve=True)
    return policy, env_factory(task)


def with_ddim(policy, num_inference_steps: int):
    """`policy` sampled with DDIM over `num_inference_steps` levels, its other sampler settings kept (DSRL and DPPO
    need the deterministic η = 0 map)."""
    return policy.with_sampler(policy.config.sampler.replace(name="ddim", num_inference_steps=num_inference_steps))


def latest_checkpoint(path: str | Path) -> Path:
    """`path` itself when it is a checkpoint (has state.json), else its newest checkpoints/* entry."""
    path = Path(path)
    if (path / "state.json").is_file():
        return path
    found = sorted((path / "checkpoints").glob("*/state.json")) if (path / "checkpoints").is_dir() else []
    if not found:
        raise ConfigError(f"resume={str(path)!r}: no RL checkpoint (state.json) there or under checkpoints/")
    return found[-1].parent


def evaluate_policy(policy, make_env, episodes: int, seed: int, n_envs: int) -> dict[str, Any]:
    """Success (95 % Wilson CI) and coverage over `episodes` seeded rollouts, without per-episode records."""
    from diffpilot.envs.evaluate import evaluate

    policy.reset()
    summary = evaluate(policy, make_env, episodes, seed, n_envs).summary()
    summary.pop("videos", None)
    return summary


def algo_config(cls, algo: DictConfig | dict):
    """The dataclass `cls` from the `algo` config group (its `runner` key dropped); unknown keys are named."""
    d = OmegaConf.to_container(algo, resolve=True) if isinstance(algo, DictConfig) else dict(algo)
    d.pop("runner", None)
    unknown = set(d) - set(cls.__dataclass_fields__)
    if unknown:
        raise ValueError(f"algo has unknown keys {sorted(unknown)}; expected {sorted(cls.__dataclass_fields__)}")
    return cls(**d)


class ChunkRLTrainer:
    """What DSRL and DPPO share: counters, the training-episode log (learning curve), and checkpoints.

    Subclasses set `cfg`, `output_dir`, `modules`, `optimizers`, `vec` (a ChunkVecEnv) and, when off-policy,
    `replay`; `extra_state()` / `load_extra_state()` carry their own scalars.
    """

    algo_name = "rl"
    replay = None

    def _init_log(self, **counters: int) -> None:
        self.counters = {"env_steps": 0, **counters, "episodes": 0, "successes": 0}
        self.recent: deque = deque(maxlen=50)  # outcomes (1 = solved) of the last training episodes
        self.history: list[dict[str, float]] = []  # learning curve points

    def record_episodes(self, step) -> None:
        """Count the episodes that ended in a ChunkStep."""
        self.counters["env_steps"] += step.env_steps
        for i in np.flatnonzero(step.terminated | step.truncated):
            self.counters["episodes"] += 1
            self.counters["successes"] += int(step.success[i])
            self.recent.append(float(step.success[i]))

    def curve_point(self, **extra: float) -> dict[str, float]:
        point = {
            "env_steps": self.counters["env_steps"],
            "episodes": self.counters["episodes"],
            "recent_success": float(np.mean(self.recent)) if self.recent else 0.0,
            **extra,
        }
        self.history.append(point)
        return point

    def start_training(self) -> None:
        """Called by `train` before its loop (e.g. a first env reset)."""

    def iteration(self, writer, seconds: float) -> dict[str, Any] | None:
        """One collect/learn step of the algorithm; returns progress-bar fields (or None)."""
        raise NotImplementedError

    def train(self, stop_at: int | None = None) -> None:
        """Iterate until `stop_at` env steps (default cfg.env_steps) with a tqdm bar, TensorBoard under
        output_dir/tensorboard, and an RL checkpoint every cfg.checkpoint_every env steps."""
        from torch.utils.tensorboard import SummaryWriter
        from tqdm.auto import tqdm

        cfg = self.cfg
        stop_at = min(stop_at or cfg.env_steps, cfg.env_steps)
        self.start_training()
        writer = SummaryWriter(str(Path(self.output_dir) / "tensorboard"))
        bar = tqdm(total=cfg.env_steps, initial=self.counters["env_steps"], desc=self.algo_name, unit="step")
        next_ckpt = (self.counters["env_steps"] // cfg.checkpoint_every + 1) * cfg.checkpoint_every
        start = time.perf_counter()
        try:
            while self.counters["env_steps"] < stop_at:
                postfix = self.iteration(writer, max(time.perf_counter() - start, 1e-9))
                bar.n = self.counters["env_steps"]
                bar.refresh()
                if postfix:
                    bar.set_postfix(postfix)
                if self.counters["env_steps"] >= next_ckpt:
                    self.save()
                    next_ckpt += cfg.checkpoint_every
        finally:
            bar.close()
            writer.close()

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def save(self) -> Path:
        from .checkpoint import save_rl_checkpoint

        directory = Path(self.output_dir) / "checkpoints" / f"env_step_{self.counters['env_steps']:08d}"
        state = {
            "algo": self.algo_name,
            "config": asdict(self.cfg),
            "counters": self.counters,
            "recent": list(self.recent),
            "history": self.history,
            **self.extra_state(),
        }
        save_rl_checkpoint(directory, self.modules, self.optimizers, state, self.replay, self.vec.state())
        return directory

    def resume(self, directory: str | Path) -> dict[str, np.ndarray]:
        """Restore everything `save` wrote; returns the envs' current observations."""
        from .checkpoint import load_rl_checkpoint

        state, env_state = load_rl_checkpoint(directory, self.modules, self.optimizers, self.replay)
        if env_state is None:
            raise ValueError(f"RL checkpoint {directory}: env_state.safetensors is missing (needed to resume)")
        self.counters = dict(state["counters"])
        self.recent = deque(state["recent"], maxlen=self.recent.maxlen)
        self.history = list(state["history"])
        self.load_extra_state(state)
        return self.vec.load_state(env_state)


def run_algorithm(cfg: DictConfig, config_cls, trainer_cls) -> dict[str, Any]:
    """The shared `run(cfg)`: build, resume if asked, train, save, evaluate `trainer.eval_policy()`,
    write result.json (with `trainer.result_extra()`), print it without the curve; returns it."""
    algo = algo_config(config_cls, cfg.algo)
    torch.manual_seed(cfg.seed)
    policy, make_env = env_and_policy(cfg, algo.num_inference_steps)
    trainer = trainer_cls(policy, make_env, algo, cfg.output_dir)
    if cfg.get("resume"):
        trainer.resume(latest_checkpoint(cfg.resume))
    trainer.train()
    final = trainer.save()
    result: dict[str, Any] = {
        "algo": trainer.algo_name,
        "policy_path": str(cfg.policy_path),
        "checkpoint": str(final),
        **trainer.result_extra(final),
        "counters": trainer.counters,
        "history": trainer.history,
    }
    if algo.eval_episodes:
        result["eval"] = evaluate_policy(
            trainer.eval_policy(), make_env, algo.eval_episodes, algo.eval_seed, algo.eval_n_envs
        )
    atomic_write_json(Path(cfg.output_dir) / "result.json", result)
    print(json.dumps({k: v for k, v in result.items() if k != "history"}, indent=2))
    return result
