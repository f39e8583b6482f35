"""DDIM (with η) and DDPM over a `DiffusionSchedule`.

DDPM ancestral sampling with the "fixed small" posterior variance is exactly DDIM with η = 1 visiting
every level, so both are one update rule here; η = 0 gives the deterministic noise → action map that
DSRL steers and RTI warm-starts.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from .base import Denoiser
from .schedules import DiffusionSchedule

SPACINGS = ("leading", "trailing", "quadratic")


@dataclass
class DDIMSampler:
    """Generalised DDIM step from level k to the next listed level (or to clean data after the last)."""

    schedule: DiffusionSchedule
    num_inference_steps: int = 10
    eta: float = 0.0
    clip_sample: float | None = 1.0
    # "leading" [K−r, …, r, 0] (DDIM / diffusers' default), "trailing" [K−1, …, 0], which starts from the
    # noisiest level so pure noise is where sampling begins (Lin et al. 2024, "Common diffusion noise
    # schedules and sample steps are flawed"), or "quadratic": from K−r falling as (1 − i/(n−1))² — long steps
    # at high noise, short ones near clean data (`quadratic_levels`).
    spacing: str = "leading"

    def __post_init__(self) -> None:
        if self.spacing not in SPACINGS:
            raise ValueError(f"spacing={self.spacing!r}: expected one of {SPACINGS}")

    def default_timesteps(self, num_steps: int | None = None, start: float | None = None) -> list[int]:
        """Evenly spaced levels, most noisy first, ending at 0.

        Without `start`: DDIM's "leading" spacing [K−r, …, r, 0] with r = K // n (K = 100, n = 10 gives
        [90, 80, …, 0]), or with spacing="trailing" n levels from K−1 to 0 ([99, 88, …, 0]). With `start`: n
        levels from `start` down to 0 (truncated / warm-started sampling). spacing="quadratic":
        `quadratic_levels(K − K // n, n)` ([90, 71, 54, 40, 28, 18, 10, 4, 1, 0] for K = 100, n = 10).
        """
        n = num_steps or self.num_inference_steps
        big_k = self.schedule.num_train_steps
        if not 1 <= n <= big_k:
            raise ValueError(f"num_steps={n}: expected 1 … {big_k} (the schedule's num_train_steps)")
        if start is None and self.spacing == "leading":
            ratio = big_k // n
            return [i * ratio for i in reversed(range(n))]
        if start is None and self.spacing == "quadratic":
            return quadratic_levels(big_k - big_k // n, n)
        if start is None:
            start = big_k - 1
        start = int(start)
        if not 0 <= start < big_k:
            raise ValueError(f"start={start}: expected a level in 0 … {big_k - 1}")
        levels = torch.linspace(start, 0, min(n, start + 1)).round().long().tolist()
        return list(dict.fromkeys(levels))

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, level: int) -> torch.Tensor:
        """x at integer `level` from clean `x0` (B, T, A) and `noise` of the same shape."""
        alpha, sigma = self.schedule.alpha_sigma(torch.tensor([level]))
        return alpha.item() * x0 + sigma.item() * noise

    @torch.no_grad()
    def sample(
        self,
        denoiser: Denoiser,
        x_init: torch.Tensor,
        cond: torch.Tensor,
        timesteps: list[int] | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        timesteps = _as_levels(timesteps if timesteps is not None else self.default_timesteps())
        _check_descending(timesteps, self.schedule.num_train_steps)
        x = x_init
        batch = x.shape[0]
        ab_table = self.schedule.alphas_cumprod.tolist()
        for i, level in enumerate(timesteps):
            prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
            ab, ab_prev = ab_table[level], (ab_table[prev] if prev >= 0 else 1.0)
            t = torch.full((batch,), level, dtype=torch.long, device=x.device)
            if getattr(denoiser, "native_kind", "epsilon") == "sample":  # skip a round trip through epsilon
                x0 = denoiser.predict(x, t, cond, "sample")
                eps = (x - ab**0.5 * x0) / (1.0 - ab) ** 0.5
            else:
                eps = denoiser.predict(x, t, cond, "epsilon")
                x0 = (x - (1.0 - ab) ** 0.5 * eps) / ab**0.5
            if self.clip_sample is not None:
                x0 = x0.clamp(-self.clip_sample, self.clip_sample)
                eps = (x - ab**0.5 * x0) / (1.0 - ab) ** 0.5
            var = 0.0
            if self.eta > 0 and prev >= 0:
                var = self.eta**2 * (1.0 - ab_prev) / (1.0 - ab) * (1.0 - ab / ab_prev)
            x = ab_prev**0.5 * x0 + max(1.0 - ab_prev - var, 0.0) ** 0.5 * eps
            if var > 0:
                device = generator.device if generator is not None else x.device
                z = torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)
                x = x + var**0.5 * z
        return x


def quadratic_levels(top: int, n: int) -> list[int]:
    """n distinct integer levels from `top` to 0 falling as (1 − i/(n−1))² (fewer where rounding merges them).

    Why: a few-step sampler loses success when its chunks drift from the many-step ODE's by as little as ~0.01
    (normalised action units); on the PushT ε-model, DDIM-10's chunks with [90, 71, 54, 40, 28, 18, 10, 4, 1, 0]
    are 1.8× closer to DDIM-100's than with [90, 80, …, 0] — as close as DDIM-20's — and its success rises from
    73.0 % to 82.0 % on 200 episodes (BENCHMARKS.md, "Fast inference"). Starting at level 99 instead is worse
    (a cosine schedule's last level has ᾱ ≈ 0)."""
    if n == 1:
        return [0]
    levels = [round(top * (1.0 - i / (n - 1)) ** 2) for i in range(n)]
    return list(dict.fromkeys(levels))


def _as_levels(timesteps) -> list[int]:
    """Integer levels; 2.0 is accepted as 2, 1.5 is refused."""
    levels = [int(k) for k in timesteps]
    if any(k != float(t) for k, t in zip(levels, timesteps)):
        raise ValueError(f"timesteps={list(timesteps)}: expected integer diffusion levels")
    return levels


def _check_descending(timesteps: list[int], big_k: int) -> None:
    if not timesteps:
        raise ValueError("timesteps is empty: expected at least one level")
    if any(not 0 <= int(k) < big_k for k in timesteps) or any(a <= b for a, b in itertools.pairwise(timesteps)):
        raise ValueError(f"timesteps={timesteps}: expected strictly decreasing integer levels in 0 … {big_k - 1}")


class DDPMSampler(DDIMSampler):
    """Ancestral DDPM: every level from K−1 to 0 with the posterior variance (DDIM with η = 1)."""

    def __init__(self, schedule: DiffusionSchedule, clip_sample: float | None = 1.0):
        super().__init__(schedule, num_inference_steps=schedule.num_train_steps, eta=1.0, clip_sample=clip_sample)
