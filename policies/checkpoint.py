"""Atomic file writes and the safetensors + JSON checkpoint format (never pickle)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from diffpilot.atomic import atomic_path, atomic_write_bytes, atomic_write_json

__all__ = ["atomic_path", "atomic_save_tensors", "atomic_write_bytes", "atomic_write_json", "load_tensors", "read_json"]


class CheckpointError(ValueError):
    """A checkpoint directory is missing a file or holds something other than what was asked for."""


def atomic_save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor]) -> None:
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))


def read_json(path: str | os.PathLike, what: str) -> Any:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what}: {path} does not exist")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{what}: {path} is not valid JSON ({e})") from e


def load_tensors(path: str | os.PathLike, what: str) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what}: {path} does not exist")
    return load_file(str(path))
