"""Glue shared by the commands: task configs by name and torch threads."""

from __future__ import annotations

import os
from typing import Any


def load_task_config(name: str) -> dict[str, Any] | None:
    """configs/task/<name>.yaml as a dict (e.g. lift_image), or None when there is no such task config."""
    from importlib.resources import files

    from omegaconf import OmegaConf

    path = files("diffpilot.configs") / "task" / f"{name}.yaml"
    if not path.is_file():
        return None
    return OmegaConf.to_container(OmegaConf.create(path.read_text()), resolve=True)


def set_threads(n: int) -> None:
    import torch

    if n:
        torch.set_num_threads(n)
    os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))
