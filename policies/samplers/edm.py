"""EDM's deterministic 2nd-order (Heun) sampler (Karras et al. 2022) driving a discrete VP diffusion model.

In the variance-exploding view x̃ = x / α, σ̃ = σ / α the probability-flow ODE is dx̃/dσ̃ = ε̂, so a Heun step is an
Euler predictor plus a trapezoid corrector at the next level; the last step (to clean data) is Euler, as in EDM, and
so is the step into level 0 (σ̃ ≈ 0.025 on a 100-level cosine schedule: an ε asked there multiplies the network's x0
error by ~40). Levels follow Karras' ρ = 7 spacing in σ̃, rounded to the model's integer levels.

With few levels the first step is very long (3 levels from σ̃ = 64: to σ̃ ≈ 3.5, a factor 18), and the trapezoid then
moves the point by ½ (σ̃/σ̃_next − 1) ≈ 8.6 times the change of the clean-sample estimate between the two levels — an
over-correction that a first-order step (DDIM) does not make and a multistep one in x0 (DPM-Solver++) avoids.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from .base import register_sampler
from .diffusion import CLEAN, DiscreteDiffusionSampler


@register_sampler
class HeunSampler(DiscreteDiffusionSampler):
    name: ClassVar[str] = "heun"
    rho: ClassVar[float] = 7.0
    sigma_max: ClassVar[float] = 80.0  # EDM's top of the σ̃ grid; a cosine schedule's last level sits far above it

    def sigmas(self) -> torch.Tensor:
        """σ̃ of every integer level, (K,), increasing with the level."""
        ab = self.schedule.alphas_cumprod.double()
        return ((1.0 - ab) / ab).sqrt()

    def default_timesteps(self, num_steps: int | None = None, start: float | None = None) -> list[int]:
        """n distinct levels from `start` (default: the noisiest with σ̃ ≤ sigma_max) to 0 in Karras' ρ-spacing."""
        n = num_steps or self.num_inference_steps
        sig = self.sigmas()
        # From pure noise EDM starts at σ̃ = sigma_max, not at a cosine schedule's last level (σ̃ ≈ 2000 for
        # K = 100): a trapezoid step across that range multiplies the noise estimate's error by ~σ̃.
        top = int((sig <= self.sigma_max).nonzero().max()) if start is None else int(start)
        if not 1 <= n <= top + 1:
            raise ValueError(f"num_steps={n}: expected 1 … {top + 1} (levels from {top} to 0)")
        hi, lo = min(float(sig[top]), self.sigma_max) ** (1 / self.rho), float(sig[0]) ** (1 / self.rho)
        levels = [top]
        for i in range(1, n):
            target = (hi + i / max(n - 1, 1) * (lo - hi)) ** self.rho
            # nearest level strictly below the previous one that leaves room for the remaining ones
            level = int((sig[: levels[-1]] - target).abs().argmin())
            levels.append(max(min(level, levels[-1] - 1), n - 1 - i))
        return levels

    @staticmethod
    def has_corrector(t_next: int) -> bool:
        """The trapezoid corrector runs on every step but those ending at level 0 or at clean data."""
        return t_next not in (0, CLEAN)

    def nfe(self, timesteps: list) -> int:
        return sum(1 + self.has_corrector(t_next) for _, t_next in self.step_pairs(timesteps))

    def step(self, denoiser, x, t, t_next, cond, generator=None, carry=None):
        ab, ab_next = self.alpha_bar(t), self.alpha_bar(t_next)
        sigma, sigma_next = ((1.0 - ab) / ab) ** 0.5, ((1.0 - ab_next) / ab_next) ** 0.5
        x_ve = x / ab**0.5
        d = self.predict_x0_eps(denoiser, x, t, cond)[1]
        x_ve_next = x_ve + (sigma_next - sigma) * d  # Euler predictor
        if self.has_corrector(t_next):
            d_next = self.predict_x0_eps(denoiser, x_ve_next * ab_next**0.5, t_next, cond)[1]
            x_ve_next = x_ve + (sigma_next - sigma) * 0.5 * (d + d_next)
        return x_ve_next * ab_next**0.5, None
