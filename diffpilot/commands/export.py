"""`diffpilot export policy_path=<dir> format=onnx`: the chunk planner as ONNX graphs for onnxruntime, with the
parity against torch measured on the way (policies/onnx_export.py)."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from diffpilot.errors import ConfigError

from .common import load_policy, require, set_threads, user_errors


def run_export(cfg: dict) -> dict:
    from diffpilot.policies.onnx_export import ExportError, export_onnx

    require(cfg, "policy_path", "policy_path=<a saved policy directory>")
    if cfg["format"] != "onnx":
        raise ConfigError(f"format={cfg['format']!r}: expected 'onnx'")
    policy = load_policy(cfg["policy_path"], cfg.get("sampler"), device="cpu")
    output = Path(cfg.get("output") or Path("runs/export") / Path(str(cfg["policy_path"])).resolve().name)
    print(f"exporting {cfg['policy_path']} ({policy.config.sampler.name}) → {output}", flush=True)
    try:
        info = export_onnx(policy, output, cfg.get("rti"), threads=int(cfg.get("num_threads") or 1))
    except ExportError as err:
        raise ConfigError(f"export: {err}") from None
    for graph in info["graphs"].values():
        print(
            f"{output / graph['file']}: {len(graph['timesteps'])} steps {graph['timesteps']}; largest difference from "
            f"torch on the same noise {graph['max_abs_diff']:.2e} (action units)"
        )
    return info


@hydra.main(config_path="pkg://diffpilot.configs", config_name="export", version_base="1.3")
@user_errors
def app(cfg: DictConfig) -> None:
    set_threads(cfg.num_threads)
    run_export(OmegaConf.to_container(cfg, resolve=True))
