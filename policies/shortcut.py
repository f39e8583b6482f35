"""Shortcut flow models (Frans et al., "One Step Diffusion via Shortcut Models", ICLR 2025): one network
conditioned on the step size d as well as on t, so that x_t + d·s(x_t, t, d) lands where many small steps would.

d = 0 is the plain flow velocity (trained by flow matching); d ∈ {2/M, 4/M, …, 1} are shortcuts trained by
self-consistency — one step of 2d must equal two steps of d:
    s(x_t, t, 2d) ← stop-grad(½·(s(x_t, t, d) + s(x_t + d·s(x_t, t, d), t + d, d)))
with the smallest d = 1/M queried as d = 0 (the flow field). The same weights then sample with many small steps
(the full sampler) or with a few large ones (few-step sampling and RTI warm starts), which is what lets a warm
start with ≤ 3 network evaluations be compared with the full sampler on the same weights.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from .denoiser import NetDenoiser
from .samplers.base import PredictionKind
from .warmstart import shift_chunk


def check_shortcut_steps(m: int) -> None:
    """M, the finest step count, must be a power of two ≥ 2 (0 turns shortcuts off)."""
    if m != 0 and (m < 2 or m & (m - 1)):
        raise ValueError(f"shortcut.steps={m}: expected 0 (off) or a power of two ≥ 2, e.g. 128")


def trained_jumps(m: int) -> list[float]:
    """The jump sizes 2d = 2^k / M (k ≥ 1) a shortcut model with finest step count M trains (none for M = 0)."""
    return [2.0**k / m for k in range(1, int(math.log2(m)) + 1)] if m else []


def is_trained_jump(size: float, m: int) -> bool:
    return any(abs(size - z) < 1e-9 for z in trained_jumps(m))


def check_shortcut_grid(m: int, sizes: tuple[float, ...], times: tuple[float, ...]) -> None:
    """`shortcut.sizes` must be trained jump sizes 2d = 2^k / M (k ≥ 1) and every `shortcut.times`
    entry a start t with t + 2d ≤ 1 for each of them."""
    trained = trained_jumps(m)
    for size in sizes:
        if not is_trained_jump(size, m):
            raise ValueError(f"shortcut.sizes entry {size}: expected one of the trained jumps 2^k/{m}: {trained}")
    if times and not sizes:
        raise ValueError(
            f"shortcut.times={list(times)} without shortcut.sizes: expected the jump sizes taken from "
            "these start times too (e.g. [0.125] for RTI's steps of 1/8)"
        )
    for t in times:
        if not 0.0 <= t <= 1.0 - max(sizes) + 1e-9:
            raise ValueError(
                f"shortcut.times entry {t}: expected a start in [0, {1.0 - max(sizes)}] so that a jump of "
                f"{max(sizes)} (the largest of shortcut.sizes) ends by t = 1"
            )


def step_list_jumps(m: int, step_list: tuple[float, ...]) -> tuple[tuple[float, float], ...]:
    """A few-step sampler's step list (strictly increasing flow times in [0, 1), the last step ending at 1) →
    its (start t, jump 2d) pairs, each jump a trained size 2^k / M: e.g. [0.125, 0.625, 0.875] →
    ((0.125, 0.5), (0.625, 0.25), (0.875, 0.125))."""
    if not step_list:
        return ()
    times = [float(t) for t in step_list]
    if any(not 0.0 <= t < 1.0 for t in times) or any(a >= b for a, b in itertools.pairwise(times)):
        raise ValueError(f"shortcut.step_list={times}: expected strictly increasing flow times in [0, 1)")
    jumps = tuple((t, end - t) for t, end in itertools.pairwise([*times, 1.0]))
    for t, size in jumps:
        if not is_trained_jump(size, m):
            raise ValueError(
                f"shortcut.step_list={times}: the step from t={t} is {size}; expected every step to be a "
                f"trained jump 2^k/{m}: {trained_jumps(m)}"
            )
    return jumps


@dataclass(frozen=True)
class ShortcutConfig:
    """A shortcut flow model (policies/shortcut.py; Frans et al. 2025): the network also sees the step size d, so the
    same weights sample with many small steps or a few large ones."""

    steps: int = 0
    """M, the finest step count (a power of two, e.g. 128); 0 is plain flow matching."""
    fraction: float = 0.25
    """Share of each batch trained on self-consistency."""
    target_steps: int = 2
    """Steps of the self-consistency target: a jump of 2d is trained towards K steps of 2d/K of the model itself."""
    sizes: tuple[float, ...] = ()
    """Restrict the self-consistency rows to these jump sizes 2d (empty: every trained size)."""
    times: tuple[float, ...] = ()
    """… taken from these start times (empty: t uniform)."""
    step_list: tuple[float, ...] = ()
    """Or train exactly the steps of one uneven step list, e.g. RTI's [0.125, 0.625, 0.875]."""
    warm_shift: int = 0
    """> 0: those rows start from RTI's input (the chunk shifted by this many executed steps, a linear tail)."""

    def __post_init__(self) -> None:
        for name in ("sizes", "times", "step_list"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))

    def check(self, objective: str, prediction_type: str, horizon: int) -> None:
        """A ValueError naming the field when these settings cannot train a model of this objective and horizon."""
        check_shortcut_steps(self.steps)
        if not self.steps:
            return
        if objective != "flow" or prediction_type != "velocity":
            raise ValueError(
                f"shortcut.steps={self.steps} with objective={objective!r}, prediction_type={prediction_type!r}: "
                "a shortcut model is a flow model predicting velocity"
            )
        if not 0.0 <= self.fraction < 1.0:
            raise ValueError(f"shortcut.fraction={self.fraction}: expected a share in [0, 1)")
        k = self.target_steps
        if k < 2 or k & (k - 1):
            raise ValueError(f"shortcut.target_steps={k}: expected a power of two ≥ 2 (2: two half steps)")
        check_shortcut_grid(self.steps, self.sizes, self.times)
        if self.step_list and (self.sizes or self.times):
            raise ValueError(
                f"shortcut.step_list={list(self.step_list)} with shortcut.sizes / shortcut.times: expected one way "
                "of choosing the trained jumps (clear the other)"
            )
        step_list_jumps(self.steps, self.step_list)
        if not 0 <= self.warm_shift <= horizon - 2:
            raise ValueError(
                f"shortcut.warm_shift={self.warm_shift}: expected 0 (off) … horizon − 2 = {horizon - 2} executed steps"
            )


