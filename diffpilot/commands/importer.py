"""`diffpilot import lerobot <pretrained_model dir>`: a LeRobot DiffusionPolicy checkpoint becomes a diffpilot policy
folder, so RTI, the few-step samplers, `diffpilot export` and `diffpilot serve` work on it."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from diffpilot.errors import ConfigError

from .common import require, user_errors

SOURCES = ("lerobot",)


def run_import(cfg: dict) -> Path:
    from diffpilot.policies.lerobot_import import import_lerobot

    if cfg["source"] not in SOURCES:
        raise ConfigError(f"source={cfg['source']!r}: expected one of {list(SOURCES)}")
    require(cfg, "path", "`diffpilot import lerobot <pretrained_model dir>`")
    source = Path(cfg["path"])
    output = Path(cfg.get("output") or Path("runs/import") / source.resolve().name)
    policy = import_lerobot(source)
    policy.save_pretrained(output)
    c = policy.config
    print(
        f"imported {source} → {output}: {sum(p.numel() for p in policy.parameters()) / 1e6:.2f} M parameters, "
        f"features {list(c.input_features)}, sampler {c.sampler.name} {c.sampler.num_inference_steps} steps"
    )
    return output


def translate_argv(argv: list[str]) -> list[str]:
    """`lerobot <dir>` → `source=lerobot path=<dir>`; key=value arguments pass through."""
    out, positional = [], []
    for arg in argv:
        (positional if "=" not in arg and not arg.startswith("-") else out).append(arg)
    return [*(f"{k}={v}" for k, v in zip(("source", "path"), positional)), *out]


def app() -> None:
    sys.argv = [sys.argv[0], *translate_argv(sys.argv[1:])]
    _app()


@hydra.main(config_path="pkg://diffpilot.configs", config_name="import", version_base="1.3")
@user_errors
def _app(cfg: DictConfig) -> None:
    run_import(OmegaConf.to_container(cfg, resolve=True))
