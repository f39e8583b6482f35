"""LIBERO's evaluation protocol for `diffpilot eval task=libero_*`: every selected task of a suite, `episodes`
rollouts each (50: one per official initial state), success per task and per suite with Wilson 95 % intervals.

The same harness runs LIBERO-PRO's perturbed suites (`task.suite=libero_object_lan`, …): they keep their base
suite's task order, so a policy conditioned on `task_index` or on the instruction embedding runs unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from diffpilot.envs.evaluate import evaluate, wilson_interval
from diffpilot.envs.libero import (
    IMAGE_SIZE,
    LiberoTask,
    base_suite,
    get_task,
    list_tasks,
    make_libero_env,
    perturbation,
)
from diffpilot.policies.checkpoint import atomic_write_json

from .common import ConfigError, log_scalars


def instruction_embedding(instruction: str) -> np.ndarray:
    """The instruction's all-MiniLM-L6-v2 embedding (384,) from policies/text_encoder.py (disk-cached)."""
    from diffpilot.policies.text_encoder import encode_instructions

    return encode_instructions([instruction])[0].numpy()


def libero_env_factory(task_cfg: dict[str, Any], task: int | str, max_episode_steps: int | None = None) -> Callable:
    """A no-argument constructor of task `task` of `task_cfg["suite"]` with the task config's observation settings
    (obs_mode, cameras, image_size; `language: true` adds the instruction's embedding as `language_embedding`)."""
    if not task_cfg.get("suite"):
        raise ConfigError(f"task.suite={task_cfg.get('suite')!r}: env=libero needs a suite, e.g. libero_object")
    libero_task = get_task(task_cfg["suite"], task)
    embedding = instruction_embedding(libero_task.instruction) if task_cfg.get("language") else None
    return functools.partial(
        make_libero_env,
        libero_task.suite,
        libero_task.index,
        task_cfg.get("obs_mode", "state"),
        max_episode_steps or task_cfg.get("max_episode_steps"),
        cameras=tuple(task_cfg.get("cameras") or ("agentview", "robot0_eye_in_hand")),
        image_size=int(task_cfg.get("image_size") or IMAGE_SIZE),
        instruction_embedding=embedding,
    )


def first_task_env_factory(task_cfg: dict[str, Any], max_episode_steps: int | None = None) -> Callable:
    """The first selected task's constructor (training-time rollouts and RL take one env per config)."""
    if not task_cfg.get("suite"):
        raise ConfigError(f"task.suite={task_cfg.get('suite')!r}: env=libero needs a suite, e.g. libero_object")
    first = select_tasks(task_cfg["suite"], task_cfg.get("tasks"))[0]
    return libero_env_factory(task_cfg, first.index, max_episode_steps)


def select_tasks(suite: str, tasks: list[int | str] | None) -> list[LiberoTask]:
    """`tasks` of `suite` (indices or names; None: every task)."""
    if tasks is None:
        return list(list_tasks(suite))
    if isinstance(tasks, (str, int)) or not len(tasks):
        raise ConfigError(f"task.tasks={tasks!r}: expected null (all tasks) or a non-empty list of indices / names")
    return [get_task(suite, t) for t in tasks]


def run_libero_evaluation(
    policy,
    task_cfg: dict[str, Any],
    episodes: int,
    seed: int,
    n_envs: int,
    output_dir: str | Path,
    videos: int = 0,
    header: dict[str, Any] | None = None,
    tb_step: int = 0,
) -> dict[str, Any]:
    """Roll `policy` out on the selected tasks, `episodes` each on seeds seed … seed+episodes−1 (initial states
    seed mod 50 onward); writes `eval_info.json` and TensorBoard scalars under `output_dir`, returns the record."""
    output_dir = Path(output_dir)
    suite = get_task(task_cfg["suite"], 0).suite
    per_task: dict[str, Any] = {}
    for task in select_tasks(suite, task_cfg.get("tasks")):
        make_env = libero_env_factory(task_cfg, task.index)
        video_dir = output_dir / "videos" / f"task_{task.index}"
        result = evaluate(policy, make_env, episodes, seed, n_envs, video_dir, videos)
        per_task[str(task.index)] = {"name": task.name, "instruction": task.instruction, **result.to_dict()}
        s = result.summary()
        print(f"task {task.index} ({task.instruction}): success {s['success_rate']:.1%} over {s['episodes']} episodes")
    successes = sum(sum(e["success"] for e in t["per_episode"]) for t in per_task.values())
    total = sum(t["episodes"] for t in per_task.values())
    lo, hi = wilson_interval(successes, total)
    info = {
        **(header or {}),
        "suite": suite,
        "base_suite": base_suite(suite),
        "perturbation": perturbation(suite),
        "obs_mode": task_cfg.get("obs_mode", "state"),
        "language_embedding": bool(task_cfg.get("language")),
        "episodes_per_task": episodes,
        "init_states": f"seed {seed} + k → official initial state (seed + k) mod 50",
        "episodes": total,
        "success_rate": successes / total,
        "success_ci95": [lo, hi],
        "mean_task_success": float(np.mean([t["success_rate"] for t in per_task.values()])),
        "tasks": per_task,
    }
    atomic_write_json(output_dir / "eval_info.json", info)
    scalars = {"success_rate": info["success_rate"], "success_ci95_low": lo, "success_ci95_high": hi}
    scalars |= {f"task_{k}_success_rate": t["success_rate"] for k, t in per_task.items()}
    log_scalars(output_dir / "tensorboard", scalars, tb_step)
    print(
        f"{suite} ({info['obs_mode']} observations): success {info['success_rate']:.1%} (95% CI {lo:.1%}–{hi:.1%}) "
        f"over {len(per_task)} task(s) × {episodes} episodes; results in {output_dir / 'eval_info.json'}"
    )
    return info
