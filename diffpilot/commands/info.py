"""`diffpilot info`: total and active parameters, network evaluations and FLOPs per action chunk of a policy config
(`policy=mode_small`, observation shapes taken from the task's environment) or of a saved checkpoint
(`checkpoint=<pretrained_model dir>`)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from diffpilot.envs.registry import env_factory
from diffpilot.errors import ConfigError
from diffpilot.policies.checkpoint import atomic_write_json

from .common import set_threads, user_errors


def policy_from_config(policy_cfg: dict, task: dict):
    """A fresh DiffusionPolicy for `policy_cfg` whose inputs are the task's observation keys, shaped as the task's
    environment produces them (images (H, W, 3) → (3, H, W))."""
    from diffpilot.policies.diffusion_config import InputFeature
    from diffpilot.policies.registry import build_policy

    env = env_factory({**task, "max_episode_steps": None})()
    try:
        spaces = env.observation_space.spaces
        features = {}
        for key in task["obs_keys"]:
            if key not in spaces:
                raise ConfigError(f"task.obs_keys has {key!r}; the {task['env']} env observes {sorted(spaces)}")
            shape = tuple(spaces[key].shape)
            image = len(shape) == 3
            features[key] = InputFeature("image" if image else "state", (shape[2], *shape[:2]) if image else shape)
        action_dim = int(env.action_space.shape[0])
    finally:
        env.close()
    try:
        env = {"environment": task["environment"]} if task.get("environment") else {}
        return build_policy(
            policy_cfg, input_features=features, action_dim=action_dim, action_key=task["action_key"], **env
        )
    except ValueError as e:
        raise ConfigError(str(e)) from e


def describe(cfg: DictConfig) -> dict:
    from diffpilot.policies.mode_stats import count_policy

    if cfg.checkpoint:
        from diffpilot.policies.registry import load_policy
        from diffpilot.run import policy_dir

        if not policy_dir(cfg.checkpoint).joinpath("config.json").is_file():
            raise ConfigError(
                f"checkpoint={cfg.checkpoint!r}: expected a pretrained_model directory with config.json, or a run"
            )
        policy, source = load_policy(cfg.checkpoint), str(cfg.checkpoint)
    else:
        policy_cfg = OmegaConf.to_container(cfg.policy, resolve=True)
        task = OmegaConf.to_container(cfg.task, resolve=True)
        policy, source = policy_from_config(policy_cfg, task), f"policy config on task {task['name']}"
    if not hasattr(policy, "net"):  # a composition holds several networks
        raise ConfigError(f"{source}: {type(policy).__name__} is not a single diffusion/flow policy")
    counts = count_policy(policy).to_dict()
    pc = policy.config
    return {"source": source, "network": pc.network.type, "sampler": pc.sampler.name, **counts}


def format_report(info: dict) -> str:
    total, active = info["total_params"], info["active_params"]
    lines = [
        f"policy       {info['source']}",
        f"network      {info['network']} · sampler {info['sampler']} · {info['nfe_per_chunk']} evaluations/chunk",
        f"parameters   {total / 1e6:.3f} M total · {active / 1e6:.3f} M active/step ({1 - active / total:.1%} fewer)",
        f"FLOPs/chunk  {info['flops_per_chunk'] / 1e9:.3f} G (batch 1)",
    ]
    if info.get("flops_per_chunk_uncached") is not None:
        lines.append(f"             {info['flops_per_chunk_uncached'] / 1e9:.3f} G without expert caching")
    return "\n".join(lines)


@hydra.main(config_path="pkg://diffpilot.configs", config_name="info", version_base="1.3")
@user_errors
def app(cfg: DictConfig) -> None:
    set_threads(cfg.num_threads)
    info = describe(cfg)
    print(format_report(info))
    if cfg.json:
        atomic_write_json(cfg.json, info)
