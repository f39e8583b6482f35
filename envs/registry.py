"""The env seam: every environment and scripted expert registers itself where it is defined, under the name a
task config's `env:` uses; commands, RL and benchmarks build them from a task config through `env_factory` and
`expert_factory`, never by naming modules.

A task config (configs/task/*.yaml, as a dict) carries `env`, `obs_mode`, `max_episode_steps` and whatever the env
reads of it (robomimic: `cameras`, `image_size`; LIBERO: `suite`, `tasks`, `language`, …).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from diffpilot.errors import ConfigError

EnvConstructor = Callable[[], gym.Env]


@dataclass(frozen=True)
class EnvEntry:
    """`make(task, max_episode_steps)` → a no-argument env constructor; `protocol`, when set, is the benchmark's own
    evaluation (LIBERO: every task of the suite) that `diffpilot eval` runs instead of plain seeded rollouts."""

    name: str
    make: Callable[[dict[str, Any], int | None], EnvConstructor]
    protocol: Callable[..., dict[str, Any]] | None = None


ENVS: dict[str, EnvEntry] = {}
EXPERTS: dict[str, Callable[[dict[str, Any]], Callable[[int], Any]]] = {}


def register_env(entry: EnvEntry) -> EnvEntry:
    if entry.name in ENVS:
        raise ValueError(f"env {entry.name!r} is registered twice")
    ENVS[entry.name] = entry
    return entry


def register_expert(name: str):
    """Decorator: `fn(options) -> (seed -> expert)` becomes the scripted expert of env `name`."""

    def add(fn):
        if name in EXPERTS:
            raise ValueError(f"expert {name!r} is registered twice")
        EXPERTS[name] = fn
        return fn

    return add


def env_entry(name: str) -> EnvEntry:
    if name not in ENVS:
        raise ConfigError(f"task.env={name!r}: expected one of {sorted(ENVS)}")
    return ENVS[name]


def env_factory(task: dict[str, Any], max_episode_steps: int | None = None) -> EnvConstructor:
    """A no-argument constructor of the task's env (`task["env"]`), with the task's time limit unless
    `max_episode_steps` is given."""
    return env_entry(task.get("env")).make(task, max_episode_steps or task.get("max_episode_steps"))


def expert_factory(env: str, options: dict[str, Any] | None = None) -> Callable[[int], Any]:
    """seed → the env's scripted expert; `options` are the expert's tunables (PushT's, e.g. score_jitter)."""
    if env not in EXPERTS:
        raise ConfigError(f"env={env!r}: no scripted expert; expected one of {sorted(EXPERTS)}")
    return EXPERTS[env](dict(options or {}))
