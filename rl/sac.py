"""Soft actor-critic pieces, CleanRL-style: an MLP, a tanh-squashed Gaussian actor scaled to [−m, m]
(DSRL's bounded noise w = m·tanh(u)), twin Q critics with Polyak-averaged targets, and the three losses."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


def mlp(in_dim: int, hidden: list[int], out_dim: int, layer_norm: bool = False) -> nn.Sequential:
    """Linear (→ LayerNorm) → ReLU for each hidden width, then a linear output: (B, in_dim) → (B, out_dim).
    LayerNorm keeps critics stable at high update-to-data ratios."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), *([nn.LayerNorm(width)] if layer_norm else []), nn.ReLU()]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class SquashedGaussianActor(nn.Module):
    """obs (B, O) → action m·tanh(u), u ~ N(μ(obs), σ(obs)), with its log-probability (B,). `fixed_std` σ > 0
    keeps σ constant (only μ is learned): the law stays as broad as it starts, however the critic pulls."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: list[int],
        scale: float,
        layer_norm: bool = False,
        fixed_std: float | None = None,
    ):
        super().__init__()
        if scale <= 0:
            raise ValueError(f"noise scale m={scale}: expected > 0")
        self.net = mlp(obs_dim, hidden, 2 * act_dim, layer_norm)
        self.scale, self.fixed_std = scale, fixed_std

    def forward(self, obs: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised sample (B, A) and its log-probability (B,)."""
        mean, log_std = self._dist(obs)
        std = log_std.exp()
        u = mean + std * torch.randn(mean.shape, generator=generator)
        log_prob = (-0.5 * ((u - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        # change of variables for w = m·tanh(u): log|dw/du| = log m + log(1 − tanh²u)
        log_prob = log_prob - (math.log(self.scale) + 2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)
        return self.scale * torch.tanh(u), log_prob

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic action m·tanh(μ(obs)) (B, A), used for evaluation."""
        return self.scale * torch.tanh(self._dist(obs)[0])

    def _dist(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.net(obs).chunk(2, dim=-1)
        if self.fixed_std is not None:
            return mean, torch.full_like(mean, math.log(self.fixed_std))
        # starts near log σ = 0, so the first policy's noise m·tanh(u), u ~ N(≈0, 1), is as broad as the base's
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)


class TwinQ(nn.Module):
    """Two Q networks: (obs (B, O), action (B, A)) → (q1 (B,), q2 (B,))."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int], layer_norm: bool = False):
        super().__init__()
        self.q1 = mlp(obs_dim + act_dim, hidden, 1, layer_norm)
        self.q2 = mlp(obs_dim + act_dim, hidden, 1, layer_norm)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([obs, action], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)

    def min(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return torch.minimum(*self(obs, action))


@torch.no_grad()
def polyak(target: nn.Module, source: nn.Module, tau: float) -> None:
    """target ← (1 − τ)·target + τ·source, parameter by parameter."""
    for t, s in zip(target.parameters(), source.parameters()):
        t.lerp_(s, tau)


def td_loss(critic: TwinQ, obs, action, target_q: torch.Tensor) -> torch.Tensor:
    """Both heads regress onto the (no-grad) target (B,)."""
    q1, q2 = critic(obs, action)
    return F.mse_loss(q1, target_q) + F.mse_loss(q2, target_q)


def actor_loss(critic: TwinQ, obs, action, log_prob, alpha: torch.Tensor) -> torch.Tensor:
    """E[α·log π(a|s) − min Q(s, a)] with a reparameterised a."""
    return (alpha * log_prob - critic.min(obs, action)).mean()


def alpha_loss(log_alpha: torch.Tensor, log_prob: torch.Tensor, target_entropy: float) -> torch.Tensor:
    """Automatic temperature: pushes the entropy −E[log π] towards `target_entropy`."""
    return -(log_alpha.exp() * (log_prob.detach() + target_entropy)).mean()
