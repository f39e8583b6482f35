"""Denoiser networks and observation encoders. Networks never import samplers. Each network registers itself with
its config (nets/base.py); importing this package registers them all."""

from .base import NETWORKS, DenoiserNet, NetworkConfig, build_network, register_network
from .encoders import ObservationEncoder, ResNet18GN, ResNetGN, SpatialSoftmax
from .mode import MoDEConfig, MoDEDenoiserNet
from .transformer import TransformerConfig, TransformerDenoiserNet
from .unet1d import ConditionalUnet1D, UNetConfig

__all__ = [
    "NETWORKS",
    "ConditionalUnet1D",
    "DenoiserNet",
    "MoDEConfig",
    "MoDEDenoiserNet",
    "NetworkConfig",
    "ObservationEncoder",
    "ResNet18GN",
    "ResNetGN",
    "SpatialSoftmax",
    "TransformerConfig",
    "TransformerDenoiserNet",
    "UNetConfig",
    "build_network",
    "register_network",
]
