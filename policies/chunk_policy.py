"""`ChunkPolicy`: the control-loop half shared by every action-chunk policy — observation history of
n_obs_steps, a queue of n_action_steps actions, and a pluggable `chunk_planner` (RTI). Subclasses supply
`predict_chunk(window) -> (B, horizon, A)`."""

from __future__ import annotations

import copy
from collections import deque
from typing import Any

import numpy as np
import torch

from .checkpoint import PretrainedPolicy


class ChunkPolicy(PretrainedPolicy):
    """Needs `self.config` with `input_features`, `n_obs_steps`, `n_action_steps` before `reset()`."""

    def __init__(self) -> None:
        super().__init__()
        # How select_action plans a chunk from an observation window; None: a full `predict_chunk`.
        self.chunk_planner = None

    @property
    def observation_keys(self) -> list[str]:
        """The observation entries a control step keeps a history of (subclasses may add e.g. a task index)."""
        return list(self.config.input_features)

    def _feature(self, obs: dict[str, Any], key: str) -> torch.Tensor:
        """obs[key] as a tensor, or a KeyError naming the missing feature and the expected ones."""
        if key not in obs:
            raise KeyError(f"observation is missing feature {key!r}; expected keys {self.observation_keys}")
        value = obs[key]
        return value if torch.is_tensor(value) else torch.as_tensor(np.asarray(value))

    def with_n_action_steps(self, n_action_steps: int):
        """The same weights executing `n_action_steps` actions of each chunk; this policy is unchanged."""
        return self._view(self.config.replace(n_action_steps=n_action_steps))

    def _view(self, config):
        """A new policy object over the same modules with `config`, its control loop reset."""
        view = copy.copy(self)
        view.config = config
        view.chunk_planner = None
        view.reset()
        return view

    def condition(self, obs_window: dict[str, Any]) -> tuple[Any, torch.Tensor]:
        """(what the denoiser is conditioned on, a (B, …) tensor giving batch size, device and dtype)."""
        raise NotImplementedError

    @torch.inference_mode()
    def predict_chunk(
        self,
        obs_window: dict[str, Any],
        noise: torch.Tensor | None = None,
        timesteps: list | None = None,
        generator: torch.Generator | None = None,
        normalized: bool = False,
    ) -> torch.Tensor:
        """Sample an action chunk (B, horizon, A) in action units from an observation window (B, n_obs, …).

        `noise` (B, horizon, A) is the sampler's initial point (pure noise for a full sample, or a
        re-noised chunk at `timesteps[0]` for a warm start); drawn from `generator` when omitted.
        Needs `self.sampler`, `self.denoiser`, `self.normalizer` and `condition()` from the subclass.
        """
        cond, ref = self.condition(obs_window)
        noise = self.initial_noise(ref.shape[0], noise, generator)
        x = self.sampler.sample(self.denoiser, noise.to(ref), cond, timesteps, generator)
        return x if normalized else self.normalizer.unnormalize(self.config.action_key, x)

    def initial_noise(
        self, batch: int, noise: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The sampler's starting point (B, horizon, A): `noise` after a shape check, or drawn from `generator`."""
        shape = (batch, self.config.horizon, self.config.action_dim)
        if noise is None:
            return torch.randn(shape, generator=generator, device=generator.device if generator else "cpu")
        if tuple(noise.shape) != shape:
            raise ValueError(f"noise has shape {tuple(noise.shape)}; expected {shape} (B, horizon, action_dim)")
        return noise

    @torch.inference_mode()
    def predict_action_chunk(self, obs: dict[str, Any], noise: torch.Tensor | None = None) -> torch.Tensor:
        """A fresh action chunk (B, horizon, A) in action units from one observation step (B, *shape) per feature,
        its history filled with it as at an episode start; the policy's queue and history are left alone."""
        n = self.config.n_obs_steps
        window = {k: torch.stack([self._step_feature(obs, k)] * n, dim=1) for k in self.observation_keys}
        return self.predict_chunk(window, noise=noise)

    def reset(self) -> None:
        """Forget the observation history and queued actions (call at every episode start)."""
        self._obs_history: dict[str, deque] = {}
        self._action_queue: deque = deque()
        if self.chunk_planner is not None:
            self.chunk_planner.reset()

    def _step_feature(self, obs: dict[str, Any], key: str) -> torch.Tensor:
        """obs[key] of one control step, (B, *feature shape); a ValueError names what was passed instead."""
        value = self._feature(obs, key)
        feature = self.config.input_features.get(key)
        if feature is None:  # the task index: (B,) or (B, 1)
            return value
        shape = tuple(feature.shape)
        image_hwc = feature.kind == "image" and tuple(value.shape[1:]) == (*shape[1:], shape[0])
        if value.dim() != len(shape) + 1 or not (tuple(value.shape[1:]) == shape or image_hwc):
            hint = " (one observation without its batch axis: pass obs[None])" if tuple(value.shape) == shape else ""
            raise ValueError(
                f"select_action: observation {key!r} has shape {tuple(value.shape)}; expected (B, "
                f"{', '.join(map(str, shape))}), a batch of one step{hint}"
            )
        return value

    @torch.inference_mode()
    def select_action(self, obs: dict[str, Any]) -> np.ndarray:
        """One control step: obs is a batch (B, *shape) per feature (numpy or torch); returns the actions to
        execute now as a numpy array (B, A) float32, ready for `env.step` (LeRobot returns a torch tensor).

        Keeps the last n_obs_steps observations (the first one repeated at an episode start) and
        re-plans a chunk whenever the n_action_steps queue is empty.
        """
        n = self.config.n_obs_steps
        for key in self.observation_keys:
            value = self._step_feature(obs, key)
            history = self._obs_history.setdefault(key, deque(maxlen=n))
            if not history:
                history.extend([value] * n)
            else:
                history.append(value)
        if not self._action_queue:
            window = {k: torch.stack(list(h), dim=1) for k, h in self._obs_history.items()}
            chunk = self.chunk_planner(window) if self.chunk_planner is not None else self.predict_chunk(window)
            start = n - 1
            for i in range(start, start + self.config.n_action_steps):
                self._action_queue.append(chunk[:, i].cpu().numpy())
        return self._action_queue.popleft()
