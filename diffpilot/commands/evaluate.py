"""`diffpilot eval`: roll out a saved policy on seeds it was not trained on; prints success with a 95 %
confidence interval and mean max coverage, writes eval_info.json and mp4 videos."""

from __future__ import annotations

from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from diffpilot.envs.evaluate import evaluate
from diffpilot.envs.registry import env_entry, env_factory
from diffpilot.policies.checkpoint import atomic_write_json
from diffpilot.policies.registry import load_policy as load_saved_policy
from diffpilot.policies.train import pick_device
from diffpilot.policies.warmstart import RTIWarmStart
from diffpilot.run import TENSORBOARD_DIR, log_scalars

from .common import set_threads


def load_policy(
    path: str | Path,
    sampler: str | None = None,
    num_inference_steps: int | None = None,
    device: str = "auto",
    n_action_steps: int | None = None,
    timestep_spacing: str | None = None,
):
    """A saved policy of any type, optionally with another sampler / step count / executed chunk length."""
    policy = load_saved_policy(path, map_location=str(pick_device(device)))
    if sampler or num_inference_steps or timestep_spacing:
        policy.set_sampler(sampler, num_inference_steps, timestep_spacing)
    if n_action_steps:
        policy.config.n_action_steps = n_action_steps
        policy.config.__post_init__()  # validated against horizon and n_obs_steps
    return policy


def run_evaluation(
    policy_path,
    task: dict,
    episodes: int,
    seed: int,
    n_envs: int,
    videos: int,
    output_dir,
    sampler: str | None = None,
    num_inference_steps: int | None = None,
    device: str = "auto",
    tb_step: int = 0,
    rti: dict | None = None,
    n_action_steps: int | None = None,
    timestep_spacing: str | None = None,
) -> dict:
    policy = load_policy(policy_path, sampler, num_inference_steps, device, n_action_steps, timestep_spacing)
    torch.manual_seed(seed)  # the policy's sampling noise follows the evaluation seed: reruns give the same episodes
    if rti and rti.get("enabled"):
        policy.chunk_planner = RTIWarmStart.from_config(policy, rti)
    output_dir = Path(output_dir)
    info = {
        "policy": str(policy_path),
        "sampler": policy.config.sampler,
        "num_inference_steps": policy.config.num_inference_steps,
        "n_action_steps": policy.config.n_action_steps,
    }
    entry = env_entry(task["env"])
    if entry.protocol is not None:  # the benchmark's own protocol (LIBERO: every selected task, `episodes` each)
        info |= entry.protocol(policy, task, episodes, seed, n_envs, output_dir / "videos", videos)
    else:
        info |= evaluate(policy, env_factory(task), episodes, seed, n_envs, output_dir / "videos", videos).to_dict()
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
    run_evaluation(
        cfg.policy_path,
        task,
        cfg.episodes,
        cfg.seed,
        cfg.n_envs,
        cfg.videos,
        cfg.output_dir,
        cfg.sampler,
        cfg.num_inference_steps,
        cfg.device,
        rti=OmegaConf.to_container(cfg.rti, resolve=True),
        n_action_steps=cfg.n_action_steps,
        timestep_spacing=cfg.timestep_spacing,
    )
