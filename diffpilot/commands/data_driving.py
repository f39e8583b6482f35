"""`diffpilot data task=driving`: PDM-Closed demonstrations (privileged, the task's expert forecast) on the first
`task.demos.num_scenes` scenes of `task.demos.split`, written as npz shards + meta.json (envs/driving.py's format)."""

from __future__ import annotations

import time
from pathlib import Path

from diffpilot.envs.driving import ObservationConfig, write_demonstrations
from diffpilot.errors import ConfigError
from diffpilot.sim.planners import PDMClosedConfig, PDMClosedPlanner

from .common import clear_output_dir

DEFAULT_OUTPUT = "data/driving/train"


def make_driving_demonstrations(task_cfg: dict, output: str | None = None, overwrite: bool = False) -> dict:
    """Write the demonstrations a driving task describes; returns what `diffpilot data` prints."""
    demos = task_cfg.get("demos", {})
    if demos.get("expert", "pdm_closed") != "pdm_closed":
        raise ConfigError(f"task.demos.expert={demos.get('expert')!r}: expected 'pdm_closed'")
    out = Path(output or DEFAULT_OUTPUT)
    clear_output_dir(out, overwrite)
    expert = PDMClosedPlanner(PDMClosedConfig(forecast=demos.get("expert_forecast", "oracle")))
    start = time.perf_counter()
    meta = write_demonstrations(
        out,
        demos.get("split", "train"),
        int(demos.get("num_scenes", 3600)),
        int(demos.get("shard_size", 300)),
        ObservationConfig(**task_cfg.get("observation", {})),
        expert,
    )
    return {
        "scenes": meta["scenes"],
        "split": meta["split"],
        "output": str(out),
        "seconds": time.perf_counter() - start,
    }
