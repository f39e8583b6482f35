"""robomimic Lift from images on the real robosuite env: scripted demonstrations with both 84×84 cameras written by
the project's robomimic hdf5 writer and read back with robomimic's keys, shapes and dtypes; a training step of the
two-camera experiment config (one encoder per camera, random crop 84 → 76) with a finite loss; a rollout in the
image env; camera settings that cannot work fail naming the camera and the choices."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from diffpilot.commands.common import load_task_config
from diffpilot.commands.data_robomimic import as_robomimic_demos, env_args_for
from diffpilot.envs.experts.robomimic_record import record_robomimic_demo
from diffpilot.envs.registry import env_factory
from diffpilot.envs.robomimic import task_cameras
from diffpilot.errors import ConfigError
from diffpilot.policies.datasets.loading import feature_shape, load_episodes
from diffpilot.policies.datasets.robomimic_hdf5 import RobomimicHdf5, read_robomimic_hdf5, write_robomimic_hdf5
from diffpilot.policies.datasets.windowed import WindowedDataset

CAMERAS = ("agentview", "robot0_eye_in_hand")
IMAGES = [f"{c}_image" for c in CAMERAS]
LOW_DIM = ["robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "object"]
STEPS = 12  # the first 12 steps of each expert episode: windows to train on, about a second of rendering


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    """Two 12-step scripted Lift recordings with both cameras, in robomimic's hdf5 layout."""
    recorded = [record_robomimic_demo("lift", "image", seed, STEPS, CAMERAS) for seed in range(2)]
    path = tmp_path_factory.mktemp("robomimic_image") / "lift_image.hdf5"
    write_robomimic_hdf5(path, as_robomimic_demos(recorded), env_args_for("lift", "image", CAMERAS), valid_fraction=0.5)
    return path, recorded


def test_image_file_has_robomimics_keys_shapes_and_dtypes(image_file):
    path, recorded = image_file
    with h5py.File(path, "r") as f:
        kwargs = json.loads(f["data"].attrs["env_args"])["env_kwargs"]
        assert kwargs["camera_names"] == list(CAMERAS) and kwargs["use_camera_obs"] is True
        assert kwargs["camera_heights"] == kwargs["camera_widths"] == 84
        for name in ("demo_0", "demo_1"):
            demo = f[f"data/{name}"]
            for group in ("obs", "next_obs"):
                assert sorted(demo[group]) == sorted(LOW_DIM + IMAGES)
                for key in IMAGES:
                    assert demo[f"{group}/{key}"].shape == (STEPS, 84, 84, 3)
                    assert demo[f"{group}/{key}"].dtype == np.uint8
                assert demo[f"{group}/robot0_eef_pos"].shape == (STEPS, 3)
            for key in IMAGES:  # next_obs is obs one step on
                np.testing.assert_array_equal(demo[f"next_obs/{key}"][:-1], demo[f"obs/{key}"][1:])
    with RobomimicHdf5(path) as f:
        back = f.read_demo("demo_1")
    for key in [*IMAGES, *LOW_DIM]:
        np.testing.assert_array_equal(back.obs[key], recorded[1].obs[key])
    data = read_robomimic_hdf5(path, [*IMAGES, "robot0_eef_pos", "action"])
    assert data.arrays["agentview_image"].dtype == np.uint8 and data.arrays["agentview_image"].shape == (24, 84, 84, 3)
    assert feature_shape(data.arrays["robot0_eye_in_hand_image"]) == (3, 84, 84)  # the policy's (3, H, W)
    _, stats = load_episodes(path, "robomimic_hdf5", [*IMAGES, "action"])
    assert stats["agentview_image"]["mean"].shape == (3, 1, 1) and 0 < stats["agentview_image"]["mean"].min() < 1


def test_training_step_of_the_image_experiment_and_a_rollout(image_file, tmp_path):
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from diffpilot.commands.evaluate import load_policy
    from diffpilot.commands.train import run_training
    from diffpilot.envs.evaluate import evaluate

    path, _ = image_file
    with initialize_config_module("diffpilot.configs", version_base="1.3"):
        cfg = compose(
            "train",
            [
                "experiment=lift_image_cpu", f"dataset.root={path}", f"output_dir={tmp_path}", "train.steps=1",
                "train.batch_size=4", "train.warmup_steps=1", "train.save_every=0",
                "policy.sampler.num_inference_steps=2",
            ],
        )  # fmt: skip
    result = run_training(cfg)
    assert result["train_steps"] == 1
    policy = load_policy(f"{result['checkpoint']}/pretrained_model")
    pc = policy.config
    assert pc.image_keys == IMAGES and pc.state_keys == ["robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos"]
    assert pc.input_features["agentview_image"].shape == (3, 84, 84) and pc.vision.crop_shape == (76, 76)
    assert len(policy.obs_encoder.image_encoders) == 2 and pc.vision.width == 16

    task = OmegaConf.to_container(cfg.task, resolve=True)
    data, _ = load_episodes(path, "robomimic_hdf5", [*task["obs_keys"], "action"])
    windows = WindowedDataset(data, task["obs_keys"], "action", pc.n_obs_steps, pc.horizon, pc.n_action_steps)
    batch = {k: torch.from_numpy(v) for k, v in windows.get_batch(np.arange(4)).items()}
    assert batch["agentview_image"].shape == (4, 2, 84, 84, 3) and batch["agentview_image"].dtype == torch.uint8
    policy.train()
    loss = policy.compute_loss(batch)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(e.backbone.stem[0].weight.grad.abs().sum() > 0 for e in policy.obs_encoder.image_encoders)

    outcome = evaluate(
        policy.eval(),
        env_factory({**task, "env": "lift", "obs_mode": "image"}, 3),
        n_episodes=1,
        n_envs=1,
        progress=False,
    )
    assert [e.steps for e in outcome.episodes] == [3]


def test_image_env_renders_only_the_task_cameras():
    task = {**load_task_config("lift_image"), "obs_keys": ["agentview_image", "robot0_eef_pos"]}
    env = env_factory({**task, "env": "lift", "obs_mode": "image"}, 2)()
    try:
        assert "agentview_image" in env.observation_space.spaces
        assert "robot0_eye_in_hand_image" not in env.observation_space.spaces
        assert env.unwrapped.env_kwargs["camera_names"] == ["agentview"]
    finally:
        env.close()


def test_unknown_or_unrendered_cameras_fail_by_name():
    with pytest.raises(ConfigError, match=r"\['ceiling'\] not in the scene; expected some of \['frontview'"):
        task_cameras({"name": "lift_image", "obs_keys": ["ceiling_image", "robot0_eef_pos"]})
    with pytest.raises(ConfigError, match=r"task.cameras=\['agentview'\] does not render \['robot0_eye_in_hand'\]"):
        task_cameras({"name": "lift_image", "cameras": ["agentview"], "obs_keys": IMAGES})
    with pytest.raises(ConfigError, match="no cameras"):
        task_cameras({"name": "lift", "obs_keys": LOW_DIM})
    assert task_cameras(load_task_config("lift_image")) == CAMERAS
