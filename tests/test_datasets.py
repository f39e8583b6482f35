"""Windowed sampling with padding, the zarr replay-buffer reader, and bad-data errors."""

from __future__ import annotations

import numpy as np
import pytest

from diffpilot.policies.datasets.episodes import DatasetFormatError, EpisodeData
from diffpilot.policies.datasets.windowed import WindowedDataset
from diffpilot.policies.datasets.zarr_replay import read_zarr_replay, write_zarr_replay

from .conftest import synthetic_episodes


def _two_episodes() -> EpisodeData:
    frames = np.arange(10, dtype=np.float32)[:, None]  # episode 0: frames 0-3, episode 1: frames 4-9
    return EpisodeData({"obs": frames, "action": frames * 10}, np.array([[0, 4], [4, 10]]), fps=10)


def test_windows_pad_with_edge_frames_and_never_cross_episodes():
    ds = WindowedDataset(_two_episodes(), ["obs"], "action", n_obs_steps=2, horizon=4, n_action_steps=3)
    idx = ds.frame_indices(np.arange(len(ds)))
    # episode 0 (length 4): starts −1 … 2; episode 1 (length 6): starts 3 … 8 (in global frames).
    assert len(ds) == 4 + 6
    assert idx[0].tolist() == [0, 0, 1, 2]  # padded before the start
    assert idx[3].tolist() == [2, 3, 3, 3]  # padded after the end
    assert idx[4].tolist() == [4, 4, 5, 6]
    for row, (lo, hi) in zip(idx, [(0, 3)] * 4 + [(4, 9)] * 6):
        assert row.min() >= lo and row.max() <= hi
    batch = ds.get_batch(np.array([0, 3]))
    assert batch["obs"].shape == (2, 2, 1) and batch["action"].shape == (2, 4, 1)
    assert batch["action"][1, :, 0].tolist() == [20, 30, 30, 30]


def test_zarr_replay_round_trip(tmp_path):
    data = synthetic_episodes(3)
    path = tmp_path / "replay.zarr"
    write_zarr_replay(path, data, {"observation.state": "state", "action": "action"})
    back = read_zarr_replay(path, {"observation.state": "data/state[:2]", "action": "data/action"})
    assert np.array_equal(back.episode_ranges, data.episode_ranges)
    assert np.allclose(back.arrays["action"], data.arrays["action"])
    with pytest.raises(DatasetFormatError, match="zarr array 'data/img' does not exist"):
        read_zarr_replay(path, {"observation.image": "data/img"})


def test_nan_in_actions_is_reported_with_the_frame():
    data = synthetic_episodes(2)
    data.arrays["action"][7, 1] = np.nan
    with pytest.raises(DatasetFormatError, match="'action' has a non-finite value at frame 7"):
        data.check_finite(["action"])


def test_inconsistent_lengths_are_rejected():
    with pytest.raises(DatasetFormatError, match="'action' has 3 frames; expected 4"):
        EpisodeData({"action": np.zeros((3, 2))}, np.array([[0, 4]]), fps=10, source="x")


def test_pooled_episode_stats_equal_whole_dataset_stats():
    from diffpilot.policies.datasets.stats import compute_stats

    data = synthetic_episodes(4)
    pooled = compute_stats(data.arrays, data.episode_ranges)["action"]
    whole = data.arrays["action"].astype(np.float64)
    assert np.allclose(pooled["mean"], whole.mean(0)) and np.allclose(pooled["std"], whole.std(0))
    assert np.array_equal(pooled["min"], whole.min(0)) and pooled["count"][0] == len(whole)
    images = np.random.default_rng(0).integers(0, 256, (12, 8, 8, 3), dtype=np.uint8)
    img = compute_stats({"observation.image": images}, np.array([[0, 5], [5, 12]]))["observation.image"]
    assert img["mean"].shape == (3, 1, 1)
    assert np.allclose(img["mean"].ravel(), images.reshape(-1, 3).mean(0) / 255.0)