class StepSizeCode(nn.Module):
    """Step size d → one-hot (B, C) over the trained sizes {0, 2/M, 4/M, …, 1} (C = log2 M + 1); any other d is
    snapped to the nearest trained size in log scale, and d < 1.5/M to 0 (the flow field)."""

    def __init__(self, finest_steps: int):
        super().__init__()
        check_shortcut_steps(finest_steps)
        self.finest_steps = finest_steps
        self.n_codes = int(math.log2(finest_steps)) + 1

    def index(self, d: torch.Tensor) -> torch.Tensor:
        """(B,) step sizes → (B,) long code index: 0 for d = 0, k for d = 2^k / M."""
        steps = d.float() * self.finest_steps  # d in units of the finest step
        k = torch.log2(steps.clamp(min=1.0)).round().clamp(1, self.n_codes - 1).long()
        return torch.where(steps < 1.5, torch.zeros_like(k), k)

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(self.index(d), self.n_codes).float()


@dataclass
class ShortcutDenoiser(NetDenoiser):
    """A NetDenoiser whose condition also carries the step size (`step_aware`: flow samplers pass the step they
    take; `step=0` — the default — is the instantaneous flow velocity, what every other caller gets)."""

    code: StepSizeCode | None = None
    settings: ShortcutConfig = field(default_factory=ShortcutConfig)
    step_aware: bool = True

    def raw(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, step: float | torch.Tensor = 0.0):
        d = torch.as_tensor(step, dtype=torch.float32, device=x_t.device).expand(x_t.shape[0])
        cond = torch.cat([cond, self.code(d).to(cond)], dim=-1)
        return self.net(x_t, self.schedule.model_time(t), cond)

    def predict(
        self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, kind: PredictionKind, step: float = 0.0
    ) -> torch.Tensor:
        if kind != "velocity":
            raise ValueError(f"kind={kind!r}: a shortcut denoiser answers with velocities only")
        return self.raw(x_t, t, cond, step)

    def loss(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, generator=None):
        """Flow matching on most rows, self-consistency of the step sizes on `settings.fraction` of them."""
        c = self.settings
        jumps = step_list_jumps(c.steps, c.step_list)
        x_t, t, d, target = shortcut_batch(
            self, x0, eps, t, cond, c.fraction, generator, c.target_steps, c.sizes, c.times, c.warm_shift, jumps
        )
        return nn.functional.mse_loss(self.raw(x_t, t, cond, d), target)


