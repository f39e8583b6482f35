"""The error types every layer raises; stdlib only, so any folder may import them."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config value that cannot work, named with the value and what was expected."""


class CheckpointError(ValueError):
    """A checkpoint directory is missing a file or holds something other than what was asked for."""
