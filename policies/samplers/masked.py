"""Masked discrete diffusion sampler: iterative unmasking of a token sequence (MDLM / LLaDA style decoding,
as WAM-Diff decodes trajectory tokens). Drives any `TokenDenoiser`; never imports a network.

The sampler seam, for tokens: the "noise" is the mask. A noise level t in [0, 1] is the fraction of positions
still masked; ``add_noise(x0, noise, t)`` masks the positions whose uniform noise value is below t (a warm start
keeps the rest), and ``sample`` walks an explicit list of levels, e.g. ``default_timesteps(4)`` =
[1.0, 0.75, 0.5, 0.25, 0.0]: at each step it unmasks enough positions to reach the next level's masked count.

Which masked positions are committed at a step is the decoding *order*:
- ``random``: a random priority per position, drawn once per sequence;
- ``confidence``: the positions whose chosen token has the highest probability (MaskGIT / LLaDA low-confidence
  remasking);
- ``causal``: lowest group first (e.g. the nearest pose first), then position;
- ``reverse_causal``: highest group first (the farthest pose first), positions inside a group in order.
``group`` (L,) gives each position's block (the pose index for trajectories; default: the position itself).
"""

from __future__ import annotations

import itertools
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np
import torch

from .base import Sampler, register_sampler

ORDERS = ("random", "confidence", "causal", "reverse_causal")


@runtime_checkable
class TokenDenoiser(Protocol):
    """Predicts, for a partly masked token sequence x_t (B, L), log-probabilities (B, L, V) of the clean
    token at every position (-inf for ids a position may not hold; V excludes the mask id)."""

    def log_probs(self, x_t: torch.Tensor, cond: object) -> torch.Tensor: ...


@register_sampler
class MaskedSampler(Sampler):
    """Iterative unmasking. `mask_id`: the id of a masked position; `order` one of ORDERS; `temperature` 0
    picks the most likely token (greedy), > 0 samples from the softened distribution. A step list holds decreasing
    masked fractions ending at 0; each step goes from one entry to the next."""

    name: ClassVar[str] = "masked"
    family: ClassVar[str] = "masked"

    def __init__(
        self, mask_id: int, order: str = "confidence", temperature: float = 0.0, group: torch.Tensor | None = None
    ):
        if order not in ORDERS:
            raise ValueError(f"order={order!r}: expected one of {ORDERS}")
        if temperature < 0:
            raise ValueError(f"temperature={temperature}: expected >= 0")
        self.mask_id, self.order, self.temperature = int(mask_id), order, float(temperature)
        self.group = group

    def default_timesteps(self, num_steps: int | None = None, start: float | None = None) -> list[float]:
        """`num_steps + 1` masked fractions from `start` down to 0 (linear)."""
        num_steps = 8 if num_steps is None else num_steps
        if num_steps < 1:
            raise ValueError(f"num_steps={num_steps}: expected >= 1")
        return [float(v) for v in np.linspace(1.0 if start is None else start, 0.0, num_steps + 1)]

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: float) -> torch.Tensor:
        """x0 (B, L) with the positions where `noise` (B, L) uniform in [0, 1) is below `t` masked."""
        return torch.where(noise < t, torch.full_like(x0, self.mask_id), x0)

    def check_timesteps(self, timesteps: list) -> list[float]:
        steps = list(timesteps)
        if len(steps) < 2 or steps[-1] != 0 or any(a < b for a, b in itertools.pairwise(steps)):
            raise ValueError(f"timesteps={steps}: expected a decreasing list of masked fractions ending at 0")
        return steps

    def step_pairs(self, timesteps: list) -> list[tuple[float, float]]:
        return list(itertools.pairwise(timesteps))

    def nfe(self, timesteps: list) -> int:
        return len(timesteps) - 1

    def query_times(self, timesteps: list) -> list[float]:
        return [float(t) for t in timesteps[:-1]]

    def _priority(self, chosen_logp: torch.Tensor, random_rank: torch.Tensor) -> torch.Tensor:
        b, length = chosen_logp.shape
        pos = torch.arange(length, device=chosen_logp.device, dtype=torch.float32)
        group = (self.group if self.group is not None else torch.arange(length)).to(chosen_logp.device).float()
        if self.order == "confidence":
            return chosen_logp
        if self.order == "random":
            return random_rank
        key = -group if self.order == "causal" else group
        return (key * (length + 1) - pos).expand(b, length)  # higher = earlier

    def _choose(self, logp: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if self.temperature == 0:
            return logp.argmax(-1)
        probs = torch.softmax(logp / self.temperature, -1)
        flat = torch.multinomial(probs.view(-1, probs.shape[-1]).cpu(), 1, generator=generator)
        return flat.view(probs.shape[:-1]).to(logp.device)

    def step(self, denoiser, x, t, t_next, cond, generator=None, carry=None):
        """Commit enough masked positions of x (B, L) to leave the fraction `t_next` of the start's masks; `carry`
        holds the start's mask count and fraction and each position's random priority (drawn at the first step)."""
        if carry is None:
            carry = ((x == self.mask_id).sum(1), float(t), torch.rand(x.shape, generator=generator).to(x.device))
        masked0, start, random_rank = carry
        masked = x == self.mask_id
        if not masked.any():
            return x, carry
        logp = denoiser.log_probs(x, cond)  # (B, L, V)
        chosen = self._choose(logp, generator)
        chosen_logp = logp.gather(-1, chosen[..., None])[..., 0]
        keep_masked = torch.ceil(masked0.float() * t_next / max(start, 1e-9)).long().clamp(min=0)
        n_commit = (masked.sum(1) - keep_masked).clamp(min=1)  # (B,) at least one per step
        prio = self._priority(chosen_logp, random_rank).masked_fill(~masked, -float("inf"))
        rank = prio.argsort(1, descending=True).argsort(1)  # 0 = first to commit
        commit = masked & (rank < n_commit[:, None])
        return torch.where(commit, chosen, x), carry

    def sample(self, denoiser, x_init, cond, timesteps=None, generator=None):
        """x_init (B, L) (positions equal to mask_id are decoded) -> (B, L) tokens with no mask left. `timesteps`
        (decreasing masked fractions, last 0) sets how many positions each step commits; the first entry only
        documents the start (the mask in x_init is what is decoded)."""
        return super().sample(denoiser, x_init.clone(), cond, timesteps, generator)
