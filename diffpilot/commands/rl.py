"""`diffpilot rl algo=<name>`: reinforcement learning on top of a trained policy. Each algorithm lives in
`rl/` and exposes `run(cfg) -> dict`; its config (`configs/algo/<name>.yaml`) names that function in
`algo.runner` ("module:function"), so adding an algorithm touches no code here."""

from __future__ import annotations

import importlib

import hydra
from omegaconf import DictConfig, OmegaConf

from diffpilot.errors import ConfigError

from .common import set_threads, user_errors


def resolve_runner(spec: str):
    """'diffpilot.rl.dsrl:run' → the function; a clear error for a malformed or missing runner."""
    module_name, sep, func_name = str(spec).partition(":")
    if not sep or not module_name or not func_name:
        raise ConfigError(f"algo.runner={spec!r}: expected 'module:function', e.g. 'diffpilot.rl.dsrl:run'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise ConfigError(f"algo.runner={spec!r}: module {module_name!r} not found ({err})") from err
    if not hasattr(module, func_name):
        raise ConfigError(f"algo.runner={spec!r}: {module_name} has no function {func_name!r}")
    return getattr(module, func_name)


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
