"""`diffpilot rl algo=<name>`: reinforcement learning on top of a trained policy. Each algorithm lives in `rl/` and
registers its `run(cfg) -> dict` under a name (rl/registry.py); its config (`configs/algo/<name>.yaml`) names it in
`algo.runner`, so adding an algorithm touches no code here — and a config reaches registered algorithms only."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from diffpilot.errors import ConfigError

from .common import set_threads, user_errors


def resolve_runner(name: str):
    """A registered algorithm's run function; a one-line error names the known ones otherwise."""
    import diffpilot.rl  # noqa: F401  (registers every algorithm)
    from diffpilot.rl.registry import ALGORITHMS

    if name not in ALGORITHMS:
        raise ConfigError(f"algo.runner={name!r}: expected a registered RL algorithm, one of {sorted(ALGORITHMS)}")
    return ALGORITHMS[name]


def run(cfg: DictConfig) -> dict:
    algo = cfg.get("algo")
    if not algo or "runner" not in algo:
        raise ConfigError(f"algo={algo!r}: expected algo=<name> for a configs/algo/<name>.yaml that sets runner")
    return resolve_runner(algo.runner)(cfg)


@hydra.main(config_path="pkg://diffpilot.configs", config_name="rl", version_base="1.3")
@user_errors
def app(cfg: DictConfig) -> None:
    set_threads(cfg.num_threads)
    OmegaConf.resolve(cfg)
    run(cfg)
