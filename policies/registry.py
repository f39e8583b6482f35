"""The policy registry: every policy class registers itself where it is defined (`@register_policy`, under its
`type_name`), so a checkpoint's config.json `type` or a Hydra policy config's `type` finds its class. Importing
diffpilot.policies registers them all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from diffpilot.errors import CheckpointError
from diffpilot.run import policy_dir

from .checkpoint import read_json

POLICIES: dict[str, type] = {}


def register_policy(cls: type) -> type:
    """Class decorator: `cls` (with `type_name`, `from_pretrained` and, for building, `config_class`)."""
    if cls.type_name in POLICIES:
        raise ValueError(f"policy type {cls.type_name!r} is registered twice")
    POLICIES[cls.type_name] = cls
    return cls


def load_policy(directory: str | Path, map_location: str = "cpu"):
    """The policy saved in `directory` (config.json + weights; or a run / checkpoint step: its pretrained_model), on
    `map_location`, in eval mode. A step cut mid-save is refused by name."""
    directory = policy_dir(directory)
    meta = read_json(directory / "config.json", "policy checkpoint")
    kind = meta.get("type") if isinstance(meta, dict) else None
    if kind not in POLICIES:
        raise CheckpointError(
            f"policy checkpoint {directory / 'config.json'}: type is {kind!r}; expected one of {sorted(POLICIES)}"
        )
    return POLICIES[kind].from_pretrained(directory, map_location)


def build_policy(policy_cfg: dict[str, Any], **inputs: Any):
    """A fresh policy from a Hydra policy config (`type`, default diffusion) and what the task adds to it
    (an action-chunk policy: input_features, action_dim, action_key); a ValueError names a bad field."""
    values = dict(policy_cfg)
    kind = values.pop("type", "diffusion")
    if kind not in POLICIES or not hasattr(POLICIES[kind], "config_class"):
        buildable = sorted(k for k, c in POLICIES.items() if hasattr(c, "config_class"))
        raise ValueError(f"policy.type={kind!r}: expected one of {buildable}")
    cls = POLICIES[kind]
    return cls(cls.config_class.from_dict({**values, **inputs}))
