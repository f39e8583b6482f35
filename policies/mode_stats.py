"""Size and cost of any policy: total and active parameters (MoDE leaves E − k experts per block idle) and
floating-point operations per action chunk at batch 1, counted by torch's FLOP counter on a real
`predict_chunk` (observation encoder once + every network evaluation of the sampler's step list)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode


@dataclass
class PolicyCounts:
    total_params: int
    active_params: int  # parameters one denoising step uses
    nfe_per_chunk: int
    flops_per_chunk: int  # with expert caching where the policy uses it
    flops_per_chunk_uncached: int | None = None  # a caching network (MoDE) only: the router + dispatch pass

    def to_dict(self) -> dict:
        return asdict(self)


def dummy_window(policy, batch: int = 1) -> dict[str, torch.Tensor]:
    """An observation window (batch, n_obs, …) of zeros (task index 0) with the policy's feature shapes."""
    cfg = policy.config
    window = {k: torch.zeros(batch, cfg.n_obs_steps, *f.shape) for k, f in cfg.input_features.items()}
    if getattr(policy, "task_conditioner", None) is not None:
        window[cfg.task_conditioning.key] = torch.zeros(batch, cfg.n_obs_steps, 1, dtype=torch.long)
    return window


def _chunk_flops(policy) -> int:
    window = dummy_window(policy)
    # nn.TransformerEncoder's inference fast path is one fused kernel the counter cannot see into: count the
    # same maths op by op.
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with FlopCounterMode(display=False) as counter:
            policy.predict_chunk(window, generator=torch.Generator().manual_seed(0))
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return int(counter.get_total_flops())


def count_policy(policy) -> PolicyCounts:
    """Parameter and FLOP counts of a `DiffusionPolicy` (any network)."""
    total = sum(p.numel() for p in policy.parameters())
    net = policy.net
    active = total - (sum(p.numel() for p in net.parameters()) - net.active_parameters())
    nfe = policy.sampler.nfe(policy.sampler.default_timesteps())
    policy.eval()
    policy.predict_chunk(dummy_window(policy))  # builds any expert cache first: its one-off cost is not per chunk
    flops = _chunk_flops(policy)
    uncached = None
    if net.caches:
        with net.cache_disabled():
            uncached = _chunk_flops(policy)
    return PolicyCounts(total, active, nfe, flops, uncached if uncached != flops else None)
