"""Exponential moving average of weights with Diffusion Policy's warm-up: decay grows as
1 − (1 + step / inv_gamma)^−power, capped at max_decay, so early weights are forgotten quickly."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, power: float = 0.75, inv_gamma: float = 1.0, max_decay: float = 0.9999):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.power, self.inv_gamma, self.max_decay = power, inv_gamma, max_decay

    def decay(self, step: int) -> float:
        if step <= 0:
            return 0.0
        return min(max(1.0 - (1.0 + step / self.inv_gamma) ** -self.power, 0.0), self.max_decay)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Blend `model`'s parameters in (buffers, e.g. normalisation stats, are copied)."""
        d = self.decay(step)
        ema_params = list(self.model.parameters())
        params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_params, params, 1.0 - d)  # ema ← d·ema + (1 − d)·p, one fused pass
        for ema_b, b in zip(self.model.buffers(), model.buffers()):
            ema_b.copy_(b)
