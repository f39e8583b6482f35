"""DPM-Solver++ (2M) (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic
Models"): a second-order multistep solver of the probability-flow ODE in the data-prediction form, over a discrete
`DiffusionSchedule`.

With λ = log(α/σ) and h = λ_next − λ, a first-order step is exactly DDIM:
    x_next = (σ_next/σ)·x − α_next·(e^{−h} − 1)·D,    D = x̂0(x, t).
The 2M step replaces D by a linear extrapolation of the last two clean-sample estimates, D = (1 + 1/2r)·x̂0 −
(1/2r)·x̂0_prev with r = h_prev/h, which costs no extra network evaluation: n listed levels are n evaluations. The
first step has no history (first order), and the step to clean data takes the last estimate itself (λ = ∞ there:
the paper's "lower order final" step).
"""

from __future__ import annotations

import math
from typing import ClassVar

from .base import register_sampler
from .diffusion import CLEAN, DiscreteDiffusionSampler


@register_sampler
class DPMSolverPP2MSampler(DiscreteDiffusionSampler):
    name: ClassVar[str] = "dpmpp_2m"

    def log_snr_half(self, level: int) -> float:
        """λ = log(α/σ) at an integer level."""
        ab = self.alpha_bar(level)
        return 0.5 * math.log(ab / (1.0 - ab))

    def step(self, denoiser, x, t, t_next, cond, generator=None, carry=None):
        x0 = self.predict_x0_eps(denoiser, x, t, cond)[0]
        if t_next == CLEAN:
            return x0, None
        h = self.log_snr_half(t_next) - self.log_snr_half(t)
        estimate = x0
        if carry is not None:
            x0_prev, h_prev = carry
            r = h_prev / h
            estimate = (1.0 + 0.5 / r) * x0 - (0.5 / r) * x0_prev
        ab, ab_next = self.alpha_bar(t), self.alpha_bar(t_next)
        ratio = ((1.0 - ab_next) / (1.0 - ab)) ** 0.5  # σ_next / σ
        x_next = ratio * x - ab_next**0.5 * math.expm1(-h) * estimate
        return x_next, (x0, h)
