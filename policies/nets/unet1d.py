"""Diffusion Policy's conditional 1-D temporal UNet: residual conv blocks over the action horizon,
FiLM-conditioned (per-channel scale and bias) on the time embedding and the observation features."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from .base import DenoiserNet, NetworkConfig, register_network
from .time_embedding import SinusoidalTimeEmbedding


@dataclass(frozen=True)
class UNetConfig(NetworkConfig):
    """Diffusion Policy's 1-D UNet (`network.type: unet`)."""

    type: ClassVar[str] = "unet"
    down_dims: tuple[int, ...] = (256, 512, 1024)
    """Channels per level, each level halving the horizon (Diffusion Policy: 256, 512, 1024)."""
    kernel_size: int = 5
    """Temporal convolution width."""
    n_groups: int = 8
    """GroupNorm groups."""
    time_embed_dim: int = 128
    """Width of the diffusion-time embedding fed to FiLM."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "down_dims", tuple(int(d) for d in self.down_dims))
        if not self.down_dims:
            raise ValueError("network.down_dims=[]: expected at least one level, e.g. [256, 512, 1024]")

    def check(self, horizon: int) -> None:
        if horizon % 2 ** (len(self.down_dims) - 1):
            raise ValueError(
                f"horizon={horizon}: the UNet with network.down_dims={list(self.down_dims)} needs a multiple of "
                f"{2 ** (len(self.down_dims) - 1)}"
            )


class Conv1dBlock(nn.Sequential):
    """Conv1d → GroupNorm → Mish, length-preserving."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, n_groups: int):
        super().__init__(
            nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2),
            nn.GroupNorm(n_groups, c_out),
            nn.Mish(),
        )


class FiLMResidualBlock1D(nn.Module):
    """Two conv blocks; between them the features are scaled and shifted by a projection of `cond`."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int, kernel_size: int, n_groups: int):
        super().__init__()
        self.block1 = Conv1dBlock(c_in, c_out, kernel_size, n_groups)
        self.block2 = Conv1dBlock(c_out, c_out, kernel_size, n_groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * c_out))
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.block1(x)
        scale, bias = self.film(cond).unsqueeze(-1).chunk(2, dim=1)
        h = self.block2(scale * h + bias)
        return h + self.skip(x)


@register_network
class ConditionalUnet1D(DenoiserNet):
    """(x (B, T, A), time (B,), cond (B, C)) → (B, T, A). T must be divisible by 2^(len(down_dims)−1)."""

    def __init__(
        self,
        action_dim: int,
        cond_dim: int,
        down_dims: tuple[int, ...] = (256, 512, 1024),
        kernel_size: int = 5,
        n_groups: int = 8,
        time_embed_dim: int = 128,
    ):
        super().__init__()
        self.time_encoder = nn.Sequential(
            SinusoidalTimeEmbedding(time_embed_dim),
            nn.Linear(time_embed_dim, 4 * time_embed_dim),
            nn.Mish(),
            nn.Linear(4 * time_embed_dim, time_embed_dim),
        )
        film_dim = time_embed_dim + cond_dim
        dims = [action_dim, *down_dims]
        levels = list(itertools.pairwise(dims))

        def block(c_in: int, c_out: int) -> FiLMResidualBlock1D:
            return FiLMResidualBlock1D(c_in, c_out, film_dim, kernel_size, n_groups)

        self.down = nn.ModuleList()
        for i, (c_in, c_out) in enumerate(levels):
            last = i == len(levels) - 1
            resample = nn.Identity() if last else nn.Conv1d(c_out, c_out, 3, stride=2, padding=1)
            self.down.append(nn.ModuleList([block(c_in, c_out), block(c_out, c_out), resample]))
        mid = down_dims[-1]
        self.mid = nn.ModuleList([block(mid, mid), block(mid, mid)])
        self.up = nn.ModuleList()
        # Each up level consumes the skip of the matching down level and doubles the length back;
        # the first level's skip is not used, as in Diffusion Policy.
        for c_in, c_out in reversed(levels[1:]):
            upsample = nn.ConvTranspose1d(c_in, c_in, 4, stride=2, padding=1)
            self.up.append(nn.ModuleList([block(2 * c_out, c_in), block(c_in, c_in), upsample]))
        self.head = nn.Sequential(
            Conv1dBlock(down_dims[0], down_dims[0], kernel_size, n_groups), nn.Conv1d(down_dims[0], action_dim, 1)
        )
        self.downsample_factor = 2 ** (len(down_dims) - 1)

    config_class = UNetConfig

    @classmethod
    def build(cls, config: UNetConfig, action_dim: int, cond_dim: int, horizon: int) -> ConditionalUnet1D:
        return cls(action_dim, cond_dim, config.down_dims, config.kernel_size, config.n_groups, config.time_embed_dim)

    def forward(self, x: torch.Tensor, time: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if x.shape[1] % self.downsample_factor:
            raise ValueError(f"horizon={x.shape[1]}: ConditionalUnet1D needs a multiple of {self.downsample_factor}")
        film = torch.cat([self.time_encoder(time), cond], dim=-1)
        h = x.transpose(1, 2)
        skips = []
        for block_a, block_b, downsample in self.down:
            h = block_b(block_a(h, film), film)
            skips.append(h)
            h = downsample(h)
        for block in self.mid:
            h = block(h, film)
        for block_a, block_b, upsample in self.up:
            h = torch.cat([h, skips.pop()], dim=1)
            h = upsample(block_b(block_a(h, film), film))
        return self.head(h).transpose(1, 2)
