"""Open a dataset in any supported on-disk format as `EpisodeData` with its normalisation stats."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from .episodes import DatasetFormatError, EpisodeData
from .lerobot_v21 import open_lerobot_dataset
from .robomimic_hdf5 import read_robomimic_task_files
from .stats import compute_stats
from .zarr_replay import read_zarr_replay

FORMATS = ("lerobot_v3", "lerobot_v21", "zarr", "robomimic_hdf5")


def load_episodes(
    root: str | Path | list,
    fmt: str,
    keys: list[str],
    transforms: dict[str, Callable[[np.ndarray], np.ndarray]] | None = None,
) -> tuple[EpisodeData, dict[str, dict[str, np.ndarray]]]:
    """Load `keys` (videos decoded to (N, H, W, 3) uint8) and the stats for them; `transforms` maps a key to a
    function of its (N, …) array (e.g. absolute pose actions to their rotation_6d form), applied before the stats.
    robomimic_hdf5 also takes a list of files or a directory of them, one task per file (LIBERO's layout; see
    read_robomimic_task_files)."""
    if fmt in ("lerobot_v3", "lerobot_v21"):
        ds = open_lerobot_dataset(root)  # v3.0, or v2.0 / v2.1 by its info.json
        missing = [k for k in keys if k not in ds.features]
        if missing:
            raise DatasetFormatError(
                f"{Path(root) / 'meta/info.json'}: no feature(s) {missing}; the dataset has {sorted(ds.features)}"
            )
        video = [k for k in keys if k in ds.video_keys]
        arrays = ds.columns([k for k in keys if k not in video])
        arrays.update({k: ds.decode_video(k) for k in video})
        data = EpisodeData(arrays, ds.episode_ranges, ds.fps, source=str(root), tasks=list(ds.tasks))
        stats = {k: ds.stats[k] for k in keys if k in ds.stats}
        stats.update(compute_stats({k: arrays[k] for k in keys if k not in stats}, data.episode_ranges))
    elif fmt == "zarr":
        data = read_zarr_replay(root)
        missing = [k for k in keys if k not in data.arrays]
        if missing:
            raise DatasetFormatError(f"{root}: no feature(s) {missing}; the zarr map gives {sorted(data.arrays)}")
        data.arrays = {k: data.arrays[k] for k in keys}
        stats = compute_stats(data.arrays, data.episode_ranges)
    elif fmt == "robomimic_hdf5":
        data = read_robomimic_task_files(root, keys)  # a file, a list of files or a directory (LIBERO)
        stats = compute_stats(data.arrays, data.episode_ranges)
    else:
        raise ValueError(f"dataset.format={fmt!r}: expected one of {FORMATS}")
    for key, transform in (transforms or {}).items():
        data.arrays[key] = np.asarray(transform(data.arrays[key]), dtype=np.float32)
        stats.update(compute_stats({key: data.arrays[key]}, data.episode_ranges))
    data.check_finite(keys)
    return data, stats


def feature_shape(arr: np.ndarray) -> tuple[int, ...]:
    """Policy-side shape of a loaded feature: images (N, H, W, 3) → (3, H, W), vectors (N, D) → (D,)."""
    if arr.ndim == 4 and arr.shape[-1] == 3:
        return (3, arr.shape[1], arr.shape[2])
    return tuple(arr.shape[1:]) or (1,)
