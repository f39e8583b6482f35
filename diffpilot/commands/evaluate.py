"""`diffpilot eval`: roll out a saved policy on seeds it was not trained on; prints success with a 95 %
confidence interval and mean max coverage, writes eval_info.json and mp4 videos."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from diffpilot.envs.driving import BuiltinPlanner
from diffpilot.envs.evaluate import evaluate_task
from diffpilot.errors import ConfigError
from diffpilot.policies.warmstart import RTIWarmStart
from diffpilot.run import record_evaluation

from .common import load_policy, set_threads, user_errors


@dataclass(frozen=True)
class EvalSettings:
    """How many rollouts, from which seed, in how many envs run by which executor, with how many videos."""

    episodes: int | None = None  # None: the benchmark protocol's count where the task has one, else 50
    seed: int = 100_000
    n_envs: int = 10
    videos: int = 0
    executor: str = "inline"


def evaluate_policy(policy, task: dict, settings: EvalSettings, output_dir=None, header: dict | None = None) -> dict:
    """Roll `policy` out on the task (its benchmark's own protocol where the env has one); the record starts with
    `header` and what the policy is (type; sampler, steps and executed actions of an action-chunk policy)."""
    torch.manual_seed(settings.seed)  # the policy's sampling noise follows the evaluation seed: reruns repeat
    info = {**(header or {}), **describe_policy(policy)}
    s = settings
    info |= evaluate_task(policy, task, s.episodes, s.seed, s.n_envs, output_dir, s.videos, s.executor)
    planner = getattr(policy, "chunk_planner", None)
    if planner is not None:
        info["rti"] = {
            "timesteps": planner.timesteps,
            "pad": planner.pad,
            "full_samples": planner.full_samples,
            "warm_samples": planner.warm_samples,
        }
    return info


def describe_policy(policy) -> dict:
    """The policy's type and, for an action-chunk policy, its sampler, step count and executed actions per chunk."""
    out = {"type": getattr(policy, "type_name", type(policy).__name__)}
    sampler = getattr(policy.config, "sampler", None) if hasattr(policy, "config") else None
    if sampler is not None:
        out |= {"sampler": sampler.name, "num_inference_steps": sampler.num_inference_steps}
        out["n_action_steps"] = policy.config.n_action_steps
    return out


def run_task_config(policy_path: str | Path) -> dict | None:
    """The task a training run was started with (`<run>/.hydra/config.yaml`, found above the policy folder), or
    None for a policy folder outside a run."""
    import yaml

    folder = Path(policy_path).resolve()
    for parent in [folder, *folder.parents][:5]:
        saved = parent / ".hydra" / "config.yaml"
        if saved.is_file():
            return (yaml.safe_load(saved.read_text()) or {}).get("task")
    return None


def task_was_given() -> bool:
    """Whether the command line names a task or overrides a task field."""
    from hydra.core.hydra_config import HydraConfig

    overrides = HydraConfig.get().overrides.task
    return any(o.lstrip("+~").startswith(("task=", "task.")) for o in overrides)


@hydra.main(config_path="pkg://diffpilot.configs", config_name="eval", version_base="1.3")
@user_errors
def app(cfg: DictConfig) -> None:
    set_threads(cfg.num_threads)
    task = OmegaConf.to_container(cfg.task, resolve=True)
    saved = None if cfg.get("planner") or task_was_given() else run_task_config(cfg.policy_path)
    if saved:  # `diffpilot eval policy_path=runs/x/…` evaluates on the task run x trained for
        task = saved
        print(f"task={task.get('name')!r}: the task the run was trained on (pass task=… to evaluate on another)")
    sampler = OmegaConf.to_container(cfg.sampler, resolve=True)
    if cfg.get("planner"):  # a built-in driving planner instead of a trained policy
        if task["env"] != "driving":
            raise ConfigError(
                f"planner={cfg.planner!r} with task={task['name']!r}: expected task=driving (planners drive cars)"
            )
        policy, source = BuiltinPlanner(cfg.planner), f"planner {cfg.planner}"
    else:
        policy, source = load_policy(cfg.policy_path, sampler, cfg.n_action_steps, cfg.device), str(cfg.policy_path)
    rti = OmegaConf.to_container(cfg.rti, resolve=True)
    if rti.get("enabled"):
        policy.chunk_planner = RTIWarmStart.from_config(policy, rti)
    settings = EvalSettings(cfg.episodes, cfg.seed, cfg.n_envs, cfg.videos, cfg.executor)
    output_dir = Path(cfg.output_dir)
    info = evaluate_policy(policy, task, settings, output_dir, {"policy": source})
    record_evaluation(info, output_dir)
