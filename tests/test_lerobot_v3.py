"""Tests for the LeRobot v3.0 dataset reader/writer (diffpilot.policies.datasets.lerobot_v3)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from diffpilot.policies.datasets.lerobot_v3 import (
    DatasetFormatError,
    FeatureSpec,
    LeRobotV3Dataset,
    LeRobotV3Writer,
)

FPS = 10
IMG = "observation.image"
LENGTHS = (12, 7, 20)
TASKS = ("push the T", "push the T again", "push the T")


def _features() -> dict[str, FeatureSpec]:
    return {
        "observation.state": FeatureSpec("float32", (2,), ["x", "y"]),
        "action": FeatureSpec("float32", (2,), ["x", "y"]),
        IMG: FeatureSpec("video", (96, 96, 3), ["height", "width", "channels"]),
    }


def _episode(rng: np.random.Generator, length: int) -> dict[str, np.ndarray]:
    """Smooth synthetic frames (video codecs handle smooth content well) + random vectors."""
    yy, xx = np.mgrid[0:96, 0:96]
    frames = np.empty((length, 96, 96, 3), dtype=np.uint8)
    for t in range(length):
        cx, cy = rng.uniform(20, 76, size=2)
        blob = 200 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 300.0)
        frames[t, ..., 0] = (30 + blob).astype(np.uint8)
        frames[t, ..., 1] = (80 + 0.5 * blob).astype(np.uint8)
        frames[t, ..., 2] = np.uint8(40 + 10 * (t % 5))
    return {
        "observation.state": rng.normal(size=(length, 2)).astype(np.float32),
        "action": rng.normal(size=(length, 2)).astype(np.float32),
        IMG: frames,
    }


def _write(root: Path, **kwargs) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    episodes = [_episode(rng, n) for n in LENGTHS]
    writer = LeRobotV3Writer(root, FPS, _features(), robot_type="pusht", **kwargs)
    for ep, task in zip(episodes, TASKS, strict=True):
        writer.add_episode(ep, task)
    writer.finalize()
    return episodes


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, list[dict[str, np.ndarray]]]:
    root = tmp_path_factory.mktemp("ds") / "pusht"
    return root, _write(root)


@pytest.fixture()
def copy_of(written, tmp_path) -> Path:
    """A private copy of the written dataset that a test may corrupt."""
    import shutil

    dst = tmp_path / "copy"
    shutil.copytree(written[0], dst)
    return dst


def test_round_trip(written):
    root, episodes = written
    ds = LeRobotV3Dataset(root)
    n = sum(LENGTHS)
    assert ds.fps == FPS and ds.num_episodes == 3 and ds.num_frames == n
    assert ds.tasks == ["push the T", "push the T again"]
    assert ds.features["action"] == FeatureSpec("float32", (2,), ["x", "y"])
    np.testing.assert_array_equal(ds.episode_ranges, [[0, 12], [12, 19], [19, 39]])
    cols = ds.columns(["observation.state", "action", "timestamp", "episode_index", "task_index", "index"])
    np.testing.assert_array_equal(cols["action"], np.concatenate([e["action"] for e in episodes]))
    np.testing.assert_array_equal(cols["observation.state"], np.concatenate([e["observation.state"] for e in episodes]))
    assert cols["action"].shape == (n, 2) and cols["timestamp"].shape == (n,)
    np.testing.assert_array_equal(cols["index"], np.arange(n))
    np.testing.assert_array_equal(cols["task_index"], np.repeat([0, 1, 0], LENGTHS))
    np.testing.assert_allclose(cols["timestamp"], np.concatenate([np.arange(k) / FPS for k in LENGTHS]), atol=1e-6)
    video = ds.decode_video(IMG)
    truth = np.concatenate([e[IMG] for e in episodes])
    assert video.shape == truth.shape and video.dtype == np.uint8
    assert np.abs(video.astype(float) - truth.astype(float)).mean() < 8
    # stats: vector (D,), images (3, 1, 1) in [0, 1], count = frames
    np.testing.assert_allclose(ds.stats["action"]["mean"], cols["action"].mean(0), atol=1e-5)
    np.testing.assert_allclose(ds.stats["action"]["std"], cols["action"].std(0), atol=1e-5)
    assert ds.stats["action"]["count"].tolist() == [n]
    assert ds.stats[IMG]["mean"].shape == (3, 1, 1)
    np.testing.assert_allclose(ds.stats[IMG]["mean"].ravel(), truth.reshape(-1, 3).mean(0) / 255, atol=1e-6)
    for q in ("q01", "q10", "q50", "q90", "q99"):
        assert ds.stats["action"][q].shape == (2,)


def test_layout_readable_without_project_code(written):
    """Check the on-disk layout with pyarrow/pandas/json only, against lerobot v3.0's conventions."""
    root, _ = written
    info = json.loads((root / "meta/info.json").read_text())
    for key in (
        "codebase_version",
        "robot_type",
        "total_episodes",
        "total_frames",
        "total_tasks",
        "chunks_size",
        "data_files_size_in_mb",
        "video_files_size_in_mb",
        "fps",
        "splits",
        "data_path",
        "video_path",
        "features",
    ):
        assert key in info, key
    assert info["codebase_version"] == "v3.0" and info["robot_type"] == "pusht"
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (3, 39, 2)
    assert (info["chunks_size"], info["data_files_size_in_mb"], info["video_files_size_in_mb"]) == (
        1000,
        100,
        200,
    )
    assert info["fps"] == FPS and info["splits"] == {"train": "0:3"}
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    feats = info["features"]
    assert feats["action"] == {"dtype": "float32", "shape": [2], "names": ["x", "y"]}
    assert feats["timestamp"] == {"dtype": "float32", "shape": [1], "names": None}
    for key in ("frame_index", "episode_index", "index", "task_index"):
        assert feats[key] == {"dtype": "int64", "shape": [1], "names": None}
    vinfo = feats[IMG]["info"]
    assert feats[IMG]["dtype"] == "video" and feats[IMG]["shape"] == [96, 96, 3]
    assert vinfo["video.height"] == 96 and vinfo["video.width"] == 96 and vinfo["video.fps"] == FPS
    assert vinfo["video.pix_fmt"] == "yuv420p" and vinfo["video.channels"] == 3 and vinfo["has_audio"] is False
    assert vinfo["video.codec"] in ("av1", "h264", "mpeg4")

    data = pq.read_table(root / "data/chunk-000/file-000.parquet")
    assert data.column_names == [
        "observation.state",
        "action",
        "timestamp",
        "frame_index",
        "episode_index",
        "index",
        "task_index",
    ]
    assert data.schema.field("action").type == pa.list_(pa.float32(), 2)
    assert data.schema.field("timestamp").type == pa.float32()
    assert data.schema.field("index").type == pa.int64()
    assert (root / f"videos/{IMG}/chunk-000/file-000.mp4").is_file()

    tasks = pd.read_parquet(root / "meta/tasks.parquet")
    assert list(tasks.columns) == ["task_index"]
    assert tasks.loc["push the T again", "task_index"] == 1 and tasks.iloc[0].name == "push the T"

    eps = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pandas()
    assert eps["episode_index"].tolist() == [0, 1, 2] and eps["length"].tolist() == list(LENGTHS)
    assert [list(t) for t in eps["tasks"]] == [[t] for t in TASKS]
    assert eps["dataset_from_index"].tolist() == [0, 12, 19] and eps["dataset_to_index"].tolist() == [
        12,
        19,
        39,
    ]
    assert eps["data/chunk_index"].tolist() == [0, 0, 0] and eps["data/file_index"].tolist() == [0, 0, 0]
    np.testing.assert_allclose(eps[f"videos/{IMG}/from_timestamp"], [0.0, 1.2, 1.9])
    np.testing.assert_allclose(eps[f"videos/{IMG}/to_timestamp"], [1.2, 1.9, 3.9])
    assert eps[f"videos/{IMG}/chunk_index"].tolist() == [0, 0, 0]
    assert eps["meta/episodes/chunk_index"].tolist() == [0, 0, 0]
    assert eps["meta/episodes/file_index"].tolist() == [0, 0, 0]
    for feat in ("action", "observation.state", IMG, "timestamp", "index"):
        for stat in ("min", "max", "mean", "std", "count", "q01", "q50", "q99"):
            assert f"stats/{feat}/{stat}" in eps.columns, (feat, stat)
    raw = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet")
    assert np.array(raw.column(f"stats/{IMG}/mean").to_pylist()[0]).shape == (3, 1, 1)

    stats = json.loads((root / "meta/stats.json").read_text())
    assert np.array(stats[IMG]["mean"]).shape == (3, 1, 1) and stats["action"]["count"] == [39]
    assert set(stats["action"]) == {"min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"}


