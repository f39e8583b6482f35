"""`diffpilot eval`: roll out a saved policy on seeds it was not trained on; prints success with a 95 %
confidence interval and mean max coverage, writes eval_info.json and mp4 videos."""

from __future__ import annotations

from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from diffpilot.envs.evaluate import evaluate
from diffpilot.policies.checkpoint import atomic_write_json
from diffpilot.policies.registry import load_policy as load_saved_policy
from diffpilot.policies.train import pick_device
from diffpilot.policies.warmstart import RTIWarmStart

from .common import env_factory, log_scalars, set_threads


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
    if task["env"] == "libero":  # a suite: every selected task, `episodes` each (LIBERO's protocol)
        from .eval_libero import run_libero_evaluation

        header = {"policy": str(policy_path), "sampler": policy.config.sampler}
        header["num_inference_steps"] = policy.config.num_inference_steps
        return run_libero_evaluation(policy, task, episodes, seed, n_envs, output_dir, videos, header, tb_step)
    make_env = env_factory(task["env"], task["obs_mode"], task.get("max_episode_steps"), task)
    output_dir = Path(output_dir)
    result = evaluate(policy, make_env, episodes, seed, n_envs, output_dir / "videos", videos)
    info = {
        "policy": str(policy_path),
        "sampler": policy.config.sampler,
        "num_inference_steps": policy.config.num_inference_steps,
        "n_action_steps": policy.config.n_action_steps,
        **result.to_dict(),
    }
    if policy.chunk_planner is not None:
        planner = policy.chunk_planner
        info["rti"] = {
            "timesteps": planner.timesteps,
            "pad": planner.pad,
            "full_samples": planner.full_samples,
            "warm_samples": planner.warm_samples,
        }
    atomic_write_json(output_dir / "eval_info.json", info)
    s = result.summary()
    lo, hi = s["success_ci95"]
    scalars = {"success_rate": s["success_rate"], "success_ci95_low": lo, "success_ci95_high": hi}
    coverage = s["mean_max_coverage"]  # None for tasks without a coverage measure
    log_scalars(output_dir / "tensorboard", {**scalars, "mean_max_coverage": coverage}, tb_step)
    shown = "" if coverage is None else f"mean max coverage {coverage:.3f}; "
    print(
        f"success {s['success_rate']:.1%} (95% CI {lo:.1%}–{hi:.1%}) over {s['episodes']} episodes; "
        f"{shown}results in {output_dir / 'eval_info.json'}"
    )
    return info


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
