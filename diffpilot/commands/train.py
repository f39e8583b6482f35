"""`diffpilot train`: behaviour cloning of a diffusion / flow policy on a dataset, or of a driving planner on driving
demonstrations (task=driving), optionally evaluated at the end; the run directory of diffpilot/run.py."""

from __future__ import annotations

import json
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from diffpilot.envs.registry import env_factory
from diffpilot.errors import ConfigError
from diffpilot.policies.augmentation import AugmentationConfig, ImageAugmentation
from diffpilot.policies.checkpoint import CheckpointError, load_weights_into
from diffpilot.policies.datasets.episodes import DatasetFormatError
from diffpilot.policies.datasets.loading import feature_shape, load_episodes
from diffpilot.policies.datasets.robomimic_hdf5 import TASK_KEY, filter_key_episodes
from diffpilot.policies.datasets.windowed import WindowedDataset
from diffpilot.policies.diffusion_config import InputFeature
from diffpilot.policies.diffusion_policy import DiffusionPolicy
from diffpilot.policies.registry import POLICIES, build_policy
from diffpilot.policies.train import BCTrainer, TrainConfig
from diffpilot.policies.validation import HeldOutScore, ValidationConfig, held_out_episodes
from diffpilot.rotations import pose_action_to_6d
from diffpilot.run import WandbSettings, resume_if_asked, wandb_settings

from .common import set_threads, user_errors


def policy_for_dataset(policy_cfg: dict, task_cfg: dict, data) -> DiffusionPolicy:
    """A policy whose inputs are the task's observation keys, with shapes read from the dataset."""
    features = {}
    for key in task_cfg["obs_keys"]:
        shape = feature_shape(data.arrays[key])
        features[key] = InputFeature("image" if len(shape) == 3 else "state", shape)
    action_key = task_cfg["action_key"]
    try:
        return build_policy(
            policy_cfg,
            input_features=features,
            action_dim=data.arrays[action_key].shape[-1],
            action_key=action_key,
            **({"environment": task_cfg["environment"]} if task_cfg.get("environment") else {}),
        )
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _periodic_eval(cfg: DictConfig, task: dict):
    """Rollouts of the in-memory (EMA) policy every train.eval_every steps, logged to TensorBoard."""
    from diffpilot.envs.evaluate import evaluate

    make_env = env_factory(task)

    def run(policy, step: int) -> dict[str, float]:
        result = evaluate(policy, make_env, cfg.eval.episodes or 10, cfg.eval.seed, cfg.eval.n_envs, progress=False,
                          executor=cfg.eval.executor)  # fmt: skip
        policy.reset()
        return {"success_rate": result.success_rate, "mean_max_coverage": result.mean_max_coverage}

    return run


def task_instructions(task: dict, data) -> list[str]:
    """The instruction of every task index a task-conditioned policy is trained on: a LIBERO suite's own list
    (the env's task_index is the suite's index), else the dataset's tasks by index (LeRobot's tasks table, or one
    instruction per robomimic/LIBERO file). Raises if a task index in the data has no instruction."""
    if task.get("env") == "libero":
        from diffpilot.envs.libero import list_tasks

        instructions = [t.instruction for t in list_tasks(task["suite"])]
    else:
        instructions = list(data.tasks)
    used = np.unique(data.arrays[TASK_KEY]).tolist()
    missing = [i for i in used if i >= len(instructions) or not instructions[i]]
    if missing:
        raise ConfigError(
            f"dataset {data.source}: task_index {missing} has no instruction (the data names {len(instructions)} "
            "tasks); pass policy.task_conditioning.instructions=[…] with one per task index"
        )
    return instructions


def start_from(policy, cfg: DictConfig) -> None:
    """Fine-tuning: with init_from, a saved policy's weights (its normalisation stats too) are the starting point."""
    if cfg.get("init_from"):
        if cfg.resume:
            raise ConfigError(f"init_from={cfg.init_from!r} with resume={cfg.resume!r}: expected one of the two")
        try:
            load_weights_into(policy, cfg.init_from)
        except (CheckpointError, FileNotFoundError) as err:
            raise ConfigError(f"init_from={cfg.init_from!r}: {err}") from None


