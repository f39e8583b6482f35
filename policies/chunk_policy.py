"""`ChunkPolicy`: the control-loop half shared by every action-chunk policy — observation history of
n_obs_steps, a queue of n_action_steps actions, and a pluggable `chunk_planner` (RTI). Subclasses supply
`predict_chunk(window) -> (B, horizon, A)`."""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import torch
from torch import nn


class ChunkPolicy(nn.Module):
    """Needs `self.config` with `input_features`, `n_obs_steps`, `n_action_steps` before `reset()`."""

    def __init__(self) -> None:
        super().__init__()
        # How select_action plans a chunk from an observation window; None: a full `predict_chunk`.
        self.chunk_planner = None

    def _feature(self, obs: dict[str, Any], key: str) -> torch.Tensor:
        """obs[key] as a tensor, or a KeyError naming the missing feature and the expected ones."""
        if key not in obs:
            raise KeyError(f"observation is missing feature {key!r}; expected keys {list(self.config.input_features)}")
        value = obs[key]
        return value if torch.is_tensor(value) else torch.as_tensor(np.asarray(value))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def predict_chunk(self, obs_window: dict[str, Any], **kwargs) -> torch.Tensor:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the observation history and queued actions (call at every episode start)."""
        self._obs_history: dict[str, deque] = {}
        self._action_queue: deque = deque()
        if self.chunk_planner is not None:
            self.chunk_planner.reset()

    @torch.inference_mode()
    def select_action(self, obs: dict[str, Any]) -> np.ndarray:
        """One control step: obs is a batch (B, *shape) per feature; returns actions (B, A).

        Keeps the last n_obs_steps observations (the first one repeated at an episode start) and
        re-plans a chunk whenever the n_action_steps queue is empty.
        """
        n = self.config.n_obs_steps
        for key in self.config.input_features:
            value = self._feature(obs, key)
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
