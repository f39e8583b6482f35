"""The RL algorithm registry: each algorithm's `run(cfg) -> dict` registers itself where it is defined
(`@register_algorithm("dsrl")`), and a config's `algo.runner` names it. Importing diffpilot.rl registers them all;
a config can only reach registered algorithms, never an arbitrary module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ALGORITHMS: dict[str, Callable[..., dict[str, Any]]] = {}


def register_algorithm(name: str):
    """Function decorator: `run(cfg) -> dict` under `name`."""

    def register(run: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        if name in ALGORITHMS:
            raise ValueError(f"RL algorithm {name!r} is registered twice")
        ALGORITHMS[name] = run
        return run

    return register
