"""Reading LeRobot v2.1 (and v2.0) datasets, the layout most datasets on the Hub still have: one parquet file and one
mp4 per camera for each episode (`data/chunk-XXX/episode_XXXXXX.parquet`, `videos/chunk-XXX/<key>/episode_XXXXXX.mp4`,
chunk = episode_index // chunks_size, as info.json's path templates say), tasks and episodes in JSON lines
(`meta/tasks.jsonl`, `meta/episodes.jsonl`). Read-only, with the reader interface of LeRobotV3Dataset;
`diffpilot dataset convert to=lerobot_v3` writes one anew in v3."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .episodes import DatasetFormatError
from .lerobot_v3 import (
    INFO_PATH,
    FeatureSpec,
    LeRobotV3Dataset,
    _column_to_numpy,
    _decode_into,
    _frame_hw,
    _read_parquet,
    check_numeric_feature,
)

LEGACY_VERSIONS = ("v2.0", "v2.1")
EPISODES_JSONL = "meta/episodes.jsonl"
TASKS_JSONL = "meta/tasks.jsonl"


def _json_lines(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DatasetFormatError(f"missing {path.name}: {path} does not exist (expected a LeRobot v2.1 dataset)")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DatasetFormatError(f"{path}:{n}: not valid JSON ({err})") from None
    return rows


class LeRobotV21Dataset:
    """Read-only view of a LeRobot v2.x dataset: info, fps, features, video_keys, tasks (by task_index),
    episode_ranges (E, 2) in episode order, num_episodes, num_frames, stats (empty: computed on loading),
    `columns(keys)` and `decode_video(key)`."""

    def __init__(self, root: str | Path, video_tolerance_s: float = 1e-4) -> None:
        self.root = Path(root)
        self.video_tolerance_s = video_tolerance_s
        path = self.root / INFO_PATH
        if not path.is_file():
            raise DatasetFormatError(f"missing {INFO_PATH}: {path} does not exist (expected a LeRobot dataset)")
        self.info = json.loads(path.read_text(encoding="utf-8"))
        if self.info.get("codebase_version") not in LEGACY_VERSIONS:
            raise DatasetFormatError(
                f"{path}: codebase_version is {self.info.get('codebase_version')!r}, expected one of {LEGACY_VERSIONS}"
            )
        self.fps = int(self.info["fps"])
        self.features = {k: FeatureSpec.from_info(v) for k, v in self.info["features"].items()}
        self.video_keys = [k for k, s in self.features.items() if s.dtype == "video"]
        tasks = {int(r["task_index"]): str(r["task"]) for r in _json_lines(self.root / TASKS_JSONL)}
        self.tasks = [tasks.get(i, "") for i in range(max(tasks, default=-1) + 1)]
        episodes = sorted(_json_lines(self.root / EPISODES_JSONL), key=lambda r: int(r["episode_index"]))
        self.episode_indices = [int(r["episode_index"]) for r in episodes]
        lengths = np.array([int(r["length"]) for r in episodes], dtype=np.int64)
        ends = np.cumsum(lengths)
        self.episode_ranges = np.stack([ends - lengths, ends], axis=1)
        self.num_episodes, self.num_frames = len(episodes), int(lengths.sum())
        self.stats: dict[str, dict[str, np.ndarray]] = {}
        self._chunks = int(self.info.get("chunks_size", 1000))

    def _path(self, template_key: str, episode: int, **extra: str) -> Path:
        template = self.info[template_key]
        return self.root / template.format(episode_chunk=episode // self._chunks, episode_index=episode, **extra)

    def columns(self, keys: list[str] | tuple[str, ...]) -> dict[str, np.ndarray]:
        """Whole numeric columns over all episodes, in episode order: (N,) or (N, D)."""
        for key in keys:
            check_numeric_feature(self.features, key)
        parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        for e, (lo, hi) in zip(self.episode_indices, self.episode_ranges):
            path = self._path("data_path", e)
            if not path.is_file():
                raise DatasetFormatError(f"missing data file of episode {e}: {path} does not exist")
            table = _read_parquet(path, list(keys))
            if table.num_rows != hi - lo:
                raise DatasetFormatError(f"{path}: {table.num_rows} rows; {EPISODES_JSONL} says {hi - lo}")
            for key in keys:
                parts[key].append(_column_to_numpy(table.column(key), self.features[key].shape, f"{path}: {key!r}"))
        return {k: np.concatenate(v, axis=0) for k, v in parts.items()}

    def decode_video(self, key: str) -> np.ndarray:
        """(N, H, W, 3) uint8: frame i of an episode is its own mp4's frame at timestamp[i]."""
        if key not in self.video_keys:
            raise KeyError(f"{key!r} is not a video feature; video features: {self.video_keys}")
        timestamps = self.columns(["timestamp"])["timestamp"].astype(np.float64)
        h, w = _frame_hw(self.features[key], self.info["features"][key])
        out = np.empty((self.num_frames, h, w, 3), dtype=np.uint8)
        for e, (lo, hi) in zip(self.episode_indices, self.episode_ranges):
            path = self._path("video_path", e, video_key=key)
            if not path.is_file():
                raise DatasetFormatError(f"missing video of episode {e} for {key!r}: {path} does not exist")
            _decode_into(path, np.arange(lo, hi), timestamps[lo:hi], out, self.video_tolerance_s)
        return out


def open_lerobot_dataset(root: str | Path) -> LeRobotV3Dataset | LeRobotV21Dataset:
    """A LeRobot dataset of either layout, by its info.json's codebase_version (v3.0, or v2.0 / v2.1)."""
    path = Path(root) / INFO_PATH
    version = None
    if path.is_file():
        try:
            version = json.loads(path.read_text(encoding="utf-8")).get("codebase_version")
        except json.JSONDecodeError:
            version = None
    return LeRobotV21Dataset(root) if version in LEGACY_VERSIONS else LeRobotV3Dataset(root)