def validation_split(val_cfg: ValidationConfig, data, cfg: DictConfig) -> np.ndarray | None:
    """The held-out episode indices `validation.*` asks for (None: nothing held out)."""
    if val_cfg.filter_key:
        if cfg.dataset.format != "robomimic_hdf5":
            raise ConfigError(
                f"validation.filter_key={val_cfg.filter_key!r} with dataset.format={cfg.dataset.format!r}: filter "
                "keys are robomimic's; expected dataset.format=robomimic_hdf5, or validation.episodes"
            )
        if val_cfg.episodes not in (0, 0.0):
            raise ConfigError(
                f"validation.filter_key={val_cfg.filter_key!r} with validation.episodes={val_cfg.episodes!r}: "
                "expected one of the two"
            )
        root = cfg.dataset.root
        try:
            held_out = filter_key_episodes(OmegaConf.to_container(root) if OmegaConf.is_list(root) else root,
                                           val_cfg.filter_key)  # fmt: skip
        except DatasetFormatError as err:
            raise ConfigError(f"validation.filter_key={val_cfg.filter_key!r}: {err}") from None
        if not 0 < len(held_out) < data.num_episodes:
            raise ConfigError(
                f"validation.filter_key={val_cfg.filter_key!r}: selects {len(held_out)} of {data.num_episodes} "
                "episodes; expected at least one held out and one to train on"
            )
        return held_out
    return held_out_episodes(data.num_episodes, val_cfg.episodes, val_cfg.seed) if val_cfg.enabled else None


def image_augmentation(aug_cfg: AugmentationConfig, policy) -> ImageAugmentation | None:
    """The training batches' image augmentation `augmentation.*` asks for (None: off)."""
    if not aug_cfg.enabled:
        return None
    images = [k for k, f in policy.config.input_features.items() if f.kind == "image"]
    if not images:
        raise ConfigError("augmentation.enabled=true: the policy has no image input to augment")
    return ImageAugmentation(aug_cfg, images)


def run_training(cfg: DictConfig) -> dict:
    train_cfg = TrainConfig(**OmegaConf.to_container(cfg.train, resolve=True))  # type-checked before any work
    val_cfg = ValidationConfig(**OmegaConf.to_container(cfg.validation, resolve=True))
    aug_cfg = AugmentationConfig.from_dict(OmegaConf.to_container(cfg.augmentation, resolve=True))
    wandb = wandb_settings(OmegaConf.to_container(cfg.wandb, resolve=True))
    if val_cfg.keep_best == "success_rate" and not train_cfg.eval_every:
        raise ConfigError("validation.keep_best='success_rate' needs rollouts while training: set train.eval_every")
    set_threads(train_cfg.num_threads)
    task = OmegaConf.to_container(cfg.task, resolve=True)
    policy_cfg = OmegaConf.to_container(cfg.policy, resolve=True)
    if task["env"] == "driving":
        if val_cfg.enabled or aug_cfg.enabled:
            which = "validation.*" if val_cfg.enabled else "augmentation.enabled=true"
            raise ConfigError(f"{which} with task=driving: planners train on scene arrays, validated on the val split")
        return train_planner(cfg, task, policy_cfg, train_cfg, wandb)
    conditioning = policy_cfg.setdefault("task_conditioning", {})
    conditioned = conditioning.get("mode", "none") != "none"
    if conditioned and conditioning.get("key", TASK_KEY) != TASK_KEY:
        raise ConfigError(
            f"policy.task_conditioning.key={conditioning['key']!r}: training reads the datasets' {TASK_KEY!r}"
        )
    obs_keys = [*task["obs_keys"], *([TASK_KEY] if conditioned else [])]
    root = cfg.dataset.root
    root = OmegaConf.to_container(root) if OmegaConf.is_list(root) else root  # a list of per-task files
    transforms = {task["action_key"]: pose_action_to_6d} if task.get("action_space") == "absolute" else None
    data, stats = load_episodes(root, cfg.dataset.format, [*obs_keys, task["action_key"]], transforms)
    if conditioned and not conditioning.get("instructions"):
        conditioning["instructions"] = task_instructions(task, data)
    torch.manual_seed(train_cfg.seed)  # the initial weights follow train.seed
    policy = policy_for_dataset(policy_cfg, task, data)
    policy.load_stats(stats)
    start_from(policy, cfg)
    pc = policy.config
    held_out = validation_split(val_cfg, data, cfg)
    training = None if held_out is None else np.setdiff1d(np.arange(data.num_episodes), held_out)
    windows = (obs_keys, task["action_key"], pc.n_obs_steps, pc.horizon, pc.n_action_steps)
    dataset = WindowedDataset(data, *windows, episodes=training)
    validation = None if held_out is None else HeldOutScore(WindowedDataset(data, *windows, episodes=held_out), val_cfg)
    periodic = _periodic_eval(cfg, task) if train_cfg.eval_every else None
    augment = image_augmentation(aug_cfg, policy)
    keep_best = val_cfg.keep_best if validation is not None or val_cfg.keep_best == "success_rate" else None
    trainer = BCTrainer(
        policy, dataset, train_cfg, Path(cfg.output_dir), eval_fn=periodic, validation=validation, augment=augment,
        keep_best=keep_best,
    )  # fmt: skip
    resume_if_asked(trainer, cfg.resume)
    trainer.run.attach_wandb(wandb, OmegaConf.to_container(cfg, resolve=True))
    n_params = sum(p.numel() for p in policy.parameters())
    if trainer.rank == 0:
        print(
            f"dataset {cfg.dataset.root}: {data.num_episodes} episodes, {data.num_frames} frames, {len(dataset)} "
            f"windows; policy {pc.network.type}/{pc.objective} with {n_params / 1e6:.2f} M parameters"
        )
        if validation is not None:
            print(
                f"validation: {len(held_out)} held-out episodes ({len(validation.items)} windows scored every "
                f"{val_cfg.every} steps); best policy by {val_cfg.keep_best} in checkpoints/best"
            )
    return train_and_report(trainer, cfg, task, n_params)


