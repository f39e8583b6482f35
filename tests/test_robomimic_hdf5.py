"""robomimic hdf5: our scripted-expert files in robomimic's exact layout, opened by robomimic itself
(SequenceDataset, EnvUtils), read into EpisodeData, converted to LeRobot v3 and back, trained on; bad files
fail with one clear error each."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from diffpilot.commands.data_robomimic import as_robomimic_demos, env_args_for
from diffpilot.envs.experts.robomimic_record import record_robomimic_demo
from diffpilot.envs.robomimic import enable_robomimic_env_utils
from diffpilot.policies.datasets.episodes import DatasetFormatError
from diffpilot.policies.datasets.loading import load_episodes
from diffpilot.policies.datasets.robomimic_hdf5 import (
    RobomimicDemo,
    RobomimicHdf5,
    demo_names,
    read_robomimic_hdf5,
    write_robomimic_hdf5,
)
from diffpilot.policies.datasets.robomimic_lerobot import lerobot_to_robomimic, robomimic_to_lerobot

from .conftest import assert_robomimic_playback_is_exact

KEYS = ["robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "object"]


@pytest.fixture(scope="module")
def lift_file(tmp_path_factory):
    """Three successful scripted Lift demonstrations (state mode) written in robomimic's layout."""
    recorded = [record_robomimic_demo("lift", "state", seed) for seed in range(3)]
    assert all(r.success for r in recorded)
    demos = as_robomimic_demos(recorded)
    path = tmp_path_factory.mktemp("robomimic") / "lift.hdf5"
    write_robomimic_hdf5(path, demos, env_args_for("lift", "state"), valid_fraction=0.34)
    return path


def test_file_has_robomimics_exact_layout(lift_file):
    with h5py.File(lift_file, "r") as f:
        data = f["data"]
        env_args = json.loads(data.attrs["env_args"])
        assert env_args["env_name"] == "Lift" and env_args["type"] == 1
        assert env_args["env_kwargs"]["controller_configs"]["type"] == "OSC_POSE"
        assert env_args["env_kwargs"]["control_freq"] == 20
        assert demo_names(data) == ["demo_0", "demo_1", "demo_2"]
        total = 0
        for name in ("demo_0", "demo_1", "demo_2"):
            demo = data[name]
            n = int(demo.attrs["num_samples"])
            total += n
            assert demo["actions"].shape == (n, 7) and demo["rewards"].shape == (n,) and demo["dones"].shape == (n,)
            assert demo["states"].shape[0] == n and demo["states"].dtype == np.float64
            assert sorted(demo["obs"]) == sorted(KEYS) and sorted(demo["next_obs"]) == sorted(KEYS)
            np.testing.assert_array_equal(demo["obs/object"][1:], demo["next_obs/object"][:-1])
            assert all(demo[f"{group}/{k}"].dtype == np.float64 for group in ("obs", "next_obs") for k in KEYS)
            assert demo.attrs["model_file"].startswith("<mujoco")  # what robomimic's playback reloads
            assert demo["rewards"][-1] == 1.0 and demo["dones"][-1] == 1
        assert int(data.attrs["total"]) == total
        train = [s.decode() for s in f["mask/train"][()]]
        valid = [s.decode() for s in f["mask/valid"][()]]
        assert len(valid) == 1 and sorted(train + valid) == ["demo_0", "demo_1", "demo_2"]


def test_robomimic_sequence_dataset_opens_our_file(lift_file):
    import robomimic.utils.obs_utils as ObsUtils
    from robomimic.utils.dataset import SequenceDataset

    ObsUtils.initialize_obs_utils_with_obs_specs({"obs": {"low_dim": KEYS, "rgb": []}})
    ds = SequenceDataset(
        hdf5_path=str(lift_file),
        obs_keys=KEYS,
        dataset_keys=("actions", "rewards", "dones"),
        load_next_obs=True,
        frame_stack=1,
        seq_length=10,
        pad_frame_stack=True,
        pad_seq_length=True,
        get_pad_mask=False,
        goal_mode=None,
        hdf5_cache_mode="low_dim",
        hdf5_use_swmr=True,
        hdf5_normalize_obs=False,
        filter_by_attribute="train",
    )
    with h5py.File(lift_file, "r") as f:
        train = [s.decode() for s in f["mask/train"][()]]
        expected = sum(int(f[f"data/{d}"].attrs["num_samples"]) for d in train)
        first = f[f"data/{train[0]}/actions"][:10]
    assert len(ds) == expected
    item = ds[0]
    assert item["actions"].shape == (10, 7) and item["obs"]["object"].shape == (10, 10)
    np.testing.assert_allclose(item["actions"], first)


