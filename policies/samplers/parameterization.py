"""Conversion between the three prediction kinds for x_t = alpha·x0 + sigma·eps.

velocity is the flow field v = x0 − eps (data minus noise), so on the linear flow path
(alpha = t, sigma = 1 − t) dx_t/dt = v. These formulas put a diffusion ε-model and a flow v-model on
one scale (GPC) and let any sampler drive any denoiser.
"""

from __future__ import annotations

import torch

from .base import PredictionKind

KINDS: tuple[str, ...] = ("epsilon", "sample", "velocity")


def _expand(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(v.shape + (1,) * (like.dim() - v.dim())).to(like.dtype)


def to_sample_and_noise(
    out: torch.Tensor, kind: PredictionKind, x_t: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0, eps) implied by a prediction `out` of `kind` at x_t; alpha, sigma (B,)."""
    a, s = _expand(alpha, x_t), _expand(sigma, x_t)
    if kind == "epsilon":
        eps = out
        x0 = (x_t - s * eps) / a.clamp(min=1e-8)
    elif kind == "sample":
        x0 = out
        eps = (x_t - a * x0) / s.clamp(min=1e-8)
    elif kind == "velocity":
        # x_t = a·x0 + s·(x0 − v)  ⇒  x0 = (x_t + s·v) / (a + s)
        x0 = (x_t + s * out) / (a + s)
        eps = x0 - out
    else:
        raise ValueError(f"prediction kind {kind!r} is not known; expected one of {KINDS}")
    return x0, eps


def convert_prediction(
    out: torch.Tensor,
    from_kind: PredictionKind,
    to_kind: PredictionKind,
    x_t: torch.Tensor,
    alpha: torch.Tensor,
    sigma: torch.Tensor,
) -> torch.Tensor:
    """Re-express a prediction of `from_kind` as `to_kind` at the same (x_t, alpha, sigma)."""
    if from_kind == to_kind:
        return out
    x0, eps = to_sample_and_noise(out, from_kind, x_t, alpha, sigma)
    if to_kind == "sample":
        return x0
    if to_kind == "epsilon":
        return eps
    if to_kind == "velocity":
        return x0 - eps
    raise ValueError(f"prediction kind {to_kind!r} is not known; expected one of {KINDS}")


def training_target(kind: PredictionKind, x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Regression target for a network that predicts `kind`."""
    if kind == "epsilon":
        return eps
    if kind == "sample":
        return x0
    if kind == "velocity":
        return x0 - eps
    raise ValueError(f"prediction kind {kind!r} is not known; expected one of {KINDS}")
