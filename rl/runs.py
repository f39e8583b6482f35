"""What every chunk-RL runner needs around its algorithm: the frozen/base policy and env factory from the run config,
config checks with clear errors, the training state on the one run loop, and a success evaluation."""

from __future__ import annotations

import json
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from diffpilot.envs.registry import env_factory
from diffpilot.errors import ConfigError
from diffpilot.run import TrainingState, resume_if_asked, wandb_settings

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
    """What DSRL and DPPO share around their own loops: the run (diffpilot/run.py, counting environment steps), the
    training-episode log (learning curve) and the exact training state.

    Subclasses set `cfg`, `run`, `modules`, `optimizers`, `vec` (a ChunkVecEnv) and, when off-policy, `replay`, and
    write `train()`; `extra_state()` / `load_extra_state()` carry their own scalars.
    """

    algo_name = "rl"
    replay = None

    def _init_log(self, **counters: int) -> None:
        self.counters = {**counters, "episodes": 0, "successes": 0}
        self.recent: deque = deque(maxlen=50)  # outcomes (1 = solved) of the last training episodes
        self.history: list[dict[str, float]] = []  # learning curve points

    @property
    def env_steps(self) -> int:
        return self.run.step

    def record_episodes(self, step) -> None:
        """Count the env steps a ChunkStep ran and the episodes that ended in it."""
        self.run.advance(step.env_steps)
        for i in np.flatnonzero(step.terminated | step.truncated):
            self.counters["episodes"] += 1
            self.counters["successes"] += int(step.success[i])
            self.recent.append(float(step.success[i]))

    def curve_point(self, **extra: float) -> dict[str, float]:
        point = {
            "env_steps": self.env_steps,
            "episodes": self.counters["episodes"],
            "recent_success": float(np.mean(self.recent)) if self.recent else 0.0,
            **extra,
        }
        self.history.append(point)
        return point

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def saved_policy(self):
        """The policy a checkpoint holds as pretrained_model (None: the checkpoint's modules are the result)."""
        return None

    def state(self) -> TrainingState:
        arrays = {"envs": self.vec.state(), **({"replay": self.replay.state()} if self.replay is not None else {})}
        counters = {
            "algo": self.algo_name,
            "config": asdict(self.cfg),
            "counters": self.counters,
            "recent": list(self.recent),
            "history": self.history,
            **self.extra_state(),
        }
        return TrainingState(self.modules, self.optimizers, arrays=arrays, counters=counters)

    def save(self) -> Path:
        return self.run.save(self.state(), self.saved_policy())

    def resume(self, checkpoint: str | Path) -> dict[str, np.ndarray]:
        """Restore everything `save` wrote; returns the envs' current observations."""
        state = self.state()
        saved = self.run.resume(checkpoint, state)
        if self.replay is not None:
            self.replay.load_state(state.arrays["replay"])
        self.counters = dict(saved["counters"])
        self.recent = deque(saved["recent"], maxlen=self.recent.maxlen)
        self.history = list(saved["history"])
        self.load_extra_state(saved)
        return self.vec.load_state(state.arrays["envs"])


def run_algorithm(cfg: DictConfig, config_cls, trainer_cls) -> dict[str, Any]:
    """The shared `run(cfg)`: build, resume if asked, train, save, evaluate `trainer.eval_policy()`, then the run's
    result.json (with `trainer.result_extra()`); prints it without the curve and returns it."""
    algo = algo_config(config_cls, cfg.algo)
    wandb = wandb_settings(OmegaConf.to_container(cfg.wandb, resolve=True) if "wandb" in cfg else None)
    torch.manual_seed(cfg.seed)
    policy, make_env = env_and_policy(cfg, algo.num_inference_steps)
    trainer = trainer_cls(policy, make_env, algo, cfg.output_dir)
    resume_if_asked(trainer, cfg.get("resume"))
    trainer.run.attach_wandb(wandb, OmegaConf.to_container(cfg, resolve=True))
    trainer.train()
    final = trainer.save()
    result: dict[str, Any] = {
        "algo": trainer.algo_name,
        "policy_path": str(cfg.policy_path),
        "checkpoint": str(final),
        **trainer.result_extra(final),
        "counters": {"env_steps": trainer.env_steps, **trainer.counters},
        "history": trainer.history,
    }
    if algo.eval_episodes:
        result["eval"] = evaluate_policy(
            trainer.eval_policy(), make_env, algo.eval_episodes, algo.eval_seed, algo.eval_n_envs
        )
        trainer.run.record_evaluation(result["eval"])
    trainer.run.finish(result)
    print(json.dumps({k: v for k, v in result.items() if k != "history"}, indent=2))
    return result