def test_robomimic_env_utils_replays_every_demo_to_the_recorded_states(lift_file):
    """As robomimic's playback does it: rebuild the env from env_args, reload each demo's model_file and first
    state, play the actions open-loop; every state matches the recorded one and every demo ends solved."""
    import robomimic.utils.env_utils as EnvUtils

    enable_robomimic_env_utils()
    with h5py.File(lift_file, "r") as f:
        env_meta = json.loads(f["data"].attrs["env_args"])
        demos = {n: (f[f"data/{n}"].attrs["model_file"], f[f"data/{n}/states"][()], f[f"data/{n}/actions"][()])
                 for n in demo_names(f["data"])}  # fmt: skip
    env = EnvUtils.create_env_from_metadata(env_meta=env_meta, render=False, render_offscreen=False)
    cube_sizes = set()
    for model, states, actions in demos.values():
        env.reset()
        env.reset_to({"model": model, "states": states[0]})
        cube_sizes.add(tuple(env.env.cube.size))
        for t, action in enumerate(actions):
            env.step(action)
            if t + 1 < len(states):
                np.testing.assert_array_equal(env.get_state()["states"], states[t + 1])
        assert env.is_success()["task"]
    assert len(cube_sizes) == len(demos)  # the cube is redrawn per episode and each file keeps its own


def test_robomimics_playback_script_replays_the_file_without_divergence(lift_file):
    assert_robomimic_playback_is_exact(lift_file, 3)


def test_valid_mask_holds_a_demo_from_two_demos_on(tmp_path):
    from diffpilot.policies.datasets.robomimic_hdf5 import validation_count

    assert [validation_count(n, 0.1) for n in (1, 2, 5, 10, 25)] == [0, 1, 1, 1, 2]
    assert validation_count(4, 0.0) == 0 and validation_count(2, 0.9) == 1  # one demo always left to train on
    demo = RobomimicDemo(np.zeros((2, 7)), np.zeros(2), np.zeros(2), np.zeros((2, 3)), {"x": np.zeros((2, 1))})
    path = write_robomimic_hdf5(tmp_path / "two.hdf5", [demo, demo], env_args_for("lift", "state"))
    with h5py.File(path, "r") as f:
        assert len(f["mask/valid"]) == 1 and len(f["mask/train"]) == 1
    assert not list(tmp_path.glob(".*"))  # no temporary file left beside it


def test_reader_returns_episode_data_and_trainer_format(lift_file):
    data = read_robomimic_hdf5(lift_file, [*KEYS, "action", "next.reward"])
    with RobomimicHdf5(lift_file) as f:
        lengths = f.lengths
        assert f.env_args.env_name == "Lift" and f.obs_keys == sorted(KEYS)
        assert f.filter("valid") and set(f.filter("train")).isdisjoint(f.filter("valid"))
    assert data.num_episodes == 3 and data.num_frames == int(lengths.sum())
    assert data.arrays["action"].dtype == np.float32 and data.arrays["object"].shape == (data.num_frames, 10)
    assert data.arrays["next.reward"][data.episode_ranges[:, 1] - 1].tolist() == [1.0, 1.0, 1.0]
    loaded, stats = load_episodes(lift_file, "robomimic_hdf5", [*KEYS, "action"])
    assert stats["action"]["max"].shape == (7,) and loaded.fps == 20


def test_lerobot_v3_conversion_round_trips(lift_file, tmp_path):
    root = robomimic_to_lerobot(lift_file, tmp_path / "lerobot")
    info = json.loads((root / "meta/info.json").read_text())
    assert {"observation.object", "observation.robot0_eef_pos", "action", "sim_state"} <= set(info["features"])
    assert info["fps"] == 20 and info["total_episodes"] == 3
    back = lerobot_to_robomimic(root, tmp_path / "back.hdf5")
    with RobomimicHdf5(lift_file) as a, RobomimicHdf5(back) as b:
        assert a.demos == b.demos and a.env_args == b.env_args
        for name in a.demos:
            x, y = a.read_demo(name), b.read_demo(name)
            np.testing.assert_allclose(x.actions, y.actions, atol=1e-6)
            np.testing.assert_array_equal(x.states, y.states)
            np.testing.assert_array_equal(x.dones, y.dones)
            for key in KEYS:
                np.testing.assert_array_equal(x.obs[key], y.obs[key])


