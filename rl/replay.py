"""A fixed-size ring replay buffer of float32 fields in numpy, sampled with torch's RNG (so an RL run's RNG state is
one torch state); a checkpoint keeps its `state()` arrays for exact resume."""

from __future__ import annotations

import numpy as np
import torch


class ReplayBuffer:
    """Fields named by `dims` (e.g. {"obs": C, "noise": D, "reward": 1, ...}), each stored (capacity, dim)."""

    def __init__(self, capacity: int, dims: dict[str, int]):
        if capacity < 1:
            raise ValueError(f"capacity={capacity}: expected ≥ 1")
        self.capacity = capacity
        self.data = {k: np.zeros((capacity, d), np.float32) for k, d in dims.items()}
        self.pos = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, **batch: np.ndarray | torch.Tensor) -> None:
        """Append a batch: every field (N, dim) (or (N,) for dim 1); all fields must be given."""
        if set(batch) != set(self.data):
            raise KeyError(f"replay add got fields {sorted(batch)}; expected {sorted(self.data)}")
        arrays = {k: np.asarray(v.cpu() if torch.is_tensor(v) else v, np.float32) for k, v in batch.items()}
        n = len(next(iter(arrays.values())))
        idx = (self.pos + np.arange(n)) % self.capacity
        for k, v in arrays.items():
            self.data[k][idx] = v.reshape(n, -1)
        self.pos = int((self.pos + n) % self.capacity)
        self.size = int(min(self.size + n, self.capacity))

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """A uniform batch with replacement: every field as a (batch_size, dim) tensor."""
        if self.size == 0:
            raise RuntimeError("replay buffer is empty")
        idx = torch.randint(self.size, (batch_size,), generator=generator).numpy()
        return {k: torch.from_numpy(v[idx]) for k, v in self.data.items()}

    def state(self) -> dict[str, np.ndarray]:
        """The stored rows and the ring's position (what a checkpoint keeps)."""
        arrays = {k: v[: self.size] for k, v in self.data.items()}
        arrays["_meta"] = np.array([self.capacity, self.pos, self.size], np.int64)
        return arrays

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Put back what `state()` returned; a ValueError when capacity or fields differ."""
        arrays = dict(arrays)
        capacity, pos, size = (int(x) for x in arrays.pop("_meta"))
        if capacity != self.capacity or set(arrays) != set(self.data):
            raise ValueError(
                f"saved replay buffer: capacity {capacity} and fields {sorted(arrays)}; "
                f"expected capacity {self.capacity} and fields {sorted(self.data)}"
            )
        for k, v in arrays.items():
            self.data[k][:size] = v
        self.pos, self.size = pos, size
