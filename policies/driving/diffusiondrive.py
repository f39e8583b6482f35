"""DiffusionDrive (Liao et al., CVPR 2025) on the NAVSIM-style agent input, and the vanilla diffusion
trajectory policy it is compared with. Works on observation dicts; knows nothing of the simulator or envs.

Input keys (B leading): ego_status (8), history (4, 3), bev (C, S, S) uint8, agents (A, 12), agents_mask (A,),
route (R, 2) - see diffpilot.envs.driving. Output of ``plan``: (B, 8, 3) x, y, heading at 0.5 .. 4 s.

Scene encoder (both variants): a small strided CNN turns the BEV raster into 8 x 8 feature tokens; agents,
the ego (status + 4-frame history) and the route ahead become object tokens (masked where absent). As in
DiffusionDrive's spatial cross-attention, every trajectory query also reads the scene at its own points: the
raw raster and the CNN's stride-4 feature map are sampled bilinearly at each pose (``sample_points``).

variant "anchored" (DiffusionDrive, docs/methods.md):
- 20 anchors from k-means over the training trajectories (``kmeans_anchors``), stored with the weights.
- Truncated diffusion around the anchors on a 1000-level schedule, in an anchor-relative space: a trajectory
  near anchor k is y = (trajectory - anchor_k) / offset_scale, where offset_scale (per pose and channel) is the
  RMS distance of the training trajectories to their nearest anchor; the anchor itself is y = 0. Training
  noises every anchor to a level t < 50 (y_t = sigma_t * eps) and the decoder maps each noisy anchor to the
  expert trajectory's y (x0 prediction); inference starts from the anchors noised to level 8 and runs DDIM
  over levels [10, 0] (2 denoiser calls). (Diffusing in the anchor-relative space keeps the truncated noise at
  the scale of the anchors' spread - decimetres - rather than of the whole trajectory range.)
- Cascade decoder: 2 layers, each anchor query attends to the other anchors, the BEV tokens and the object
  tokens, and outputs a refined trajectory (the next layer's input) and a confidence logit.
- Loss: 10 x sigmoid focal loss on the confidences (positive = the anchor nearest the expert trajectory) +
  8 x L1 between the positive anchor's prediction and the expert trajectory, summed over the cascade layers.
- ``plan`` returns the trajectory of the most confident anchor; ``plan_details`` all of them.
- Optional score head (``score_head_hidden`` > 0; not in the paper — the scorer distillation of Hydra-MDP):
  an MLP on each anchor query's final features, its trajectory and simple geometry from the agent input
  (``proposal_geometry``) that predicts the sub-scores (NC, DAC, EP, TTC, C) its trajectory will get, combined
  into a predicted PDM score. It is fitted after BC (``fit_score_head``) on the policy's own proposals scored
  by the simulator on training scenes, and then replaces the focal-loss confidence when choosing the trajectory.

variant "vanilla": DDPM-trained epsilon prediction of one trajectory from pure noise (in the per-pose
normalised trajectory space), 8 pose tokens attending to the same scene tokens and reading the raster at their
own noisy positions, sampled with DDIM over 20 levels of the same 1000-level schedule.

The denoisers are driven through the sampler seam (``policies.samplers.DDIMSampler``): the sampler sees a
``Denoiser`` whose ``predict(x_t, t, cond, kind)`` answers for a trajectory set x_t (B, K * 8, 3); the scene
tokens the decoder attends to are bound to that denoiser for the call (``_SceneDenoiser``), ``cond`` carries the
global (ego + route) vector.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checkpoint import DictConfig
from ..nets.time_embedding import SinusoidalTimeEmbedding
from ..registry import register_policy
from ..samplers import DDIMSampler, DiffusionSchedule
from ..samplers.parameterization import convert_prediction
from .common import POSES, DrivingPolicy, TrajectoryScale, as_tensor
from .encoders import FMAP_CHANNELS, DecoderBlock, SceneConfig, SceneEncoder, raster_grid_only

VARIANTS = ("anchored", "vanilla")


@dataclass
class DiffusionDriveConfig(SceneConfig, DictConfig):
    """The scene encoder's sizes (SceneConfig) and DiffusionDrive's own settings."""

    variant: str = "anchored"
    decoder_layers: int = 2
    ffn_mult: int = 2
    num_anchors: int = 20
    num_train_steps: int = 1000
    beta_schedule: str = "linear"
    trunc_train_level: int = 50  # training noise levels t in [0, trunc_train_level)
    trunc_start_level: int = 8  # inference: anchors noised to this level ...
    inference_timesteps: list[int] = field(default_factory=lambda: [10, 0])  # ... then DDIM over these
    vanilla_steps: int = 20
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    cls_weight: float = 10.0
    reg_weight: float = 8.0
    score_head_hidden: int = 0  # > 0: an MLP predicting each proposal's PDM score chooses the trajectory
    seed: int = 0  # inference noise seed (plans are deterministic per batch)

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant={self.variant!r}: expected one of {VARIANTS}")
        if not 0 < self.trunc_train_level <= self.num_train_steps:
            raise ValueError(f"trunc_train_level={self.trunc_train_level}: expected 1 .. num_train_steps")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if self.bev_size % 8:
            raise ValueError(f"bev_size={self.bev_size}: expected a multiple of 8 (three stride-2 convolutions)")


def kmeans_anchors(trajectories: np.ndarray, k: int = 20, iters: int = 50, seed: int = 0) -> np.ndarray:
    """(k, 8, 3) anchors: k-means (k-means++ start) on the flattened x, y of (N, 8, 3) trajectories; each
    anchor's heading is the mean heading of its members."""
    t = np.asarray(trajectories, dtype=np.float64)
    if len(t) < k:
        raise ValueError(f"kmeans_anchors: {len(t)} trajectories for {k} anchors")
    x = t[..., :2].reshape(len(t), -1)
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d2 = ((x[:, None] - np.array(centres)[None]) ** 2).sum(-1).min(1)
        centres.append(x[rng.choice(len(x), p=d2 / d2.sum())] if d2.sum() > 0 else x[rng.integers(len(x))])
    c = np.array(centres)
    for _ in range(iters):
        lab = ((x[:, None] - c[None]) ** 2).sum(-1).argmin(1)
        new = np.array([x[lab == j].mean(0) if (lab == j).any() else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    lab = ((x[:, None] - c[None]) ** 2).sum(-1).argmin(1)
    head = np.array([t[lab == j, :, 2].mean(0) if (lab == j).any() else np.zeros(t.shape[1]) for j in range(k)])
    return np.concatenate([c.reshape(k, -1, 2), head[..., None]], -1)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """Sigmoid focal loss (Lin et al.), summed over anchors and averaged over the batch."""
    p = logits.sigmoid()
    ce = nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    a_t = alpha * target + (1 - alpha) * (1 - target)
    return (a_t * (1 - p_t) ** gamma * ce).sum(-1).mean()


class CascadeDecoder(nn.Module):
    """Anchored: K trajectory queries; each layer refines every trajectory and scores it (DiffusionDrive)."""

    def __init__(self, c: DiffusionDriveConfig):
        super().__init__()
        d = c.d_model
        self.d = d
        self.embed = nn.ModuleList(
            [nn.Sequential(nn.Linear(POSES * 3, d), nn.ReLU(), nn.Linear(d, d)) for _ in range(c.decoder_layers)]
        )
        sampled = POSES * (c.bev_channels + FMAP_CHANNELS + 1)
        self.spatial = nn.ModuleList(
            [nn.Sequential(nn.Linear(sampled, d), nn.ReLU(), nn.Linear(d, d)) for _ in range(c.decoder_layers)]
        )
        self.time = nn.Sequential(SinusoidalTimeEmbedding(d), nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.blocks = nn.ModuleList([DecoderBlock(d, c.n_heads, c.ffn_mult) for _ in range(c.decoder_layers)])
        self.reg = nn.ModuleList([nn.Linear(d, POSES * 3) for _ in range(c.decoder_layers)])
        self.cls = nn.ModuleList([nn.Linear(d, 1) for _ in range(c.decoder_layers)])

    def forward(
        self, y_t: torch.Tensor, t: torch.Tensor, ctx: dict, space: tuple, encoder: SceneEncoder, all_layers=True
    ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """y_t (B, K, 8, 3) noisy anchor-relative trajectories -> per layer (y0 (B, K, 8, 3), logits (B, K),
        query features (B, K, d)); with all_layers=False only the last layer's (what sampling reads: the
        earlier layers' confidences are training targets only, so they are not computed).
        space = (base (K, 8, 3): the anchors and ratio (8, 3): offset_scale, both in the policy's normalised
        units, scale (8, 3): those units in metres / radians); each layer embeds the trajectory it refines
        (base + y * ratio) and the scene sampled at its points. Layer 1 predicts y0, later layers refine it."""
        b, k = y_t.shape[:2]
        base, ratio, scale = space
        cond = (self.time(t) + ctx["global"])[:, None]  # (B, 1, d)
        y, q, outs = y_t, None, []
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            traj = base + y * ratio
            at_points = encoder.sample_points(ctx, (traj * scale)[..., :2])  # (B, K, 8, F)
            e = self.embed[i](traj.flatten(2)) + self.spatial[i](at_points.flatten(2)) + cond
            q = e if q is None else q + e
            q = block(q, ctx)
            delta = self.reg[i](q).view(b, k, POSES, 3)
            y = delta if i == 0 else y + delta
            if all_layers or i == last:
                outs.append((y, self.cls[i](q).squeeze(-1), q))
        return outs


SCORE_TERMS = ("nc", "dac", "ep_v1", "ttc", "c")  # the PDM score (v1.1) terms the score head predicts
PDMS_WEIGHTS = torch.tensor([5.0, 5.0, 2.0]) / 12  # of EP, TTC and C in the PDM score
GEOMETRY_FEATURES = 3 * POSES  # per pose: clearance to the agents' constant-velocity forecast, drivable, red light
# The ego box (a Chrysler Pacifica, as the simulator's): rear axle -> centre, and the radius of its bounding circle.
HORIZON_TIMES = 0.5 * torch.arange(1, POSES + 1, dtype=torch.float32)  # (8,) seconds of the trajectory's poses
EGO_AXLE_TO_CENTER, EGO_RADIUS = 1.461, 0.5 * float(np.hypot(5.176, 2.297))


def proposal_geometry(
    obs: dict[str, Any], trajectories: torch.Tensor, c: DiffusionDriveConfig, ctx: dict | None = None
) -> torch.Tensor:
    """What the score head reads besides the queries, from the agent input alone (no simulator): for each
    proposal (B, K, 8, 3) in metres, per pose the clearance (m, bounding circles) to every agent moved at its
    current velocity, and the drivable-area and red-light-region raster values under the pose -> (B, K, 24).
    `ctx`: the SceneEncoder's output for `obs`, whose tensors are reused instead of converting `obs` again."""
    dev = trajectories.device
    if ctx is None:
        agents = as_tensor(obs, "agents", (c.max_agents, c.agent_features), dev)
        mask = as_tensor(obs, "agents_mask", (c.max_agents,), dev) > 0.5
        raster = as_tensor(obs, "bev", (c.bev_channels, c.bev_size, c.bev_size), dev) / 255.0
    else:
        agents, mask, raster = ctx["agents"], ctx["agents_valid"], ctx["raster"]
    tau = HORIZON_TIMES.to(dev)[:, None]  # (8, 1) seconds
    future = agents[:, :, None, :2] + agents[:, :, None, 4:6] * tau  # (B, A, 8, 2)
    radius = 0.5 * torch.hypot(agents[..., 6], agents[..., 7]) + EGO_RADIUS  # (B, A)
    h = trajectories[..., 2]
    centre = trajectories[..., :2] + EGO_AXLE_TO_CENTER * torch.stack([h.cos(), h.sin()], -1)  # (B, K, 8, 2)
    dist = (centre[:, :, None] - future[:, None]).square().sum(-1).sqrt()  # (B, K, A, 8)
    gap = dist - torch.where(mask, radius, -1e4)[:, None, :, None]
    gap = gap.amin(2).clamp(-5.0, 20.0) / 10.0  # (B, K, 8); absent agents sit 10 km away, past the clamp
    grid = raster_grid_only(c, trajectories[..., :2])
    under = nn.functional.grid_sample(raster[:, [0, 5]], grid, padding_mode="zeros", align_corners=False)  # bilinear
    return torch.cat([gap, under[:, 0], under[:, 1]], -1)


class ScoreHead(nn.Module):
    """Each anchor query's final features (B, K, d), its trajectory (B, K, 8, 3) in normalised units and its
    geometry (B, K, 24: ``proposal_geometry``) -> logits (B, K, 5) of the sub-scores SCORE_TERMS its trajectory
    is predicted to get (each in [0, 1])."""

    def __init__(self, d: int, hidden: int):
        super().__init__()
        width = d + POSES * 3 + GEOMETRY_FEATURES
        self.net = nn.Sequential(
            nn.LayerNorm(width), nn.Linear(width, hidden), nn.GELU(),
            nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, len(SCORE_TERMS)),
        )  # fmt: skip

    def forward(self, q: torch.Tensor, traj: torch.Tensor, geometry: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([q, traj.flatten(2), geometry], -1))

    @staticmethod
    def pdm_score(logits: torch.Tensor) -> torch.Tensor:
        """(…, 5) sub-score logits -> (…) predicted PDMS = NC · DAC · (5 EP + 5 TTC + 2 C) / 12."""
        s = logits.sigmoid()
        return s[..., 0] * s[..., 1] * (s[..., 2:] @ PDMS_WEIGHTS.to(s))  # NC · DAC · (5 EP + 5 TTC + 2 C) / 12


class PoseDecoder(nn.Module):
    """Vanilla: 8 pose tokens of one noisy trajectory -> epsilon (B, 8, 3)."""

    def __init__(self, c: DiffusionDriveConfig):
        super().__init__()
        d = c.d_model
        self.d = d
        self.inp = nn.Linear(3, d)
        self.spatial = nn.Sequential(nn.Linear(c.bev_channels + FMAP_CHANNELS + 1, d), nn.ReLU(), nn.Linear(d, d))
        self.pos = nn.Parameter(torch.randn(POSES, d) * 0.02)
        self.time = nn.Sequential(SinusoidalTimeEmbedding(d), nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.blocks = nn.ModuleList([DecoderBlock(d, c.n_heads, c.ffn_mult) for _ in range(c.decoder_layers)])
        self.out = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 3))

    def forward(
        self, x_t: torch.Tensor, t: torch.Tensor, ctx: dict, scale: torch.Tensor, encoder: SceneEncoder
    ) -> torch.Tensor:
        """x_t (B, 8, 3) in normalised units (times `scale` = metres / radians) -> epsilon; each pose token also
        sees the scene sampled where that (noisy) pose is."""
        at_points = encoder.sample_points(ctx, (x_t * scale)[:, None, :, :2])[:, 0]  # (B, 8, F)
        q = self.inp(x_t) + self.spatial(at_points) + self.pos
        q = q + (self.time(t) + ctx["global"])[:, None]
        for block in self.blocks:
            q = block(q, ctx)
        return self.out(q)


class _SceneDenoiser:
    """The sampler's view of a decoder: x_t (B, K * 8, 3) at level t (B,) -> prediction of `kind`; the scene
    tokens are bound at construction. Keeps the last confidence logits (anchored) for ``plan``."""

    def __init__(self, policy: DiffusionDrivePolicy, ctx: dict[str, torch.Tensor]):
        self.policy, self.ctx, self.last_logits, self.last_features = policy, ctx, None, None
        self.anchored = policy.config.variant == "anchored"
        self.native_kind = "sample" if self.anchored else "epsilon"  # what the decoder outputs
        self.space = policy.anchor_space() if self.anchored else policy.traj_scale.scale  # fixed for the scene

    def predict(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, kind) -> torch.Tensor:
        p = self.policy
        if self.anchored:
            b = x_t.shape[0]
            x0, logits, q = p.decoder(x_t.view(b, -1, POSES, 3), t, self.ctx, self.space, p.encoder, False)[0]
            self.last_logits, self.last_features = logits, q
            out = x0.reshape(x_t.shape)
        else:
            out = p.decoder(x_t, t, self.ctx, self.space, p.encoder)
        if kind == self.native_kind:
            return out
        alpha, sigma = p.schedule.alpha_sigma(t.to(x_t.device))
        return convert_prediction(out, self.native_kind, kind, x_t, alpha, sigma)


@register_policy
class DiffusionDrivePolicy(DrivingPolicy):
    type_name = "diffusiondrive"
    config_class = DiffusionDriveConfig

    def __init__(self, config: DiffusionDriveConfig | None = None):
        super().__init__()
        self.config = c = config or DiffusionDriveConfig()
        self.encoder = SceneEncoder(c)
        self.decoder = CascadeDecoder(c) if c.variant == "anchored" else PoseDecoder(c)
        if c.score_head_hidden and c.variant != "anchored":
            raise ValueError(f"score_head_hidden={c.score_head_hidden}: the score head needs variant='anchored'")
        self.score_head = ScoreHead(c.d_model, c.score_head_hidden) if c.score_head_hidden else None
        self.traj_scale = TrajectoryScale(POSES)
        self.register_buffer("anchors", torch.zeros(c.num_anchors, POSES, 3))  # metres / radians
        self.register_buffer("offset_scale", torch.ones(POSES, 3))  # anchor-relative units (metres / radians)
        self.schedule = DiffusionSchedule(c.num_train_steps, c.beta_schedule)
        clip = None if c.variant == "anchored" else 1.0
        self.sampler = DDIMSampler(self.schedule, num_inference_steps=c.vanilla_steps, eta=0.0, clip_sample=clip)
        # anchored inference starts from the anchors noised to trunc_start_level: that level's noise scale
        self._start_sigma = float(1.0 - self.schedule.alphas_cumprod[c.trunc_start_level]) ** 0.5

    def set_normalization(self, data: dict[str, np.ndarray]) -> None:
        """Trajectory scale and (anchored) the k-means anchors from the training demonstrations."""
        self.traj_scale.fit(data["trajectory"])
        if self.config.variant == "anchored":
            traj = np.asarray(data["trajectory"], dtype=np.float64)
            anchors = kmeans_anchors(traj, self.config.num_anchors, seed=self.config.seed)
            nearest = np.linalg.norm(traj[:, None, :, :2] - anchors[None, :, :, :2], axis=-1).mean(-1).argmin(1)
            rms = np.sqrt(((traj - anchors[nearest]) ** 2).mean(0))
            self.anchors.copy_(torch.as_tensor(anchors, dtype=torch.float32))
            self.offset_scale.copy_(torch.as_tensor(np.maximum(rms, [0.1, 0.1, 0.01]), dtype=torch.float32))

    def anchor_space(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(anchors, offset_scale) in the policy's normalised trajectory units, and those units (metres / rad)."""
        scale = self.traj_scale.scale
        return self.traj_scale.normalize(self.anchors), self.offset_scale / scale, scale

    def timesteps(self) -> list[int]:
        c = self.config
        if c.variant == "anchored":
            return list(c.inference_timesteps)
        return self.sampler.default_timesteps(c.vanilla_steps)

    # ----------------------------------------------------------------- training
    def compute_loss(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> torch.Tensor:
        c = self.config
        dev = self.device
        ctx = self.encoder(batch, dev)
        gt = as_tensor(batch, "trajectory", (POSES, 3), dev)
        b = len(gt)
        if c.variant == "vanilla":
            x0 = self.traj_scale.normalize(gt)
            eps = torch.randn(x0.shape, generator=generator).to(dev)
            t = torch.randint(0, c.num_train_steps, (b,), generator=generator).to(dev)
            alpha, sigma = self.schedule.alpha_sigma(t)
            x_t = alpha[:, None, None] * x0 + sigma[:, None, None] * eps
            return nn.functional.mse_loss(self.decoder(x_t, t, ctx, self.traj_scale.scale, self.encoder), eps)
        k = len(self.anchors)
        dist = (gt[:, None, :, :2] - self.anchors[None, :, :, :2]).norm(dim=-1).mean(-1)  # (B, K) metres
        pos = dist.argmin(1)
        y0 = (gt - self.anchors[pos]) / self.offset_scale  # the expert, relative to its nearest anchor
        eps = torch.randn((b, k, POSES, 3), generator=generator).to(dev)
        t = torch.randint(0, c.trunc_train_level, (b,), generator=generator).to(dev)
        _, sigma = self.schedule.alpha_sigma(t)
        y_t = sigma[:, None, None, None] * eps  # every anchor (y = 0) noised to level t
        target = nn.functional.one_hot(pos, k).float()
        loss = torch.zeros((), device=dev)
        rows = torch.arange(b, device=dev)
        for y, logits, _ in self.decoder(y_t, t, ctx, self.anchor_space(), self.encoder):
            reg = (y[rows, pos] - y0).abs().mean()
            loss = loss + c.cls_weight * focal_loss(logits, target, c.focal_alpha, c.focal_gamma) + c.reg_weight * reg
        return loss

    # ----------------------------------------------------------------- inference
    def _propose(self, obs_batch: dict[str, Any], generator: torch.Generator | None, extras: bool) -> dict[str, Any]:
        """The planner's tensors for a batch: trajectories (B, K, 8, 3) in metres, confidence (B, K) and, when
        `extras` or a score head needs them, the final query features, normalised trajectories and geometry."""
        c = self.config
        dev = self.device
        ctx = self.encoder(obs_batch, dev)
        b = ctx["global"].shape[0]
        gen = generator or torch.Generator().manual_seed(c.seed)
        den = _SceneDenoiser(self, ctx)
        steps = self.timesteps()
        out: dict[str, Any] = {"denoiser_calls": len(steps)}
        if c.variant == "anchored":
            k = len(self.anchors)
            noise = torch.randn((b, k * POSES, 3), generator=gen).to(dev)
            y = self.sampler.sample(den, self._start_sigma * noise, ctx["global"], steps, gen)  # from the anchors
            trajs = self.anchors + y.view(b, k, POSES, 3) * self.offset_scale
            if extras or self.score_head is not None:
                out["features"], out["trajectories_normalized"] = den.last_features, self.traj_scale.normalize(trajs)
                out["geometry"] = proposal_geometry(obs_batch, trajs, c, ctx)
            if self.score_head is None:
                conf = den.last_logits.sigmoid()
            else:
                head = self.score_head(out["features"], out["trajectories_normalized"], out["geometry"])
                conf = self.score_head.pdm_score(head)
        else:
            noise = torch.randn((b, POSES, 3), generator=gen).to(dev)
            trajs = self.traj_scale.unnormalize(self.sampler.sample(den, noise, ctx["global"], steps, gen))[:, None]
            conf = torch.ones(b, 1, device=dev)
        out["trajectories"], out["confidence"] = trajs, conf
        return out

    @torch.inference_mode()
    def plan_details(
        self, obs_batch: dict[str, Any], generator: torch.Generator | None = None, extras: bool = True
    ) -> dict[str, Any]:
        """All candidate trajectories (B, K, 8, 3) in metres, their confidences (B, K) (anchored; K = 1 and
        confidence 1 for vanilla), the chosen index (B,), the anchors (K, 8, 3) and (anchored) the final query
        features (B, K, d), the trajectories in normalised units (B, K, 8, 3) and their geometry (B, K, 24) that
        the score head reads (unless `extras` is False), as numpy arrays.
        With a score head the confidence is its predicted PDM score."""
        out = self._propose(obs_batch, generator, extras and self.config.variant == "anchored")
        out["best"] = out["confidence"].argmax(1)
        out["anchors"] = self.anchors
        return {k: v.cpu().numpy() if torch.is_tensor(v) else v for k, v in out.items()}

    @torch.inference_mode()
    def plan(self, obs_batch: dict[str, Any]) -> np.ndarray:
        """(B, 8, 3): the most confident anchor's trajectory (anchored) or the sampled one (vanilla)."""
        out = self._propose(obs_batch, None, extras=False)
        best = out["confidence"].argmax(1)
        return out["trajectories"][torch.arange(len(best), device=best.device), best].cpu().numpy()

    def fit_score_head(
        self,
        features: np.ndarray,
        trajectories: np.ndarray,
        geometry: np.ndarray,
        scores: np.ndarray,
        epochs: int = 30,
        batch_size: int = 256,
        lr: float = 1e-3,
        seed: int = 0,
    ) -> list[float]:
        """Fit the score head on proposals the policy made: features (N, K, d), trajectories (N, K, 8, 3) in
        normalised units, geometry (N, K, 24) (all from ``plan_details``) and the sub-scores (N, K, 5) in [0, 1]
        (SCORE_TERMS order)
        the simulator gave them — binary cross-entropy with the sub-scores as soft targets. Only the head
        trains; returns the mean loss per epoch."""
        if self.score_head is None:
            raise ValueError("fit_score_head: the policy has no score head; expected config.score_head_hidden > 0")
        arrays = (features, trajectories, geometry, scores)
        f, tr, g, sc = (torch.as_tensor(np.asarray(a), dtype=torch.float32) for a in arrays)
        n_k = sc.shape[:2]
        if sc.ndim != 3 or sc.shape[-1] != len(SCORE_TERMS) or any(a.shape[:2] != n_k for a in (f, tr, g)):
            raise ValueError(
                f"fit_score_head: features {tuple(f.shape)}, trajectories {tuple(tr.shape)}, geometry "
                f"{tuple(g.shape)}, scores {tuple(sc.shape)}: expected (N, K, d), (N, K, 8, 3), "
                f"(N, K, {GEOMETRY_FEATURES}), (N, K, {len(SCORE_TERMS)})"
            )
        if not torch.all((sc >= 0) & (sc <= 1)):
            raise ValueError(f"fit_score_head: scores must be sub-scores {SCORE_TERMS} in [0, 1]")
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.AdamW(self.score_head.parameters(), lr=lr, weight_decay=1e-4)
        dev = self.device
        losses = []
        self.score_head.train()
        for _ in range(epochs):
            order, total = torch.randperm(len(sc), generator=gen), 0.0
            for lo in range(0, len(sc), batch_size):
                i = order[lo : lo + batch_size]
                logits = self.score_head(f[i].to(dev), tr[i].to(dev), g[i].to(dev))
                loss = nn.functional.binary_cross_entropy_with_logits(logits, sc[i].to(dev))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.detach().item() * len(i)
            losses.append(total / len(sc))
        self.score_head.eval()
        return losses
