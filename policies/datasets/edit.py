"""Inspecting and editing LeRobot datasets (v3, or v2.1 read): a summary, a split into parts, a merge of several
datasets and a rewrite as v3. Every output is written anew by LeRobotV3Writer (videos decoded and re-encoded,
statistics and episode metadata recomputed), so it is a valid v3 dataset whichever files it came from."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .episodes import DatasetFormatError
from .lerobot_v3 import DEFAULT_FEATURE_DTYPES, FeatureSpec, LeRobotV3Dataset, LeRobotV3Writer
from .lerobot_v21 import LeRobotV21Dataset, open_lerobot_dataset

Dataset = LeRobotV3Dataset | LeRobotV21Dataset
Loaded = tuple[Dataset, dict[str, np.ndarray], list[str]]  # a source read once: dataset, all frames, episode tasks

EXTRA_META = ("meta/robomimic_env_args.json",)  # side files a dataset may carry (robomimic's env metadata)


def user_features(ds: Dataset) -> dict[str, FeatureSpec]:
    """The dataset's own features (LeRobot's five bookkeeping columns left out)."""
    return {k: s for k, s in ds.features.items() if k not in DEFAULT_FEATURE_DTYPES}


def episode_tasks(ds: Dataset) -> list[str]:
    """Each episode's task string (its first frame's task_index in the tasks table)."""
    index = ds.columns(["task_index"])["task_index"].reshape(-1)
    return [ds.tasks[int(index[lo])] for lo, _ in ds.episode_ranges]


def all_frames(ds: Dataset) -> dict[str, np.ndarray]:
    """Every user feature over all frames: numeric columns (N, …) and decoded videos (N, H, W, 3) uint8."""
    features = user_features(ds)
    numeric = [k for k in features if k not in ds.video_keys and features[k].dtype != "string"]
    return {**ds.columns(numeric), **{k: ds.decode_video(k) for k in ds.video_keys}}


def summary(root: str | Path) -> dict[str, Any]:
    """What `diffpilot dataset info` prints: layout, features, episode lengths, tasks."""
    ds = open_lerobot_dataset(root)
    lengths = ds.episode_ranges[:, 1] - ds.episode_ranges[:, 0]
    return {
        "root": str(root),
        "codebase_version": ds.info["codebase_version"],
        "robot_type": ds.info.get("robot_type"),
        "fps": ds.fps,
        "episodes": ds.num_episodes,
        "frames": ds.num_frames,
        "seconds": round(ds.num_frames / ds.fps, 1),
        "episode_length": {"min": int(lengths.min()), "mean": float(lengths.mean()), "max": int(lengths.max())},
        "features": {k: {"dtype": s.dtype, "shape": list(s.shape)} for k, s in user_features(ds).items()},
        "tasks": list(ds.tasks),
    }


def _loaded(ds: Dataset) -> Loaded:
    """A source read once for writing: the dataset, all its frames (videos decoded) and each episode's task."""
    return ds, all_frames(ds), episode_tasks(ds)


