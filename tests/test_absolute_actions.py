"""Absolute end-effector actions for the robomimic tasks: rotation_6d conversions, robosuite's absolute OSC_POSE
controller driven by the scripted experts, files robomimic's playback replays, and the training-time conversion."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from diffpilot.commands.data_robomimic import make_robomimic_demonstrations
from diffpilot.envs.robomimic import make_robomimic_env
from diffpilot.policies.datasets.loading import load_episodes
from diffpilot.rotations import (
    axis_angle_to_matrix,
    pose_action_from_6d,
    pose_action_to_6d,
    rotation_6d_to_matrix,
)

from .conftest import assert_robomimic_playback_is_exact


def test_rotation_6d_round_trips_and_stays_continuous_where_axis_angle_jumps():
    rng = np.random.default_rng(0)
    axis = rng.normal(size=(64, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    angles = rng.uniform(0, np.pi, size=(64, 1))
    actions = np.concatenate([rng.normal(size=(64, 3)), axis * angles, rng.choice([-1.0, 1.0], (64, 1))], axis=1)
    six = pose_action_to_6d(actions)
    assert six.shape == (64, 10)
    np.testing.assert_allclose(
        axis_angle_to_matrix(pose_action_from_6d(six)[:, 3:6]), axis_angle_to_matrix(actions[:, 3:6]), atol=1e-9
    )
    # a top-down gripper turning through π about x: the rotation vector flips sign, rotation_6d barely moves
    before, after = np.array([np.pi - 1e-3, 0, 0]), np.array([-(np.pi - 1e-3), 0, 0])
    step = np.array([0, 0, 0, *before, 0]), np.array([0, 0, 0, *after, 0])
    assert np.abs(step[1][3:6] - step[0][3:6]).max() > 6
    assert np.abs(pose_action_to_6d(step[1]) - pose_action_to_6d(step[0])).max() < 5e-3
    noisy = pose_action_to_6d(actions)[:, 3:9] + rng.normal(scale=0.1, size=(64, 6))  # any 6 numbers: a rotation
    m = rotation_6d_to_matrix(noisy)
    np.testing.assert_allclose(m @ np.swapaxes(m, 1, 2), np.broadcast_to(np.eye(3), m.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(m), 1.0)


@pytest.fixture(scope="module")
def absolute_lift(tmp_path_factory):
    path = tmp_path_factory.mktemp("absolute") / "lift_abs.hdf5"
    result = make_robomimic_demonstrations("lift", "state", 3, 0, path, workers=1, action_space="absolute")
    assert result["episodes"] == 3
    return path


def test_the_expert_solves_lift_with_absolute_actions_and_the_file_stores_robosuites_form(absolute_lift):
    with h5py.File(absolute_lift, "r") as f:
        env_kwargs = json.loads(f["data"].attrs["env_args"])["env_kwargs"]
        actions = f["data/demo_0/actions"][()]
        eef = f["data/demo_0/obs/robot0_eef_pos"][()]
    assert env_kwargs["controller_configs"]["control_delta"] is False  # robomimic rebuilds an absolute controller
    assert actions.shape[1] == 7
    assert np.abs(actions[:, :3] - eef).max() < 0.06  # goals one delta step (≤ 5 cm) from the end effector
    env = make_robomimic_env("lift", control="absolute")
    assert env.action_space.shape == (10,)
    with pytest.raises(ValueError, match="expected 10 finite numbers"):
        env.step(np.zeros(7))
    env.close()


def test_robomimics_playback_replays_the_absolute_file_state_for_state(absolute_lift):
    assert_robomimic_playback_is_exact(absolute_lift, 3)


def test_training_reads_absolute_actions_as_position_rotation_6d_gripper(absolute_lift):
    keys = ["robot0_eef_pos", "action"]
    raw, _ = load_episodes(absolute_lift, "robomimic_hdf5", keys)
    data, stats = load_episodes(absolute_lift, "robomimic_hdf5", keys, {"action": pose_action_to_6d})
    assert raw.arrays["action"].shape[1] == 7 and data.arrays["action"].shape[1] == 10
    assert stats["action"]["max"].shape == (10,) and data.arrays["action"].dtype == np.float32
    np.testing.assert_allclose(pose_action_from_6d(data.arrays["action"]), raw.arrays["action"], atol=1e-5)
