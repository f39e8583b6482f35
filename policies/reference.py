"""A saved policy's fingerprint: what it outputs for fixed inputs and fixed noise.

A shipped checkpoint keeps one beside its weights (`reference.safetensors`), so a load or a library change that
alters what the policy computes is caught by comparing against it. Chunk policies store one observation, the
initial noise and the action chunk; driving planners store a batch of scene observations and the candidate
trajectories and confidences of a seeded plan.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from diffpilot.atomic import atomic_path

REFERENCE_FILE = "reference.safetensors"


def chunk_reference_inputs(policy, seed: int = 0) -> dict[str, torch.Tensor]:
    """One observation (1, *shape) per input feature, drawn inside the normaliser's range (images in [0, 1]; task 0
    for a task-conditioned policy), and the sampler's initial noise (1, horizon, A), all from `seed`."""
    gen = torch.Generator().manual_seed(seed)
    inputs = {}
    for key in policy.observation_keys:
        feature = policy.config.input_features.get(key)
        if feature is None:  # a task index
            inputs[f"input.{key}"] = torch.zeros(1, dtype=torch.long)
            continue
        uniform = torch.rand((1, *feature.shape), generator=gen)
        if feature.kind == "image":
            inputs[f"input.{key}"] = uniform
        else:
            inputs[f"input.{key}"] = policy.normalizer.unnormalize(key, 1.6 * uniform - 0.8)
    inputs["noise"] = torch.randn((1, policy.config.horizon, policy.config.action_dim), generator=gen)
    return inputs


def reference_outputs(policy, inputs: dict[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    """The policy's outputs for `inputs`: `chunk` (1, horizon, A) for a chunk policy (sampled from `noise`; a
    stochastic sampler's draws from torch's RNG seeded by `seed`, the caller's RNG left as it was); `trajectories`
    (B, K, 8, 3) and `confidence` (B, K) for a driving planner (its plan seeded by `seed`)."""
    obs = {key.removeprefix("input."): value for key, value in inputs.items() if key.startswith("input.")}
    if hasattr(policy, "plan_details"):
        arrays = {key: value.numpy() for key, value in obs.items()}
        out = policy.plan_details(arrays, generator=torch.Generator().manual_seed(seed), extras=False)
        return {"trajectories": torch.as_tensor(out["trajectories"]), "confidence": torch.as_tensor(out["confidence"])}
    with torch.random.fork_rng(devices=[]), torch.inference_mode():
        torch.manual_seed(seed)
        return {"chunk": policy.predict_action_chunk(obs, noise=inputs["noise"]).float().cpu()}


def write_reference(policy, directory: str | Path, inputs: dict[str, Any], seed: int = 0) -> Path:
    """Store `inputs` and the policy's outputs for them in `directory`/reference.safetensors (atomically)."""
    tensors = {key: torch.as_tensor(np.asarray(value)).contiguous() for key, value in inputs.items()}
    tensors |= {f"output.{key}": value.contiguous() for key, value in reference_outputs(policy, tensors, seed).items()}
    path = Path(directory) / REFERENCE_FILE
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"seed": str(seed)})
    return path


def reference_difference(policy, directory: str | Path) -> dict[str, float]:
    """The largest absolute difference per output between the policy now and its stored reference."""
    path = Path(directory) / REFERENCE_FILE
    with safe_open(str(path), framework="pt") as f:  # tensors and the seed in one read
        tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
        seed = int((f.metadata() or {}).get("seed", 0))
    now = reference_outputs(policy, tensors, seed)
    stored = {key.removeprefix("output."): value for key, value in tensors.items() if key.startswith("output.")}
    if set(now) != set(stored):
        raise ValueError(f"{path}: outputs {sorted(stored)}; the policy gives {sorted(now)}")
    return {key: (now[key].double() - stored[key].double()).abs().max().item() for key in stored}
