"""DPPO baseline (Ren et al. 2024, "Diffusion Policy Policy Optimization"): PPO on the denoising chain.

Two-layer MDP: every env (chunk) step samples a chain of DDIM denoising steps; the last `ft_steps` of
them are Gaussian policy steps x_{k−1} ~ N(μ_θ(x_k, k, s), σ²) with μ_θ the deterministic (η = 0) DDIM
update of a trainable copy of the policy's denoiser and a fixed exploration σ; earlier steps use the
frozen base denoiser. PPO's clipped ratio is taken per denoising step, all steps of a chunk sharing
the chunk's GAE advantage. The fine-tuned policy is saved as an ordinary policy directory, whose
deterministic sampler is the chain's mean path.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from diffpilot.policies.samplers import DDIMSampler
from diffpilot.run import PRETRAINED, Run

from .registry import register_algorithm
from .runs import ChunkRLConfig, ChunkRLTrainer, check_fields, run_algorithm, training_envs
from .sac import mlp


@dataclass
class DPPOConfig(ChunkRLConfig):
    """Settings of configs/algo/dppo.yaml (see there for what each means)."""

    ft_steps: int = 3
    exploration_std: float = 0.1
    n_envs: int = 16
    n_steps: int = 16
    epochs: int = 5
    minibatch_size: int = 128
    actor_lr: float = 3e-5
    critic_lr: float = 1e-3
    hidden: list[int] = field(default_factory=lambda: [256, 256])
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_ratio: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fields(
            self, positive=("ft_steps", "exploration_std", "n_steps", "epochs", "minibatch_size", "clip_ratio")
        )
        if self.ft_steps > self.num_inference_steps:
            raise ValueError(
                f"algo.ft_steps={self.ft_steps}: expected ≤ algo.num_inference_steps={self.num_inference_steps}"
            )


class DenoisingChain:
    """The DDIM chain over `levels` as a policy: deterministic (η = 0) updates, the last `ft_steps` of
    them with a trainable denoiser and Gaussian noise of std `std` (normalised action units)."""

    def __init__(self, base, trainable, levels: list[int], ft_steps: int, std: float):
        self.base, self.trainable = base, trainable
        self.levels = list(levels)
        self.first_ft = len(levels) - ft_steps
        self.std = std
        self.ddim = DDIMSampler(base.schedule, base.sampler.config, eta=0.0)
        self.steps = self.ddim.step_pairs(self.levels)

    def mean(self, denoiser, x: torch.Tensor, i: int, cond: torch.Tensor) -> torch.Tensor:
        """One η = 0 DDIM update from levels[i] to the next level (clean data after the last): (B, T, A)."""
        level, next_level = self.steps[i]
        return self.ddim.step(denoiser, x, level, next_level, cond)[0]

    @torch.no_grad()
    def sample(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(chunk (B, T, A), chain (B, ft_steps + 1, T, A) of the fine-tuned steps' inputs and outputs,
        log-probabilities (B, ft_steps))."""
        cfg = self.base.config
        x = torch.randn(cond.shape[0], cfg.horizon, cfg.action_dim)
        chain, logps = [], []
        for i in range(len(self.levels)):
            if i < self.first_ft:
                x = self.mean(self.base.denoiser, x, i, cond)
                continue
            chain.append(x)
            mu = self.mean(self.trainable.denoiser, x, i, cond)
            x = mu + self.std * torch.randn_like(mu)
            logps.append(self._log_prob(x, mu))
        chain.append(x)
        return x, torch.stack(chain, 1), torch.stack(logps, 1)

    def log_prob(self, chain: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Log-probabilities (B, ft_steps) of a stored chain under the current trainable denoiser."""
        out = []
        for j in range(chain.shape[1] - 1):
            mu = self.mean(self.trainable.denoiser, chain[:, j], self.first_ft + j, cond)
            out.append(self._log_prob(chain[:, j + 1], mu))
        return torch.stack(out, 1)

    def _log_prob(self, x: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        z = (x - mu) / self.std
        return (-0.5 * z**2 - math.log(self.std) - 0.5 * math.log(2 * math.pi)).flatten(1).sum(-1)


class DPPO(ChunkRLTrainer):
    """Trainer: `train()` iterations of (rollout n_envs × n_steps chunks, GAE, PPO epochs); `resume(dir)`."""

    algo_name = "dppo"

    def __init__(self, policy, make_env, cfg: DPPOConfig, output_dir: str | Path):
        self.cfg = cfg
        self.run = Run(output_dir, "env_step")
        self.base = policy.eval()
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.finetuned = copy.deepcopy(self.base)
        for p in self.finetuned.net.parameters():
            p.requires_grad_(True)
        levels = self.base.sampler.default_timesteps(cfg.num_inference_steps)
        self.chain = DenoisingChain(self.base, self.finetuned, levels, cfg.ft_steps, cfg.exploration_std)
        self.vec = training_envs(make_env, cfg, policy.config)
        self.value = mlp(policy.obs_encoder.output_dim, cfg.hidden, 1)
        self.modules = {"finetuned_net": self.finetuned.net, "value": self.value}
        self.optimizers = {
            "actor": torch.optim.Adam(self.finetuned.net.parameters(), lr=cfg.actor_lr),
            "value": torch.optim.Adam(self.value.parameters(), lr=cfg.critic_lr),
        }
        self._init_log(iterations=0)
        self.obs: dict[str, np.ndarray] | None = None

    @torch.no_grad()
    def _encode(self, obs: dict[str, np.ndarray]) -> torch.Tensor:
        return self.base.encode({k: torch.as_tensor(v) for k, v in obs.items()})

    def _execute(self, chunk: torch.Tensor) -> np.ndarray:
        start = self.base.config.n_obs_steps - 1
        executed = chunk[:, start : start + self.base.config.n_action_steps]
        return self.base.normalizer.unnormalize(self.base.config.action_key, executed).numpy()

    @torch.no_grad()
    def rollout(self) -> dict[str, torch.Tensor]:
        """n_steps vector steps; returns flat (n_steps·n_envs, …) tensors with advantages and returns."""
        cfg = self.cfg
        if self.obs is None:
            self.obs = self.vec.reset()
        conds, chains, logps, rewards, dones, values, next_values = [], [], [], [], [], [], []
        for _ in range(cfg.n_steps):
            cond = self._encode(self.obs)
            chunk, chain, logp = self.chain.sample(cond)
            step = self.vec.step(self._execute(chunk))
            self.obs = step.next_obs
            self.record_episodes(step)
            final_value = self.value(self._encode(step.final_obs)).squeeze(-1)
            # bootstrap through time-limit truncation, not through success
            next_values.append(torch.where(torch.as_tensor(step.terminated), 0.0, final_value))
            conds.append(cond)
            chains.append(chain)
            logps.append(logp)
            rewards.append(torch.as_tensor(step.reward))
            dones.append(torch.as_tensor(step.terminated | step.truncated, dtype=torch.float32))
            values.append(self.value(cond).squeeze(-1))
        adv = gae(
            torch.stack(rewards),
            torch.stack(values),
            torch.stack(next_values),
            torch.stack(dones),
            cfg.gamma,
            cfg.gae_lambda,
        )
        returns = adv + torch.stack(values)
        return {
            "cond": torch.cat(conds),
            "chain": torch.cat(chains),
            "logp": torch.cat(logps),
            "adv": adv.flatten(),
            "ret": returns.flatten(),
        }

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """PPO epochs over the rollout: clipped per-denoising-step ratios, value regression."""
        cfg = self.cfg
        n = batch["cond"].shape[0]
        adv = (batch["adv"] - batch["adv"].mean()) / (batch["adv"].std() + 1e-8)
        stats: dict[str, float] = {}
        for _ in range(cfg.epochs):
            for idx in torch.randperm(n).split(cfg.minibatch_size):
                cond = batch["cond"][idx]
                logp = self.chain.log_prob(batch["chain"][idx], cond)
                ratio = (logp - batch["logp"][idx]).exp()
                a = adv[idx][:, None]
                pg = -torch.minimum(ratio * a, ratio.clamp(1 - cfg.clip_ratio, 1 + cfg.clip_ratio) * a).mean()
                v_loss = F.mse_loss(self.value(cond).squeeze(-1), batch["ret"][idx])
                for opt in self.optimizers.values():
                    opt.zero_grad(set_to_none=True)
                (pg + cfg.vf_coef * v_loss).backward()
                torch.nn.utils.clip_grad_norm_(self.finetuned.net.parameters(), cfg.max_grad_norm)
                for opt in self.optimizers.values():
                    opt.step()
                stats = {
                    "policy_loss": float(pg.detach()),
                    "value_loss": float(v_loss.detach()),
                    "clip_fraction": float(((ratio - 1).abs() > cfg.clip_ratio).float().mean()),
                }
        return stats

    def train(self, stop_at: int | None = None) -> None:
        """Iterations of one rollout (n_envs × n_steps chunks) and its PPO epochs until `stop_at` env steps (default
        cfg.env_steps), logging each and checkpointing every cfg.checkpoint_every env steps."""
        cfg, run = self.cfg, self.run
        stop = min(stop_at or cfg.env_steps, cfg.env_steps)
        start, first = time.perf_counter(), run.step
        with run.progress(cfg.env_steps, self.algo_name):
            while run.step < stop:
                stats = self.update(self.rollout())
                self.counters["iterations"] += 1
                point = self.curve_point()
                rate = (run.step - first) / max(time.perf_counter() - start, 1e-9)
                run.log({**point, **stats, "env_steps_per_s": rate})
                run.show(success=f"{point['recent_success']:.2f}")
                if run.due(cfg.checkpoint_every):
                    self.save()

    def saved_policy(self):
        """Checkpoints hold the fine-tuned policy as an ordinary policy directory (pretrained_model/)."""
        return self.finetuned

    def resume(self, directory: str | Path) -> None:
        self.obs = super().resume(directory)

    def result_extra(self, checkpoint: Path) -> dict[str, Any]:
        return {"finetuned_policy": str(checkpoint / PRETRAINED)}

    def eval_policy(self):
        return self.finetuned.eval()


def gae(rewards, values, next_values, dones, gamma: float, lam: float) -> torch.Tensor:
    """Generalised advantage estimates (T, N) from rewards, V(s_t), V(s_{t+1}) (0 at termination; the
    final state's value at truncation) and episode ends `dones` (T, N), which cut the λ-trace."""
    adv = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        delta = rewards[t] + gamma * next_values[t] - values[t]
        running = delta + gamma * lam * (1 - dones[t]) * running
        adv[t] = running
    return adv


@register_algorithm("dppo")
def run(cfg: DictConfig) -> dict[str, Any]:
    """`diffpilot rl algo=dppo`: fine-tune, evaluate the mean-path (η = 0) policy, write result.json."""
    return run_algorithm(cfg, DPPOConfig, DPPO)