def _write(root: Path, template: Dataset, parts: Iterable[tuple[Loaded, Sequence[int]]]) -> Path:
    """A new dataset at `root` with the given episodes of each loaded source (same features as `template`); `parts`
    is consumed in order, so a generator holds one source's frames at a time."""
    tmp = root.with_name(f".{root.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    writer = LeRobotV3Writer(tmp, template.fps, user_features(template), template.info.get("robot_type"))
    for (ds, frames, tasks), episodes in parts:
        for e in episodes:
            lo, hi = ds.episode_ranges[e]
            writer.add_episode({k: v[lo:hi] for k, v in frames.items()}, task=tasks[e])
    writer.finalize()
    for name in EXTRA_META:
        if (template.root / name).is_file():
            shutil.copy(template.root / name, tmp / name)
    if root.exists():
        shutil.rmtree(root)
    tmp.rename(root)
    return root


def split_episodes(n_episodes: int, parts: Mapping[str, float | Sequence[int]], seed: int = 0) -> dict[str, list[int]]:
    """Episode indices per part: fractions of a seeded shuffle (the last fractional part takes the rest) or lists;
    the parts must not share an episode."""
    out: dict[str, list[int]] = {}
    order = np.random.default_rng(seed).permutation(n_episodes)
    for name, value in parts.items():
        if isinstance(value, str | bool) or not isinstance(value, int | float | Sequence):
            raise DatasetFormatError(f"splits.{name}={value!r}: expected a fraction or a list of episode indices")
    listed = {i for v in parts.values() if isinstance(v, Sequence) for i in v}
    free = [int(i) for i in order if int(i) not in listed]
    fractional = [k for k, v in parts.items() if not isinstance(v, Sequence)]
    total = sum(float(parts[k]) for k in fractional)
    if fractional and not 0 < total <= 1 + 1e-9:
        raise DatasetFormatError(f"splits: fractions add up to {total:g}; expected a total in (0, 1]")
    start = 0
    for name, value in parts.items():
        if isinstance(value, Sequence):
            bad = [i for i in value if not 0 <= int(i) < n_episodes]
            if bad:
                raise DatasetFormatError(f"splits.{name}: episode {bad[0]} is not in [0, {n_episodes})")
            out[name] = sorted(int(i) for i in value)
            continue
        last = name == fractional[-1] and abs(total - 1) < 1e-9
        count = len(free) - start if last else max(1, round(float(value) * n_episodes))
        out[name] = sorted(free[start : start + count])
        start += count
    seen: dict[int, str] = {}
    for name, episodes in out.items():
        if not episodes:
            raise DatasetFormatError(f"splits.{name}: no episode falls in this part of {n_episodes}")
        for e in episodes:
            if e in seen:
                raise DatasetFormatError(f"splits: episode {e} is in both {seen[e]!r} and {name!r}")
            seen[e] = name
    return out


def split_dataset(root: str | Path, parts: Mapping[str, Sequence[int]], output: str | Path) -> dict[str, Path]:
    """Write each part's episodes (indices of `root`) as the dataset `output/<part>`."""
    ds = open_lerobot_dataset(root)
    source = _loaded(ds)  # videos decoded once for every part
    return {name: _write(Path(output) / name, ds, [(source, episodes)]) for name, episodes in parts.items()}


def merge_datasets(roots: Sequence[str | Path], output: str | Path) -> Path:
    """One dataset of every episode of `roots`, in order; they must share fps and features (dtype and shape)."""
    if len(roots) < 2:
        raise DatasetFormatError(f"roots={list(map(str, roots))}: expected at least two datasets to merge")
    sources = [open_lerobot_dataset(r) for r in roots]
    first = sources[0]
    want = {k: (s.dtype, tuple(s.shape)) for k, s in user_features(first).items()}
    for ds in sources[1:]:
        if ds.fps != first.fps:
            raise DatasetFormatError(f"{ds.root}: fps={ds.fps}; {first.root} has {first.fps}, expected the same")
        have = {k: (s.dtype, tuple(s.shape)) for k, s in user_features(ds).items()}
        if have != want:
            key = sorted(set(have) ^ set(want) or {k for k in want if have[k] != want[k]})[0]
            found = f"is {have[key]}" if key in have else "is missing"
            expected = f"has {want[key]}" if key in want else "has no such feature"
            raise DatasetFormatError(f"{ds.root}: feature {key!r} {found}; {first.root} {expected}, expected the same")
    return _write(Path(output), first, ((_loaded(ds), range(ds.num_episodes)) for ds in sources))


def rewrite_as_v3(root: str | Path, output: str | Path) -> Path:
    """Every episode of the dataset at `root` (v2.1 or v3) written anew as a v3 dataset at `output`."""
    ds = open_lerobot_dataset(root)
    return _write(Path(output), ds, [(_loaded(ds), range(ds.num_episodes))])
