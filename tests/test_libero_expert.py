"""The scripted LIBERO-Object expert on the real env (the task's BDDL goal ends the episode) and its demonstrations
in robomimic's hdf5 layout, read back by the project's reader."""

from __future__ import annotations

import json
from types import SimpleNamespace

import h5py
import numpy as np
import pytest

from diffpilot.commands.data_libero import record_libero_demos, write_libero_demos
from diffpilot.envs.experts.libero import collision_extent, goal_object_and_container, libero_expert_for
from diffpilot.envs.libero import LiberoEnv
from diffpilot.errors import ConfigError
from diffpilot.policies.datasets.robomimic_hdf5 import read_robomimic_hdf5


def test_collision_extent_measures_the_cream_cheese_box():
    env = LiberoEnv("libero_object", 1)
    env.reset(seed=0)
    body = env.sim.obj_body_id["cream_cheese_1"]
    low, high = collision_extent(env.sim.sim, body, frame="body")
    np.testing.assert_allclose(high - low, [0.081, 0.043, 0.018], atol=0.003)  # long, short, flat
    world_low, _ = collision_extent(env.sim.sim, body)
    assert abs(world_low[2]) < 0.005  # resting on the floor
    env.close()


def test_expert_solves_a_task_and_its_demo_round_trips_through_robomimic_hdf5(tmp_path):
    demos, attempts, env_args = record_libero_demos("libero_object", 0, [7], progress=False)
    assert attempts == 1 and len(demos) == 1, "the expert failed on init state 7 of 'alphabet soup → basket'"
    demo = demos[0]
    assert demo.success and demo.dones[-1] == 1 and demo.dones[:-1].sum() == 0  # the BDDL goal ended it
    assert 60 < demo.length < 280 and demo.actions.shape == (demo.length, 7)
    assert env_args.env_name == "libero_floor_manipulation"  # LIBERO-Object's problem class
    path = write_libero_demos(tmp_path / "object0.hdf5", demos, env_args)
    keys = ["robot0_eef_pos", "robot0_joint_pos", "object", "task_index", "action"]
    data = read_robomimic_hdf5(path, keys)
    assert data.num_episodes == 1 and data.num_frames == demo.length
    np.testing.assert_allclose(data.arrays["action"], demo.actions.astype(np.float32))
    assert data.arrays["object"].shape == (demo.length, 98)
    with h5py.File(path, "r") as f:
        meta = json.loads(f["data"].attrs["env_args"])
        bddl = meta["env_kwargs"]["bddl_file_name"]
        assert bddl.endswith("libero_object/pick_up_the_alphabet_soup_and_place_it_in_the_basket.bddl")
        assert meta["env_kwargs"]["suite"] == "libero_object" and f["data/demo_0/states"].shape[0] == demo.length
    with pytest.raises(ConfigError, match=r"expected an \.hdf5 file path"):
        write_libero_demos(tmp_path / "object0.zarr", demos, env_args)


def test_expert_exists_only_for_libero_object_suites():
    assert libero_expert_for("libero_object_swap", 0) is not None
    with pytest.raises(ValueError, match="suite='libero_goal': no scripted expert"):
        libero_expert_for("libero_goal", 0)


def test_goal_parsing_follows_libero_pro_task_and_object_perturbations():
    from libero.libero.envs.bddl_utils import robosuite_parse_problem

    from diffpilot.envs.libero import get_task

    def goal(suite: str) -> tuple[str, str]:
        problem = robosuite_parse_problem(get_task(suite, 0).bddl_file)
        return goal_object_and_container(SimpleNamespace(parsed_problem=problem))

    assert goal("libero_object") == ("alphabet_soup_1", "basket_1")
    assert goal("libero_object_task") == ("cream_cheese_1", "basket_1")  # another object, same scene
    assert goal("libero_object_object") == ("bigger_alphabet_soup_1", "red_basket_1")  # objects replaced


def _diffpilot_data(*overrides: str):
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    cmd = [sys.executable, "-m", "diffpilot.cli", "data", *overrides]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=540, env=env)


def test_diffpilot_data_writes_one_hdf5_per_libero_task_and_a_multitask_policy_trains_on_them(tmp_path):
    """`diffpilot data task=libero_object` through the real CLI: one robomimic hdf5 per selected task, the expert's
    successes only; a second run refuses to overwrite, and a suite without an expert is a named error. Then
    `diffpilot train` with task conditioning reads the directory as one multi-task dataset (each file's frames
    carry its task index) and takes the suite's instructions."""
    import subprocess
    import sys

    from diffpilot.policies.datasets.loading import load_episodes
    from diffpilot.policies.registry import load_policy

    out = tmp_path / "libero"
    proc = _diffpilot_data("task=libero_object", "task.tasks=[0,2]", "n=1", "seed=7", f"output={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "libero_object task 0" in proc.stdout and "1/1 successful" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == ["libero_object_task0.hdf5", "libero_object_task2.hdf5"]
    with h5py.File(out / "libero_object_task0.hdf5", "r") as f:
        kwargs = json.loads(f["data"].attrs["env_args"])["env_kwargs"]
        first_state = f["data/demo_0/states"][0]
    assert kwargs["initial_states"] == "sampled" and kwargs["min_state_distance"] == 0.005
    env = LiberoEnv("libero_object", 0)
    assert env.official_distance(first_state) > 0.004  # not one of the evaluation states (settling moves < 1 mm)
    env.close()
    data = read_robomimic_hdf5(out / "libero_object_task0.hdf5", ["robot0_eef_pos", "object", "action"])
    assert data.num_episodes == 1 and data.arrays["object"].shape[1] == 98
    again = _diffpilot_data("task=libero_object", "task.tasks=[0]", "n=1", "seed=7", f"output={out}")
    assert again.returncode != 0 and "pass overwrite=true" in again.stderr

    both, _ = load_episodes(out, "robomimic_hdf5", ["object", "task_index", "action"])
    assert both.num_episodes == 2
    first = both.arrays["task_index"][both.episode_ranges[:, 0], 0].tolist()
    assert first == [0, 2] and both.tasks[2] == "pick up the salad dressing and place it in the basket"
    run = tmp_path / "run"
    train = [
        sys.executable, "-m", "diffpilot.cli", "train", "task=libero_object", f"dataset.root={out}",
        "dataset.format=robomimic_hdf5", "policy=mode_small", "policy.task_conditioning.mode=id+text",
        "policy.network.d_model=32", "policy.network.expert_hidden=32", "policy.network.n_layers=1",
        f"output_dir={run}", "train.steps=2", "train.batch_size=4", "train.warmup_steps=1",
    ]  # fmt: skip
    proc = subprocess.run(train, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    policy = load_policy(run / "checkpoints" / "last" / "pretrained_model")
    assert len(policy.config.task_conditioning.instructions) == 10  # the suite's, indexed by LIBERO's task_index
    assert policy.config.task_conditioning.instructions[2] == both.tasks[2]
    goal = _diffpilot_data("task=libero_goal", "n=1", f"output={tmp_path / 'goal'}")
    assert goal.returncode != 0 and "suite='libero_goal': no scripted expert" in goal.stderr
