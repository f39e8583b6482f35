"""WAM-Diff (docs/methods.md): a masked discrete-diffusion trajectory policy on the NAVSIM-style agent input.
Works on observation dicts; knows nothing of the simulator or envs.

Input keys (B leading): ego_status (8), history (4, 3), bev (C, S, S) uint8, agents (A, 12), agents_mask (A,),
route (R, 2) - see diffpilot.envs.driving. Output of ``plan``: (B, 8, 3) x, y, heading at 0.5 .. 4 s.

- The trajectory is a sequence of TOKENS = 48 discrete tokens (policies/driving/trajectory_tokens.py: 0.01 quantisation
  on [-100, 100), a coarse 0.1 digit and a fine 0.01 digit per value; layout documented there).
- Scene tokens come from DiffusionDrive's scene encoder (8 x 8 BEV cells, ego, route, agents: S = 98 tokens
  of width D); a transformer (self-attention, pre-norm) runs over [scene tokens | trajectory tokens]
  (B, S + 48, D); each trajectory token embeds its id (MASK for undecided) plus its position. Two heads read
  the trajectory positions: 2000 coarse classes, and 10 fine classes; each position is restricted to the
  classes it may hold.
- Training, the masked-diffusion objective (MDLM / LLaDA): per sequence t ~ U(t_min, 1), every trajectory
  token is masked with probability t, loss = E[(1 / t) * sum over masked positions of -log p(token) / L].
  With probability ``cond_dropout`` a sequence's scene tokens are hidden from attention (the unconditional
  model for classifier-free guidance).
- Decoding: iterative unmasking (policies.samplers.masked.MaskedSampler) with order random / confidence /
  causal / reverse_causal (group = pose index: reverse-causal decodes the 4 s pose first) over ``iterations``
  steps; classifier-free guidance on the scene condition: logits = u + w (c - u).
- ``token_log_probs``: per-token log-probabilities of given token sequences by one-step unmasking (every
  trajectory position masked, one forward pass, d1 / diffu-GRPO style) - what GSPO / GRPO optimise.

Not here: the paper's sparse MoE layers (64 LoRA experts); the FFNs are dense.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checkpoint import DictConfig
from ..registry import register_policy
from ..samplers.masked import ORDERS, MaskedSampler
from . import trajectory_tokens as tt
from .common import DrivingPolicy, as_tensor
from .encoders import SceneConfig, SceneEncoder

SCENE_KEYS = ("bev_channels", "bev_size", "max_agents", "agent_features", "ego_dim", "history_frames", "route_points")


@dataclass
class WAMDiffConfig(DictConfig):
    scene: dict = field(default_factory=dict)  # scene-input sizes (SCENE_KEYS; SceneConfig's defaults)
    d_model: int = 64
    n_heads: int = 4
    layers: int = 3
    ffn_mult: int = 2
    cond_dropout: float = 0.1  # training: P(scene hidden) for classifier-free guidance
    t_min: float = 0.05  # training: smallest masking ratio (bounds the 1 / t weight)
    order: str = "reverse_causal"  # decoding order (ORDERS)
    iterations: int = 16  # unmasking steps for the 48 tokens
    guidance_scale: float = 1.0  # classifier-free guidance w (1 = conditional model only)
    temperature: float = 0.0  # 0 = the most likely token at each step
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = sorted(set(self.scene) - set(SCENE_KEYS))
        if unknown:
            raise ValueError(f"scene={dict(self.scene)!r}: unknown keys {unknown}; expected some of {SCENE_KEYS}")
        if self.order not in ORDERS:
            raise ValueError(f"order={self.order!r}: expected one of {ORDERS}")
        if not 1 <= self.iterations <= tt.TOKENS:
            raise ValueError(f"iterations={self.iterations}: expected 1 .. {tt.TOKENS}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if not 0 < self.t_min < 1:
            raise ValueError(f"t_min={self.t_min}: expected 0 < t_min < 1")
        if not 0 <= self.cond_dropout < 1:
            raise ValueError(f"cond_dropout={self.cond_dropout}: expected 0 <= cond_dropout < 1")

    def encoder_config(self) -> SceneConfig:
        """The scene encoder's settings: DiffusionDrive's encoder at this model width."""
        return SceneConfig(**dict(self.scene), d_model=self.d_model, n_heads=self.n_heads)


class _GuidedDenoiser:
    """The sampler's view of the policy for one batch of scenes: tokens (B, L) -> guided log-probs."""

    def __init__(self, policy: WAMDiffPolicy, scene: dict[str, torch.Tensor], guidance: float):
        self.policy, self.scene, self.guidance = policy, scene, guidance

    def log_probs(self, x_t: torch.Tensor, cond: object = None) -> torch.Tensor:
        p = self.policy
        if self.guidance == 1.0:
            return p.head_log_probs(p.backbone(x_t, self.scene))
        both = p.backbone(torch.cat([x_t, x_t]), self.scene, drop=torch.arange(2 * len(x_t)) >= len(x_t), repeat=2)
        c, u = p.head_logits(both).chunk(2)
        guided = torch.where(torch.isfinite(c), u + self.guidance * (c - u), c)  # impossible classes stay -inf
        return p.masked_log_softmax(guided)


