"""Load any saved policy by the `type` in its config.json: a single diffusion/flow policy or a GPC
composition."""

from __future__ import annotations

from pathlib import Path

from .checkpoint import CheckpointError, read_json
from .compose import ComposedPolicy
from .diffusion_config import DiffusionPolicyConfig
from .diffusion_policy import DiffusionPolicy
from .diffusiondrive import DiffusionDrivePolicy
from .ego_mlp import EgoMLPPolicy
from .wamdiff import WAMDiffPolicy

POLICY_TYPES = {
    cls.type_name: cls for cls in (DiffusionPolicy, ComposedPolicy, EgoMLPPolicy, DiffusionDrivePolicy, WAMDiffPolicy)
}


def load_policy(directory: str | Path, map_location: str = "cpu"):
    """The policy saved in `directory` (config.json + weights), on `map_location`, in eval mode."""
    directory = Path(directory)
    meta = read_json(directory / "config.json", "policy checkpoint")
    kind = meta.get("type") if isinstance(meta, dict) else None
    if kind not in POLICY_TYPES:
        raise CheckpointError(
            f"policy checkpoint {directory / 'config.json'}: type is {kind!r}; expected one of {sorted(POLICY_TYPES)}"
        )
    return POLICY_TYPES[kind].from_pretrained(directory, map_location)


def build_policy(policy_cfg: dict, input_features: dict, action_dim: int, action_key: str) -> DiffusionPolicy:
    """A fresh policy from a Hydra policy config (`type: diffusion`) with the task's inputs and action size; a
    ValueError naming the field for a bad value."""
    values = dict(policy_cfg)
    kind = values.pop("type", DiffusionPolicy.type_name)
    if kind != DiffusionPolicy.type_name:
        raise ValueError(f"policy.type={kind!r}: expected {DiffusionPolicy.type_name!r} for an action-chunk task")
    values |= {"input_features": input_features, "action_dim": action_dim, "action_key": action_key}
    return DiffusionPolicy(DiffusionPolicyConfig.from_dict(values))
