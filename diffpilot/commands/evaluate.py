"""`diffpilot eval`: roll out a saved policy on seeds it was not trained on; prints success with a 95 %
confidence interval and mean max coverage, writes eval_info.json and mp4 videos."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from diffpilot.envs.evaluate import evaluate_task
from diffpilot.errors import ConfigError
from diffpilot.policies.checkpoint import atomic_write_json
from diffpilot.policies.registry import load_policy as load_saved_policy
from diffpilot.policies.train import pick_device
from diffpilot.policies.warmstart import RTIWarmStart
from diffpilot.run import TENSORBOARD_DIR, log_scalars

from .common import set_threads


def load_policy(path: str | Path, sampler: dict | None = None, n_action_steps: int | None = None, device: str = "auto"):
    """A saved policy of any type; `sampler` (SamplerConfig fields, None values kept) and `n_action_steps` give a
    view of it sampled or executed differently — the loaded config is never edited."""
    policy = load_saved_policy(path, map_location=str(pick_device(device)))
    changes = {k: v for k, v in (sampler or {}).items() if v is not None}
    if changes:
        try:
            policy = policy.with_sampler(policy.config.sampler.replace(**changes))
        except ValueError as err:
            raise ConfigError(f"sampler: {err}") from None
    if n_action_steps:
        policy = policy.with_n_action_steps(n_action_steps)
    return policy


@dataclass(frozen=True)
class EvalSettings:
    """How many rollouts, from which seed, in how many parallel envs, with how many videos."""

    episodes: int = 50
    seed: int = 100_000
    n_envs: int = 10
    videos: int = 0


def evaluate_and_record(
    policy, task: dict, settings: EvalSettings, output_dir, tb_step: int = 0, header: dict | None = None
) -> dict:
    """Roll `policy` out on the task (its benchmark's own protocol where the env has one), then write
    eval_info.json, TensorBoard scalars and videos under `output_dir`; returns the record."""
    torch.manual_seed(settings.seed)  # the policy's sampling noise follows the evaluation seed: reruns repeat
    output_dir = Path(output_dir)
    info = {
        **(header or {}),
        "sampler": policy.config.sampler.name,
        "num_inference_steps": policy.config.sampler.num_inference_steps,
        "n_action_steps": policy.config.n_action_steps,
    }
    s = settings
    info |= evaluate_task(policy, task, s.episodes, s.seed, s.n_envs, output_dir / "videos", s.videos)
    if policy.chunk_planner is not None:
        planner = policy.chunk_planner
        info["rti"] = {
            "timesteps": planner.timesteps,
            "pad": planner.pad,
            "full_samples": planner.full_samples,
            "warm_samples": planner.warm_samples,
        }
    write_eval_info(info, output_dir, tb_step)
    return info


def write_eval_info(info: dict, output_dir: Path, tb_step: int = 0) -> None:
    """eval_info.json and the summary's TensorBoard scalars (per task too, for a suite); prints the result line."""
    atomic_write_json(output_dir / "eval_info.json", info)
    lo, hi = info["success_ci95"]
    scalars = {"success_rate": info["success_rate"], "success_ci95_low": lo, "success_ci95_high": hi}
    scalars["mean_max_coverage"] = info.get("mean_max_coverage")  # None for tasks without a coverage measure
    scalars |= {f"task_{k}_success_rate": t["success_rate"] for k, t in info.get("tasks", {}).items()}
    log_scalars(output_dir / TENSORBOARD_DIR, scalars, tb_step)
    coverage = info.get("mean_max_coverage")
    shown = "" if coverage is None else f"mean max coverage {coverage:.3f}; "
    where = f" ({info['suite']}, {len(info['tasks'])} task(s))" if "suite" in info else ""
    print(
        f"success {info['success_rate']:.1%} (95% CI {lo:.1%}–{hi:.1%}) over {info['episodes']} episodes{where}; "
        f"{shown}results in {output_dir / 'eval_info.json'}"
    )


@hydra.main(config_path="pkg://diffpilot.configs", config_name="eval", version_base="1.3")
def app(cfg: DictConfig) -> None:
    set_threads(cfg.num_threads)
    task = OmegaConf.to_container(cfg.task, resolve=True)
    sampler = OmegaConf.to_container(cfg.sampler, resolve=True)
    policy = load_policy(cfg.policy_path, sampler, cfg.n_action_steps, cfg.device)
    rti = OmegaConf.to_container(cfg.rti, resolve=True)
    if rti.get("enabled"):
        policy.chunk_planner = RTIWarmStart.from_config(policy, rti)
    settings = EvalSettings(cfg.episodes, cfg.seed, cfg.n_envs, cfg.videos)
    evaluate_and_record(policy, task, settings, cfg.output_dir, header={"policy": str(cfg.policy_path)})
