"""`EpisodeData`: every frame of a dataset in memory as flat arrays plus episode boundaries — the one
shape the trainer consumes, whichever on-disk format (LeRobot v3, zarr replay buffer) it came from."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class DatasetFormatError(ValueError):
    """A dataset on disk does not have the layout or values its format promises."""


@dataclass
class EpisodeData:
    """arrays: feature → (N, *shape) over all frames; episode_ranges (E, 2) of [start, end) frame indices."""

    arrays: dict[str, np.ndarray]
    episode_ranges: np.ndarray
    fps: float
    source: str = ""
    tasks: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.episode_ranges = np.asarray(self.episode_ranges, dtype=np.int64).reshape(-1, 2)
        n = int(self.episode_ranges[-1, 1]) if len(self.episode_ranges) else 0
        for key, arr in self.arrays.items():
            if len(arr) != n:
                raise DatasetFormatError(f"{self.source}: feature {key!r} has {len(arr)} frames; expected {n}")
        lengths = self.episode_ranges[:, 1] - self.episode_ranges[:, 0]
        if (lengths <= 0).any() or (self.episode_ranges[1:, 0] != self.episode_ranges[:-1, 1]).any():
            raise DatasetFormatError(f"{self.source}: episode ranges are not contiguous and non-empty")

    @property
    def num_frames(self) -> int:
        return int(self.episode_ranges[-1, 1]) if len(self.episode_ranges) else 0

    @property
    def num_episodes(self) -> int:
        return len(self.episode_ranges)

    def check_finite(self, keys: list[str]) -> None:
        """Raise on NaN/inf in numeric features (a corrupt action would silently poison training)."""
        for key in keys:
            arr = self.arrays[key]
            if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
                bad = int(np.argwhere(~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1))[0, 0])
                raise DatasetFormatError(
                    f"{self.source}: feature {key!r} has a non-finite value at frame {bad}; expected finite numbers"
                )
