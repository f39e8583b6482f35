"""Environments (Gymnasium) and scripted experts. Never imports policies: evaluation takes any object
with `reset()` and `select_action(obs)`. Importing the package registers every env and expert (envs/registry.py)."""

from . import driving, libero, pusht, robomimic  # noqa: F401  (each registers its envs)
from .experts import pusht as _pusht_expert  # noqa: F401  (registers the PushT expert)
from .experts import robomimic as _robomimic_experts  # noqa: F401  (registers lift, can, square)
