"""Samplers: how noise becomes an action chunk. They drive any `Denoiser` and never import networks."""

from .base import Denoiser, PredictionKind, Sampler
from .diffusion import DDIMSampler, DDPMSampler
from .edm import HeunSampler
from .flow import FlowSampler
from .parameterization import convert_prediction, training_target
from .schedules import DiffusionSchedule, FlowSchedule, NoiseSchedule

__all__ = [
    "DDIMSampler",
    "DDPMSampler",
    "Denoiser",
    "DiffusionSchedule",
    "FlowSampler",
    "FlowSchedule",
    "HeunSampler",
    "NoiseSchedule",
    "PredictionKind",
    "Sampler",
    "convert_prediction",
    "training_target",
]
