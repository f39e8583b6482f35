"""`diffpilot data env=lift format=robomimic_hdf5` (or `task=lift_image`): scripted-expert demonstrations of a
robomimic task written in robomimic's hdf5 layout (successful episodes only), recorded in parallel worker processes.
Image mode renders only the cameras asked for and stores each as obs/<camera>_image (T, 84, 84, 3) uint8."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from diffpilot.envs.experts.record import SuccessfulEpisodes
from diffpilot.envs.experts.robomimic_record import RecordedDemo, record_robomimic_demo
from diffpilot.envs.robomimic import TASKS, check_cameras, robosuite_kwargs
from diffpilot.errors import ConfigError
from diffpilot.policies.datasets.robomimic_hdf5 import EnvArgs, RobomimicDemo, write_robomimic_hdf5
from diffpilot.rotations import pose_action_from_6d

# `diffpilot data`'s obs_mode names → the robomimic env's (all / pixels record the cameras too).
OBS_MODES = {"state": "state", "image": "image", "pixels": "image", "all": "image"}
CAMERAS = ("agentview", "robot0_eye_in_hand")  # robomimic's image datasets (and Diffusion Policy's image tasks)


def _record(args: tuple[str, str, int, None, tuple[str, ...], str]) -> RecordedDemo:
    return record_robomimic_demo(*args)


def env_args_for(task: str, obs_mode: str, cameras: tuple[str, ...] = CAMERAS, action_space: str = "delta") -> EnvArgs:
    """robomimic's env metadata of a task (what `EnvUtils.create_env_from_metadata` rebuilds the env from)."""
    import robosuite

    kwargs = robosuite_kwargs(obs_mode, tuple(cameras), control=action_space)
    return EnvArgs(TASKS[task].env_name, env_kwargs=kwargs, env_version=robosuite.__version__)


def as_robomimic_demos(demos: list[RecordedDemo], action_space: str = "delta") -> list[RobomimicDemo]:
    """Recorded expert episodes as the hdf5 writer's records (what robomimic's layout stores of each): absolute
    actions in robosuite's (7,) position, axis-angle, gripper form."""
    store = pose_action_from_6d if action_space == "absolute" else np.asarray
    return [
        RobomimicDemo(store(d.actions), d.rewards, d.dones, d.states, d.obs, d.next_obs, d.model_file) for d in demos
    ]


def make_robomimic_demonstrations(
    task: str,
    obs_mode: str,
    episodes: int,
    seed: int,
    output: str | Path,
    *,
    max_attempts: int | None = None,
    overwrite: bool = False,
    workers: int | None = None,
    cameras: tuple[str, ...] | list[str] | None = None,
    action_space: str = "delta",
) -> dict:
    """Record `episodes` successful demos (seeds seed, seed+1, …) into the hdf5 file `output`; image modes render
    `cameras` (None: CAMERAS); `action_space="absolute"` drives the env with absolute pose actions."""
    output = Path(output)
    if task not in TASKS:
        raise ConfigError(f"env={task!r}: expected a robomimic task, one of {sorted(TASKS)}")
    if obs_mode not in OBS_MODES:
        raise ConfigError(f"obs_mode={obs_mode!r}: expected one of {sorted(OBS_MODES)}")
    if output.suffix not in (".hdf5", ".h5"):
        raise ConfigError(f"output={str(output)!r}: expected an .hdf5 file path for format=robomimic_hdf5")
    if output.exists() and not overwrite:
        raise ConfigError(f"output={str(output)!r} exists; pass overwrite=true to replace it")
    if episodes < 1:
        raise ConfigError(f"episodes={episodes}: expected ≥ 1")
    mode = OBS_MODES[obs_mode]
    cameras = check_cameras(cameras or CAMERAS) if mode == "image" else CAMERAS
    max_attempts = max_attempts or 2 * episodes
    workers = workers or min(os.cpu_count() or 1, 8)
    start = time.perf_counter()
    jobs = ((task, mode, s, None, cameras, action_space) for s in range(seed, seed + max_attempts))
    successes = SuccessfulEpisodes(_record, jobs, episodes, workers, f"demos ({task})")
    kept: list[RecordedDemo] = list(successes)
    attempts = successes.attempts
    if not kept:
        raise RuntimeError(f"the {task} expert succeeded in none of {attempts} attempts; nothing written")
    demos, env_args = as_robomimic_demos(kept, action_space), env_args_for(task, mode, cameras, action_space)
    write_robomimic_hdf5(output, demos, env_args, seed=seed)
    return {
        "episodes": len(kept),
        "attempts": attempts,
        "expert_success_rate": len(kept) / attempts,
        "frames": int(sum(d.length for d in kept)),
        "seconds": time.perf_counter() - start,
        "output": str(output),
    }
