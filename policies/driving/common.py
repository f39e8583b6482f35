"""What the driving planners share: the trajectory layout (8 poses of x, y, heading at 0.5 … 4 s), the agent input's
ego-status scale, per-pose trajectory normalisation that travels with a checkpoint, shape-checked observation
tensors, and the base class that gives every planner the same checkpoint format and BC entry point."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..checkpoint import PretrainedPolicy

POSES = 8  # poses per trajectory, every 0.5 s up to 4 s (NAVSIM)
EGO_STATUS_SCALE = (10.0, 2.0, 3.0, 3.0, 1.0, 1.0, 1.0, 1.0)  # vx, vy, ax, ay, command one-hot (4)


def as_tensor(obs: dict[str, Any], key: str, shape_tail: tuple[int, ...], device) -> torch.Tensor:
    """obs[key] as a float tensor (B, *shape_tail); ValueError naming the key on a wrong shape."""
    if key not in obs:
        raise ValueError(f"observation is missing {key!r}; have {sorted(obs)}")
    x = torch.as_tensor(np.asarray(obs[key]) if not torch.is_tensor(obs[key]) else obs[key])
    if x.dim() != 1 + len(shape_tail) or tuple(x.shape[1:]) != shape_tail:
        want = ", ".join(map(str, shape_tail))
        raise ValueError(f"observation {key!r} has shape {tuple(x.shape)}; expected (B, {want})")
    return x.to(device=device, dtype=torch.float32)


class TrajectoryScale(nn.Module):
    """Per-(pose, channel) scale so that training trajectories lie in [-1, 1]: x_n = x / scale."""

    def __init__(self, poses: int = POSES):
        super().__init__()
        self.register_buffer("scale", torch.ones(poses, 3))

    def fit(self, trajectories: np.ndarray, floor: tuple[float, float, float] = (1.0, 0.5, 0.05)) -> None:
        t = np.asarray(trajectories, dtype=np.float64)
        s = np.maximum(np.abs(t).max(0), np.asarray(floor))
        self.scale.copy_(torch.as_tensor(s, dtype=torch.float32))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return x / self.scale

    def unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class DrivingPolicy(PretrainedPolicy):
    """Base of the driving planners: `plan(obs_batch) -> (B, 8, 3)`, `compute_loss(batch)` for behaviour cloning
    (forward is the loss, as the BC trainer calls it), `set_normalization(demonstrations)` before training, and
    config.json + model.safetensors checkpoints of `type_name`."""

    def set_normalization(self, data: dict[str, np.ndarray]) -> None:
        """Fit what the planner normalises by to the training demonstrations (`trajectory` (N, 8, 3), …)."""