@register_policy
class WAMDiffPolicy(DrivingPolicy):
    type_name = "wamdiff"
    config_class = WAMDiffConfig

    def __init__(self, config: WAMDiffConfig | None = None):
        super().__init__()
        self.config = c = config or WAMDiffConfig()
        d = c.d_model
        self.encoder = SceneEncoder(c.encoder_config())
        self.token_emb = nn.Embedding(tt.VOCAB, d)
        self.pos_emb = nn.Parameter(torch.randn(tt.TOKENS, d) * 0.02)
        self.scene_type = nn.Parameter(torch.randn(2, d) * 0.02)  # BEV cells, objects
        layer = nn.TransformerEncoderLayer(
            d, c.n_heads, c.ffn_mult * d, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, c.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.coarse = nn.Linear(d, tt.COARSE_CLASSES)
        self.fine = nn.Linear(d, tt.FINE_CLASSES)
        self.register_buffer("is_fine", tt.position_is_fine(), persistent=False)

    # ----------------------------------------------------------------- network
    def encode_scene(self, obs: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Scene tokens (B, S, D) and their key padding mask (B, S), True = ignore."""
        ctx = self.encoder(obs, self.device)
        tokens = torch.cat([ctx["bev"] + self.scene_type[0], ctx["objects"] + self.scene_type[1]], 1)
        bev_pad = ctx["pad"].new_zeros(ctx["bev"].shape[:2])
        pad = torch.cat([bev_pad, ctx["pad"]], 1)
        return {"tokens": tokens, "pad": pad}

    def backbone(
        self, x_t: torch.Tensor, scene: dict[str, torch.Tensor], drop: torch.Tensor | None = None, repeat: int = 1
    ) -> torch.Tensor:
        """x_t (B', 48) token ids (MASK where undecided); scene tokens of B scenes with B' = repeat * B (the
        scene batch tiled `repeat` times); drop (B',) bool hides a row's scene (unconditional) -> (B', 48, D)."""
        s_tok, s_pad = scene["tokens"], scene["pad"]
        if repeat > 1:
            s_tok, s_pad = s_tok.repeat(repeat, 1, 1), s_pad.repeat(repeat, 1)
        if drop is not None:
            s_pad = s_pad | drop.to(s_pad.device)[:, None]
        traj = self.token_emb(x_t) + self.pos_emb
        h = self.blocks(
            torch.cat([s_tok, traj], 1),
            src_key_padding_mask=torch.cat([s_pad, torch.zeros_like(x_t, dtype=torch.bool)], 1),
        )
        return self.norm(h[:, s_tok.shape[1] :])

    def head_logits(self, h: torch.Tensor) -> torch.Tensor:
        """(B, 48, D) -> (B, 48, VOCAB - 1) logits; a position's impossible classes are -inf."""
        coarse, fine = self.coarse(h), self.fine(h)
        neg_c = torch.full_like(coarse, -float("inf"))
        neg_f = torch.full_like(fine, -float("inf"))
        fine_pos = self.is_fine[None, :, None]
        return torch.where(fine_pos, torch.cat([neg_c, fine], -1), torch.cat([coarse, neg_f], -1))

    @staticmethod
    def masked_log_softmax(logits: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(logits, -1)

    def head_log_probs(self, h: torch.Tensor) -> torch.Tensor:
        return self.masked_log_softmax(self.head_logits(h))

    # ----------------------------------------------------------------- training
    def compute_loss(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> torch.Tensor:
        """Masked-diffusion loss on the expert trajectories batch["trajectory"] (B, 8, 3)."""
        c = self.config
        dev = self.device
        x0 = tt.encode(as_tensor(batch, "trajectory", (tt.POSES, tt.CHANNELS), dev).cpu()).to(dev)  # (B, 48)
        b = len(x0)
        t = c.t_min + (1 - c.t_min) * torch.rand(b, generator=generator).to(dev)
        masked = torch.rand((b, tt.TOKENS), generator=generator).to(dev) < t[:, None]
        drop = torch.rand(b, generator=generator).to(dev) < c.cond_dropout
        x_t = torch.where(masked, torch.full_like(x0, tt.MASK_ID), x0)
        logp = self.head_log_probs(self.backbone(x_t, self.encode_scene(batch), drop=drop))
        nll = -logp.gather(-1, x0[..., None])[..., 0]  # (B, 48)
        return ((nll * masked).sum(1) / (t * tt.TOKENS)).mean()

    # ----------------------------------------------------------------- log-probabilities (RL)
    def token_log_probs(self, obs: dict[str, Any], tokens: torch.Tensor, repeat: int = 1) -> torch.Tensor:
        """Per-token log-probabilities (B', 48) of `tokens` (B', 48) by one-step unmasking: every trajectory
        position masked, one forward pass of the conditional model. B' = repeat * B for B scenes in `obs`
        (row r belongs to scene r % B). Differentiable."""
        tokens = tokens.to(self.device)
        x_t = torch.full_like(tokens, tt.MASK_ID)
        logp = self.head_log_probs(self.backbone(x_t, self.encode_scene(obs), repeat=repeat))
        return logp.gather(-1, tokens[..., None])[..., 0]

    def sequence_log_probs(self, obs: dict[str, Any], tokens: torch.Tensor, repeat: int = 1) -> torch.Tensor:
        """(B',) summed per-token log-probabilities (see ``token_log_probs``)."""
        return self.token_log_probs(obs, tokens, repeat).sum(-1)

    # ----------------------------------------------------------------- inference
    def sampler(self, order: str | None = None, temperature: float | None = None) -> MaskedSampler:
        c = self.config
        temp = c.temperature if temperature is None else temperature
        return MaskedSampler(tt.MASK_ID, order or c.order, temp, group=tt.pose_of_position())

    @torch.no_grad()
    def sample_tokens(
        self,
        obs: dict[str, Any],
        repeat: int = 1,
        order: str | None = None,
        iterations: int | None = None,
        guidance_scale: float | None = None,
        temperature: float | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """(repeat * B, 48) decoded token sequences (row r for scene r % B); the config's decoding settings
        unless overridden."""
        c = self.config
        scene = self.encode_scene(obs)
        if repeat > 1:
            scene = {k: v.repeat(repeat, *([1] * (v.dim() - 1))) for k, v in scene.items()}
        b = scene["tokens"].shape[0]
        w = c.guidance_scale if guidance_scale is None else guidance_scale
        sampler = self.sampler(order, temperature)
        x_init = torch.full((b, tt.TOKENS), tt.MASK_ID, dtype=torch.long, device=self.device)
        steps = sampler.default_timesteps(iterations or c.iterations)
        gen = generator or torch.Generator().manual_seed(c.seed)
        return sampler.sample(_GuidedDenoiser(self, scene, w), x_init, None, steps, gen)

    def plan(self, obs_batch: dict[str, Any], **decoding: Any) -> np.ndarray:
        """(B, 8, 3) trajectories in metres / radians (decoding overrides as in ``sample_tokens``)."""
        return tt.decode(self.sample_tokens(obs_batch, **decoding).cpu()).float().numpy()
