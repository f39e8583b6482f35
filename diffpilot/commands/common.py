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
IMAGE_SUFFIX = "_image"  # robomimic's image observation keys are `<camera>_image`


def load_task_config(name: str) -> dict[str, Any] | None:
    """configs/task/<name>.yaml as a dict (e.g. lift_image), or None when there is no such task config."""
    from importlib.resources import files

    from omegaconf import OmegaConf

    path = files("diffpilot.configs") / "task" / f"{name}.yaml"
    if not path.is_file():
        return None
    return OmegaConf.to_container(OmegaConf.create(path.read_text()), resolve=True)


def task_cameras(task: dict[str, Any]) -> tuple[str, ...]:
    """The cameras a robomimic image task renders: `task.cameras` when given, else those its `<camera>_image`
    obs_keys name. ConfigError naming the camera when one is not in the scene, or an image key's camera is not
    rendered."""
    from diffpilot.envs.robomimic import SCENE_CAMERAS
    from diffpilot.envs.robosuite_base import check_scene_cameras

    wanted = [k.removesuffix(IMAGE_SUFFIX) for k in task.get("obs_keys", []) if k.endswith(IMAGE_SUFFIX)]
    cameras = tuple(task.get("cameras") or wanted)
    if not cameras:
        raise ConfigError(
            f"task {task.get('name')!r} obs_mode=image: no cameras (task.cameras is empty and task.obs_keys has no "
            f"'<camera>_image' key); expected some of {list(SCENE_CAMERAS)}"
        )
    try:
        check_scene_cameras(cameras, SCENE_CAMERAS, ConfigError)
    except ConfigError as err:
        raise ConfigError(f"task {task.get('name')!r}: {err}") from None
    missing = [c for c in wanted if c not in cameras]
    if missing:
        raise ConfigError(
            f"task.obs_keys has {[c + IMAGE_SUFFIX for c in missing]} but task.cameras={list(cameras)} does not "
            f"render {missing}; expected every image key's camera among the cameras"
        )
    return cameras


def env_factory(
    env: str, obs_mode: str, max_episode_steps: int | None = None, options: dict | None = None
) -> Callable[[], gym.Env]:
    """A no-argument env constructor; `options` is the task config (env=libero: its suite, tasks, cameras, …)."""
    if env == "libero":  # the first selected task of the suite; `diffpilot eval` runs every task (eval_libero.py)
        from .eval_libero import first_task_env_factory

        return first_task_env_factory({**(options or {}), "obs_mode": obs_mode}, max_episode_steps)
    if env in ROBOMIMIC_ENVS:  # image mode renders only the task's cameras (task_cameras)
        from diffpilot.envs.robomimic import make_robomimic_env

        kwargs = {}
        if obs_mode == "image" and options is not None:
            kwargs["cameras"] = task_cameras(options)
            if options.get("image_size"):
                kwargs["image_size"] = int(options["image_size"])
        return functools.partial(make_robomimic_env, env, obs_mode, max_episode_steps, **kwargs)
    if env != "pusht":
        raise ConfigError(f"env={env!r}: expected 'pusht', 'libero' or one of {ROBOMIMIC_ENVS}")
    from diffpilot.envs.pusht import MAX_EPISODE_STEPS, make_pusht_env

    return functools.partial(make_pusht_env, obs_mode, max_episode_steps or MAX_EPISODE_STEPS)


def expert_factory(env: str, options: dict[str, Any] | None = None) -> Callable[[int], Any]:
    """seed → the env's scripted expert; `options` set ExpertPushT's tunables (PushT only), e.g. score_jitter."""
    if env in ROBOMIMIC_ENVS:
        if options:
            raise ConfigError(f"expert_options={dict(options)}: only the pusht expert takes options (env={env!r})")
        from diffpilot.envs.experts.robomimic import expert_for

        return functools.partial(expert_for, env)
    if env != "pusht":
        raise ConfigError(f"env={env!r}: no scripted expert; expected 'pusht'")
    from dataclasses import fields

    from diffpilot.envs.experts.pusht import ExpertPushT, ExpertPushTConfig

    known = [f.name for f in fields(ExpertPushTConfig)]
    unknown = sorted(set(options or {}) - set(known))
    if unknown:
        raise ConfigError(f"expert_options: unknown {unknown}; expected ExpertPushT tunables, some of {known}")
    return functools.partial(ExpertPushT, **options) if options else ExpertPushT


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
