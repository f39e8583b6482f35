"""Expert caching glue between a policy's sampler and a MoDE network (which never sees samplers): the noise
levels a sampler will query for its step list, turned into the network's model times and cached."""

from __future__ import annotations

import torch

from .nets.mode import MoDEDenoiserNet
from .samplers.flow import FlowSampler


def sampler_query_times(sampler, timesteps: list) -> list[float]:
    """Every noise level / time `sampler.sample(…, timesteps)` asks the denoiser about, in order of first use.

    DDPM / DDIM / Heun query exactly the listed levels (Heun's corrector lands on the next listed level);
    flow midpoint adds each step's midpoint and flow Heun each step's end (1.0 after the last)."""
    times = [float(t) for t in timesteps]
    if isinstance(sampler, FlowSampler) and sampler.method != "euler":
        ends = [*times[1:], 1.0]
        extra = [0.5 * (a + b) for a, b in zip(times, ends)] if sampler.method == "midpoint" else ends
        times = times + extra
    return list(dict.fromkeys(times))


def refresh_expert_cache(policy) -> None:
    """(Re)build the expert cache of a MoDE policy for its sampler's default step list (no-op for other nets or
    with `mode_expert_cache=false`). Other step lists (e.g. a warm start) fall back to the uncached pass."""
    net = getattr(policy, "net", None)
    if not isinstance(net, MoDEDenoiserNet):
        return
    if not policy.config.mode_expert_cache:
        net.clear_expert_cache()
        return
    levels = sampler_query_times(policy.sampler, policy.sampler.default_timesteps())
    net.build_expert_cache(policy.schedule.model_time(torch.tensor(levels)).tolist())
