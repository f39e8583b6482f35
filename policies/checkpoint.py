"""Atomic file writes and the safetensors + JSON checkpoint format (never pickle)."""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from diffpilot.atomic import atomic_path, atomic_write_bytes, atomic_write_json
from diffpilot.errors import CheckpointError
from diffpilot.run import atomic_save_tensors, load_tensors, policy_dir, read_json

__all__ = [
    "CheckpointError",
    "atomic_path",
    "atomic_save_tensors",
    "atomic_write_bytes",
    "atomic_write_json",
    "load_tensors",
    "read_json",
]


CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class DictConfig:
    """Mixin for dataclass configs stored in config.json: `to_dict` and a `from_dict` refusing unknown keys."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown keys {sorted(unknown)}")
        return cls(**d)


def save_pretrained_module(module: torch.nn.Module, directory: str | Path, type_name: str, config: dict) -> None:
    """model.safetensors (the state dict) + config.json ({"type", "config"}), each written atomically."""
    directory = Path(directory)
    atomic_save_tensors(directory / WEIGHTS_FILE, module.state_dict())
    atomic_write_json(directory / CONFIG_FILE, {"type": type_name, "config": config})


def load_pretrained_module(cls, config_from_dict, directory: str | Path, map_location: str = "cpu"):
    """`cls(config_from_dict(config))` with weights loaded strictly; refuses a checkpoint of another type or cut
    mid-save (`directory` as for `policy_dir`)."""
    directory = policy_dir(directory)
    meta = read_json(directory / CONFIG_FILE, "policy checkpoint")
    found = meta.get("type") if isinstance(meta, dict) else None
    if found != cls.type_name:
        raise CheckpointError(
            f"policy checkpoint {directory / CONFIG_FILE}: type is {found!r}; expected {cls.type_name!r}"
        )
    module = cls(config_from_dict(meta["config"]))
    _load_weights(module, directory)
    return module.to(map_location).eval()


def load_weights_into(module, directory: str | Path) -> None:
    """A saved policy's weights (and normalisation stats) into `module`, which must have the same tensors and shapes
    (e.g. `diffpilot train init_from=…`: fine-tuning starts from them)."""
    _load_weights(module, policy_dir(directory))


def _load_weights(module, directory: Path) -> None:
    """load_weights_into for a saved-policy folder already resolved (and checked) by policy_dir."""
    path = directory / WEIGHTS_FILE
    state = load_tensors(path, "policy checkpoint")
    own = module.state_dict()
    wrong = [
        f"{k} {tuple(v.shape)} (here {tuple(own[k].shape)})"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"policy checkpoint {path}: missing tensors {missing[:5]}, unexpected tensors {unexpected[:5]}, "
            f"other shapes {wrong[:5]} for this config"
        )
    module.load_state_dict(state)


class PretrainedPolicy(nn.Module):
    """A policy saved as config.json ({"type", "config"}) + model.safetensors (normalisation statistics included):
    a subclass declares `type_name` and `config_class` (with `from_dict`; its config `to_dict`). `forward` is the
    training loss, which the BC trainer (and DistributedDataParallel) calls."""

    type_name: ClassVar[str]
    config_class: ClassVar[type]

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def compute_loss(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} is not trained by behaviour cloning")

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.compute_loss(batch)

    def save_pretrained(self, directory: str | Path) -> None:
        """Write config.json and model.safetensors atomically."""
        save_pretrained_module(self, directory, self.type_name, self.config.to_dict())

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str = "cpu"):
        return load_pretrained_module(cls, cls.config_class.from_dict, directory, map_location)
