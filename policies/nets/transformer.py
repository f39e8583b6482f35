"""A small transformer denoiser: action tokens attend to a time token and an observation token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from .base import DenoiserNet, NetworkConfig, register_network
from .time_embedding import SinusoidalTimeEmbedding


@dataclass(frozen=True)
class TransformerConfig(NetworkConfig):
    """A pre-norm transformer over [time | observation | action] tokens (`network.type: transformer`)."""

    type: ClassVar[str] = "transformer"
    d_model: int = 256
    """Token width."""
    n_layers: int = 4
    """Encoder blocks."""
    n_heads: int = 4
    """Attention heads (d_model must divide by it)."""

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"network.d_model={self.d_model}: expected a multiple of network.n_heads={self.n_heads}")


@register_network
class TransformerDenoiserNet(DenoiserNet):
    """(x (B, T, A), time (B,), cond (B, C)) → (B, T, A); pre-norm encoder over [time | obs | actions]."""

    def __init__(
        self,
        action_dim: int,
        cond_dim: int,
        horizon: int,
        d_model: int = 256,
        n_layers: int = 4,
        n_heads: int = 4,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.time_embed = nn.Sequential(SinusoidalTimeEmbedding(d_model), nn.Linear(d_model, d_model))
        self.cond_proj = nn.Linear(cond_dim, d_model)
        self.action_proj = nn.Linear(action_dim, d_model)
        self.pos = nn.Parameter(torch.zeros(1, horizon + 2, d_model))
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, 4 * d_model, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, action_dim)
        self.horizon = horizon
        nn.init.normal_(self.pos, std=0.02)

    config_class = TransformerConfig

    @classmethod
    def build(cls, config: TransformerConfig, action_dim: int, cond_dim: int, horizon: int) -> TransformerDenoiserNet:
        return cls(action_dim, cond_dim, horizon, config.d_model, config.n_layers, config.n_heads)

    def forward(self, x: torch.Tensor, time: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.horizon:
            raise ValueError(f"horizon={x.shape[1]}: this TransformerDenoiserNet was built for {self.horizon}")
        tokens = torch.cat([self.time_embed(time)[:, None], self.cond_proj(cond)[:, None], self.action_proj(x)], dim=1)
        h = self.encoder(tokens + self.pos)
        return self.head(self.norm(h[:, 2:]))
