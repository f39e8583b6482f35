"""DSRL: steer a frozen diffusion policy by learning, with SAC, which initial noise w to give its
deterministic sampler (Wagenmaker et al. 2025, "Steering Your Diffusion Policy with Latent Space RL").

Two variants (`algo.variant`):
- `sac`: SAC directly in the latent MDP; the critic Q^W(s, w) learns from (s, w, r, s') transitions.
- `na` (noise aliasing): an action-space critic Q^A(s, a) learns by TD on the *executed* actions, and is
  distilled into the latent critic Q^W(s, w) ≈ Q^A(s, π(s, w)); the actor maximises Q^W. Many noises that
  map to the same action share one value, and any (s, a, r, s') data — e.g. offline demonstrations — can
  train Q^A.

The base policy is never handed to an optimiser (its parameters get requires_grad=False).
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
from omegaconf import DictConfig

from diffpilot.run import Run, latest_checkpoint, load_module_tensors, read_state

from .latent_env import FrozenChunkSampler, LatentNoiseVecEnv, LatentSteering
from .registry import register_algorithm
from .replay import ReplayBuffer
from .runs import ChunkRLConfig, ChunkRLTrainer, check_fields, run_algorithm, training_envs, with_ddim
from .sac import LOG_STD_MAX, LOG_STD_MIN, SquashedGaussianActor, TwinQ, actor_loss, alpha_loss, polyak, td_loss

VARIANTS = ("sac", "na")


TANH_NORMAL_ENTROPY = 0.670  # nats per dim of tanh(z), z ~ N(0, 1) (Monte Carlo, 10⁷ samples)


@dataclass
class DSRLConfig(ChunkRLConfig):
    """Settings of configs/algo/dsrl_{sac,na}.yaml (see there for what each means)."""

    variant: str = "sac"
    noise_scale: float = 1.5
    buffer_size: int = 100_000
    batch_size: int = 256
    hidden: list[int] = field(default_factory=lambda: [256, 256])
    layer_norm: bool = True
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    utd: float = 1.0
    actor_every: int = 2
    learning_starts: int = 1000
    init_alpha: float = 0.01
    target_entropy_per_dim: float = 0.8
    actor_std: float | None = None
    actor_average: float = 0.0
    distill_batch: int = 64
    distill_steps: int = 5
    offline_data: str | None = None
    offline_format: str = "lerobot_v3"
    log_every: int = 2000
    eval_deterministic: bool = False

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"algo.variant={self.variant!r}: expected one of {VARIANTS}")
        super().__post_init__()
        check_fields(
            self,
            positive=("buffer_size", "batch_size", "actor_every"),
            non_negative=("utd", "learning_starts", "distill_steps"),
        )
        if self.offline_data and self.variant != "na":
            raise ValueError(
                f"algo.offline_data={self.offline_data!r} with algo.variant={self.variant!r}: only 'na' can learn "
                "from demonstrations (SAC's latent critic needs each transition's noise)"
            )
        if self.actor_std is not None and not math.exp(LOG_STD_MIN) <= self.actor_std <= math.exp(LOG_STD_MAX):
            raise ValueError(
                f"algo.actor_std={self.actor_std}: expected null (σ learned) or a fixed σ in "
                f"[{math.exp(LOG_STD_MIN):.4f}, {math.exp(LOG_STD_MAX):.2f}]"
            )
        if not 0 <= self.actor_average < 1:
            raise ValueError(
                f"algo.actor_average={self.actor_average}: expected a Polyak rate in [0, 1) (0: no averaged actor)"
            )
        if not 0 < self.gamma <= 1 or not 0 < self.tau <= 1:
            raise ValueError(f"algo.gamma={self.gamma}, algo.tau={self.tau}: expected both in (0, 1]")
        if self.noise_scale > 0 and self.target_entropy_per_dim >= math.log(2 * self.noise_scale):
            # no law on [−m, m] is broader than the uniform (log 2m per dim): the temperature would grow forever
            raise ValueError(
                f"algo.target_entropy_per_dim={self.target_entropy_per_dim} with algo.noise_scale={self.noise_scale}: "
                f"expected < log(2·{self.noise_scale}) = {math.log(2 * self.noise_scale):.3f}, the entropy of the "
                f"uniform noise law (m·tanh(N(0, 1)) has {TANH_NORMAL_ENTROPY:.3f} + log m)"
            )


class Temperature(torch.nn.Module):
    """SAC's entropy temperature α = exp(log_alpha), a module so it checkpoints like the networks."""

    def __init__(self, init_alpha: float):
        super().__init__()
        self.log_alpha = torch.nn.Parameter(torch.tensor(math.log(init_alpha)))

    def forward(self) -> torch.Tensor:
        return self.log_alpha.exp()


