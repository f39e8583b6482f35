"""Samplers by name, the names configs use: ddpm | ddim | heun over a diffusion schedule,
flow_euler | flow_midpoint | flow_heun over a flow schedule."""

from __future__ import annotations

from .diffusion import DDIMSampler, DDPMSampler
from .edm import HeunSampler
from .flow import FlowSampler
from .schedules import DiffusionSchedule, FlowSchedule

DIFFUSION_SAMPLERS = ("ddpm", "ddim", "heun")
FLOW_SAMPLERS = ("flow_euler", "flow_midpoint", "flow_heun")


def make_sampler(
    name: str,
    schedule,
    num_inference_steps: int,
    eta: float = 0.0,
    clip_sample: float | None = 1.0,
    spacing: str = "leading",
):
    """The sampler `name` over `schedule` (which must be of the matching family)."""
    if name in DIFFUSION_SAMPLERS:
        if not isinstance(schedule, DiffusionSchedule):
            raise ValueError(f"sampler={name!r} needs a diffusion schedule; got {type(schedule).__name__}")
        if name == "ddpm":
            return DDPMSampler(schedule, clip_sample=clip_sample)
        if name == "ddim":
            return DDIMSampler(schedule, num_inference_steps, eta, clip_sample, spacing)
        return HeunSampler(schedule, num_inference_steps, clip_sample)
    if name in FLOW_SAMPLERS:
        if not isinstance(schedule, FlowSchedule):
            raise ValueError(f"sampler={name!r} needs a flow schedule; got {type(schedule).__name__}")
        return FlowSampler(schedule, num_inference_steps, name.removeprefix("flow_"))
    raise ValueError(f"sampler={name!r} is not known; expected one of {DIFFUSION_SAMPLERS + FLOW_SAMPLERS}")


def network_evaluations(sampler, timesteps: list) -> int:
    """Denoiser calls one `sample(…, timesteps)` makes (NFE per chunk)."""
    n = len(timesteps)
    if isinstance(sampler, HeunSampler):
        return 2 * n - 1
    if isinstance(sampler, FlowSampler):
        return n if sampler.method == "euler" else 2 * n
    return n
