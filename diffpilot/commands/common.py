"""Glue shared by the commands: env factories by task name, and clear config errors."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import gymnasium as gym


class ConfigError(ValueError):
    """A config value that cannot work, named with the value and what was expected."""


ROBOMIMIC_ENVS = ("lift", "can", "square")


def env_factory(
    env: str, obs_mode: str, max_episode_steps: int | None = None, options: dict | None = None
) -> Callable[[], gym.Env]:
    """A no-argument env constructor; `options` is the task config (env=libero: its suite, tasks, cameras, …)."""
    if env == "libero":  # the first selected task of the suite; `diffpilot eval` runs every task (eval_libero.py)
        from .eval_libero import first_task_env_factory

        return first_task_env_factory({**(options or {}), "obs_mode": obs_mode}, max_episode_steps)
    if env in ROBOMIMIC_ENVS:
        from diffpilot.envs.robomimic import make_robomimic_env

        return functools.partial(make_robomimic_env, env, obs_mode, max_episode_steps)
    if env != "pusht":
        raise ConfigError(f"env={env!r}: expected 'pusht', 'libero' or one of {ROBOMIMIC_ENVS}")
    from diffpilot.envs.pusht import MAX_EPISODE_STEPS, make_pusht_env

    return functools.partial(make_pusht_env, obs_mode, max_episode_steps or MAX_EPISODE_STEPS)


def expert_factory(env: str) -> Callable[[int], Any]:
    if env in ROBOMIMIC_ENVS:
        from diffpilot.envs.experts.robomimic import expert_for

        return functools.partial(expert_for, env)
    if env != "pusht":
        raise ConfigError(f"env={env!r}: no scripted expert; expected 'pusht'")
    from diffpilot.envs.experts.pusht import ExpertPushT

    return ExpertPushT


def set_threads(n: int) -> None:
    import torch

    if n:
        torch.set_num_threads(n)
    os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))


def log_scalars(logdir: str | os.PathLike, values: dict[str, float | None], step: int, prefix: str = "eval") -> None:
    """Append scalars (e.g. an evaluation summary) to the TensorBoard log in `logdir`."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(logdir)) as writer:
        for name, value in values.items():
            if value is None:  # a measure the task does not have (e.g. coverage on robomimic)
                continue
            writer.add_scalar(f"{prefix}/{name}", value, step)
