"""DSRL's latent-noise MDP: the action is the initial noise w of a frozen chunk policy's deterministic
sampler; the sampler maps (observation window, w) to an action chunk whose first `n_action_steps`
actions (after the observed ones) are executed in the real environment.

The RL agent observes the frozen policy's own condition vector `policy.encode(window)` (B, C): the
normalised observation window for state tasks, frozen image features for pixel tasks.
"""

from __future__ import annotations

import numpy as np
import torch

from .chunk_env import ChunkStep, ChunkVecEnv


class FrozenChunkSampler:
    """The frozen policy as a deterministic map. Its weights get `requires_grad=False` and are never
    handed to an optimiser; `timesteps` is the sampler's level list (e.g. DDIM-4)."""

    def __init__(self, policy, num_inference_steps: int):
        self.policy = policy.eval()
        for p in policy.parameters():
            p.requires_grad_(False)
        if policy.sampler.config.eta != 0.0:
            raise ValueError(
                f"policy sampler has eta={policy.sampler.config.eta}; DSRL needs a deterministic sampler (eta=0)"
            )
        self.timesteps = policy.sampler.default_timesteps(num_inference_steps)
        cfg = policy.config
        self.horizon, self.action_dim = cfg.horizon, cfg.action_dim
        self.start = cfg.n_obs_steps - 1
        self.n_action_steps = cfg.n_action_steps
        self.noise_dim = cfg.horizon * cfg.action_dim

    @torch.no_grad()
    def encode(self, obs_window: dict[str, np.ndarray]) -> torch.Tensor:
        """Observation window (B, n_obs, …) → condition (B, C)."""
        return self.policy.encode({k: torch.as_tensor(v) for k, v in obs_window.items()})

    @torch.no_grad()
    def chunk(self, cond: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Condition (B, C) and flat noise (B, horizon·A) → normalised chunk (B, horizon, A)."""
        x = noise.reshape(-1, self.horizon, self.action_dim).to(cond)
        return self.policy.sampler.sample(self.policy.denoiser, x, cond, self.timesteps)

    def executed(self, chunk: torch.Tensor) -> torch.Tensor:
        """The executed part of a chunk (B, horizon, A) → (B, n_action_steps, A)."""
        return chunk[:, self.start : self.start + self.n_action_steps]

    def unnormalize(self, chunk: torch.Tensor) -> np.ndarray:
        key = self.policy.config.action_key
        return self.policy.normalizer.unnormalize(key, chunk).cpu().numpy()


class LatentNoiseVecEnv:
    """Vectorised latent MDP. `reset()` → conditions (N, C); `step(w)` with w (N, horizon·A) →
    (next conditions (N, C), final conditions (N, C), executed normalised actions (N, n_action_steps·A),
    the underlying `ChunkStep`)."""

    def __init__(self, vec: ChunkVecEnv, sampler: FrozenChunkSampler):
        self.vec = vec
        self.sampler = sampler
        self.cond: torch.Tensor | None = None

    @property
    def obs_dim(self) -> int:
        return self.sampler.policy.obs_encoder.output_dim

    def reset(self) -> torch.Tensor:
        self.cond = self.sampler.encode(self.vec.reset())
        return self.cond

    def step(self, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, ChunkStep]:
        if self.cond is None:
            raise RuntimeError("LatentNoiseVecEnv.step before reset()")
        executed = self.sampler.executed(self.sampler.chunk(self.cond, noise))
        step = self.vec.step(self.sampler.unnormalize(executed))
        final_cond = self.sampler.encode(step.final_obs)
        done = step.terminated | step.truncated
        self.cond = self.sampler.encode(step.next_obs) if done.any() else final_cond
        return self.cond, final_cond, executed.flatten(1), step


class LatentSteering:
    """A `chunk_planner` for `ChunkPolicy.select_action`: the actor picks the noise for each chunk, so the
    steered policy runs in `envs.evaluate` like any policy. `actor(cond) -> noise (B, horizon·A)`."""

    def __init__(self, sampler: FrozenChunkSampler, actor):
        self.sampler = sampler
        self.actor = actor

    def reset(self) -> None:
        pass

    @torch.no_grad()
    def __call__(self, window: dict[str, torch.Tensor]) -> torch.Tensor:
        cond = self.sampler.policy.encode(window)
        chunk = self.sampler.chunk(cond, self.actor(cond))
        return self.sampler.policy.normalizer.unnormalize(self.sampler.policy.config.action_key, chunk)
