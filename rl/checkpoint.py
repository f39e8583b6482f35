"""RL checkpoints for exact resume, never pickle: networks and optimiser states as safetensors, the
replay buffer and the envs' episode states as safetensors, counters as JSON, the torch RNG state.

Layout of a checkpoint directory:
    modules.safetensors    every module's state dict, keys "<name>.<param>"
    optim_<name>.safetensors + state.json["optimizers"][name]   flattened optimiser state
    replay.safetensors     (optional) the replay buffer
    env_state.safetensors  (optional) ChunkVecEnv.state()
    rng.safetensors        torch's global RNG state
    state.json             counters and metadata
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save_file as save_numpy
from torch import nn

from diffpilot.atomic import atomic_path, atomic_write_json
from diffpilot.policies.checkpoint import CheckpointError, atomic_save_tensors, load_tensors, read_json
from diffpilot.policies.train import flatten_optimizer, restore_optimizer

STATE_FILE = "state.json"


def save_rl_checkpoint(
    directory: str | os.PathLike,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    state: dict[str, Any],
    replay=None,
    env_state: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write everything atomically, file by file, state.json last (a directory without it is incomplete)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"{name}.{k}": v for name, m in modules.items() for k, v in m.state_dict().items()}
    atomic_save_tensors(directory / "modules.safetensors", tensors)
    optim_meta = {}
    for name, opt in optimizers.items():
        flat, meta = flatten_optimizer(opt)
        atomic_save_tensors(directory / f"optim_{name}.safetensors", flat)
        optim_meta[name] = meta
    if replay is not None:
        replay.save(directory / "replay.safetensors")
    if env_state is not None:
        with atomic_path(directory / "env_state.safetensors") as tmp:
            save_numpy({k: np.ascontiguousarray(v) for k, v in env_state.items()}, str(tmp))
    atomic_save_tensors(directory / "rng.safetensors", {"torch": torch.get_rng_state()})
    atomic_write_json(directory / STATE_FILE, {**state, "optimizers": optim_meta})
    return directory


def load_rl_checkpoint(
    directory: str | os.PathLike,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    replay=None,
) -> tuple[dict[str, Any], dict[str, np.ndarray] | None]:
    """Restore modules, optimisers, replay and the torch RNG in place; returns (state.json, env state)."""
    directory = Path(directory)
    state = read_json(directory / STATE_FILE, "RL checkpoint")
    tensors = load_tensors(directory / "modules.safetensors", "RL checkpoint")
    for name, module in modules.items():
        prefix = f"{name}."
        sub = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        if not sub:
            raise CheckpointError(f"RL checkpoint {directory}: no weights for module {name!r}")
        module.load_state_dict(sub)
    for name, opt in optimizers.items():
        if name not in state.get("optimizers", {}):
            raise CheckpointError(f"RL checkpoint {directory}: no state for optimizer {name!r}")
        flat = load_tensors(directory / f"optim_{name}.safetensors", "RL checkpoint")
        restore_optimizer(opt, flat, state["optimizers"][name])
    if replay is not None:
        replay.load(directory / "replay.safetensors")
    env_path = directory / "env_state.safetensors"
    env_state = load_numpy(str(env_path)) if env_path.is_file() else None
    torch.set_rng_state(load_tensors(directory / "rng.safetensors", "RL checkpoint")["torch"])
    return state, env_state
