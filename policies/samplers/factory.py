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
    time_power: float = 1.0,
):
    """The sampler `name` over `schedule` (which must be of the matching family); `spacing` (leading |
    trailing | quadratic) applies to DDIM, `time_power` to the flow samplers' time grid."""
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
        return FlowSampler(schedule, num_inference_steps, name.removeprefix("flow_"), time_power)
    raise ValueError(f"sampler={name!r} is not known; expected one of {DIFFUSION_SAMPLERS + FLOW_SAMPLERS}")


def network_evaluations(sampler, timesteps: list) -> int:
    """Denoiser calls one `sample(…, timesteps)` makes (NFE per chunk)."""
    n = len(timesteps)
    if isinstance(sampler, HeunSampler):  # no corrector on the last step, nor on a step into level 0
        return 2 * n - 1 - (1 if n > 1 and int(timesteps[-1]) == 0 else 0)
    if isinstance(sampler, FlowSampler):
        return {"euler": n, "midpoint": 2 * n, "heun": 2 * n - 1}[sampler.method]
    return n
