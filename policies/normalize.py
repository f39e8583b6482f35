"""Per-feature normalisation whose statistics live in the model's buffers, so they travel with every
checkpoint (safetensors) and a loaded policy normalises exactly as it was trained."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn

NormMode = Literal["min_max", "mean_std", "identity"]
NORM_MODES = ("min_max", "mean_std", "identity")


class Normalizer(nn.Module):
    """`normalize(key, x)` / `unnormalize(key, x)` for features of known shape.

    min_max maps [min, max] to [−1, 1]; mean_std standardises; image statistics are per channel (C, 1, 1).
    x may carry any leading batch/time dims before the feature shape.
    """

    def __init__(self, shapes: dict[str, tuple[int, ...]], modes: dict[str, NormMode]):
        super().__init__()
        self.modes = dict(modes)
        names: dict[str, str] = {}
        for key, mode in self.modes.items():
            if mode not in NORM_MODES:
                raise ValueError(f"normalization mode for {key!r} is {mode!r}; expected one of {NORM_MODES}")
            shape = tuple(shapes[key])
            if len(shape) == 3:  # images (C, H, W): per-channel statistics, as LeRobot stores them
                shape = (shape[0], 1, 1)
            name = _buffer_name(key)
            if name in names:
                raise ValueError(f"features {names[name]!r} and {key!r} map to the same buffer name {name!r}")
            names[name] = key
            if mode == "min_max":
                self.register_buffer(f"{name}__min", -torch.ones(shape))
                self.register_buffer(f"{name}__max", torch.ones(shape))
            elif mode == "mean_std":
                self.register_buffer(f"{name}__mean", torch.zeros(shape))
                self.register_buffer(f"{name}__std", torch.ones(shape))

    def load_stats(self, stats: dict[str, dict[str, np.ndarray]]) -> None:
        """Copy dataset statistics ({key: {"min": …, "max": …, "mean": …, "std": …}}) into the buffers."""
        for key, mode in self.modes.items():
            if mode == "identity":
                continue
            needed = ("min", "max") if mode == "min_max" else ("mean", "std")
            for stat in needed:
                if key not in stats or stat not in stats[key]:
                    raise KeyError(f"normalization stats: feature {key!r} needs {stat!r} for mode {mode!r}")
                buf = getattr(self, f"{_buffer_name(key)}__{stat}")
                value = torch.as_tensor(np.asarray(stats[key][stat]), dtype=torch.float32)
                if value.numel() != buf.numel():
                    raise ValueError(
                        f"normalization stats: {key!r}/{stat} has shape {tuple(value.shape)}; "
                        f"expected {tuple(buf.shape)}"
                    )
                buf.copy_(value.reshape(buf.shape))

    def _params(self, key: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(offset, scale) with normalized = (x − offset) / scale."""
        mode = self.modes.get(key, "identity")
        name = _buffer_name(key)
        if mode == "min_max":
            lo, hi = getattr(self, f"{name}__min"), getattr(self, f"{name}__max")
            span = (hi - lo).clamp(min=1e-8)  # a constant dimension maps to −1 and back to itself
            return lo + span / 2, span / 2
        if mode == "mean_std":
            return getattr(self, f"{name}__mean"), getattr(self, f"{name}__std").clamp(min=1e-8)
        return None

    def normalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        params = self._params(key)
        return x if params is None else (x - params[0]) / params[1]

    def unnormalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        params = self._params(key)
        return x if params is None else x * params[1] + params[0]


def _buffer_name(key: str) -> str:
    return key.replace(".", "_")
