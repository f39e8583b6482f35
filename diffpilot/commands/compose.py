"""`diffpilot compose`: GPC weight search on rollouts. Every candidate and every parent is rolled out on the
same seeds with the same noise stream (torch reseeded per candidate), so differences come from the weights."""

from __future__ import annotations

import itertools
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from diffpilot.envs.evaluate import evaluate
from diffpilot.envs.registry import env_factory
from diffpilot.errors import ConfigError
from diffpilot.plotting import plot_weight_sweep
from diffpilot.policies.checkpoint import atomic_write_json
from diffpilot.policies.compose import ComposedPolicy, CompositionConfig
from diffpilot.policies.diffusion_policy import DiffusionPolicy
from diffpilot.policies.registry import load_policy
from diffpilot.policies.samplers import SamplerConfig
from diffpilot.policies.train import pick_device
from diffpilot.run import log_scalars

from .common import set_threads, user_errors


def simplex_grid(k: int, step: float) -> list[list[float]]:
    """All weight vectors of length k on the simplex with spacing `step` (endpoints included)."""
    n = round(1.0 / step)
    if n < 1 or abs(n * step - 1.0) > 1e-9:
        raise ConfigError(f"grid_step={step}: expected 1/n for a whole number n (e.g. 0.1, 0.25)")
    grid = [c for c in itertools.product(range(n + 1), repeat=k) if sum(c) == n]
    return [[round(c_i / n, 10) for c_i in c] for c in sorted(grid, key=lambda c: c[::-1])]


def load_parents(paths: list[str], device: str) -> list[DiffusionPolicy]:
    if len(paths) < 2:
        raise ConfigError(f"parents={list(paths)}: expected two or more policy directories")
    parents = []
    for path in paths:
        policy = load_policy(path, map_location=str(pick_device(device)))
        if not isinstance(policy, DiffusionPolicy):
            raise ConfigError(
                f"parents: {path} is a {policy.type_name!r} policy; expected a single diffusion/flow policy"
            )
        parents.append(policy)
    return parents


def rollout(policy, make_env, episodes: int, seed: int, n_envs: int) -> dict:
    torch.manual_seed(seed)  # common random numbers: every candidate sees the same noise stream
    return evaluate(policy, make_env, episodes, seed, n_envs, progress=False).summary()


def compose(cfg: DictConfig) -> dict:
    parents = load_parents(list(cfg.parents), cfg.device)
    names = [
        Path(p).parent.parent.parent.name if Path(p).name == "pretrained_model" else Path(p).name for p in cfg.parents
    ]
    task = OmegaConf.to_container(cfg.task, resolve=True)
    make_env = env_factory(task)
    k = len(parents)
    try:
        driver = SamplerConfig(**OmegaConf.to_container(cfg.sampler, resolve=True))
        composed = ComposedPolicy(parents, CompositionConfig((1.0,) + (0.0,) * (k - 1), driver))
        if cfg.n_action_steps:
            composed = composed.with_n_action_steps(cfg.n_action_steps)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"compose: {err}") from None
    out = Path(cfg.output_dir)
    sweep = []
    if cfg.weights is None:
        candidates = simplex_grid(k, cfg.grid_step)
        print(f"searching {len(candidates)} weight vectors × {cfg.search_episodes} episodes (seeds {cfg.search_seed}+)")
        for i, w in enumerate(candidates):
            s = rollout(composed.with_weights(w), make_env, cfg.search_episodes, cfg.search_seed, cfg.n_envs)
            sweep.append(
                {"weights": w, **{key: s[key] for key in ("success_rate", "success_ci95", "mean_max_coverage")}}
            )
            log_scalars(out / "tensorboard", {"success_rate": s["success_rate"]}, i, prefix="search")
            print(f"  weights {w}: success {s['success_rate']:.1%}, coverage {s['mean_max_coverage']:.3f}")
        best = max(sweep, key=lambda r: (r["success_rate"], r["mean_max_coverage"]))["weights"]
    else:
        best = [float(w) for w in cfg.weights]
    composed = composed.with_weights(best)
    print(f"chosen weights {best}; final evaluation on {cfg.episodes} episodes (seeds {cfg.seed}+)")
    final = {"composition": {"weights": best, **rollout(composed, make_env, cfg.episodes, cfg.seed, cfg.n_envs)}}
    for i in range(k):
        alone = composed.with_weights([1.0 if j == i else 0.0 for j in range(k)])
        final[f"parent_{i}"] = {
            "path": str(cfg.parents[i]),
            **rollout(alone, make_env, cfg.episodes, cfg.seed, cfg.n_envs),
        }
    composed.save_pretrained(out / "pretrained_model")
    best_parent = max(final[f"parent_{i}"]["success_rate"] for i in range(k))
    report = {
        "task": cfg.task.name,
        "sampler": driver.name,
        "num_inference_steps": driver.num_inference_steps,
        "n_action_steps": composed.config.n_action_steps,
        "parents": [{"name": n, "path": str(p)} for n, p in zip(names, cfg.parents)],
        "search": {"episodes": cfg.search_episodes, "seed": cfg.search_seed, "sweep": sweep},
        "final": {"episodes": cfg.episodes, "seed": cfg.seed, **final},
        "gain_over_best_parent": final["composition"]["success_rate"] - best_parent,
    }
    atomic_write_json(out / "compose.json", report)
    if sweep and k == 2:
        plot_weight_sweep(
            out / "weight_sweep.png",
            [r["weights"][1] for r in sweep],
            [r["success_rate"] for r in sweep],
            [r["success_ci95"] for r in sweep],
            names,
        )
    for key, r in final.items():
        lo, hi = r["success_ci95"]
        coverage = r["mean_max_coverage"]
        print(f"{key:<12} success {r['success_rate']:.1%} (95% CI {lo:.1%}–{hi:.1%}), coverage {coverage:.3f}")
    print(f"composition saved to {out / 'pretrained_model'}; report {out / 'compose.json'}")
    return report


@hydra.main(config_path="pkg://diffpilot.configs", config_name="compose", version_base="1.3")
@user_errors
def app(cfg: DictConfig) -> None:
    set_threads(cfg.num_threads)
    OmegaConf.resolve(cfg)
    compose(cfg)
