"""`diffpilot data`: record scripted-expert demonstrations (successful episodes only) into a LeRobot v3
dataset, in parallel worker processes, with a progress bar."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from diffpilot.envs.experts.record import RecordedEpisode, SuccessfulEpisodes, record_episode
from diffpilot.envs.registry import EXPERTS, env_factory, expert_factory
from diffpilot.envs.robomimic import CONTROLS, task_cameras
from diffpilot.errors import ConfigError, whole_number
from diffpilot.policies.datasets.lerobot_v3 import FeatureSpec, LeRobotV3Writer

from .common import clear_output_dir, load_task_config, user_errors

TASKS = {"pusht": "Push the T-shaped block onto the T-shaped target."}  # LeRobot task strings (default: the env name)


def _record(args: tuple[str, str, int, dict]) -> RecordedEpisode:
    env, obs_mode, seed, options = args
    return record_episode(env_factory({"env": env, "obs_mode": obs_mode}), expert_factory(env, options), seed)


def feature_specs(frames: dict[str, np.ndarray]) -> dict[str, FeatureSpec]:
    """LeRobot feature entries for recorded columns (images become video features)."""
    specs = {}
    for key, arr in frames.items():
        if arr.ndim == 4 and arr.dtype == np.uint8:
            specs[key] = FeatureSpec("video", arr.shape[1:], ["height", "width", "channels"])
        elif arr.dtype == np.bool_:
            specs[key] = FeatureSpec("bool", (1,), None)
        else:
            shape = arr.shape[1:] or (1,)
            names = ["x", "y"] if key in ("action", "observation.state") else None
            specs[key] = FeatureSpec("float32", shape, names)
    return specs


def make_demonstrations(
    env: str,
    obs_mode: str,
    episodes: int,
    seed: int,
    output: str | Path,
    max_attempts: int | None = None,
    overwrite: bool = False,
    workers: int | None = None,
    expert_options: dict | None = None,
) -> dict:
    expert_factory(env, expert_options)  # a bad option fails here, before anything is written
    output = Path(output)
    clear_output_dir(output, overwrite)
    if episodes < 1:
        raise ConfigError(f"episodes={episodes}: expected ≥ 1")
    max_attempts = max_attempts or 2 * episodes
    workers = workers or min(os.cpu_count() or 1, 8)
    writer: LeRobotV3Writer | None = None
    kept, frames_total = 0, 0
    start = time.perf_counter()
    jobs = ((env, obs_mode, s, dict(expert_options or {})) for s in range(seed, seed + max_attempts))
    successes = SuccessfulEpisodes(_record, jobs, episodes, workers, f"demos ({env})")
    for episode in successes:
        if writer is None:
            writer = LeRobotV3Writer(output, fps=10, features=feature_specs(episode.frames), robot_type=env)
        writer.add_episode(episode.frames, task=TASKS.get(env, env))
        kept += 1
        frames_total += episode.length
    attempts = successes.attempts
    if writer is None:
        raise RuntimeError(f"the {env} expert succeeded in none of {attempts} attempts; nothing written")
    writer.finalize()
    seconds = time.perf_counter() - start
    return {
        "episodes": kept,
        "attempts": attempts,
        "expert_success_rate": kept / attempts,
        "frames": frames_total,
        "seconds": seconds,
        "output": str(output),
    }


@dataclass(frozen=True)
class DataRequest:
    """What `diffpilot data` records, after aliases (task → env, n → episodes) and per-env defaults."""

    env: str
    obs_mode: str
    format: str
    episodes: int
    output: str
    cameras: tuple[str, ...] | None = None  # robomimic image modes: the cameras rendered (None: the writer's default)
    action_space: str = "delta"  # robomimic: delta | absolute end-effector pose actions


def episode_count(cfg: DictConfig) -> int:
    """`n` (robomimic's spelling) or `episodes`, checked; with them `seed` and `max_attempts`."""
    name = "n" if cfg.get("n") is not None else "episodes"
    whole_number("seed", cfg.get("seed", 0), minimum=0)
    if cfg.get("max_attempts") is not None:
        whole_number("max_attempts", cfg.max_attempts)
    return whole_number(name, cfg.get(name))


def resolve_request(cfg: DictConfig) -> DataRequest:
    """The config's aliases and defaults resolved, with one ConfigError per conflicting or unknown value.

    `task` is an env name (lift) or a task config of configs/task/ (lift_image): then its env, obs_mode and
    cameras (task_cameras: its `<camera>_image` obs_keys) are the defaults.
    """
    from diffpilot.envs.robomimic import TASKS as ROBOMIMIC_TASKS

    known = sorted(EXPERTS)  # every env with a registered scripted expert
    env, task = cfg.get("env"), cfg.get("task")
    task_cfg: dict | None = None
    if isinstance(task, str):  # from Python: an env name, or the name of a configs/task file
        task_cfg = None if task in known else load_task_config(task)
    elif task is not None:  # `task=lift_image` on the command line: Hydra composed configs/task/lift_image.yaml
        task_cfg = OmegaConf.to_container(task, resolve=True)
        task = task_cfg.get("name", task_cfg.get("env"))
    task_env = task_cfg["env"] if task_cfg is not None else task
    if env is not None and task_env is not None and env != task_env:
        raise ConfigError(f"task={task!r} and env={env!r} disagree: give one of them")
    env = env or task_env or "pusht"
    if env not in known:
        raise ConfigError(f"env={env!r}: expected one of {known} (or task=<a configs/task of one, e.g. lift_image>)")
    if cfg.get("expert", "scripted") != "scripted":
        raise ConfigError(f"expert={cfg.expert!r}: expected 'scripted' (the experts of envs/experts/)")
    robomimic = env in ROBOMIMIC_TASKS
    fmt = cfg.get("format") or ("robomimic_hdf5" if robomimic else "lerobot_v3")
    if fmt not in ("lerobot_v3", "robomimic_hdf5"):
        raise ConfigError(f"format={fmt!r}: expected 'lerobot_v3' or 'robomimic_hdf5'")
    if fmt == "robomimic_hdf5" and not robomimic:
        raise ConfigError(
            f"format=robomimic_hdf5 with env={env!r}: expected a robomimic task, one of {sorted(ROBOMIMIC_TASKS)}"
        )
    obs_mode = cfg.get("obs_mode") or (task_cfg or {}).get("obs_mode") or ("state" if robomimic else "all")
    cameras = _cameras(cfg.get("cameras"), task_cfg, robomimic and obs_mode != "state", obs_mode)
    episodes = episode_count(cfg)
    action_space = cfg.get("action_space") or (task_cfg or {}).get("action_space") or "delta"
    if action_space not in CONTROLS or (action_space == "absolute" and not robomimic):
        raise ConfigError(
            f"action_space={action_space!r} with env={env!r}: expected 'delta', or 'absolute' for a robomimic task"
        )
    suffix = "_abs" if action_space == "absolute" else ""
    output = cfg.get("output") or (f"data/robomimic/{env}_{obs_mode}{suffix}.hdf5" if robomimic else f"data/{env}")
    return DataRequest(env, obs_mode, fmt, episodes, str(output), cameras, action_space)


def _cameras(given, task_cfg: dict | None, rendered: bool, obs_mode: str) -> tuple[str, ...] | None:
    """The cameras a robomimic image recording renders: `cameras=[…]`, else the task config's, else None."""
    if given is not None and not rendered:
        raise ConfigError(
            f"cameras={list(given)} with obs_mode={obs_mode!r}: cameras are rendered only for robomimic tasks in "
            "image mode; expected obs_mode=image (or no cameras)"
        )
    if not rendered:
        return None
    if given is not None:
        from diffpilot.envs.robomimic import check_cameras

        return check_cameras(list(given))
    return task_cameras(task_cfg) if task_cfg is not None else None


@hydra.main(config_path="pkg://diffpilot.configs", config_name="data", version_base="1.3")
@user_errors
def app(cfg: DictConfig) -> None:
    task = cfg.get("task")
    if isinstance(task, DictConfig) and task.get("env") == "driving":  # task=driving: PDM-Closed on a scene split
        from .data_driving import make_driving_demonstrations

        task_cfg = OmegaConf.to_container(task, resolve=True)
        result = make_driving_demonstrations(task_cfg, cfg.get("output"), cfg.overwrite)
        print(
            f"wrote {result['scenes']} PDM-Closed demonstrations of the {result['split']} split to "
            f"{result['output']} in {result['seconds']:.0f} s"
        )
        return
    if isinstance(task, DictConfig) and task.get("env") == "libero":  # task=libero_object: one hdf5 per task
        from .data_libero import make_libero_demonstrations

        episodes = episode_count(cfg)
        task_cfg = OmegaConf.to_container(task, resolve=True)
        limits = {"max_attempts": cfg.max_attempts, "overwrite": cfg.overwrite}
        result = make_libero_demonstrations(task_cfg, episodes, cfg.seed, cfg.get("output"), **limits)
    else:
        result = _make(resolve_request(cfg), cfg)
    print(
        f"wrote {result['episodes']} demonstrations ({result['frames']} frames) to {result['output']}; "
        f"expert success {result['expert_success_rate']:.1%} over {result['attempts']} attempts "
        f"in {result['seconds']:.0f} s"
    )


def _make(req: DataRequest, cfg: DictConfig) -> dict:
    """PushT (LeRobot v3) or robomimic (hdf5) demonstrations for a resolved request."""
    if req.format == "robomimic_hdf5":
        from .data_robomimic import make_robomimic_demonstrations

        make = make_robomimic_demonstrations
    else:
        make = make_demonstrations
    limits = {"max_attempts": cfg.max_attempts, "overwrite": cfg.overwrite}
    if req.cameras:
        limits["cameras"] = req.cameras
    if req.action_space != "delta":
        limits["action_space"] = req.action_space
    options = OmegaConf.to_container(cfg.expert_options, resolve=True) if cfg.get("expert_options") else None
    if options:
        expert_factory(req.env, options)  # one error for unknown tunables or an env whose expert takes none
        limits["expert_options"] = options
    return make(req.env, req.obs_mode, req.episodes, cfg.seed, req.output, **limits)
