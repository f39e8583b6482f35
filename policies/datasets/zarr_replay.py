"""Diffusion Policy's zarr replay buffer (e.g. pusht_cchi_v7_replay.zarr): `data/<name>` arrays over all
frames and `meta/episode_ends` (E,) cumulative ends. Read into `EpisodeData` through a feature map."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .episodes import DatasetFormatError, EpisodeData

# Diffusion Policy's PushT replay buffer → LeRobot feature names.
PUSHT_ZARR_FEATURES: dict[str, str] = {
    "observation.image": "data/img",
    "observation.state": "data/state[:2]",
    "action": "data/action",
}


def _select(group, spec: str, path: Path) -> np.ndarray:
    """`data/state[:2]`-style spec → array; the optional slice applies to the last axis."""
    name, _, rest = spec.partition("[")
    try:
        arr = np.asarray(group[name])
    except KeyError as e:
        raise DatasetFormatError(f"{path}: zarr array {name!r} does not exist (feature spec {spec!r})") from e
    if rest:
        lo, _, hi = rest.rstrip("]").partition(":")
        arr = arr[..., slice(int(lo) if lo else None, int(hi) if hi else None)]
    return arr


def read_zarr_replay(path: str | Path, features: dict[str, str] | None = None, fps: float = 10.0) -> EpisodeData:
    import zarr

    path = Path(path)
    if not path.exists():
        raise DatasetFormatError(f"{path}: zarr replay buffer does not exist")
    root = zarr.open_group(str(path), mode="r")
    try:
        ends = np.asarray(root["meta/episode_ends"], dtype=np.int64)
    except KeyError as e:
        raise DatasetFormatError(f"{path}: missing meta/episode_ends; expected a Diffusion Policy replay buffer") from e
    arrays = {}
    for key, spec in (features or PUSHT_ZARR_FEATURES).items():
        arr = _select(root, spec, path)
        if arr.ndim == 3 and key.startswith("observation.environment_state"):
            arr = arr.reshape(len(arr), -1)
        arrays[key] = arr.astype(np.float32) if arr.dtype != np.uint8 else arr
    starts = np.concatenate([[0], ends[:-1]])
    return EpisodeData(arrays, np.stack([starts, ends], axis=1), fps, source=str(path))


def write_zarr_replay(path: str | Path, data: EpisodeData, names: dict[str, str]) -> None:
    """Write `data` as a replay buffer, feature `key` stored at `data/<names[key]>` (zarr format 2,
    as Diffusion Policy's files are)."""
    import zarr

    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    for key, name in names.items():
        root.create_array(f"data/{name}", data=np.ascontiguousarray(data.arrays[key]))
    root.create_array("meta/episode_ends", data=data.episode_ranges[:, 1].astype(np.int64))
