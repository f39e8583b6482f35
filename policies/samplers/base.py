"""The sampler seam: a `Denoiser` answers with its prediction in any parameterisation, a `Sampler`
turns an explicit initial noise into a sample by visiting an explicit list of noise levels."""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

import torch

PredictionKind = Literal["epsilon", "sample", "velocity"]
"""`epsilon`: the noise; `sample`: the clean data x0; `velocity`: data minus noise (the flow field)."""


@runtime_checkable
class Denoiser(Protocol):
    """Anything that predicts, at noise level `t` (shape (B,)), the clean sample / noise / velocity of
    `x_t` (B, T, A) given a condition; `kind` picks which of the three it returns. A denoiser may also
    have a `native_kind` attribute (the kind its network outputs), which samplers ask for to skip a conversion."""

    def predict(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, kind: PredictionKind) -> torch.Tensor: ...


class Sampler(Protocol):
    """Maps an initial noise (B, T, A) to a sample, visiting `timesteps` in order.

    `timesteps[0]` is the start step: the noise level `x_init` is at. A full sample starts from pure
    noise at the most noisy level; a warm start (RTI) starts from a re-noised previous chunk at an
    intermediate level with a short list such as [2, 1, 0].
    """

    def default_timesteps(self, num_steps: int | None = None, start: float | None = None) -> list[float]: ...

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: float) -> torch.Tensor:
        """The point at noise level `t` between clean `x0` and `noise` (a warm start's initial point)."""
        ...

    def sample(
        self,
        denoiser: Denoiser,
        x_init: torch.Tensor,
        cond: torch.Tensor,
        timesteps: list[float] | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor: ...
