"""MoDE: a transformer denoiser whose feed-forward layers are sparse mixtures of SwiGLU experts routed by the
noise level (Reuss et al. 2024, "Efficient Diffusion Transformer Policies with Mixture of Expert Denoisers").

Tokens: [noise | condition | actions]. Every block is pre-norm self-attention whose input is scaled and shifted by
the noise embedding (noise-conditioned self-attention, besides the noise token everyone attends to), then a
top-k mixture of SwiGLU experts. The router of each block sees the noise-level embedding (and, optionally, the
token itself). With noise-only routing the experts a step uses depend only on its noise level, so for a fixed
step list the routes can be precomputed and the chosen experts fused into one SwiGLU of k·h hidden units per
block ("expert caching", `build_expert_cache`; steps choosing the same experts share the fused weights and keep
their own gates): no time-embedding MLP, router or dispatch at inference, same output to float tolerance.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .base import DenoiserNet, register_network
from .time_embedding import SinusoidalTimeEmbedding
from .transformer import TransformerConfig


@dataclass(frozen=True)
class MoDEConfig(TransformerConfig):
    """MoDE's transformer with a mixture of SwiGLU experts per block (`network.type: mode`)."""

    type: ClassVar[str] = "mode"
    experts: int = 4
    """Experts per block."""
    top_k: int = 2
    """Experts each step uses."""
    expert_hidden: int = 0
    """Hidden width of an expert (0: 8/3·d_model, SwiGLU's usual)."""
    token_routing: bool = False
    """Route on the token as well as the noise level (disables expert caching)."""
    balance_weight: float = 0.01
    """Weight of the load-balancing loss added to the denoising loss."""
    expert_cache: bool = True
    """Precompute routes and fuse the chosen experts for the sampler's step list at inference."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.experts < 1 or not 1 <= self.top_k <= self.experts:
            raise ValueError(
                f"network.top_k={self.top_k}, network.experts={self.experts}: expected 1 ≤ top_k ≤ experts"
            )
        if self.balance_weight < 0:
            raise ValueError(f"network.balance_weight={self.balance_weight}: expected ≥ 0")
        if self.expert_cache and self.token_routing:
            raise ValueError(
                "network.expert_cache=true with network.token_routing=true: token-dependent routes cannot be cached; "
                "expected network.expert_cache=false"
            )


def default_expert_hidden(d_model: int) -> int:
    """SwiGLU's usual hidden width 8/3·d (as many weights as a 4·d GELU MLP), rounded up to a multiple of 8."""
    return 8 * math.ceil(8 * d_model / 3 / 8)


def swiglu(x: torch.Tensor, w_gate: torch.Tensor, w_up: torch.Tensor, w_down: torch.Tensor) -> torch.Tensor:
    """(…, d) → (…, d): (silu(x·W_gate) ⊙ x·W_up)·W_down with W_gate, W_up (d, h) and W_down (h, d)."""
    return (F.silu(x @ w_gate) * (x @ w_up)) @ w_down


@dataclass
class Routes:
    """One block's routing decision for R rows (samples, or tokens with token routing)."""

    experts: torch.Tensor  # (R, k) long: the chosen experts
    gates: torch.Tensor  # (R, k): their weights, summing to 1 over k
    probs: torch.Tensor  # (R, E): the router's softmax over all experts (for the balance loss)


