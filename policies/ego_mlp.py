"""Ego-status MLP planner (NAVSIM's ego-MLP baseline): velocity, acceleration and driving command in,
an 8-pose trajectory (x, y, heading at 0.5 .. 4 s, ego frame) out. Trained by BC with an L1 loss.

Works on observation dicts (the NAVSIM-style agent input: ``ego_status`` (B, 7) = vx, vy, ax, ay, command
one-hot); knows nothing of the simulator or the env. Also holds ``fit``: the small BC loop shared by the
driving policies (anything with ``compute_loss(batch)``), and ``TrajectoryScale``, the per-pose normalisation
of trajectories that travels with a checkpoint.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    DictConfig,
    atomic_save_tensors,
    atomic_write_json,
    load_pretrained_module,
)

POSES = 8
EGO_STATUS_SCALE = (10.0, 2.0, 3.0, 3.0, 1.0, 1.0, 1.0)  # vx, vy, ax, ay, command one-hot


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


@dataclass
class EgoMLPConfig(DictConfig):
    ego_dim: int = 7
    hidden: int = 256
    layers: int = 2
    poses: int = POSES


class EgoMLPPolicy(nn.Module):
    type_name = "ego_mlp"

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

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

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

    def save_pretrained(self, directory: str | Path) -> None:
        directory = Path(directory)
        atomic_save_tensors(directory / WEIGHTS_FILE, self.state_dict())
        atomic_write_json(directory / CONFIG_FILE, {"type": self.type_name, "config": self.config.to_dict()})

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str = "cpu") -> EgoMLPPolicy:
        return load_driving_policy(cls, EgoMLPConfig, directory, map_location)


def load_driving_policy(cls, config_cls, directory: str | Path, map_location: str = "cpu"):
    """Shared from_pretrained of the driving planners (type-checked, strict weights)."""
    return load_pretrained_module(cls, config_cls.from_dict, directory, map_location)


def fit(
    policy: nn.Module,
    data: dict[str, np.ndarray],
    steps: int = 1000,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
    time_budget_s: float | None = None,
    log_every: int = 0,
) -> dict:
    """BC on a demonstration dict (arrays with a leading scene axis; ``trajectory`` is the target): AdamW with a
    cosine learning-rate decay over the run's progress (the larger of steps done / `steps` and seconds spent /
    `time_budget_s`), random minibatches. Stops after `steps` or `time_budget_s`. Returns a log."""
    keys = [k for k, v in data.items() if isinstance(v, np.ndarray) and v.dtype.kind in "fiub"]
    tensors = {k: torch.as_tensor(data[k]) for k in keys}
    n = len(tensors["trajectory"])
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(policy.parameters(), lr=lr, weight_decay=weight_decay)
    policy.train()
    losses, t0, step = [], time.perf_counter(), 0
    for step in range(1, steps + 1):
        done = (step - 1) / steps
        if time_budget_s:
            done = max(done, (time.perf_counter() - t0) / time_budget_s)
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * min(done, 1.0)))
        idx = torch.randint(0, n, (batch_size,), generator=gen)
        batch = {k: v[idx] for k, v in tensors.items()}
        loss = policy.compute_loss(batch, generator=gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if log_every and step % log_every == 0:
            print(f"step {step} loss {np.mean(losses[-log_every:]):.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
        if time_budget_s is not None and time.perf_counter() - t0 > time_budget_s:
            break
    policy.eval()
    return {"steps": step, "seconds": time.perf_counter() - t0, "final_loss": float(np.mean(losses[-50:]))}
