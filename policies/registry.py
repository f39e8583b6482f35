"""Load any saved policy by the `type` in its config.json: a single diffusion/flow policy or a GPC
composition."""

from __future__ import annotations

from pathlib import Path

from .checkpoint import CheckpointError, read_json
from .compose import ComposedPolicy
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