def train_and_report(trainer: BCTrainer, cfg: DictConfig, task: dict, n_params: int) -> dict:
    """Train to the end, evaluate the saved policy when eval.episodes > 0 (the task's protocol; rank 0) and write
    result.json."""
    checkpoint = trainer.train()
    result = {"checkpoint": str(checkpoint), "train_steps": trainer.step, "parameters": n_params}
    if trainer.rank == 0 and cfg.eval.episodes > 0:
        from .evaluate import EvalSettings, evaluate_policy, load_policy

        path = checkpoint / "pretrained_model"
        settings = EvalSettings(cfg.eval.episodes, cfg.eval.seed, cfg.eval.n_envs, cfg.eval.videos, cfg.eval.executor)
        info = evaluate_policy(load_policy(path), task, settings, Path(cfg.output_dir) / "eval", {"policy": str(path)})
        trainer.run.record_evaluation(info)
        result["eval"] = info
    return trainer.run.finish(result)


def train_planner(
    cfg: DictConfig, task: dict, policy_cfg: dict, train_cfg: TrainConfig, wandb: WandbSettings | None = None
) -> dict:
    """`diffpilot train task=driving policy=ego_mlp|diffusiondrive|vanilla_diffusion|wamdiff`: behaviour cloning of a
    driving planner on the demonstrations `diffpilot data task=driving` wrote (dataset.root)."""
    from diffpilot.envs.driving import load_demonstrations
    from diffpilot.policies.datasets.arrays import ArrayDataset
    from diffpilot.policies.driving.common import DrivingPolicy

    if cfg.dataset.format != "driving":
        raise ConfigError(f"dataset.format={cfg.dataset.format!r} with task=driving: expected 'driving'")
    try:
        data = load_demonstrations(cfg.dataset.root)
    except FileNotFoundError as err:
        raise ConfigError(
            f"dataset.root={cfg.dataset.root!r}: {err}; write them with `diffpilot data task=driving`"
        ) from None
    kind = policy_cfg.get("type", "diffusion")
    if not issubclass(POLICIES.get(kind, object), DrivingPolicy):
        planners = " | ".join(sorted(k for k, c in POLICIES.items() if issubclass(c, DrivingPolicy)))
        raise ConfigError(f"policy.type={kind!r} with task=driving: expected a driving planner ({planners})")
    torch.manual_seed(train_cfg.seed)  # the initial weights follow train.seed
    try:
        policy = build_policy(policy_cfg)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    policy.set_normalization(data)
    start_from(policy, cfg)
    trainer = BCTrainer(policy, ArrayDataset(data), train_cfg, Path(cfg.output_dir))
    resume_if_asked(trainer, cfg.resume)
    if wandb is not None:
        trainer.run.attach_wandb(wandb, OmegaConf.to_container(cfg, resolve=True))
    n_params = sum(p.numel() for p in policy.parameters())
    print(f"demonstrations {cfg.dataset.root}: {len(data['trajectory'])} scenes; {policy.type_name} planner with "
          f"{n_params / 1e6:.2f} M parameters")  # fmt: skip
    return train_and_report(trainer, cfg, task, n_params)


@hydra.main(config_path="pkg://diffpilot.configs", config_name="train", version_base="1.3")
@user_errors
def app(cfg: DictConfig) -> None:
    result = run_training(cfg)
    if "eval" in result:
        print(json.dumps({k: v for k, v in result["eval"].items() if k != "per_episode"}, indent=2))