def shortcut_batch(
    denoiser: ShortcutDenoiser,
    x0: torch.Tensor,
    noise: torch.Tensor,
    t: torch.Tensor,
    cond: torch.Tensor,
    fraction: float,
    generator: torch.Generator | None = None,
    target_steps: int = 2,
    sizes: tuple[float, ...] = (),
    times: tuple[float, ...] = (),
    warm_shift: int = 0,
    jumps: tuple[tuple[float, float], ...] = (),
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training inputs and targets for a batch of data x0 (B, T, A), noise and flow times t (B,): the first
    (1 − fraction)·B rows are flow matching (d = 0, target x0 − noise), the rest self-consistency at a random
    trained size 2d with t redrawn in [0, 1 − 2d], towards the mean velocity of `target_steps` steps of 2d/K
    (K = 2: the paper's two half steps; steps finer than 1/M use the flow field, d = 0). `sizes` / `times`
    restrict those rows to the listed sizes 2d and start times (a few-step sampler's own grid, e.g. RTI's three
    steps of 1/8 from t = 0.625: sizes (0.125,), times (0.625, 0.75, 0.875)). `warm_shift` = k > 0 builds those rows'
    x_t from what an RTI warm start is given instead of the data chunk: the chunk's first T − k steps with a linear
    tail of k (the previous chunk shifted by k executed steps, `rti.pad=extrapolate`). `jumps` ((t, 2d) pairs, from
    `step_list_jumps`) instead trains exactly the steps of one uneven step list. Returns (x_t, t, d, target)."""
    b = x0.shape[0]
    n_sc = round(fraction * b)
    d = torch.zeros(b, device=x0.device)
    target = x0 - noise
    if n_sc:
        m = denoiser.code.finest_steps
        levels = denoiser.code.n_codes - 1  # 2d ∈ {2/M, …, 1}: 2d = 2^k / M for k = 1 … log2 M
        if jumps:  # (start, size) pairs of one step list
            pick = torch.randint(len(jumps), (n_sc,), generator=generator)
            start_t, big = torch.tensor(jumps, dtype=torch.float32)[pick].to(x0.device).unbind(-1)
        else:
            if sizes:
                pick = torch.randint(len(sizes), (n_sc,), generator=generator)
                big = torch.tensor(sizes, dtype=torch.float32)[pick].to(x0.device)
            else:
                k = torch.randint(1, levels + 1, (n_sc,), generator=generator).to(x0.device)
                big = (2.0**k) / m
            if times:
                pick = torch.randint(len(times), (n_sc,), generator=generator)
                start_t = torch.tensor(times, dtype=torch.float32)[pick].to(x0.device)
            else:
                start_t = torch.rand(n_sc, generator=generator).to(x0.device) * (1.0 - big)
        small = big / target_steps
        t = t.clone()
        t[b - n_sc :] = start_t
        d[b - n_sc :] = big
    start = x0
    if n_sc and warm_shift:
        start = x0.clone()
        start[b - n_sc :] = warm_start_chunk(x0[b - n_sc :], warm_shift)
    x_t = t[:, None, None] * start + (1.0 - t[:, None, None]) * noise
    if n_sc:
        rows = slice(b - n_sc, b)
        small_query = torch.where(small * m < 1.5, torch.zeros_like(small), small)  # the finest step is d = 0
        with torch.no_grad():
            x, ts, cs = x_t[rows], t[rows], cond[rows]
            for _ in range(target_steps):
                x = x + small[:, None, None] * denoiser.raw(x, ts, cs, small_query)
                ts = ts + small
        target = target.clone()
        target[rows] = (x - x_t[rows]) / big[:, None, None]
    return x_t, t, d, target


def warm_start_chunk(chunk: torch.Tensor, k: int) -> torch.Tensor:
    """(B, T, A) chunk → what RTI re-noises when this chunk's window came k steps after the previous one: its first
    T − k steps (the previous chunk's last T − k) and a tail of k steps extrapolated at their last velocity."""
    horizon = chunk.shape[1]
    if not 0 < k <= horizon - 2:
        raise ValueError(f"warm_shift={k}: expected 1 … horizon − 2 = {horizon - 2} executed steps")
    # rolled by k, the chunk's first T − k steps are a previous chunk's last ones: RTI's own shift does the rest
    return shift_chunk(chunk.roll(k, dims=1), k, "extrapolate")
