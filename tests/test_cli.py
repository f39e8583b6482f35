"""The user's path end to end through the real commands: data → train → eval, and bad input."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from diffpilot.policies.datasets.episodes import DatasetFormatError
from diffpilot.policies.datasets.loading import load_episodes

from .conftest import diffpilot


@pytest.fixture(scope="module")
def demo_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "pusht"
    proc = diffpilot("data", "episodes=3", "obs_mode=all", f"output={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "wrote 3 demonstrations" in proc.stdout
    return out


def test_data_writes_a_lerobot_dataset_with_image_video(demo_dataset):
    info = json.loads((demo_dataset / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_episodes"] == 3
    assert info["features"]["observation.image"]["dtype"] == "video"
    assert info["features"]["observation.environment_state"]["shape"] == [16]
    table = pq.read_table(demo_dataset / "data" / "chunk-000" / "file-000.parquet")
    assert table.num_rows == info["total_frames"] and bool(table["next.success"][-1].as_py())
    assert (demo_dataset / "videos" / "observation.image" / "chunk-000" / "file-000.mp4").exists()


def test_train_then_eval_image_policy(demo_dataset, tmp_path):
    run = tmp_path / "run"
    proc = diffpilot(
        "train",
        "task=pusht_image",
        f"dataset.root={demo_dataset}",
        f"output_dir={run}",
        "train.steps=2",
        "train.batch_size=4",
        "train.warmup_steps=1",
        "policy.network.down_dims=[16,32]",
        "policy.network.time_embed_dim=16",
        "policy.network.n_groups=4",
        "policy.sampler.num_inference_steps=2",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((run / "result.json").read_text())
    assert result["train_steps"] == 2
    proc = diffpilot(
        "eval",
        "task=pusht_image",
        f"policy_path={run}/checkpoints/last/pretrained_model",
        "episodes=2",
        "n_envs=2",
        "videos=1",
        f"output_dir={run}/eval",
        "task.max_episode_steps=12",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "success 0.0% (95% CI" in proc.stdout
    info = json.loads((run / "eval" / "eval_info.json").read_text())
    assert info["episodes"] == 2 and len(info["per_episode"]) == 2 and 0 <= info["mean_max_coverage"] <= 1
    assert (run / "eval" / "videos" / "episode_100000.mp4").stat().st_size > 1000
    assert any((run / "eval" / "tensorboard").iterdir())
    policy = f"policy_path={run}/checkpoints/last/pretrained_model"
    proc = diffpilot("eval", policy, "episodes=1", "n_envs=1", "videos=0", f"output_dir={run}/eval_own_task")
    assert proc.returncode == 0, proc.stderr[-3000:]  # no task given: the run's own (pusht_image), not pusht_state
    assert "task='pusht_image': the task the run was trained on" in proc.stdout
    assert json.loads((run / "eval_own_task" / "eval_info.json").read_text())["episodes"] == 1


def test_unknown_config_key_fails_with_its_name():
    proc = diffpilot("train", "train.stepz=5")
    assert proc.returncode != 0 and "Key 'stepz' is not in struct" in proc.stderr


def test_unknown_command_is_named():
    proc = diffpilot("fly")
    assert proc.returncode == 2 and "unknown command 'fly'" in proc.stderr


def test_missing_dataset_meta_is_named(tmp_path):
    proc = diffpilot("train", f"dataset.root={tmp_path}", f"output_dir={tmp_path}/run")
    assert proc.returncode == 2 and "meta/info.json" in proc.stderr
    # a user error is one line, without a traceback; DIFFPILOT_TRACEBACK=1 shows it
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.steps=2.5", "train.steps=2.5: expected an integer"),
        ("train.steps=abc", "train.steps='abc': expected an integer"),
        ("train.lr=abc", "train.lr='abc': expected a number"),
        ("train.use_ema=maybe", "train.use_ema='maybe': expected true or false"),
        ("train.batch_size=0", "train.batch_size=0: expected a positive integer"),
    ],
)
def test_config_values_are_type_checked_before_any_work(tmp_path, override, message):
    proc = diffpilot("train", override, f"dataset.root={tmp_path / 'none'}", f"output_dir={tmp_path / 'run'}")
    assert proc.returncode == 2 and proc.stderr.strip() == f"diffpilot: {message}"
    assert not (tmp_path / "run").exists()


def test_the_traceback_flag_shows_the_traceback(tmp_path):
    proc = diffpilot("train", "train.steps=2.5", env_extra={"DIFFPILOT_TRACEBACK": "1"})
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "expected an integer" in proc.stderr


def test_dataset_without_the_tasks_features_is_named(demo_dataset):
    with pytest.raises(DatasetFormatError, match=r"no feature\(s\) \['observation.velocity'\]"):
        load_episodes(demo_dataset, "lerobot_v3", ["observation.velocity", "action"])


def test_loaded_demos_are_finite_and_aligned(demo_dataset):
    data, stats = load_episodes(demo_dataset, "lerobot_v3", ["observation.state", "observation.image", "action"])
    assert data.arrays["observation.image"].shape[1:] == (96, 96, 3)
    assert stats["observation.image"]["mean"].shape == (3, 1, 1)
    # the agent follows its target: the next state moves towards the action taken
    lo, hi = data.episode_ranges[0]
    state, action = data.arrays["observation.state"][lo:hi], data.arrays["action"][lo:hi]
    before = np.linalg.norm(action[:-1] - state[:-1], axis=1)
    after = np.linalg.norm(action[:-1] - state[1:], axis=1)
    assert (after <= before + 1e-3).mean() > 0.8


def test_compose_searches_weights_and_saves_a_loadable_policy(tmp_path):
    """GPC end to end on real PushT rollouts (tiny untrained parents: this checks the path, not the gain)."""
    import torch

    from diffpilot.policies.diffusion_policy import DiffusionPolicy
    from diffpilot.policies.registry import load_policy

    from .conftest import tiny_config

    torch.manual_seed(0)
    DiffusionPolicy(tiny_config()).save_pretrained(tmp_path / "a")
    flow = tiny_config(
        objective="flow", prediction_type="velocity", sampler={"name": "flow_euler", "clip_sample": None}
    )
    DiffusionPolicy(flow).save_pretrained(tmp_path / "b")
    out = tmp_path / "gpc"
    proc = diffpilot(
        "compose",
        f"parents=[{tmp_path / 'a'},{tmp_path / 'b'}]",
        "grid_step=0.5",
        "search_episodes=2",
        "episodes=2",
        "n_envs=2",
        "sampler.num_inference_steps=2",
        "task.max_episode_steps=10",
        f"output_dir={out}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "compose.json").read_text())
    assert [r["weights"] for r in report["search"]["sweep"]] == [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]
    assert set(report["final"]) >= {"composition", "parent_0", "parent_1"}
    assert (out / "weight_sweep.png").read_bytes()[:4] == b"\x89PNG"
    policy = load_policy(out / "pretrained_model")
    assert list(policy.composition.weights) in [r["weights"] for r in report["search"]["sweep"]]
    proc = diffpilot(
        "eval", f"policy_path={out}/pretrained_model", "episodes=2", "n_envs=2", "videos=0",
        "task.max_episode_steps=10", f"output_dir={tmp_path}/eval", "rti.enabled=true", "rti.start=20",
        "rti.timesteps=[20,7,0]",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((tmp_path / "eval" / "eval_info.json").read_text())
    assert info["sampler"] == "ddim" and info["rti"]["warm_samples"] > 0
    assert info["rti"]["timesteps"] == [20, 7, 0]  # the explicit step list, not DDIM's even [20, 10, 0]


def test_compose_needs_two_parents(tmp_path):
    proc = diffpilot("compose", "parents=[]", f"output_dir={tmp_path}")
    assert proc.returncode != 0 and "expected two or more policy directories" in proc.stderr


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("episodes=-1", "episodes=-1: expected a positive integer"),
        ("episodes=abc", "episodes='abc': expected a positive integer"),
        ("n=2.5", "n=2.5: expected a positive integer"),
        ("seed=-3", "seed=-3: expected an integer >= 0"),
    ],
)
def test_data_options_are_checked_before_any_work(tmp_path, override, message):
    proc = diffpilot("data", override, f"output={tmp_path / 'out'}")
    assert proc.returncode == 2 and proc.stderr.strip() == f"diffpilot: {message}"
    assert not (tmp_path / "out").exists()


def test_serve_without_a_policy_or_robot_names_what_is_missing():
    proc = diffpilot("serve", "robot=pusht_state")
    assert proc.returncode == 2 and proc.stderr.strip() == (
        "diffpilot serve: policy_path is missing; expected policy=runs/<run> (docs/serving.md)"
    )


def test_rl_runner_must_be_a_registered_algorithm():
    proc = diffpilot("rl", "algo=dppo", "algo.runner=os:system")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "diffpilot: algo.runner='os:system': expected a registered RL algorithm, one of ['dppo', 'dsrl', 'gspo']"
    )


def test_ros_nodes_listen_on_loopback_unless_told(monkeypatch):
    from diffpilot.commands.serve import listen_on

    for key in ("ROS_IP", "ROS_HOSTNAME", "ROS_LOCALHOST_ONLY"):
        monkeypatch.delenv(key, raising=False)
    listen_on("ros1", "127.0.0.1")
    listen_on("ros2", "127.0.0.1")
    assert os.environ["ROS_IP"] == "127.0.0.1" and os.environ["ROS_LOCALHOST_ONLY"] == "1"
    monkeypatch.setenv("ROS_IP", "10.0.0.5")  # the user's own choice stays
    listen_on("ros1", "127.0.0.1")
    assert os.environ["ROS_IP"] == "10.0.0.5"