def test_multi_file_multi_chunk(tmp_path):
    """Tiny size limits force one file per episode and two files per chunk, as large downloads have."""
    root = tmp_path / "multi"
    episodes = _write(root, chunks_size=2, data_files_size_in_mb=1e-6, video_files_size_in_mb=1e-6)
    assert (root / "data/chunk-001/file-000.parquet").is_file()
    assert (root / f"videos/{IMG}/chunk-001/file-000.mp4").is_file()
    ds = LeRobotV3Dataset(root)
    np.testing.assert_array_equal(ds.columns(["action"])["action"], np.concatenate([e["action"] for e in episodes]))
    video = ds.decode_video(IMG)
    truth = np.concatenate([e[IMG] for e in episodes])
    assert np.abs(video.astype(float) - truth.astype(float)).mean() < 8
    eps = pd.read_parquet(root / "meta/episodes/chunk-000/file-000.parquet")
    assert eps[f"videos/{IMG}/from_timestamp"].tolist() == [0.0, 0.0, 0.0]


def test_writer_rejects_bad_episode(tmp_path):
    writer = LeRobotV3Writer(tmp_path / "w", FPS, _features())
    ep = _episode(np.random.default_rng(1), 5)
    with pytest.raises(ValueError, match="shape"):
        writer.add_episode({**ep, "action": np.zeros((5, 3), np.float32)}, "t")
    with pytest.raises(ValueError, match="missing"):
        writer.add_episode({k: v for k, v in ep.items() if k != "action"}, "t")


