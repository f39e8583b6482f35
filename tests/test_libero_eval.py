"""`diffpilot eval task=libero_*`: LIBERO's per-task protocol end to end with a tiny real policy on real LIBERO
envs (state mode, instruction embedding as an input), the LIBERO-PRO suites through the same harness, and the
env factory's errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from diffpilot.commands.evaluate import EvalSettings, evaluate_policy, load_policy
from diffpilot.envs.libero import list_tasks, suite_object_dim
from diffpilot.envs.registry import env_factory
from diffpilot.errors import ConfigError
from diffpilot.policies.diffusion_policy import DiffusionPolicy
from diffpilot.run import record_evaluation
from diffpilot.text_embedding import encode_instructions

from .conftest import tiny_config

STATE = {"robot0_eef_pos": 3, "robot0_eef_quat": 4, "robot0_gripper_qpos": 2, "robot0_joint_pos": 7}


def eval_config(overrides: list[str]):
    with initialize_config_module("diffpilot.configs", version_base="1.3"):
        return compose("eval", overrides=overrides)


@pytest.fixture(scope="module")
def tiny_libero_policy(tmp_path_factory):
    """An untrained but complete state policy over LIBERO-Object's observations plus the instruction embedding."""
    dims = {**STATE, "object": suite_object_dim("libero_object"), "language_embedding": 384}
    features = {k: {"kind": "state", "shape": [d]} for k, d in dims.items()}
    config = tiny_config(input_features=features, action_dim=7, sampler={"num_inference_steps": 2})
    torch.manual_seed(0)
    policy = DiffusionPolicy(config)
    stats = {k: {"min": -np.ones(d), "max": np.ones(d)} for k, d in {**dims, "action": 7}.items()}
    policy.load_stats(stats)
    path = tmp_path_factory.mktemp("libero_policy") / "pretrained_model"
    policy.save_pretrained(path)
    return path, list(dims)


def test_eval_runs_libero_protocol_per_task_and_suite(tiny_libero_policy, tmp_path):
    path, keys = tiny_libero_policy
    cfg = eval_config(
        [
            "task=libero_object", f"policy_path={path}", "episodes=2", "n_envs=2", "videos=0",
            f"output_dir={tmp_path}", "task.tasks=[1]", "task.max_episode_steps=4", "task.language=true",
            f"task.obs_keys=[{','.join(keys)}]",
        ]
    )  # fmt: skip
    task = OmegaConf.to_container(cfg.task, resolve=True)
    settings = EvalSettings(cfg.episodes, cfg.seed, cfg.n_envs, cfg.videos)
    info = evaluate_policy(load_policy(cfg.policy_path), task, settings)
    record_evaluation(info, cfg.output_dir)
    saved = json.loads((tmp_path / "eval_info.json").read_text())
    assert saved["suite"] == "libero_object" and saved["perturbation"] is None and saved["obs_mode"] == "state"
    assert saved["protocol"] == "libero" and "metric.py" in saved["protocol_source"]
    assert saved["protocol_deviations"] == ["episodes=2", "max_episode_steps=4"]  # named, since they differ
    assert list(saved["tasks"]) == ["1"] and saved["episodes_per_task"] == 2 and saved["episodes"] == 2
    one = saved["tasks"]["1"]
    assert one["instruction"] == list_tasks("libero_object")[1].instruction
    assert [e["seed"] for e in one["per_episode"]] == [100000, 100001]  # official init states 0 and 1
    assert all(e["steps"] == 4 and not e["success"] for e in one["per_episode"])
    assert saved["success_rate"] == 0.0 and 0.0 == saved["success_ci95"][0] < saved["success_ci95"][1] < 1.0
    assert saved["sampler"] == "ddim" and info["language_embedding"] is True
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tensorboard").iterdir())


def test_same_harness_runs_a_libero_pro_suite(tiny_libero_policy, tmp_path):
    path, keys = tiny_libero_policy
    cfg = eval_config(
        [
            "task=libero_object", "task.suite=libero_object_lan", f"policy_path={path}", "episodes=1", "n_envs=1",
            "videos=0", f"output_dir={tmp_path}", "task.tasks=[pick_up_the_milk_and_place_it_in_the_basket]",
            "task.max_episode_steps=2", "task.language=true", f"task.obs_keys=[{','.join(keys)}]",
        ]
    )  # fmt: skip
    task = OmegaConf.to_container(cfg.task, resolve=True)
    settings = EvalSettings(cfg.episodes, cfg.seed, cfg.n_envs, cfg.videos)
    info = evaluate_policy(load_policy(cfg.policy_path), task, settings)
    record_evaluation(info, cfg.output_dir)
    assert info["suite"] == "libero_object_lan" and info["perturbation"] == "language"
    ((index, record),) = info["tasks"].items()
    base = list_tasks("libero_object")[int(index)]
    assert base.name == record["name"] and record["instruction"] != base.instruction
    assert record["episodes"] == 1 and record["per_episode"][0]["steps"] == 2


def test_the_protocol_sets_the_episode_count_when_eval_leaves_it_out(tiny_libero_policy, tmp_path):
    path, keys = tiny_libero_policy
    common = [f"policy_path={path}", "n_envs=2", "videos=0", "task=libero_object", "task.tasks=[0]",
              "task.language=true", f"task.obs_keys=[{','.join(keys)}]", "task.max_episode_steps=1"]  # fmt: skip
    for protocol, episodes in (("libero", 20), ("openvla", 50)):
        cfg = eval_config([*common, f"task.protocol={protocol}"])
        assert cfg.episodes is None
        task = OmegaConf.to_container(cfg.task, resolve=True)
        info = evaluate_policy(load_policy(cfg.policy_path), task, EvalSettings(cfg.episodes, cfg.seed, cfg.n_envs))
        assert info["protocol"] == protocol and info["episodes"] == episodes
        assert info["protocol_deviations"] == ["max_episode_steps=1"]
        states = [e["seed"] % 50 for e in info["tasks"]["0"]["per_episode"]]
        assert states == list(range(episodes))  # initial states 0 … n−1, as both sources index them


def test_language_embedding_is_the_text_encoders_and_reaches_the_observation():
    a, b = encode_instructions([t.instruction for t in list_tasks("libero_object_lan")[:2]]).numpy()
    assert a.shape == (384,) and abs(np.linalg.norm(a) - 1) < 1e-4 and not np.allclose(a, b)
    env = env_factory({"env": "libero", "suite": "libero_object_lan", "tasks": [0], "language": True}, 3)()
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(obs["language_embedding"], a, atol=1e-6)
    env.close()


def test_env_factory_needs_a_suite_and_checks_tasks():
    with pytest.raises(ConfigError, match=r"task.suite=None: env=libero needs a suite"):
        env_factory({"env": "libero"})
    with pytest.raises(ConfigError, match=r"task.tasks=3: expected null"):
        env_factory({"env": "libero", "suite": "libero_goal", "tasks": 3})
    with pytest.raises(ConfigError, match=r"task=12: suite 'libero_goal' has tasks 0 … 9"):
        env_factory({"env": "libero", "suite": "libero_goal", "tasks": [12]})
