"""`NetDenoiser`: a network plus its noise schedule and native prediction kind, answering
`predict(x_t, t, cond, kind)` in any of ε / x0 / velocity — the one place nets meet schedules."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .samplers.base import PredictionKind
from .samplers.parameterization import convert_prediction, training_target
from .samplers.schedules import NoiseSchedule


@dataclass
class NetDenoiser:
    net: nn.Module
    schedule: NoiseSchedule
    prediction_type: PredictionKind

    def raw(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The network's own output (its native `prediction_type`), (B, T, A)."""
        return self.net(x_t, self.schedule.model_time(t), cond)

    def predict(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, kind: PredictionKind) -> torch.Tensor:
        out = self.raw(x_t, t, cond)
        if kind == self.prediction_type:
            return out
        alpha, sigma = self.schedule.alpha_sigma(t.to(x_t.device))
        return convert_prediction(out, self.prediction_type, kind, x_t, alpha, sigma)

    def loss(
        self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, generator=None
    ) -> torch.Tensor:
        """Mean squared error of the network's own prediction at x_t = α·x0 + σ·ε; x0, ε (B, T, A), t (B,)."""
        alpha, sigma = self.schedule.alpha_sigma(t)
        x_t = alpha[:, None, None] * x0 + sigma[:, None, None] * eps
        return nn.functional.mse_loss(self.raw(x_t, t, cond), training_target(self.prediction_type, x0, eps))
