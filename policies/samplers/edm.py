"""EDM's deterministic 2nd-order (Heun) sampler (Karras et al. 2022) driving a discrete VP diffusion model.

In the variance-exploding view x̃ = x / α, σ̃ = σ / α the probability-flow ODE is dx̃/dσ̃ = ε̂, so a Heun
step is an Euler predictor plus a trapezoid corrector at the next level; the last step (to clean data)
is Euler, as in EDM, and so is the step into level 0 (σ̃ ≈ 0.025 on a 100-level cosine schedule: an ε asked
there multiplies the network's x0 error by ~40; PushT Heun-5 with that corrector 27.5 %, without it 78.0 %,
200 episodes). Levels follow Karras' ρ = 7 spacing in σ̃, rounded to the model's integer levels; n listed
levels ending at 0 cost 2n − 2 network evaluations (2n − 1 otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Denoiser
from .diffusion import _as_levels, _check_descending
from .schedules import DiffusionSchedule


@dataclass
class HeunSampler:
    schedule: DiffusionSchedule
    num_inference_steps: int = 5
    clip_sample: float | None = 1.0
    rho: float = 7.0
    sigma_max: float = 80.0  # EDM's top of the σ̃ grid; a cosine schedule's last level sits far above it

    def _sigmas(self) -> torch.Tensor:
        """σ̃ of every integer level, (K,), increasing with the level."""
        ab = self.schedule.alphas_cumprod.double()
        return ((1.0 - ab) / ab).sqrt()

    def default_timesteps(self, num_steps: int | None = None, start: float | None = None) -> list[int]:
        """n distinct levels from `start` (default: the noisiest with σ̃ ≤ sigma_max) to 0 in Karras' ρ-spacing."""
        n = num_steps or self.num_inference_steps
        sig = self._sigmas()
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

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, level: int) -> torch.Tensor:
        alpha, sigma = self.schedule.alpha_sigma(torch.tensor([int(level)]))
        return alpha.item() * x0 + sigma.item() * noise

    def _eps(self, denoiser: Denoiser, x: torch.Tensor, level: int, cond, ab: float) -> torch.Tensor:
        t = torch.full((x.shape[0],), level, dtype=torch.long, device=x.device)
        eps = denoiser.predict(x, t, cond, "epsilon")
        if self.clip_sample is not None:
            x0 = ((x - (1.0 - ab) ** 0.5 * eps) / ab**0.5).clamp(-self.clip_sample, self.clip_sample)
            eps = (x - ab**0.5 * x0) / (1.0 - ab) ** 0.5
        return eps

    @torch.no_grad()
    def sample(
        self,
        denoiser: Denoiser,
        x_init: torch.Tensor,
        cond,
        timesteps: list[int] | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        levels = _as_levels(timesteps if timesteps is not None else self.default_timesteps())
        _check_descending(levels, self.schedule.num_train_steps)
        ab_table = self.schedule.alphas_cumprod.tolist()
        x_ve = x_init / ab_table[levels[0]] ** 0.5
        for i, level in enumerate(levels):
            ab = ab_table[level]
            sigma = ((1.0 - ab) / ab) ** 0.5
            d = self._eps(denoiser, x_ve * ab**0.5, level, cond, ab)
            if i + 1 == len(levels):  # last step: Euler to clean data
                x_ve = x_ve - sigma * d
                break
            nxt = levels[i + 1]
            ab_n = ab_table[nxt]
            sigma_n = ((1.0 - ab_n) / ab_n) ** 0.5
            x_pred = x_ve + (sigma_n - sigma) * d
            if nxt == 0:  # no corrector at level 0: its ε is (x − x0)/σ̃ with σ̃ ≈ 0.025, any x0 error ×40
                x_ve = x_pred
                continue
            d_n = self._eps(denoiser, x_pred * ab_n**0.5, nxt, cond, ab_n)
            x_ve = x_ve + (sigma_n - sigma) * 0.5 * (d + d_n)
        return x_ve
