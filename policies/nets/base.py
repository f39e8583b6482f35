"""The network seam: a denoiser network maps (x (B, T, A), model time (B,), condition (B, C)) to (B, T, A). Each network
registers itself with its typed config (`@register_network`), so a policy builds any of them from `network.type`
and never checks which one it holds. Optional hooks a network may override:

- `aux_loss()`: a loss to add to the denoising loss after a training forward (MoDE: load balancing);
- `prepare(model_times)`: called with every model time the sampler will ask for (MoDE: expert caching).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..typed_config import config_from_dict, config_to_dict


@dataclass(frozen=True)
class NetworkConfig:
    """Base of every network's config; `type` names the registered network."""

    type: ClassVar[str] = ""

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "network") -> NetworkConfig:
        """The config class of `values["type"]` built from the other keys."""
        values = dict(values)
        kind = values.pop("type", None)
        if kind not in NETWORKS:
            raise ValueError(f"{where}.type={kind!r}: expected one of {sorted(NETWORKS)}")
        return config_from_dict(NETWORKS[kind].config_class, values, where)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **config_to_dict(self)}

    def check(self, horizon: int) -> None:
        """Raise a ValueError when the network cannot be built for chunks of `horizon` steps."""


class DenoiserNet(nn.Module):
    """Base of the registered networks: `build` from the config and the policy's sizes, and the optional hooks."""

    config_class: ClassVar[type[NetworkConfig]]

    @classmethod
    def build(cls, config: NetworkConfig, action_dim: int, cond_dim: int, horizon: int) -> DenoiserNet:
        raise NotImplementedError

    def aux_loss(self) -> torch.Tensor | None:
        """A loss to add to the denoising loss after a training forward (None: nothing)."""
        return None

    def prepare(self, model_times: list[float]) -> None:
        """Get ready for a sampler that will ask at these model times (no-op unless the network caches)."""

    def active_parameters(self) -> int:
        """Parameters one denoising step uses (all of them unless the network routes)."""
        return sum(p.numel() for p in self.parameters())

    @property
    def caches(self) -> bool:
        """Whether the network caches work per model time (then `cache_disabled` gives another pass)."""
        return False

    @contextlib.contextmanager
    def cache_disabled(self) -> Iterator[None]:
        """Within the block every pass is the uncached one (for comparisons; nothing to do without a cache)."""
        yield


NETWORKS: dict[str, type[DenoiserNet]] = {}


def register_network(cls: type[DenoiserNet]) -> type[DenoiserNet]:
    """Class decorator: the network answers to `cls.config_class.type` in `network.type`."""
    name = cls.config_class.type
    if not name or name in NETWORKS:
        raise ValueError(f"network type {name!r} is empty or registered twice")
    NETWORKS[name] = cls
    return cls


def build_network(config: NetworkConfig, action_dim: int, cond_dim: int, horizon: int) -> DenoiserNet:
    return NETWORKS[config.type].build(config, action_dim, cond_dim, horizon)
