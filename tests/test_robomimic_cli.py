"""The robomimic path through the real commands: data (robomimic hdf5) → train (dataset.format=robomimic_hdf5)
→ eval on the robosuite env, with a video."""

from __future__ import annotations

import json

import h5py
import pytest
from omegaconf import OmegaConf

from diffpilot.commands.data import DataRequest, resolve_request
from diffpilot.errors import ConfigError

from .conftest import diffpilot

TINY = [
    "policy.network.down_dims=[16,32]",
    "policy.network.time_embed_dim=16",
    "policy.network.n_groups=4",
    "policy.sampler.num_inference_steps=2",
]


@pytest.mark.slow  # ~100 s of subprocess start-ups; test_robomimic_hdf5 covers data → train → rollouts in-process
def test_lift_data_train_eval(tmp_path):
    data = tmp_path / "lift.hdf5"
    proc = diffpilot("data", "task=lift", "expert=scripted", "n=2", f"output={data}")  # robomimic's spelling
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "wrote 2 demonstrations" in proc.stdout and "expert success" in proc.stdout
    with h5py.File(data, "r") as f:
        assert sorted(f["data"]) == ["demo_0", "demo_1"]
        assert json.loads(f["data"].attrs["env_args"])["env_name"] == "Lift"

    run = tmp_path / "run"
    proc = diffpilot(
        "train", "task=lift", f"dataset.root={data}", "dataset.format=robomimic_hdf5", f"output_dir={run}",
        "train.steps=2", "train.batch_size=4", "train.warmup_steps=1", *TINY,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((run / "checkpoints/last/pretrained_model/config.json").read_text())
    assert config["config"]["action_dim"] == 7 and config["config"]["input_features"]["object"]["shape"] == [10]

    proc = diffpilot(
        "eval", "task=lift", f"policy_path={run}/checkpoints/last/pretrained_model", "episodes=2", "n_envs=2",
        "videos=1", f"output_dir={run}/eval", "task.max_episode_steps=10",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((run / "eval/eval_info.json").read_text())
    assert info["episodes"] == 2 and all(e["steps"] == 10 for e in info["per_episode"])
    assert (run / "eval/videos/episode_100000.mp4").stat().st_size > 1000

    proc = diffpilot("data", "env=lift", "format=robomimic_hdf5", f"output={tmp_path / 'lift.zarr'}")
    assert proc.returncode != 0 and "expected an .hdf5 file path" in proc.stderr


def _request(**overrides) -> DataRequest:
    base = OmegaConf.load("configs/data.yaml")
    base.pop("defaults"), base.pop("hydra")
    return resolve_request(OmegaConf.merge(base, overrides))


def test_data_request_aliases_and_per_env_defaults():
    """`task=lift expert=scripted n=200` (robomimic's spelling) = `env=lift episodes=200`, written as robomimic
    hdf5 from state where the Lift experiment config reads it; plain `diffpilot data` stays PushT / LeRobot v3."""
    assert _request(task="lift", expert="scripted", n=200) == DataRequest(
        "lift", "state", "robomimic_hdf5", 200, "data/robomimic/lift_state.hdf5"
    )
    assert _request() == DataRequest("pusht", "all", "lerobot_v3", 200, "data/pusht")
    assert _request(env="can", obs_mode="image", output="x.hdf5").output == "x.hdf5"
    absolute = _request(task="square", action_space="absolute")
    assert absolute.action_space == "absolute" and absolute.output == "data/robomimic/square_state_abs.hdf5"


def test_data_request_for_the_image_task_renders_its_cameras():
    """`diffpilot data task=lift_image expert=scripted n=200` (Hydra composes configs/task/lift_image.yaml) records
    Lift in image mode with the task's two cameras into data/robomimic/lift_image.hdf5, as `env=lift obs_mode=image`."""
    from hydra import compose, initialize_config_module

    cameras = ("agentview", "robot0_eye_in_hand")
    expected = DataRequest("lift", "image", "robomimic_hdf5", 200, "data/robomimic/lift_image.hdf5", cameras)
    with initialize_config_module("diffpilot.configs", version_base="1.3"):
        assert resolve_request(compose("data", ["task=lift_image", "expert=scripted", "n=200"])) == expected
        assert resolve_request(compose("data", ["task=lift", "n=200"])) == _request(task="lift", n=200)
    assert _request(task="lift_image", n=200) == expected
    assert _request(env="lift", obs_mode="image", cameras=["agentview"]).cameras == ("agentview",)
    assert _request(env="lift", obs_mode="image").cameras is None  # the writer's default: both cameras


@pytest.mark.parametrize(
    "overrides, named",
    [
        (
            {"env": "lift", "obs_mode": "image", "cameras": ["ceiling"]},
            r"\['ceiling'\] not in the scene; expected some",
        ),
        ({"env": "lift", "cameras": ["agentview"]}, r"cameras=\['agentview'\] with obs_mode='state'"),
        ({"task": "lift_image", "env": "can"}, "task='lift_image' and env='can' disagree"),
        ({"task": "lift", "env": "can"}, "disagree"),
        ({"task": "stack"}, "env='stack'"),
        ({"task": "lift", "expert": "human"}, "expert='human'"),
        ({"env": "pusht", "format": "robomimic_hdf5"}, "format=robomimic_hdf5"),
        ({"env": "lift", "format": "zarr"}, "format='zarr'"),
        ({"env": "lift", "action_space": "sideways"}, r"action_space='sideways' with env='lift': expected 'delta'"),
        ({"env": "pusht", "action_space": "absolute"}, "or 'absolute' for a robomimic task"),
    ],
)
def test_data_request_errors_name_the_field(overrides, named):
    with pytest.raises(ConfigError, match=named):
        _request(**overrides)