def _copy_with(src, dst, edit) -> None:
    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        for key in f:
            f.copy(key, g)
        for key, value in f["data"].attrs.items():
            g["data"].attrs[key] = value
        edit(g)


def test_missing_keys_fail_with_the_name_and_what_exists(lift_file, tmp_path):
    with pytest.raises(DatasetFormatError, match=r"no observation key\(s\) \['agentview_image'\]"):
        read_robomimic_hdf5(lift_file, ["agentview_image", "action"])
    bad = tmp_path / "no_actions.hdf5"
    _copy_with(lift_file, bad, lambda g: g.__delitem__("data/demo_1/actions"))
    with pytest.raises(DatasetFormatError, match="data/demo_1 has no 'actions'"):
        RobomimicHdf5(bad)
    no_args = tmp_path / "no_env_args.hdf5"
    _copy_with(lift_file, no_args, lambda g: g["data"].attrs.__delitem__("env_args"))
    with pytest.raises(DatasetFormatError, match="no 'env_args' attribute"):
        RobomimicHdf5(no_args)


def test_mismatched_lengths_fail_clearly(lift_file, tmp_path):
    def shorten(g):
        obs = g["data/demo_2/obs/object"][()]
        del g["data/demo_2/obs/object"]
        g["data/demo_2/obs"].create_dataset("object", data=obs[:-3])

    bad = tmp_path / "short.hdf5"
    _copy_with(lift_file, bad, shorten)
    with pytest.raises(DatasetFormatError, match=r"data/demo_2/obs/object has \d+ rows; expected \d+"):
        RobomimicHdf5(bad)
    with pytest.raises(DatasetFormatError, match="obs/object has 2 rows; expected 3"):
        demo = RobomimicDemo(np.zeros((3, 7)), np.zeros(3), np.zeros(3), np.zeros((3, 5)), {"object": np.zeros((2, 4))})
        write_robomimic_hdf5(tmp_path / "never.hdf5", [demo], env_args_for("lift", "state"))
    assert not (tmp_path / "never.hdf5").exists()


def test_unknown_env_name_fails_when_building_the_env(lift_file, tmp_path):
    from diffpilot.envs.robomimic import make_env_from_args

    def rename(g):
        args = json.loads(g["data"].attrs["env_args"])
        g["data"].attrs["env_args"] = json.dumps({**args, "env_name": "Stacking"})

    bad = tmp_path / "renamed.hdf5"
    _copy_with(lift_file, bad, rename)
    with RobomimicHdf5(bad) as f:
        args = json.loads(f.env_args.to_json())
    with pytest.raises(ValueError, match="env_name='Stacking': unknown robomimic task"):
        make_env_from_args(args)


def test_trainer_trains_on_the_file_and_the_policy_drives_the_env(lift_file, tmp_path):
    from hydra import compose, initialize_config_module

    from diffpilot.commands.evaluate import load_policy
    from diffpilot.commands.train import run_training
    from diffpilot.envs.evaluate import evaluate
    from diffpilot.envs.registry import env_factory

    tiny = [
        "policy.network.down_dims=[16,32]",
        "policy.network.time_embed_dim=16",
        "policy.network.n_groups=4",
        "policy.sampler.num_inference_steps=2",
    ]
    with initialize_config_module("diffpilot.configs", version_base="1.3"):
        cfg = compose(
            "train",
            [
                "task=lift", f"dataset.root={lift_file}", "dataset.format=robomimic_hdf5", f"output_dir={tmp_path}",
                "train.steps=2", "train.batch_size=4", "train.warmup_steps=1", *tiny,
            ],
        )  # fmt: skip
    result = run_training(cfg)
    assert result["train_steps"] == 2
    policy = load_policy(f"{result['checkpoint']}/pretrained_model")
    assert policy.config.action_dim == 7 and set(policy.config.input_features) == set(KEYS)
    outcome = evaluate(
        policy, env_factory({"env": "lift", "obs_mode": "state"}, 6), n_episodes=2, n_envs=2, progress=False
    )
    assert [e.steps for e in outcome.episodes] == [6, 6] and outcome.summary()["success_ci95"][1] > 0
    assert outcome.mean_max_coverage is None  # robomimic has success only, no PushT-style coverage


