"""Noise schedules: every process here writes x_t = alpha(t)·x0 + sigma(t)·eps, so that predictions can be
converted between ε, x0 and velocity with one formula (see `parameterization`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol

import torch


class NoiseSchedule(Protocol):
    """What samplers, trainers and denoisers need from a noise process."""

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scale of data and of noise at level `t` (B,), each (B,)."""
        ...

    def model_time(self, t: torch.Tensor) -> torch.Tensor:
        """The scalar fed to the network's time embedding for level `t` (B,)."""
        ...

    def sample_training_times(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Random noise levels (B,) for one training batch."""
        ...


def _betas(kind: str, num_steps: int, beta_start: float, beta_end: float) -> torch.Tensor:
    if kind == "linear":
        return torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)
    if kind == "squaredcos_cap_v2":
        # Nichol & Dhariwal's cosine schedule, betas capped at 0.999.
        def alpha_bar(u: float) -> float:
            return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

        betas = [min(1 - alpha_bar((i + 1) / num_steps) / alpha_bar(i / num_steps), 0.999) for i in range(num_steps)]
        return torch.tensor(betas, dtype=torch.float64)
    raise ValueError(f"beta_schedule={kind!r} is not known; expected 'linear' or 'squaredcos_cap_v2'")


@dataclass
class DiffusionSchedule:
    """Discrete variance-preserving schedule of `num_train_steps` levels k = 0 … K-1 (k = K-1 most noisy)."""

    num_train_steps: int = 100
    beta_schedule: Literal["linear", "squaredcos_cap_v2"] = "squaredcos_cap_v2"
    beta_start: float = 1e-4
    beta_end: float = 2e-2
    family: ClassVar[str] = "diffusion"

    def __post_init__(self) -> None:
        if self.num_train_steps < 1:
            raise ValueError(f"num_train_steps={self.num_train_steps}: expected a positive integer")
        betas = _betas(self.beta_schedule, self.num_train_steps, self.beta_start, self.beta_end)
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0).float()

    def alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        """ᾱ at integer levels `t`; level -1 means clean data (ᾱ = 1)."""
        t = t.long()
        table = self.alphas_cumprod.to(t.device)
        return torch.where(t < 0, torch.ones_like(t, dtype=table.dtype), table[t.clamp(min=0)])

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ab = self.alpha_bar(t)
        return ab.sqrt(), (1.0 - ab).sqrt()

    def model_time(self, t: torch.Tensor) -> torch.Tensor:
        return t.float()

    def sample_training_times(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randint(0, self.num_train_steps, (batch,), generator=generator)


@dataclass
class FlowSchedule:
    """Linear path x_t = (1 − t)·noise + t·data with t ∈ [0, 1] (t = 1 is data), as in π0 (docs/methods.md).

    `time_scale` multiplies t before the network's sinusoidal embedding so its frequencies see the same
    range as a 1000-step diffusion index.
    """

    time_scale: float = 1000.0
    train_time_sampling: Literal["uniform", "beta"] = "uniform"
    family: ClassVar[str] = "flow"

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = t.float()
        return t, 1.0 - t

    def model_time(self, t: torch.Tensor) -> torch.Tensor:
        return t.float() * self.time_scale

    def sample_training_times(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.train_time_sampling == "uniform":
            return torch.rand(batch, generator=generator) * 0.999
        # π0's choice: emphasise the noisy end, t = 1 − 0.999·Beta(1.5, 1) mapped to our convention.
        u = torch.rand(batch, generator=generator)
        return 0.999 * (1.0 - u ** (1.0 / 1.5))