def test_missing_info(copy_of):
    (copy_of / "meta/info.json").unlink()
    with pytest.raises(DatasetFormatError, match=r"meta/info\.json"):
        LeRobotV3Dataset(copy_of)


def test_wrong_codebase_version(copy_of):
    path = copy_of / "meta/info.json"
    info = json.loads(path.read_text())
    info["codebase_version"] = "v2.1"
    path.write_text(json.dumps(info))
    with pytest.raises(DatasetFormatError, match=r"codebase_version is 'v2.1', expected 'v3.0'"):
        LeRobotV3Dataset(copy_of)


def test_shape_mismatch(copy_of):
    path = copy_of / "meta/info.json"
    info = json.loads(path.read_text())
    info["features"]["action"]["shape"] = [3]
    path.write_text(json.dumps(info))
    with pytest.raises(DatasetFormatError, match=r"'action'.*2 values per frame.*expected shape \(3,\)"):
        LeRobotV3Dataset(copy_of)


def _rewrite_data(root: Path, edit) -> None:
    path = root / "data/chunk-000/file-000.parquet"
    pq.write_table(edit(pq.read_table(path)), path)


def test_nan_in_action(copy_of):
    def poison(table: pa.Table) -> pa.Table:
        values = table.column("action").combine_chunks().flatten().to_numpy().copy()
        values[5] = np.nan
        col = pa.FixedSizeListArray.from_arrays(pa.array(values), 2)
        return table.set_column(table.column_names.index("action"), "action", col)

    _rewrite_data(copy_of, poison)
    with pytest.raises(DatasetFormatError, match=r"'action'.*NaN"):
        LeRobotV3Dataset(copy_of)


def test_missing_column(copy_of):
    _rewrite_data(copy_of, lambda t: t.drop_columns(["observation.state"]))
    with pytest.raises(DatasetFormatError, match=r"missing column 'observation.state'"):
        LeRobotV3Dataset(copy_of)


@pytest.mark.parametrize("part", ["data", "meta/episodes", "meta/tasks.parquet"])
def test_a_truncated_parquet_file_is_named(copy_of, part):
    path = copy_of / part if part.endswith(".parquet") else sorted((copy_of / part).rglob("*.parquet"))[0]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DatasetFormatError, match=rf"{re.escape(str(path))}: not a readable parquet file"):
        LeRobotV3Dataset(copy_of)


def test_variable_length_list_columns_are_read(copy_of):
    """Datasets converted by lerobot store vectors as variable-size lists; they must load too."""

    def to_var_list(table: pa.Table) -> pa.Table:
        for key in ("action", "observation.state"):
            col = table.column(key).cast(pa.list_(pa.float32()))
            table = table.set_column(table.column_names.index(key), key, col)
        return table

    _rewrite_data(copy_of, to_var_list)
    ds = LeRobotV3Dataset(copy_of)
    assert ds.columns(["action"])["action"].shape == (sum(LENGTHS), 2)


@pytest.mark.parametrize("vcodec", ["libx264", "mpeg4"])
def test_fallback_codecs_round_trip(tmp_path, vcodec):
    """Where libsvtav1 is missing the writer falls back to these; info.json records the real codec."""
    root = tmp_path / vcodec
    episodes = _write(root, vcodec=vcodec)  # all episodes concatenated in one mp4
    ds = LeRobotV3Dataset(root)
    assert ds.info["features"][IMG]["info"]["video.codec"] == {"libx264": "h264", "mpeg4": "mpeg4"}[vcodec]
    video = ds.decode_video(IMG)
    truth = np.concatenate([e[IMG] for e in episodes])
    assert np.abs(video.astype(float) - truth.astype(float)).mean() < 8
