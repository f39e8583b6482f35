"""`diffpilot dataset info | viz | split | merge | convert`: parts and merges are valid LeRobot v3 datasets holding
exactly the episodes asked for; bad requests are named in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diffpilot.policies.datasets import edit
from diffpilot.policies.datasets.episodes import DatasetFormatError
from diffpilot.policies.datasets.lerobot_v3 import FeatureSpec, LeRobotV3Dataset, LeRobotV3Writer

from .conftest import diffpilot
from .test_dsrl import pusht_policy


@pytest.fixture(scope="module")
def video_dataset(tmp_path_factory):
    """Four short episodes with a camera, a state and an action, two tasks."""
    root = tmp_path_factory.mktemp("tools") / "cam"
    rng = np.random.default_rng(0)
    features = {
        "observation.image": FeatureSpec("video", (32, 32, 3), ["height", "width", "channels"]),
        "observation.state": FeatureSpec("float32", (2,), None),
        "action": FeatureSpec("float32", (2,), None),
    }
    writer = LeRobotV3Writer(root, fps=10, features=features, robot_type="test")
    for e in range(4):
        n = 8 + 2 * e
        base = np.linspace(0, 255, n)[:, None, None, None] * np.ones((1, 32, 32, 3))
        writer.add_episode(
            {
                "observation.image": base.astype(np.uint8),
                "observation.state": rng.normal(size=(n, 2)).astype(np.float32),
                "action": rng.normal(size=(n, 2)).astype(np.float32),
            },
            task=f"task {e % 2}",
        )
    writer.finalize()
    return root


def _episodes(root) -> list[tuple[str, np.ndarray, np.ndarray]]:
    ds = LeRobotV3Dataset(root)
    columns, tasks = ds.columns(["observation.state", "action"]), edit.episode_tasks(ds)
    return [(tasks[i], columns["observation.state"][lo:hi], columns["action"][lo:hi])
            for i, (lo, hi) in enumerate(ds.episode_ranges)]  # fmt: skip


def _same(a, b) -> bool:
    return a[0] == b[0] and np.array_equal(a[1], b[1]) and np.array_equal(a[2], b[2])


def test_split_then_merge_gives_back_every_episode(video_dataset, tmp_path):
    parts = edit.split_episodes(4, {"train": 0.75, "val": 0.25}, seed=0)
    assert sorted(parts["train"] + parts["val"]) == [0, 1, 2, 3] and len(parts["val"]) == 1
    written = edit.split_dataset(video_dataset, parts, tmp_path / "parts")
    original = _episodes(video_dataset)
    for name, episodes in parts.items():
        got = _episodes(written[name])
        assert len(got) == len(episodes) and all(_same(g, original[e]) for g, e in zip(got, episodes))
    merged = edit.merge_datasets([written["train"], written["val"]], tmp_path / "merged")
    order = parts["train"] + parts["val"]
    assert all(_same(g, original[e]) for g, e in zip(_episodes(merged), order))
    ds, source = LeRobotV3Dataset(merged), LeRobotV3Dataset(video_dataset)
    assert ds.num_frames == source.num_frames and sorted(ds.tasks) == ["task 0", "task 1"]
    frames, before = ds.decode_video("observation.image"), source.decode_video("observation.image")
    lo, hi = ds.episode_ranges[0]
    first = source.episode_ranges[order[0]]
    error = np.abs(frames[lo:hi].astype(float) - before[first[0] : first[1]].astype(float)).mean()
    assert error < 4.0  # re-encoded, the same pictures


def test_bad_splits_and_merges_are_named(video_dataset, lerobot_dataset):
    with pytest.raises(DatasetFormatError, match="splits: episode 1 is in both 'a' and 'b'"):
        edit.split_episodes(4, {"a": [0, 1], "b": [1]})
    with pytest.raises(DatasetFormatError, match=r"splits: fractions add up to 1\.5"):
        edit.split_episodes(4, {"a": 0.9, "b": 0.6})
    with pytest.raises(DatasetFormatError, match=r"splits.a: episode 7 is not in \[0, 4\)"):
        edit.split_episodes(4, {"a": [7]})
    missing = r"pusht_synthetic: feature 'observation.environment_state' is \('float32', \(16,\)\); .*/cam has no such"
    with pytest.raises(DatasetFormatError, match=missing):
        edit.merge_datasets([video_dataset, lerobot_dataset], video_dataset.parent / "never")


def test_the_dataset_command(video_dataset, tmp_path):
    proc = diffpilot("dataset", "info", f"root={video_dataset}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads(proc.stdout)
    assert info["episodes"] == 4 and info["episode_length"] == {"min": 8, "mean": 11.0, "max": 14}
    assert info["features"]["observation.image"] == {"dtype": "video", "shape": [32, 32, 3]}
    proc = diffpilot(
        "dataset", "split", f"root={video_dataset}", f"output={tmp_path / 'parts'}", "splits={a: 0.5, b: 0.5}"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {k: v["episodes"] for k, v in json.loads(proc.stdout).items()} == {"a": 2, "b": 2}
    proc = diffpilot("dataset", "viz", f"root={video_dataset}", "episodes=[1]", f"output={tmp_path / 'viz'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "viz" / "episode_000001_observation.image.mp4").stat().st_size > 500
    assert (tmp_path / "viz" / "episode_000001.png").stat().st_size > 5000
    for args, message in (
        (["fly"], "op='fly': expected one of ['info', 'viz', 'split', 'merge', 'convert']"),
        (["viz", "episodes=[9]"], "episodes=[9]: episode 9 is not in [0, 4)"),
        (["split"], "output=null: `dataset split` needs output=<path>"),
        (["merge", f"roots=[{video_dataset}]", f"output={tmp_path / 'm'}"], "roots=["),
    ):
        proc = diffpilot("dataset", *args, f"root={video_dataset}")
        assert proc.returncode == 2 and proc.stderr.startswith(f"diffpilot: {message}"), proc.stderr
        assert proc.stderr.strip().count("\n") == 0


def test_viz_draws_a_policys_predicted_chunks(lerobot_dataset, tmp_path):
    from diffpilot.commands.dataset import predicted_chunks

    policy = pusht_policy()
    ds = LeRobotV3Dataset(lerobot_dataset)
    lo, hi = ds.episode_ranges[0]
    episode = {k: v[lo:hi] for k, v in edit.all_frames(ds).items()}
    chunks = predicted_chunks(policy, episode)
    step = policy.config.n_action_steps
    assert [s for s, _ in chunks] == [t - policy.config.n_obs_steps + 1 for t in range(0, hi - lo, step)]
    assert all(c.shape == (policy.config.horizon, 2) and np.isfinite(c).all() for _, c in chunks)
    policy.save_pretrained(tmp_path / "policy")
    out = tmp_path / "viz"
    proc = diffpilot("dataset", "viz", f"root={lerobot_dataset}", f"policy_path={tmp_path / 'policy'}", f"output={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "episode_000000.png").stat().st_size > 5000


def test_convert_between_robomimic_and_lerobot(tmp_path):
    from diffpilot.commands.data_robomimic import env_args_for
    from diffpilot.policies.datasets.robomimic_hdf5 import RobomimicDemo, RobomimicHdf5, write_robomimic_hdf5

    rng = np.random.default_rng(0)

    def demo(n: int) -> RobomimicDemo:
        obs = {"object": rng.normal(size=(n, 3))}
        return RobomimicDemo(rng.normal(size=(n, 7)), np.zeros(n), np.zeros(n, dtype=np.int64), np.zeros((n, 4)), obs)

    source = write_robomimic_hdf5(tmp_path / "a.hdf5", [demo(5), demo(7)], env_args_for("lift", "state"))
    lerobot, back = tmp_path / "lerobot", tmp_path / "back.hdf5"
    proc = diffpilot("dataset", "convert", f"root={source}", "to=lerobot_v3", f"output={lerobot}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert LeRobotV3Dataset(lerobot).num_episodes == 2
    proc = diffpilot("dataset", "convert", f"root={lerobot}", "to=robomimic_hdf5", f"output={back}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    with RobomimicHdf5(source) as a, RobomimicHdf5(back) as b:
        for name in a.demos:
            assert np.allclose(a.read_demo(name).actions, b.read_demo(name).actions)
            assert np.allclose(a.read_demo(name).obs["object"], b.read_demo(name).obs["object"])
    proc = diffpilot("dataset", "convert", f"root={lerobot}", "to=zarr", f"output={tmp_path / 'x'}")
    assert proc.returncode == 2 and proc.stderr.strip() == "diffpilot: to='zarr': expected lerobot_v3 or robomimic_hdf5"


def _write_v21(root, fps: int = 10) -> list[dict[str, np.ndarray]]:
    """A LeRobot v2.1 dataset written by hand in its layout (one parquet and one mp4 per episode, JSON-lines meta);
    returns the episodes written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from diffpilot.envs.video import write_mp4

    rng = np.random.default_rng(1)
    features = {
        "observation.image": {"dtype": "video", "shape": [32, 32, 3], "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": [2], "names": None},
        "action": {"dtype": "float32", "shape": [2], "names": None},
        **{k: {"dtype": d, "shape": [1], "names": None} for k, d in (("timestamp", "float32"),
           ("frame_index", "int64"), ("episode_index", "int64"), ("index", "int64"), ("task_index", "int64"))},
    }  # fmt: skip
    info = {
        "codebase_version": "v2.1", "robot_type": "test", "total_episodes": 3, "total_frames": 0, "total_tasks": 2,
        "total_videos": 3, "total_chunks": 1, "chunks_size": 1000, "fps": fps, "splits": {"train": "0:3"},
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
        "features": features,
    }  # fmt: skip
    episodes, index, meta = [], 0, []
    for e in range(3):
        n = 6 + 3 * e
        frames = {
            "observation.image": (np.linspace(20, 230, n)[:, None, None, None] * np.ones((1, 32, 32, 3))).astype(
                np.uint8
            ),
            "observation.state": rng.normal(size=(n, 2)).astype(np.float32),
            "action": rng.normal(size=(n, 2)).astype(np.float32),
        }
        episodes.append(frames)
        table = pa.table({
            "observation.state": pa.array(list(frames["observation.state"]), pa.list_(pa.float32(), 2)),
            "action": pa.array(list(frames["action"]), pa.list_(pa.float32(), 2)),
            "timestamp": pa.array(np.arange(n, dtype=np.float32) / fps),
            "frame_index": pa.array(np.arange(n)), "episode_index": pa.array(np.full(n, e)),
            "index": pa.array(index + np.arange(n)), "task_index": pa.array(np.full(n, e % 2)),
        })  # fmt: skip
        path = root / f"data/chunk-000/episode_{e:06d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        write_mp4(
            root / f"videos/chunk-000/observation.image/episode_{e:06d}.mp4", list(frames["observation.image"]), fps
        )
        meta.append({"episode_index": e, "tasks": [f"task {e % 2}"], "length": n})
        index += n
    info["total_frames"] = index
    (root / "meta").mkdir(parents=True, exist_ok=True)
    (root / "meta/info.json").write_text(json.dumps(info))
    (root / "meta/episodes.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta))
    (root / "meta/tasks.jsonl").write_text(
        "".join(json.dumps({"task_index": i, "task": f"task {i}"}) + "\n" for i in (0, 1))
    )
    return episodes


def test_lerobot_v21_datasets_load_and_convert_to_v3(tmp_path):
    from diffpilot.policies.datasets.loading import load_episodes

    written = _write_v21(tmp_path / "v21")
    data, stats = load_episodes(tmp_path / "v21", "lerobot_v21", ["observation.image", "observation.state", "action"])
    assert data.num_episodes == 3 and data.tasks == ["task 0", "task 1"] and "action" in stats
    for (lo, hi), frames in zip(data.episode_ranges, written):
        assert np.array_equal(data.arrays["action"][lo:hi], frames["action"])
        error = np.abs(data.arrays["observation.image"][lo:hi].astype(float) - frames["observation.image"]).mean()
        assert error < 4.0
    proc = diffpilot("dataset", "convert", f"root={tmp_path / 'v21'}", "to=lerobot_v3", f"output={tmp_path / 'v3'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    v3 = LeRobotV3Dataset(tmp_path / "v3")
    assert v3.info["codebase_version"] == "v3.0" and v3.num_frames == data.num_frames
    assert edit.episode_tasks(v3) == ["task 0", "task 1", "task 0"]
    assert np.array_equal(v3.columns(["action"])["action"], data.arrays["action"])


def test_an_output_overlapping_an_input_is_refused(video_dataset, tmp_path):
    for args in (
        ["split", f"output={video_dataset}", "overwrite=true"],
        ["split", f"output={video_dataset.parent}", "overwrite=true"],
        ["merge", f"roots=[{video_dataset},{video_dataset}]", f"output={video_dataset / 'x'}", "overwrite=true"],
    ):
        proc = diffpilot("dataset", *args, f"root={video_dataset}")
        assert proc.returncode == 2 and "overlaps the input" in proc.stderr, proc.stderr
    assert LeRobotV3Dataset(video_dataset).num_episodes == 4  # untouched
    with pytest.raises(DatasetFormatError, match=r"splits.a='abc': expected a fraction or a list"):
        edit.split_episodes(4, {"a": "abc"})