def test_data_command_rejects_bad_settings_by_name(lift_file, tmp_path):
    from diffpilot.commands.data_robomimic import make_robomimic_demonstrations
    from diffpilot.errors import ConfigError

    with pytest.raises(ConfigError, match="env='pusht': expected a robomimic task"):
        make_robomimic_demonstrations("pusht", "state", 1, 0, tmp_path / "a.hdf5")
    with pytest.raises(ConfigError, match="obs_mode='depth'"):
        make_robomimic_demonstrations("lift", "depth", 1, 0, tmp_path / "a.hdf5")
    with pytest.raises(ConfigError, match=r"expected an \.hdf5 file path"):
        make_robomimic_demonstrations("lift", "state", 1, 0, tmp_path / "demos")
    with pytest.raises(ConfigError, match="exists; pass overwrite=true"):
        make_robomimic_demonstrations("lift", "state", 1, 0, lift_file)


def test_robomimic_bench_gives_the_same_rows_with_worker_processes(lift_file, tmp_path):
    """bench/robomimic.py on a real (tiny) run: every (checkpoint, seed block) pair is evaluated, spread over 2
    processes or in one, and pooled into the same per-checkpoint rows."""
    import subprocess
    import sys
    from pathlib import Path

    run = tmp_path / "run"
    train = [
        sys.executable, "-m", "diffpilot.cli", "train", "task=lift", f"dataset.root={lift_file}",
        "dataset.format=robomimic_hdf5", f"output_dir={run}", "train.steps=2", "train.batch_size=4",
        "train.warmup_steps=1", "train.save_every=1", "task.max_episode_steps=5", "policy.network.down_dims=[16,32]",
        "policy.network.time_embed_dim=16", "policy.network.n_groups=4", "policy.sampler.num_inference_steps=2",
    ]  # fmt: skip
    subprocess.run(train, check=True, capture_output=True, timeout=300)
    bench = Path(__file__).resolve().parents[1] / "bench" / "robomimic.py"
    rows = []
    for workers in (1, 2):
        out = tmp_path / f"workers{workers}.json"
        cmd = [sys.executable, str(bench), "--task", "lift", "--run", str(run), "--episodes", "2", "--seeds", "2"]
        cmd += ["--n-envs", "2", "--workers", str(workers), "--out", str(out)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=300)
        rows.append(json.loads(out.read_text())["tasks"]["lift"])
    assert sorted(rows[0]["checkpoints"]) == ["step_0000001", "step_0000002"]
    assert rows[0]["checkpoints"] == rows[1]["checkpoints"]
    assert all(len(c["per_seed"]) == 2 and c["mean_steps"] <= 5 for c in rows[0]["checkpoints"].values())


def test_several_files_load_as_one_multitask_dataset(lift_file, tmp_path):
    """A list of files (or a directory of them: LIBERO ships one file per task) is one dataset whose frames carry
    their file's task index; two files that give one task index two instructions are a named error."""
    import shutil

    for name, kwargs in (("a.hdf5", {"task_index": 3, "language_instruction": "lift it"}), ("b.hdf5", {})):
        shutil.copy(lift_file, tmp_path / name)
        with h5py.File(tmp_path / name, "r+") as f:
            args = json.loads(f["data"].attrs["env_args"])
            args["env_kwargs"].update(kwargs)
            f["data"].attrs["env_args"] = json.dumps(args)
    single = read_robomimic_hdf5(lift_file, ["action"])
    data, _ = load_episodes(tmp_path, "robomimic_hdf5", ["object", "task_index", "action"])
    assert data.num_episodes == 2 * single.num_episodes and data.num_frames == 2 * single.num_frames
    per_episode = data.arrays["task_index"][data.episode_ranges[:, 0], 0].tolist()
    assert per_episode == [3] * single.num_episodes + [1] * single.num_episodes  # b.hdf5: its position
    assert data.tasks == ["", "Lift", "", "lift it"]
    listed, _ = load_episodes([str(tmp_path / "b.hdf5"), str(tmp_path / "a.hdf5")], "robomimic_hdf5", ["action"])
    assert listed.num_frames == data.num_frames
    with h5py.File(tmp_path / "b.hdf5", "r+") as f:
        args = json.loads(f["data"].attrs["env_args"])
        args["env_kwargs"].update(task_index=3, language_instruction="lift it twice")
        f["data"].attrs["env_args"] = json.dumps(args)
    with pytest.raises(DatasetFormatError, match="task_index=3 with instruction 'lift it twice'"):
        load_episodes(tmp_path, "robomimic_hdf5", ["action"])
    with pytest.raises(FileNotFoundError, match=r"a directory with no \.hdf5 files"):
        (tmp_path / "empty").mkdir()
        load_episodes(tmp_path / "empty", "robomimic_hdf5", ["action"])
