"""Ego-status MLP planner (NAVSIM's ego-MLP baseline): velocity, acceleration and driving command in,
an 8-pose trajectory (x, y, heading at 0.5 .. 4 s, ego frame) out. Trained by BC with an L1 loss.

Works on observation dicts (the NAVSIM-style agent input: ``ego_status`` (B, 8) = vx, vy, ax, ay, command
one-hot); knows nothing of the simulator or the env.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checkpoint import DictConfig
from ..registry import register_policy
from .common import EGO_STATUS_SCALE, POSES, DrivingPolicy, TrajectoryScale, as_tensor


@dataclass
class EgoMLPConfig(DictConfig):
    ego_dim: int = 8
    hidden: int = 256
    layers: int = 2
    poses: int = POSES


@register_policy
class EgoMLPPolicy(DrivingPolicy):
    type_name = "ego_mlp"
    config_class = EgoMLPConfig

    def __init__(self, config: EgoMLPConfig | None = None):
        super().__init__()
        self.config = config = config or EgoMLPConfig()
        dims = [config.ego_dim] + [config.hidden] * config.layers
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(dims):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(dims[-1], config.poses * 3))
        self.mlp = nn.Sequential(*layers)
        self.register_buffer("ego_scale", torch.tensor(EGO_STATUS_SCALE[: config.ego_dim]))
        self.traj_scale = TrajectoryScale(config.poses)

    def set_normalization(self, data: dict[str, np.ndarray]) -> None:
        self.traj_scale.fit(data["trajectory"])

    def forward_normalized(self, obs: dict[str, Any]) -> torch.Tensor:
        ego = as_tensor(obs, "ego_status", (self.config.ego_dim,), self.device) / self.ego_scale
        return self.mlp(ego).view(-1, self.config.poses, 3)

    def compute_loss(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> torch.Tensor:
        target = self.traj_scale.normalize(as_tensor(batch, "trajectory", (self.config.poses, 3), self.device))
        return nn.functional.l1_loss(self.forward_normalized(batch), target)

    @torch.no_grad()
    def plan(self, obs_batch: dict[str, Any]) -> np.ndarray:
        """(B, 8, 3) trajectories in metres / radians."""
        return self.traj_scale.unnormalize(self.forward_normalized(obs_batch)).cpu().numpy()