class SwiGLUExperts(nn.Module):
    """E SwiGLU experts, weights stacked as w_gate, w_up (E, d, h) and w_down (E, h, d)."""

    def __init__(self, d_model: int, hidden: int, n_experts: int):
        super().__init__()
        self.w_gate = nn.Parameter(torch.randn(n_experts, d_model, hidden) / math.sqrt(d_model))
        self.w_up = nn.Parameter(torch.randn(n_experts, d_model, hidden) / math.sqrt(d_model))
        self.w_down = nn.Parameter(torch.randn(n_experts, hidden, d_model) / math.sqrt(hidden) * 0.5)

    @property
    def params_per_expert(self) -> int:
        return self.w_gate[0].numel() + self.w_up[0].numel() + self.w_down[0].numel()

    def dispatch(self, x: torch.Tensor, routes: Routes) -> torch.Tensor:
        """x (R, d) rows, each through its k experts, gate-weighted and summed → (R, d). Runs each expert only on
        the rows routed to it (k/E of the dense cost)."""
        out = torch.zeros_like(x)
        for e in range(self.w_gate.shape[0]):
            hit = routes.experts == e  # (R, k)
            rows = hit.any(dim=-1).nonzero().squeeze(-1)
            if rows.numel() == 0:
                continue
            gate = (routes.gates * hit).sum(dim=-1)[rows, None]
            out.index_add_(0, rows, gate * swiglu(x[rows], self.w_gate[e], self.w_up[e], self.w_down[e]))
        return out

    def fuse(self, experts: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`experts` as one SwiGLU of width k·h (hidden units concatenated): (W_gate (d, k·h), W_up (d, k·h),
        W_down (k·h, d)). Scaling hidden unit block j by gate g_j then gives Σ_j g_j·expert_j(x) exactly."""
        idx = torch.as_tensor(experts, device=self.w_gate.device)
        w_gate = self.w_gate[idx].permute(1, 0, 2).reshape(self.w_gate.shape[1], -1)
        w_up = self.w_up[idx].permute(1, 0, 2).reshape(self.w_up.shape[1], -1)
        return w_gate, w_up, self.w_down[idx].reshape(-1, self.w_down.shape[2]).contiguous()


class NoiseRouter(nn.Module):
    """Top-k router over E experts from the noise embedding (B, d), optionally plus each token (B, N, d)."""

    def __init__(self, d_model: int, n_experts: int, top_k: int, token_routing: bool):
        super().__init__()
        if not 1 <= top_k <= n_experts:
            raise ValueError(f"mode_top_k={top_k}: expected 1 … mode_experts={n_experts}")
        self.top_k = top_k
        self.noise_proj = nn.Linear(d_model, n_experts)
        self.token_proj = nn.Linear(d_model, n_experts, bias=False) if token_routing else None

    def logits(self, noise_emb: torch.Tensor, tokens: torch.Tensor | None = None) -> torch.Tensor:
        """(B, E) from the noise alone, or (B, N, E) with token routing."""
        logits = self.noise_proj(noise_emb)
        if self.token_proj is not None:
            logits = logits[:, None] + self.token_proj(tokens)
        return logits

    def route(self, logits: torch.Tensor) -> Routes:
        """logits (R, E) → the top-k experts per row with gates renormalised over the k."""
        probs = logits.float().softmax(dim=-1)
        top, experts = probs.topk(self.top_k, dim=-1)
        return Routes(experts, (top / top.sum(dim=-1, keepdim=True)).to(logits.dtype), probs)


def balance_loss(routes: Routes, n_experts: int) -> torch.Tensor:
    """Switch-Transformer load balancing E·Σ_e f_e·P_e (1 when perfectly balanced): f_e the share of the k·R
    assignments that went to expert e, P_e the mean router probability of e."""
    share = F.one_hot(routes.experts, n_experts).float().mean(dim=(0, 1))
    return n_experts * (share * routes.probs.mean(dim=0)).sum()


class NoiseConditionedAttention(nn.Module):
    """Pre-norm multi-head self-attention whose normalised input is modulated by the noise embedding:
    LN(x)·(1 + scale(c)) + shift(c), the modulation zero-initialised (starts as plain attention)."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model}: expected a multiple of n_heads={n_heads}")
        self.n_heads = n_heads
        self.norm = nn.LayerNorm(d_model, elementwise_affine=False)
        self.modulation = nn.Linear(d_model, 2 * d_model)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, shift_scale: torch.Tensor) -> torch.Tensor:
        """x (B, N, d), shift_scale (B, 2d) = modulation(noise embedding) → attention output (B, N, d)."""
        shift, scale = shift_scale[:, None].chunk(2, dim=-1)
        h = self.norm(x) * (1 + scale) + shift
        b, n, d = h.shape
        q, k, v = self.qkv(h).view(b, n, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out(y.transpose(1, 2).reshape(b, n, d))


class MoDEBlock(nn.Module):
    def __init__(self, d_model: int, n_heads: int, hidden: int, n_experts: int, top_k: int, token_routing: bool):
        super().__init__()
        self.attn = NoiseConditionedAttention(d_model, n_heads)
        self.ffn_norm = nn.LayerNorm(d_model)
        self.router = NoiseRouter(d_model, n_experts, top_k, token_routing)
        self.experts = SwiGLUExperts(d_model, hidden, n_experts)

    def forward(self, x: torch.Tensor, noise_emb: torch.Tensor) -> tuple[torch.Tensor, Routes]:
        """x (B, N, d), noise_emb (B, d) → (B, N, d) and this block's routes (per sample, or per token)."""
        x = x + self.attn(x, self.attn.modulation(noise_emb))
        h = self.ffn_norm(x)
        b, n, d = h.shape
        routes = self.router.route(self.router.logits(noise_emb, h).reshape(-1, self.router.noise_proj.out_features))
        if routes.experts.shape[0] == b:  # noise-only routing: every token of a sample takes its sample's route
            per_token = Routes(
                routes.experts.repeat_interleave(n, 0), routes.gates.repeat_interleave(n, 0), routes.probs
            )
        else:
            per_token = routes
        return x + self.experts.dispatch(h.reshape(b * n, d), per_token).view(b, n, d), routes

    @torch.no_grad()
    def fuse_step(self, noise_emb: torch.Tensor, fused: dict[tuple[int, ...], _FusedExperts]) -> _BlockCache:
        """This block at one noise level (noise_emb (1, d)): its attention modulation, routes and gates, and the
        chosen experts fused into one SwiGLU (the FFN norm's affine folded into its [gate | up] matrix). Fused
        weights are shared, through `fused`, by every step that picks the same experts."""
        routes = self.router.route(self.router.logits(noise_emb))
        order = routes.experts[0].argsort()  # (1, 3) and (3, 1) share one fused FFN
        experts, gates = routes.experts[0][order].tolist(), routes.gates[0][order]
        key = tuple(experts)
        if key not in fused:
            w_gate, w_up, w_down = self.experts.fuse(experts)
            w_in = torch.cat([w_gate, w_up], dim=1)  # (d, 2·k·h)
            gamma, beta = self.ffn_norm.weight, self.ffn_norm.bias
            fused[key] = _FusedExperts((gamma[None, :] * w_in.T).contiguous(), beta @ w_in, w_down)
        hidden = self.experts.w_gate.shape[2]
        return _BlockCache(experts, self.attn.modulation(noise_emb), gates.repeat_interleave(hidden), fused[key])

    def cached(self, x: torch.Tensor, step: _BlockCache) -> torch.Tensor:
        """The same block at a cached noise level (see `fuse_step`): no router, no dispatch, one SwiGLU."""
        x = x + self.attn(x, step.shift_scale.expand(x.shape[0], -1))
        ffn = step.ffn
        gate, up = F.linear(F.layer_norm(x, x.shape[-1:]), ffn.w_in, ffn.b_in).chunk(2, dim=-1)
        return x + (F.silu(gate) * up * step.gate_scale) @ ffn.w_down


@dataclass
class _FusedExperts:
    w_in: torch.Tensor  # (2·k·h, d): [gate | up] of the k experts, the FFN norm's γ folded in
    b_in: torch.Tensor  # (2·k·h,): the norm's β through [gate | up]
    w_down: torch.Tensor  # (k·h, d)


@dataclass
class _BlockCache:
    experts: list[int]  # the k experts chosen at this noise level
    shift_scale: torch.Tensor  # (1, 2d): the attention modulation
    gate_scale: torch.Tensor  # (k·h,): each chosen expert's gate, repeated over its hidden units
    ffn: _FusedExperts


@dataclass
class _StepCache:
    noise_emb: torch.Tensor  # (1, d)
    blocks: list[_BlockCache]


@register_network
class MoDEDenoiserNet(DenoiserNet):
    """(x (B, T, A), time (B,), cond (B, C)) → (B, T, A). After `forward`, `balance_loss` holds the mean load-balancing
    loss over blocks (a scalar tensor) for the trainer to add to the denoising loss."""

    def __init__(
        self,
        action_dim: int,
        cond_dim: int,
        horizon: int,
        d_model: int = 256,
        n_layers: int = 4,
        n_heads: int = 4,
        n_experts: int = 4,
        top_k: int = 2,
        expert_hidden: int = 0,
        token_routing: bool = False,
        balance_weight: float = 0.01,
        expert_cache: bool = True,
    ):
        super().__init__()
        self.balance_weight, self.expert_cache = balance_weight, expert_cache
        self.horizon, self.n_experts, self.top_k, self.token_routing = horizon, n_experts, top_k, token_routing
        hidden = expert_hidden or default_expert_hidden(d_model)
        self.time_embed = nn.Sequential(
            SinusoidalTimeEmbedding(d_model), nn.Linear(d_model, d_model), nn.SiLU(), nn.Linear(d_model, d_model)
        )
        self.cond_proj = nn.Linear(cond_dim, d_model)
        self.action_proj = nn.Linear(action_dim, d_model)
        self.pos = nn.Parameter(torch.randn(1, horizon + 2, d_model) * 0.02)
        self.blocks = nn.ModuleList(
            MoDEBlock(d_model, n_heads, hidden, n_experts, top_k, token_routing) for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, action_dim)
        self.balance_loss = torch.zeros(())
        self._cache: dict[float, _StepCache] = {}
        self._cache_version: tuple = ()

    config_class = MoDEConfig

    @classmethod
    def build(cls, config: MoDEConfig, action_dim: int, cond_dim: int, horizon: int) -> MoDEDenoiserNet:
        c = config
        return cls(action_dim, cond_dim, horizon, c.d_model, c.n_layers, c.n_heads, c.experts, c.top_k,
                   c.expert_hidden, c.token_routing, c.balance_weight, c.expert_cache)  # fmt: skip

    def aux_loss(self) -> torch.Tensor:
        """balance_weight × the load-balancing loss of the last training forward."""
        return self.balance_weight * self.balance_loss

    @property
    def caches(self) -> bool:
        return self.expert_cache

    def prepare(self, model_times: list[float]) -> None:
        """Cache the routes and fused experts of these model times too (with `expert_cache`)."""
        if self.expert_cache:
            self.build_expert_cache([*self._cache, *model_times])

    # ----------------------------------------------------------------- counts
    def active_parameters(self) -> int:
        """Parameters one denoising step uses: all but the (E − k) experts each block leaves idle."""
        total = sum(p.numel() for p in self.parameters())
        idle = sum((self.n_experts - self.top_k) * b.experts.params_per_expert for b in self.blocks)
        return total - idle

    # ----------------------------------------------------------------- forward
    def _tokens(self, x: torch.Tensor, noise_emb: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.horizon:
            raise ValueError(f"horizon={x.shape[1]}: this MoDEDenoiserNet was built for {self.horizon}")
        tokens = torch.cat([noise_emb[:, None], self.cond_proj(cond)[:, None], self.action_proj(x)], dim=1)
        return tokens + self.pos

    def forward(self, x: torch.Tensor, time: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        step = self._cached_step(time)
        if step is not None:
            h = self._tokens(x, step.noise_emb.expand(x.shape[0], -1), cond)
            for block, block_cache in zip(self.blocks, step.blocks):
                h = block.cached(h, block_cache)
            return self.head(self.norm(h[:, 2:]))
        h, _ = self.forward_with_routes(x, time, cond)
        return h

    def forward_with_routes(
        self, x: torch.Tensor, time: torch.Tensor, cond: torch.Tensor
    ) -> tuple[torch.Tensor, list[Routes]]:
        """The uncached pass, also returning each block's routes; sets `self.balance_loss`."""
        noise_emb = self.time_embed(time)
        h = self._tokens(x, noise_emb, cond)
        all_routes = []
        for block in self.blocks:
            h, routes = block(h, noise_emb)
            all_routes.append(routes)
        if torch.is_grad_enabled():  # only training needs it
            self.balance_loss = torch.stack([balance_loss(r, self.n_experts) for r in all_routes]).mean()
        return self.head(self.norm(h[:, 2:])), all_routes

    # ----------------------------------------------------------------- expert caching
    def _weights_version(self) -> tuple[tuple[int, int], ...]:
        """Identity and in-place version of every weight: changes with any optimiser / EMA step, load or copy."""
        return tuple((p.data_ptr(), p._version) for p in self.parameters())

    @torch.no_grad()
    def build_expert_cache(self, times: Iterable[float]) -> None:
        """Precompute, for each model time in `times` (the sampler's step list after `model_time`), the noise
        embedding, every block's attention modulation, its routes and the fused expert weights. Rebuilt
        automatically after the weights change (training step, EMA update, loading)."""
        if self.token_routing:
            raise ValueError("mode_token_routing=true: routes depend on the tokens, so experts cannot be cached")
        self._cache = {}
        fused: list[dict] = [{} for _ in self.blocks]
        for t in dict.fromkeys(round(float(t), 6) for t in times):
            noise_emb = self.time_embed(torch.tensor([t], device=self.pos.device))
            steps = [block.fuse_step(noise_emb, f) for block, f in zip(self.blocks, fused)]
            self._cache[t] = _StepCache(noise_emb, steps)
        self._cache_version = self._weights_version()

    def clear_expert_cache(self) -> None:
        self._cache, self._cache_version = {}, ()

    @contextlib.contextmanager
    def cache_disabled(self) -> Iterator[None]:
        """Within the block every pass is the uncached router + dispatch one (for comparisons); the cache returns."""
        saved, self._cache = self._cache, {}
        try:
            yield
        finally:
            self._cache = saved

    def cached_routes(self) -> dict[float, list[list[int]]]:
        """model time → each block's chosen experts, as cached."""
        return {t: [b.experts for b in step.blocks] for t, step in self._cache.items()}

    def _cached_step(self, time: torch.Tensor) -> _StepCache | None:
        """The cache entry for `time` when caching applies: eval mode, one shared level, a cached time."""
        if not self._cache or self.training or torch.is_grad_enabled():
            return None
        t = round(float(time[0]), 6)
        if t not in self._cache or (time.numel() > 1 and not bool((time == time[0]).all())):
            return None
        if self._weights_version() != self._cache_version:
            self.build_expert_cache(list(self._cache))
        return self._cache[t]
