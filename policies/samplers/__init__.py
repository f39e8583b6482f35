"""Samplers: how noise becomes an action chunk. They drive any `Denoiser` and never import networks. Each sampler
registers itself under its name where it is defined; importing this package registers them all."""

from .base import (
    SAMPLERS,
    Denoiser,
    PredictionKind,
    Sampler,
    SamplerConfig,
    make_sampler,
    register_sampler,
    sampler_class,
    sampler_names,
)
from .diffusion import DDIMSampler, DDPMSampler, DiscreteDiffusionSampler
from .dpm_solver import DPMSolverPP2MSampler
from .edm import HeunSampler
from .flow import FlowEulerSampler, FlowHeunSampler, FlowMidpointSampler, FlowSampler
from .masked import MaskedSampler
from .parameterization import convert_prediction, training_target
from .schedules import DiffusionSchedule, FlowSchedule, NoiseSchedule

__all__ = [
    "SAMPLERS",
    "DDIMSampler",
    "DDPMSampler",
    "DPMSolverPP2MSampler",
    "Denoiser",
    "DiffusionSchedule",
    "DiscreteDiffusionSampler",
    "FlowEulerSampler",
    "FlowHeunSampler",
    "FlowMidpointSampler",
    "FlowSampler",
    "FlowSchedule",
    "HeunSampler",
    "MaskedSampler",
    "NoiseSchedule",
    "PredictionKind",
    "Sampler",
    "SamplerConfig",
    "convert_prediction",
    "make_sampler",
    "register_sampler",
    "sampler_class",
    "sampler_names",
    "training_target",
]