class DSRL(ChunkRLTrainer):
    """Trainer: `train()` until cfg.env_steps, checkpointing; `resume(dir)` continues exactly."""

    def __init__(self, policy, make_env, cfg: DSRLConfig, output_dir: str | Path):
        self.cfg = cfg
        self.run = Run(output_dir, "env_step")
        self.sampler = FrozenChunkSampler(policy, cfg.num_inference_steps)
        pcfg = policy.config
        vec = training_envs(make_env, cfg, policy.config)
        self.env = LatentNoiseVecEnv(vec, self.sampler)
        self.vec = vec
        self.algo_name = f"dsrl_{cfg.variant}"
        obs_dim, noise_dim = self.env.obs_dim, self.sampler.noise_dim
        exec_dim = pcfg.n_action_steps * pcfg.action_dim
        self.actor = SquashedGaussianActor(
            obs_dim, noise_dim, cfg.hidden, cfg.noise_scale, cfg.layer_norm, fixed_std=cfg.actor_std
        )
        self.critic = TwinQ(obs_dim, noise_dim, cfg.hidden, cfg.layer_norm)  # Q^W
        self.temperature = Temperature(cfg.init_alpha)
        self.modules: dict[str, torch.nn.Module] = {
            "actor": self.actor,
            "critic": self.critic,
            "temperature": self.temperature,
        }
        self.optimizers = {
            "actor": torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr),
            "critic": torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr),
            "temperature": torch.optim.Adam(self.temperature.parameters(), lr=cfg.alpha_lr),
        }
        # evaluation's actor: a Polyak average of the online actor's weights (the online one keeps acting)
        self.actor_averaged = self.actor
        if cfg.actor_average > 0:
            self.actor_averaged = self.modules["actor_average"] = copy.deepcopy(self.actor)
        if cfg.variant == "sac":
            self.critic_target = copy.deepcopy(self.critic)
            self.modules["critic_target"] = self.critic_target
        else:
            self.action_critic = TwinQ(obs_dim, exec_dim, cfg.hidden, cfg.layer_norm)  # Q^A
            self.action_critic_target = copy.deepcopy(self.action_critic)
            self.modules.update(action_critic=self.action_critic, action_critic_target=self.action_critic_target)
            self.optimizers["action_critic"] = torch.optim.Adam(self.action_critic.parameters(), lr=cfg.critic_lr)
        self.target_entropy = cfg.target_entropy_per_dim * noise_dim
        self.replay = ReplayBuffer(
            cfg.buffer_size,
            {"obs": obs_dim, "noise": noise_dim, "action": exec_dim, "reward": 1, "next_obs": obs_dim, "done": 1},
        )
        if cfg.offline_data:  # demonstrations train Q^A from the start (their rows carry no noise)
            from .offline import demo_transitions

            self.replay.add(
                **demo_transitions(cfg.offline_data, cfg.offline_format, policy, cfg.reward, cfg.shaping, cfg.gamma)
            )
        self._init_log(transitions=0, updates=0)
        self.update_credit = 0.0
        self.losses: dict[str, float] = {}

    # ----------------------------------------------------------------- acting
    def act(self, cond: torch.Tensor) -> torch.Tensor:
        """Noise for each env (N, D): the base distribution N(0, I) (clipped to ±m) before learning starts."""
        if self.counters["transitions"] < self.cfg.learning_starts:
            bound = self.cfg.noise_scale * (1 - 1e-3)
            return torch.randn(cond.shape[0], self.sampler.noise_dim).clamp(-bound, bound)
        with torch.no_grad():
            return self.actor(cond)[0]

    # ----------------------------------------------------------------- learning
    def update(self) -> None:
        cfg = self.cfg
        b = self.replay.sample(cfg.batch_size)
        reward, done = b["reward"].squeeze(-1), b["done"].squeeze(-1)
        alpha = self.temperature().detach()
        if cfg.variant == "sac":
            with torch.no_grad():
                next_w, next_logp = self.actor(b["next_obs"])
                next_q = self.critic_target.min(b["next_obs"], next_w) - alpha * next_logp
                target = reward + cfg.gamma * (1 - done) * next_q
            self._step("critic", td_loss(self.critic, b["obs"], b["noise"], target))
        else:
            self._update_noise_aliasing(b, reward, done)
        if self.counters["updates"] % cfg.actor_every == 0:
            w, logp = self.actor(b["obs"])
            self._step("actor", actor_loss(self.critic, b["obs"], w, logp, alpha))
            self._step("temperature", alpha_loss(self.temperature.log_alpha, logp, self.target_entropy))
            if cfg.actor_average > 0:
                polyak(self.actor_averaged, self.actor, cfg.actor_average)
        target_net, online = (
            (self.critic_target, self.critic)
            if cfg.variant == "sac"
            else (self.action_critic_target, self.action_critic)
        )
        polyak(target_net, online, cfg.tau)
        self.counters["updates"] += 1

    def _update_noise_aliasing(self, b: dict[str, torch.Tensor], reward: torch.Tensor, done: torch.Tensor) -> None:
        """Q^A by TD on executed actions (next action = base policy steered by the actor), then distil
        Q^W(s, w) ← min Q^A(s, π(s, w)) on noises from the actor and from N(0, I)."""
        cfg = self.cfg
        with torch.no_grad():
            next_w = self.actor(b["next_obs"])[0]
            next_a = self._policy_action(b["next_obs"], next_w)
            target = reward + cfg.gamma * (1 - done) * self.action_critic_target.min(b["next_obs"], next_a)
        self._step("action_critic", td_loss(self.action_critic, b["obs"], b["action"], target))
        # one batch of noises per update (the sampler call is the expensive part), several gradient steps on it
        n = min(cfg.distill_batch, cfg.batch_size)
        obs, half = b["obs"][:n], n // 2
        bound = cfg.noise_scale * (1 - 1e-3)
        with torch.no_grad():
            w = torch.cat(
                [self.actor(obs[:half])[0], torch.randn(n - half, self.sampler.noise_dim).clamp(-bound, bound)]
            )
            q_target = self.action_critic.min(obs, self._policy_action(obs, w))
        for _ in range(cfg.distill_steps):
            self._step("critic", td_loss(self.critic, obs, w, q_target))

    def _policy_action(self, cond: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The frozen policy's executed actions (B, n_action_steps·A) for conditions and noises."""
        return self.sampler.executed(self.sampler.chunk(cond, noise)).flatten(1)

    def _step(self, name: str, loss: torch.Tensor) -> None:
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        self.losses[name] = float(loss.detach())

    # ----------------------------------------------------------------- loop
    def train(self, stop_at: int | None = None) -> None:
        """Collect with the actor's noises and learn, `utd × n_envs` updates per vector step once learning has
        started, until `stop_at` env steps (default cfg.env_steps); logs and checkpoints on the way."""
        cfg, run = self.cfg, self.run
        stop = min(stop_at or cfg.env_steps, cfg.env_steps)
        if self.env.cond is None:
            self.env.reset()
        start, first = time.perf_counter(), run.step
        with run.progress(cfg.env_steps, self.algo_name):
            while run.step < stop:
                self._collect()
                if self.counters["transitions"] >= cfg.learning_starts:
                    self.update_credit += cfg.utd * cfg.n_envs
                    while self.update_credit >= 1:
                        self.update()
                        self.update_credit -= 1
                if run.due(cfg.log_every):
                    self._log((run.step - first) / max(time.perf_counter() - start, 1e-9))
                    run.show(success=f"{self.history[-1]['recent_success']:.2f}", upd=self.counters["updates"])
                if run.due(cfg.checkpoint_every):
                    self.save()

    def _collect(self) -> None:
        cond = self.env.cond
        noise = self.act(cond)
        _, final_cond, executed, step = self.env.step(noise)
        self.replay.add(
            obs=cond,
            noise=noise,
            action=executed,
            reward=step.reward,
            next_obs=final_cond,
            done=step.terminated.astype(np.float32),
        )
        self.counters["transitions"] += self.cfg.n_envs
        self.record_episodes(step)

    def _log(self, env_steps_per_s: float) -> None:
        point = self.curve_point(updates=self.counters["updates"], alpha=float(self.temperature().detach()))
        losses = {f"loss_{k}": v for k, v in self.losses.items()}
        self.run.log({**point, **losses, "env_steps_per_s": env_steps_per_s})

    # ----------------------------------------------------------------- checkpoints and results
    def extra_state(self) -> dict[str, Any]:
        return {"update_credit": self.update_credit}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.update_credit = float(state["update_credit"])

    def resume(self, directory: str | Path) -> None:
        self.env.cond = self.sampler.encode(super().resume(directory))

    def result_extra(self, checkpoint: Path) -> dict[str, Any]:
        return {}

    def eval_policy(self):
        return self.steered_policy(self.cfg.eval_deterministic)

    def steered_policy(self, deterministic: bool = False):
        """The base policy with the actor (its Polyak average with `algo.actor_average` > 0) choosing every chunk's
        noise: sampled from π(w|s) (DSRL's default evaluation) or, when `deterministic`, its mode m·tanh(μ(s))."""
        policy = self.sampler.policy
        actor = self.actor_averaged.mode if deterministic else (lambda cond: self.actor_averaged(cond)[0])
        policy.chunk_planner = LatentSteering(self.sampler, actor)
        return policy


def checkpoint_config(checkpoint: str | Path) -> DSRLConfig:
    """The DSRLConfig a DSRL checkpoint was trained with (its state.json)."""
    return DSRLConfig(**read_state(checkpoint)["counters"]["config"])


def evaluated_actor(cfg: DSRLConfig, online: bool = False) -> str:
    """The module of a checkpoint that evaluation uses: the averaged actor when the run kept one
    (`algo.actor_average` > 0) unless `online`, else the online actor."""
    return "actor_average" if cfg.actor_average > 0 and not online else "actor"


def load_steered_policy(checkpoint: str | Path, policy, deterministic: bool | None = None, online: bool = False):
    """`policy` (the frozen base, loaded by the caller) steered by the actor saved in a DSRL checkpoint (its
    averaged copy when the run kept one, unless `online`); the sampler's step count and the evaluation mode follow
    the checkpoint's config."""
    checkpoint = latest_checkpoint(checkpoint)
    cfg = checkpoint_config(checkpoint)
    policy = with_ddim(policy, cfg.num_inference_steps)
    sampler = FrozenChunkSampler(policy, cfg.num_inference_steps)
    actor = SquashedGaussianActor(
        policy.obs_encoder.output_dim, sampler.noise_dim, cfg.hidden, cfg.noise_scale, cfg.layer_norm, cfg.actor_std
    )
    actor.load_state_dict(load_module_tensors(checkpoint, evaluated_actor(cfg, online)))
    deterministic = cfg.eval_deterministic if deterministic is None else deterministic
    policy.chunk_planner = LatentSteering(sampler, actor.mode if deterministic else (lambda c: actor(c)[0]))
    return policy


@register_algorithm("dsrl")
def run(cfg: DictConfig) -> dict[str, Any]:
    """`diffpilot rl algo=dsrl_sac|dsrl_na`: train, evaluate the steered policy, write result.json."""
    return run_algorithm(cfg, DSRLConfig, DSRL)
