"""Hydra configs: the single source of truth for hyper-parameters (`pkg://diffpilot.configs`)."""
