"""Denoiser networks and observation encoders. Networks never import samplers."""

from .encoders import ObservationEncoder, ResNet18GN, ResNetGN, SpatialSoftmax
from .transformer import TransformerDenoiserNet
from .unet1d import ConditionalUnet1D

__all__ = [
    "ConditionalUnet1D",
    "ObservationEncoder",
    "ResNet18GN",
    "ResNetGN",
    "SpatialSoftmax",
    "TransformerDenoiserNet",
]
