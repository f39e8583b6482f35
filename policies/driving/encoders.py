"""The scene encoder the driving planners share (DiffusionDrive's, also WAM-Diff's): the NAVSIM-style agent input
(envs/driving.py) → BEV feature tokens, object tokens (ego, route, agents) and a global vector; and the sampling of
raster and features at trajectory points (DiffusionDrive's spatial cross-attention)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .common import EGO_STATUS_SCALE, as_tensor

FMAP_CHANNELS = 32  # channels of the stride-4 feature map `sample_points` reads


@dataclass
class SceneConfig:
    """The agent input's sizes (envs.driving.ObservationConfig) and the encoder's width."""

    bev_channels: int = 6
    bev_size: int = 64
    bev_resolution: float = 0.75  # metres per pixel
    bev_behind: float = 12.0  # metres of raster behind the rear axle
    max_agents: int = 32
    agent_features: int = 12
    ego_dim: int = 8
    history_frames: int = 4
    route_points: int = 16
    d_model: int = 64
    n_heads: int = 4


class SceneEncoder(nn.Module):
    """BEV raster -> (B, 64, D) tokens; ego, route and agents -> (B, 2 + A, D) object tokens with a key mask;
    a global vector (B, D) from ego and route."""

    def __init__(self, c: SceneConfig):
        super().__init__()
        d = c.d_model
        self.c = c
        self.stem = nn.Sequential(
            nn.Conv2d(c.bev_channels, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU()
        )
        self.head = nn.Sequential(nn.Conv2d(32, d, 3, 2, 1), nn.ReLU(), nn.Conv2d(d, d, 1))
        cells = (c.bev_size // 8) ** 2
        self.bev_pos = nn.Parameter(torch.randn(cells, d) * 0.02)
        self.ego = nn.Sequential(nn.Linear(c.ego_dim + c.history_frames * 3, d), nn.ReLU(), nn.Linear(d, d))
        self.route = nn.Sequential(nn.Linear(c.route_points * 2, d), nn.ReLU(), nn.Linear(d, d))
        self.agent = nn.Sequential(nn.Linear(c.agent_features, d), nn.ReLU(), nn.Linear(d, d))
        self.type_emb = nn.Parameter(torch.randn(3, d) * 0.02)  # ego, route, agent
        self.register_buffer("ego_scale", torch.tensor(EGO_STATUS_SCALE[: c.ego_dim]))
        self.register_buffer("history_scale", torch.tensor([20.0, 5.0, 1.0]), persistent=False)
        scale = [50.0, 50.0, 1.0, 1.0, 10.0, 10.0, 5.0, 5.0] + [1.0] * (c.agent_features - 8)
        self.register_buffer("agent_scale", torch.tensor(scale[: c.agent_features]))

    def forward(self, obs: dict[str, Any], device) -> dict[str, torch.Tensor]:
        c = self.c
        bev = as_tensor(obs, "bev", (c.bev_channels, c.bev_size, c.bev_size), device) / 255.0
        f16 = self.stem(bev)  # (B, 32, S/4, S/4)
        feat = self.head(f16).flatten(2).transpose(1, 2) + self.bev_pos  # (B, 64, D)
        ego = as_tensor(obs, "ego_status", (c.ego_dim,), device) / self.ego_scale
        hist = as_tensor(obs, "history", (c.history_frames, 3), device) / self.history_scale
        route = as_tensor(obs, "route", (c.route_points, 2), device) / 50.0
        agents = as_tensor(obs, "agents", (c.max_agents, c.agent_features), device)
        mask = as_tensor(obs, "agents_mask", (c.max_agents,), device) > 0.5
        e = self.ego(torch.cat([ego, hist.flatten(1)], -1)) + self.type_emb[0]
        r = self.route(route.flatten(1)) + self.type_emb[1]
        a = self.agent(agents / self.agent_scale) + self.type_emb[2]
        objects = torch.cat([e[:, None], r[:, None], a], 1)
        pad = torch.cat([torch.zeros_like(mask[:, :2]), ~mask], 1)  # True = ignore
        return {
            "bev": feat, "objects": objects, "pad": pad, "global": e + r, "raster": bev, "fmap": f16,
            "agents": agents, "agents_valid": mask,  # as observed (metres, m/s), for the score head's geometry
        }  # fmt: skip

    def sample_points(self, ctx: dict[str, torch.Tensor], xy: torch.Tensor) -> torch.Tensor:
        """Spatial cross-attention's sampling step (DiffusionDrive samples BEV features at each trajectory's
        points): the raw raster and the stride-4 feature map, bilinearly at points xy (B, M, P, 2) metres in
        the ego frame, plus a flag for points inside the raster -> (B, M, P, SAMPLE_FEATURES)."""
        grid, inside = raster_grid(self.c, xy)
        outs = [
            nn.functional.grid_sample(m, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            for m in (ctx["raster"], ctx["fmap"])  # same normalised grid on both resolutions
        ]
        return torch.cat([o.permute(0, 2, 3, 1) for o in outs] + [inside], -1)


class DecoderBlock(nn.Module):
    """Pre-norm: self-attention among queries, cross-attention to BEV tokens, to object tokens, FFN."""

    def __init__(self, d: int, heads: int, mult: int):
        super().__init__()
        self.norms = nn.ModuleList([nn.LayerNorm(d) for _ in range(4)])
        self.self_attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.bev_attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.obj_attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(d, mult * d), nn.GELU(), nn.Linear(mult * d, d))

    def forward(self, q: torch.Tensor, ctx: dict[str, torch.Tensor]) -> torch.Tensor:
        h = self.norms[0](q)
        q = q + self.self_attn(h, h, h, need_weights=False)[0]
        h = self.norms[1](q)
        q = q + self.bev_attn(h, ctx["bev"], ctx["bev"], need_weights=False)[0]
        h = self.norms[2](q)
        q = q + self.obj_attn(h, ctx["objects"], ctx["objects"], key_padding_mask=ctx["pad"], need_weights=False)[0]
        return q + self.ffn(self.norms[3](q))


def raster_grid(c: SceneConfig, xy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Points xy (B, M, P, 2) in metres (ego frame) -> grid_sample's normalised grid (B, M, P, 2) on the BEV
    raster and a flag (B, M, P, 1) for points inside it."""
    grid = raster_grid_only(c, xy)
    return grid, (grid.abs() <= 1.0).all(-1, keepdim=True).float()


def raster_grid_only(c: SceneConfig, xy: torch.Tensor) -> torch.Tensor:
    """``raster_grid`` without the inside flag: (x, y) metres -> (column, row) in grid_sample's [-1, 1]."""
    extent = c.bev_size * c.bev_resolution
    # raster rows run along x (from bev_behind metres behind the ego), columns along y (centred on the ego)
    offset = xy.new_tensor([0.5 * extent, c.bev_behind])
    return (xy.flip(-1) + offset) * (2.0 / extent) - 1.0
