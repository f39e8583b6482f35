"""Policies: denoisers, samplers, encoders and the policy objects built from them. Never imports envs, rl or sim: a
policy works on observation dicts. Importing the package registers every policy type (policies/registry.py)."""

from . import compose, diffusion_policy  # noqa: F401  (each registers its policy type)
from .driving import diffusiondrive, ego_mlp, wamdiff  # noqa: F401
