"""Windowed sampling of (observation history, action chunk) pairs with padding at episode ends,
vectorised over a batch of indices (no per-item Python), as Diffusion Policy's sequence sampler."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .episodes import EpisodeData


class WindowedDataset:
    """Each item is a window of `horizon` frames; observations are its first `n_obs_steps` frames, the
    action is the whole window. Windows may start up to n_obs_steps − 1 frames before an episode and end
    up to n_action_steps − 1 frames after it; out-of-episode frames repeat the nearest edge frame. `episodes` keeps
    the windows of those episode indices only (a training or a held-out split; the frames are shared, not copied)."""

    def __init__(
        self,
        data: EpisodeData,
        obs_keys: list[str],
        action_key: str,
        n_obs_steps: int,
        horizon: int,
        n_action_steps: int,
        episodes: Sequence[int] | None = None,
    ):
        missing = [k for k in [*obs_keys, action_key] if k not in data.arrays]
        if missing:
            raise KeyError(f"{data.source}: dataset has no feature(s) {missing}; it has {sorted(data.arrays)}")
        self.data, self.obs_keys, self.action_key = data, list(obs_keys), action_key
        self.episodes = None if episodes is None else sorted(int(e) for e in episodes)
        self.n_obs_steps, self.horizon = n_obs_steps, horizon
        pad_before, pad_after = n_obs_steps - 1, n_action_steps - 1
        starts, ep_lo, ep_hi = [], [], []
        ranges = data.episode_ranges if episodes is None else data.episode_ranges[np.asarray(episodes, dtype=np.int64)]
        for lo, hi in ranges:
            first, last = lo - pad_before, hi - horizon + pad_after
            s = np.arange(first, max(last, first) + 1)
            starts.append(s)
            ep_lo.append(np.full(len(s), lo))
            ep_hi.append(np.full(len(s), hi - 1))
        self.starts = np.concatenate(starts)
        self._lo, self._hi = np.concatenate(ep_lo), np.concatenate(ep_hi)

    def __len__(self) -> int:
        return len(self.starts)

    def frame_indices(self, items: np.ndarray) -> np.ndarray:
        """(B, horizon) global frame indices of windows `items`, clipped to their episodes."""
        offsets = np.arange(self.horizon)
        idx = self.starts[items][:, None] + offsets[None, :]
        return np.clip(idx, self._lo[items][:, None], self._hi[items][:, None])

    def get_batch(self, items: np.ndarray) -> dict[str, np.ndarray]:
        """obs keys → (B, n_obs_steps, …), action → (B, horizon, A)."""
        idx = self.frame_indices(np.asarray(items))
        batch = {k: self.data.arrays[k][idx[:, : self.n_obs_steps]] for k in self.obs_keys}
        batch[self.action_key] = self.data.arrays[self.action_key][idx]
        return batch
