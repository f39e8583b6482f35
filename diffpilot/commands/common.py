"""Glue shared by the commands: task configs by name, torch threads and a saved policy viewed with other settings."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from diffpilot.errors import CheckpointError, ConfigError

TRACEBACK_ENV = "DIFFPILOT_TRACEBACK"  # =1: a user error shows its traceback instead of one line


def user_errors(app: Callable) -> Callable:
    """A command's entry point that prints a user error (a bad config value, checkpoint, dataset or scene file) as
    one line on stderr and exits with 2; DIFFPILOT_TRACEBACK=1 shows the traceback instead."""
    from diffpilot.policies.datasets.episodes import DatasetFormatError
    from diffpilot.sim.scene import SceneError

    @functools.wraps(app)
    def run(*args, **kwargs):
        try:
            return app(*args, **kwargs)
        except (ConfigError, CheckpointError, DatasetFormatError, SceneError) as err:
            _drop_unused_run_dir()
            if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
                raise
            print(f"diffpilot: {err}", file=sys.stderr)
            sys.exit(2)

    return run


def _drop_unused_run_dir() -> None:
    """Remove the output directory Hydra made for a run that stopped before writing anything into it."""
    import shutil

    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir)
    if out.is_dir() and {p.name for p in out.iterdir()} <= {".hydra", f"{hc.job.name}.log"}:
        shutil.rmtree(out)


def load_task_config(name: str) -> dict[str, Any] | None:
    """configs/task/<name>.yaml as a dict (e.g. lift_image), or None when there is no such task config."""
    from importlib.resources import files

    from omegaconf import OmegaConf

    path = files("diffpilot.configs") / "task" / f"{name}.yaml"
    if not path.is_file():
        return None
    return OmegaConf.to_container(OmegaConf.create(path.read_text()), resolve=True)


def clear_output_dir(output: Path, overwrite: bool) -> None:
    """Make room for a dataset directory: a non-empty `output` is removed with overwrite, else a ConfigError."""
    if output.exists() and any(output.iterdir()):
        if not overwrite:
            raise ConfigError(f"output={str(output)!r} exists and is not empty; pass overwrite=true to replace it")
        import shutil

        shutil.rmtree(output)


def require(cfg: dict, key: str, expected: str) -> None:
    """A ConfigError naming `key` when the config leaves it unset (None, empty or Hydra's ???)."""
    if cfg.get(key) in (None, "", "???"):
        raise ConfigError(f"{key} is missing; expected {expected}")


def set_threads(n: int) -> None:
    import torch

    if n:
        torch.set_num_threads(n)
    os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))


def load_policy(path: str | Path, sampler: dict | None = None, n_action_steps: int | None = None, device: str = "auto"):
    """A saved policy of any type; `sampler` (SamplerConfig fields, None values kept) and `n_action_steps` give a
    view of it sampled or executed differently — the loaded config is never edited."""
    from diffpilot.policies.registry import load_policy as load_saved_policy
    from diffpilot.policies.train import pick_device

    policy = load_saved_policy(path, map_location=str(pick_device(device)))
    changes = {k: v for k, v in (sampler or {}).items() if v is not None}
    if changes:
        try:
            policy = policy.with_sampler(policy.config.sampler.replace(**changes))
        except ValueError as err:
            raise ConfigError(f"sampler: {err}") from None
    if n_action_steps:
        policy = policy.with_n_action_steps(n_action_steps)
    return policy
