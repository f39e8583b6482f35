"""Validation on held-out episodes: the split, a deterministic score that leaves training untouched, the best
checkpoint, and `diffpilot train validation.*` with its one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from diffpilot.commands.train import validation_split
from diffpilot.errors import ConfigError
from diffpilot.policies.datasets.robomimic_hdf5 import RobomimicDemo, filter_key_episodes, write_robomimic_hdf5
from diffpilot.policies.datasets.stats import compute_stats
from diffpilot.policies.datasets.windowed import WindowedDataset
from diffpilot.policies.diffusion_policy import DiffusionPolicy
from diffpilot.policies.registry import load_policy
from diffpilot.policies.train import BCTrainer, TrainConfig
from diffpilot.policies.validation import HeldOutScore, ValidationConfig, held_out_episodes

from .conftest import diffpilot, synthetic_episodes, tiny_config

KEYS = ["observation.state", "observation.environment_state"]


def _windows(data, episodes=None) -> WindowedDataset:
    return WindowedDataset(data, KEYS, "action", 2, 16, 8, episodes=episodes)


def _trainer(out, validation: ValidationConfig | None, **overrides) -> BCTrainer:
    torch.manual_seed(0)
    data = synthetic_episodes(6)
    policy = DiffusionPolicy(tiny_config())
    policy.load_stats(compute_stats(data.arrays))
    score = None if validation is None else HeldOutScore(_windows(data, [1, 4]), validation)
    cfg = TrainConfig(**{"steps": 12, "batch_size": 8, "lr": 1e-3, "warmup_steps": 2, "log_every": 4, "seed": 3,
                         **overrides})  # fmt: skip
    return BCTrainer(policy, _windows(data, [0, 2, 3, 5]), cfg, out, validation=score)


def test_held_out_episodes_by_fraction_count_and_list():
    assert len(held_out_episodes(20, 0.1)) == 2 and len(held_out_episodes(20, 3)) == 3
    assert np.array_equal(held_out_episodes(20, 0.25, seed=1), held_out_episodes(20, 5, seed=1))
    assert not np.array_equal(held_out_episodes(20, 5, seed=1), held_out_episodes(20, 5, seed=2))
    assert held_out_episodes(20, [7, 0, 7]).tolist() == [0, 7]
    assert len(held_out_episodes(3, 0.01)) == 1  # a fraction holds out at least one episode
    for bad, message in (
        (4, r"validation.episodes=4: holds out all 4 episodes"),
        ([0, 9], r"validation.episodes=\[0, 9\]: expected indices in \[0, 4\)"),
        (1.5, r"validation.episodes=1.5: expected a fraction in \(0, 1\), a count or a list"),
        (-2, r"validation.episodes=-2: expected"),
    ):
        with pytest.raises(ConfigError, match=message):
            held_out_episodes(4, bad)
    with pytest.raises(ConfigError, match=r"validation.keep_best='reward': expected one of"):
        ValidationConfig(episodes=0.1, keep_best="reward")
    with pytest.raises(ConfigError, match=r"validation.every=0: expected a positive integer"):
        ValidationConfig(episodes=0.1, every=0)


def test_a_split_keeps_only_its_episodes_windows():
    data = synthetic_episodes(4)
    train, held = _windows(data, [0, 2, 3]), _windows(data, [1])
    lo, hi = data.episode_ranges[1]
    frames = held.frame_indices(np.arange(len(held)))
    assert frames.min() == lo and frames.max() == hi - 1
    train_frames = train.frame_indices(np.arange(len(train)))
    assert not ((train_frames >= lo) & (train_frames < hi)).any()
    assert len(train) + len(held) == len(_windows(data))


def test_robomimic_filter_key_names_the_held_out_episodes(tmp_path):
    from diffpilot.commands.data_robomimic import env_args_for

    def demo(n: int) -> RobomimicDemo:
        obs = {"object": np.zeros((n, 3))}
        return RobomimicDemo(np.zeros((n, 7)), np.zeros(n), np.zeros(n, dtype=np.int64), np.zeros((n, 4)), obs, obs)

    path = write_robomimic_hdf5(tmp_path / "a.hdf5", [demo(5 + i) for i in range(10)], env_args_for("lift", "state"))
    import h5py

    with h5py.File(path) as f:
        valid = sorted(int(name.decode().split("_")[1]) for name in f["mask/valid"][()])
    assert len(valid) == 1 and filter_key_episodes(path, "valid").tolist() == valid
    assert filter_key_episodes([path, path], "valid").tolist() == [valid[0], valid[0] + 10]  # files in loading order
    data = synthetic_episodes(20)
    dataset = OmegaConf.create({"dataset": {"format": "robomimic_hdf5", "root": [str(path), str(path)]}})
    assert validation_split(ValidationConfig(filter_key="valid"), data, dataset).tolist() == [valid[0], valid[0] + 10]
    with pytest.raises(ConfigError, match=r"validation.filter_key='test': .*no filter key mask/test"):
        validation_split(ValidationConfig(filter_key="test"), data, dataset)
    lerobot = OmegaConf.create({"dataset": {"format": "lerobot_v3", "root": "x"}})
    with pytest.raises(ConfigError, match="filter keys are robomimic's"):
        validation_split(ValidationConfig(filter_key="valid"), data, lerobot)


def test_the_score_is_deterministic_leaves_the_rng_alone_and_falls_with_training(tmp_path):
    data = synthetic_episodes(6)
    score = HeldOutScore(_windows(data, [1, 4]), ValidationConfig(episodes=[1, 4], windows=40, batch_size=16))
    assert len(score.items) == 40
    trainer = _trainer(tmp_path / "a", None, steps=200, batch_size=16, lr=3e-3, use_ema=False)
    policy = trainer.inference_policy.eval()
    rng = torch.get_rng_state()
    before = score(policy)
    assert torch.equal(rng, torch.get_rng_state()) and score(policy) == before
    trainer.train()
    after = score(trainer.inference_policy.eval())
    assert after["action_mse"] < 0.6 * before["action_mse"] and after["loss"] < 0.5 * before["loss"]


def test_validation_does_not_change_training_and_keeps_the_best_policy(tmp_path):
    plain = _trainer(tmp_path / "plain", None).train()
    validated = _trainer(tmp_path / "val", ValidationConfig(episodes=[1, 4], every=4, windows=16))
    final = validated.train()
    a = load_file(plain / "training_state/modules.safetensors")
    b = load_file(final / "training_state/modules.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    best = json.loads((tmp_path / "val/checkpoints/best/best.json").read_text())
    assert best["metric"] == "action_mse" and best["step"] in (4, 8, 12)
    assert json.loads((final / "training_state/state.json").read_text())["counters"]["best"] == best
    assert len(list((tmp_path / "val/checkpoints").glob("best_*"))) == 1
    policy = load_policy(tmp_path / "val/checkpoints/best")  # the saved best, marked complete
    score = HeldOutScore(_windows(synthetic_episodes(6), [1, 4]), ValidationConfig(episodes=[1, 4], windows=16))
    assert score(policy)["action_mse"] == pytest.approx(best["value"], rel=1e-5)


def test_resume_restores_the_best_score(tmp_path):
    validation = ValidationConfig(episodes=[1, 4], every=4, windows=16)
    half = _trainer(tmp_path / "a", validation).train(stop_at=8)
    resumed = _trainer(tmp_path / "a", validation)
    resumed.resume(half)
    saved = json.loads((half / "training_state/state.json").read_text())["counters"]["best"]
    assert resumed.best == saved and saved["step"] <= 8


def test_train_with_validation_from_the_command_line(tmp_path, lerobot_dataset):
    run = tmp_path / "run"
    tiny = ["policy.network.down_dims=[16,32]", "policy.network.time_embed_dim=16", "policy.network.n_groups=4"]
    common = [f"dataset.root={lerobot_dataset}", "train.batch_size=4", "train.warmup_steps=1", *tiny]
    proc = diffpilot(
        "train", *common, f"output_dir={run}", "train.steps=4", "validation.episodes=1", "validation.every=2",
        "validation.windows=8",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "validation: 1 held-out episodes (8 windows scored every 2 steps)" in proc.stdout
    assert (run / "checkpoints/best/pretrained_model/model.safetensors").is_file()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("val/action_mse")] == [2, 4] and "val/loss" in events.Tags()["scalars"]
    for override, message in (
        ("validation.episodes=4", "validation.episodes=4: holds out all 4 episodes"),
        ("validation.episodes=abc", "validation.episodes='abc': expected a fraction in (0, 1), a count or a list"),
        ("validation.filter_key=valid", "validation.filter_key='valid' with dataset.format='lerobot_v3'"),
    ):
        proc = diffpilot("train", *common, f"output_dir={tmp_path / 'bad'}", override)
        assert proc.returncode == 2 and proc.stderr.startswith(f"diffpilot: {message}"), proc.stderr
        assert proc.stderr.strip().count("\n") == 0 and not (tmp_path / "bad").exists()


def test_resume_refuses_another_split_and_rollouts_alone_can_keep_the_best(tmp_path):
    from diffpilot.errors import CheckpointError

    validation = ValidationConfig(episodes=[1, 4], every=4, windows=16)
    half = _trainer(tmp_path / "a", validation).train(stop_at=4)
    other = ValidationConfig(episodes=[1, 5], every=4, windows=16)
    data = synthetic_episodes(6)
    moved = _trainer(tmp_path / "a", None)
    moved.validation = HeldOutScore(_windows(data, [1, 5]), other)
    with pytest.raises(CheckpointError, match="resuming with other training / held-out episodes"):
        moved.resume(half)
    rollouts = _trainer(tmp_path / "b", None, eval_every=4)
    rollouts.keep_best = "success_rate"
    rollouts.eval_fn = lambda policy, step: {"success_rate": {4: 0.2, 8: 0.6, 12: 0.4}[step]}
    rollouts.train()
    assert json.loads((tmp_path / "b/checkpoints/best/best.json").read_text())["step"] == 8
