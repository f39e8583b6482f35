"""Read and write datasets in the LeRobot v3.0 on-disk layout.

Layout (paths relative to the dataset root)::

    meta/info.json                                  dataset-wide description
    meta/stats.json                                 per-feature normalisation stats
    meta/tasks.parquet                              index = task string, column task_index
    meta/episodes/chunk-XXX/file-XXX.parquet        one row per episode
    data/chunk-XXX/file-XXX.parquet                 one row per frame, many episodes per file
    videos/<key>/chunk-XXX/file-XXX.mp4             many episodes concatenated per file

See docs/lerobot_v3_format.md for the field-by-field description and the
differences from lerobot itself.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from diffpilot.atomic import atomic_path, atomic_write_json

# One error class for every on-disk format of the package (a ValueError subclass).
from .episodes import DatasetFormatError
from .stats import aggregate_stats, image_stats, vector_stats

__all__ = [
    "DatasetFormatError",
    "FeatureSpec",
    "LeRobotV3Dataset",
    "LeRobotV3Writer",
    "aggregate_stats",
    "pick_video_codec",
]

CODEBASE_VERSION = "v3.0"
DEFAULT_CHUNK_SIZE = 1000
DEFAULT_DATA_FILE_SIZE_IN_MB = 100
DEFAULT_VIDEO_FILE_SIZE_IN_MB = 200
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
DEFAULT_FEATURE_DTYPES = {
    "timestamp": "float32",
    "frame_index": "int64",
    "episode_index": "int64",
    "index": "int64",
    "task_index": "int64",
}
NUMERIC_DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")
VISUAL_DTYPES = ("video", "image")
# Video encoding settings, the same ones lerobot uses when it records.
VIDEO_PIX_FMT = "yuv420p"
VIDEO_GOP = 2
VIDEO_CRF = 30
SVTAV1_PRESET = 12


@dataclass(frozen=True)
class FeatureSpec:
    """One entry of info.json's ``features``.

    Attributes:
        dtype: numpy dtype name ("float32", "int64", ...) or "video"/"image".
        shape: per-frame shape; (D,) for vectors, (H, W, 3) for videos.
        names: axis names (list for vectors, e.g. joint names; dict or None allowed).
    """

    dtype: str
    shape: tuple[int, ...]
    names: list[str] | dict | None = None

    def to_info(self) -> dict[str, Any]:
        """Return the JSON form used in meta/info.json."""
        return {"dtype": self.dtype, "shape": list(self.shape), "names": self.names}

    @classmethod
    def from_info(cls, entry: dict[str, Any]) -> FeatureSpec:
        """Build from a meta/info.json feature entry (extra keys are ignored)."""
        return cls(str(entry["dtype"]), tuple(int(d) for d in entry["shape"]), entry.get("names"))


# ---------------------------------------------------------------------------
# small shared helpers
# ---------------------------------------------------------------------------


def _tmp_path(final: Path) -> Path:
    """Temporary sibling of ``final`` (same directory, so os.replace is atomic)."""
    return final.with_name(f".{final.name}.tmp-{os.getpid()}")


def _write_json_atomic(obj: Any, path: Path) -> None:
    """Write ``obj`` as indented JSON (lerobot's indent of 4) to ``path`` atomically."""
    atomic_write_json(path, obj, indent=4)


def _write_table_atomic(table: pa.Table, path: Path) -> None:
    """Write a pyarrow table to parquet at ``path`` atomically."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="snappy")


def _next_chunk_file(chunk: int, file: int, chunks_size: int) -> tuple[int, int]:
    """Advance (chunk_index, file_index): at most ``chunks_size`` files per chunk."""
    return (chunk + 1, 0) if file >= chunks_size - 1 else (chunk, file + 1)


def _to_jsonable(value: Any) -> Any:
    """np arrays / scalars -> nested python lists / numbers."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _to_jsonable(v) for k, v in value.items()}
    return value


def pick_video_codec() -> str:
    """Best encoder PyAV offers: libsvtav1 (lerobot's default), else libx264, else mpeg4."""
    import av

    for name in ("libsvtav1", "libx264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:
            continue
    raise RuntimeError("PyAV has none of the encoders libsvtav1, libx264, mpeg4")


def _codec_options(codec: str) -> dict[str, str]:
    """Encoder options matching lerobot's (g=2, crf=30, svt preset 12)."""
    if codec == "libsvtav1":
        return {"g": str(VIDEO_GOP), "crf": str(VIDEO_CRF), "preset": str(SVTAV1_PRESET)}
    if codec == "libx264":  # no B-frames: keeps dts monotonic when episodes are concatenated
        return {"g": str(VIDEO_GOP), "crf": str(VIDEO_CRF), "bf": "0"}
    return {"g": str(VIDEO_GOP), "qscale": "2"}


# ---------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# writer
# ---------------------------------------------------------------------------


def _arrow_type(spec: FeatureSpec) -> pa.DataType:
    """Parquet column type for a non-visual feature: scalar for shape (1,), fixed list for (D,)."""
    base = pa.from_numpy_dtype(np.dtype(spec.dtype))
    return base if tuple(spec.shape) == (1,) else pa.list_(base, spec.shape[0])


def _arrow_column(values: np.ndarray, spec: FeatureSpec) -> pa.Array:
    """(T,) or (T, D) numpy -> arrow column of ``_arrow_type(spec)``."""
    values = np.ascontiguousarray(values, dtype=np.dtype(spec.dtype))
    if tuple(spec.shape) == (1,):
        return pa.array(values.reshape(-1))
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), spec.shape[0])


def _hf_feature(spec: FeatureSpec) -> dict[str, Any]:
    """`datasets` (>= 4) feature description of a data column, as stored in parquet metadata."""
    value = {"dtype": spec.dtype, "_type": "Value"}
    return value if tuple(spec.shape) == (1,) else {"feature": value, "length": spec.shape[0], "_type": "List"}


class _RollingFile:
    """Bookkeeping for one growing output file series (chunk/file indices and size)."""

    def __init__(self, chunks_size: int, limit_mb: float) -> None:
        self.chunk, self.file = 0, 0
        self.bytes = 0
        self.units = 0  # frames (video) or rows (data) in the current file
        self.chunks_size = chunks_size
        self.limit = limit_mb * 1024**2
        self.open = False

    def needs_roll(self, new_units: int) -> bool:
        """True when adding ``new_units`` more would push a non-empty file over the limit."""
        if not self.open or self.units == 0:
            return False
        return self.bytes + self.bytes / self.units * new_units >= self.limit

    def advance(self) -> None:
        """Move to the next (chunk, file) slot and reset the counters."""
        self.chunk, self.file = _next_chunk_file(self.chunk, self.file, self.chunks_size)
        self.bytes, self.units, self.open = 0, 0, False


class _VideoStream:
    """Writes one video key as a series of mp4 files (temp paths until finalize).

    Like lerobot, each episode is encoded on its own (so it starts on a key frame)
    and then appended to the current file by stream copy, its timestamps shifted
    to follow the previous episodes; a file rolls over when it would exceed the
    size limit.
    """

    def __init__(self, root: Path, key: str, fps: int, codec: str, roll: _RollingFile) -> None:
        self.root, self.key, self.fps, self.codec, self.roll = root, key, fps, codec, roll
        self.container = None
        self.stream = None
        self.pending: list[tuple[Path, Path]] = []  # (tmp, final) pairs of files opened so far
        self.first_file: Path | None = None

    def _final_path(self) -> Path:
        rel = VIDEO_PATH.format(video_key=self.key, chunk_index=self.roll.chunk, file_index=self.roll.file)
        return self.root / rel

    def _encode_episode(self, frames: np.ndarray) -> Path:
        """Encode (T, H, W, 3) uint8 frames into a temporary mp4; return its path."""
        import av

        path = self.root / "videos" / self.key / f".episode.mp4.tmp-{os.getpid()}"
        path.parent.mkdir(parents=True, exist_ok=True)
        with av.open(str(path), "w", format="mp4") as container:
            stream = container.add_stream(self.codec, rate=self.fps, options=_codec_options(self.codec))
            stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], VIDEO_PIX_FMT
            for i, img in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
                frame.pts, frame.time_base = i, Fraction(1, self.fps)
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        return path

    def _open(self, template: Any) -> None:
        """Open the next output file with stream parameters copied from ``template``."""
        import av

        final = self._final_path()
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = _tmp_path(final)
        self.container = av.open(str(tmp), "w", format="mp4")
        self.stream = self.container.add_stream_from_template(template=template, opaque=True)
        self.stream.time_base = template.time_base
        self.pending.append((tmp, final))
        self.first_file = self.first_file or tmp
        self.roll.open = True

    def close(self) -> None:
        """Close the current output file."""
        if self.container is not None:
            self.container.close()
            self.container = self.stream = None

    def _append(self, episode_file: Path, start_frame: int) -> None:
        """Stream-copy an encoded episode into the open file, shifted to start at ``start_frame``."""
        import av

        with av.open(str(episode_file)) as src:
            in_stream = src.streams.video[0]
            if self.container is None:
                self._open(in_stream)
            for packet in src.demux(in_stream):
                if packet.dts is None:
                    continue
                shift = round(Fraction(start_frame, self.fps) / packet.time_base)
                packet.pts, packet.dts = packet.pts + shift, packet.dts + shift
                packet.stream = self.stream
                self.container.mux(packet)

    def add_episode(self, frames: np.ndarray) -> dict[str, Any]:
        """Append (T, H, W, 3) uint8 frames; return this episode's videos/<key>/... columns."""
        episode_file = self._encode_episode(frames)
        size = episode_file.stat().st_size
        if self.roll.open and self.roll.units and self.roll.bytes + size >= self.roll.limit:
            self.close()
            self.roll.advance()
        start = self.roll.units
        self._append(episode_file, start)
        episode_file.unlink()
        self.roll.bytes += size
        self.roll.units += len(frames)
        prefix = f"videos/{self.key}/"
        return {
            prefix + "chunk_index": self.roll.chunk,
            prefix + "file_index": self.roll.file,
            prefix + "from_timestamp": start / self.fps,
            prefix + "to_timestamp": (start + len(frames)) / self.fps,
        }


def _probe_video(path: Path) -> dict[str, Any]:
    """The ``info`` block lerobot stores for a video feature, read from an encoded file."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return {
            "video.height": stream.height,
            "video.width": stream.width,
            "video.codec": stream.codec_context.codec.canonical_name,
            "video.pix_fmt": stream.pix_fmt,
            "video.is_depth_map": False,
            "video.fps": int(stream.base_rate),
            "video.channels": 3,
            "has_audio": False,
        }


class LeRobotV3Writer:
    """Write episodes into a new LeRobot v3.0 dataset at ``root``.

    Data rows and video frames are streamed to temporary files as episodes are
    added; ``finalize()`` closes them, moves every file into place with
    ``os.replace`` and writes the meta files (meta/info.json last).

    Args:
        root: dataset directory (must not already hold meta/info.json).
        fps: frames per second of every episode.
        features: user features; numeric ones with shape (1,) or (D,), video ones
            with dtype "video" and shape (H, W, 3).
        robot_type: free-form robot name stored in info.json.
        chunks_size / data_files_size_in_mb / video_files_size_in_mb: file
            rollover settings, as in lerobot.
        vcodec: PyAV encoder name; default: libsvtav1 when available.
    """

    def __init__(
        self,
        root: str | Path,
        fps: int,
        features: dict[str, FeatureSpec],
        robot_type: str | None = None,
        *,
        chunks_size: int = DEFAULT_CHUNK_SIZE,
        data_files_size_in_mb: float = DEFAULT_DATA_FILE_SIZE_IN_MB,
        video_files_size_in_mb: float = DEFAULT_VIDEO_FILE_SIZE_IN_MB,
        vcodec: str | None = None,
    ) -> None:
        self.root = Path(root)
        if (self.root / INFO_PATH).exists():
            raise FileExistsError(f"{self.root / INFO_PATH} already exists; refusing to overwrite a dataset")
        _check_writer_features(features)
        self.fps = int(fps)
        self.features = dict(features)
        self.robot_type = robot_type
        self.settings = (int(chunks_size), data_files_size_in_mb, video_files_size_in_mb)
        self.video_keys = [k for k, s in features.items() if s.dtype == "video"]
        self.codec = (vcodec or pick_video_codec()) if self.video_keys else None
        if self.video_keys:
            os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 logs only errors
        self._schema = self._build_schema()
        self._data_roll = _RollingFile(int(chunks_size), data_files_size_in_mb)
        self._data_writer: pq.ParquetWriter | None = None
        self._data_pending: list[tuple[Path, Path]] = []
        self._videos = {
            k: _VideoStream(self.root, k, self.fps, self.codec, _RollingFile(int(chunks_size), video_files_size_in_mb))
            for k in self.video_keys
        }
        self._tasks: dict[str, int] = {}
        self._episodes: list[dict[str, Any]] = []
        self._ep_stats: list[dict[str, dict[str, np.ndarray]]] = []
        self._num_frames = 0
        self._finalized = False

    # -- schema / validation ------------------------------------------------

    def _data_specs(self) -> dict[str, FeatureSpec]:
        """Non-video user features followed by the five default columns (lerobot's order)."""
        specs = {k: s for k, s in self.features.items() if s.dtype not in VISUAL_DTYPES}
        specs.update({k: FeatureSpec(d, (1,), None) for k, d in DEFAULT_FEATURE_DTYPES.items()})
        return specs

    def _build_schema(self) -> pa.Schema:
        """Data parquet schema, with the Hugging Face `datasets` feature metadata lerobot also writes."""
        specs = self._data_specs()
        fields = [pa.field(k, _arrow_type(s)) for k, s in specs.items()]
        hf = {k: _hf_feature(s) for k, s in specs.items()}
        return pa.schema(fields, metadata={"huggingface": json.dumps({"info": {"features": hf}})})

    def _episode_length(self, frames: dict[str, np.ndarray]) -> int:
        """Check keys, shapes and dtypes of one episode; return its length T."""
        missing = sorted(set(self.features) - set(frames))
        extra = sorted(set(frames) - set(self.features))
        if missing or extra:
            raise ValueError(f"episode keys mismatch: missing {missing}, unexpected {extra}")
        lengths = {k: len(v) for k, v in frames.items()}
        if len(set(lengths.values())) != 1 or min(lengths.values()) < 1:
            raise ValueError(f"all features need the same length T >= 1, got {lengths}")
        for key, spec in self.features.items():
            arr = np.asarray(frames[key])
            want = tuple(spec.shape) if spec.dtype in VISUAL_DTYPES or spec.shape != (1,) else ()
            if arr.shape[1:] != want and not (spec.shape == (1,) and arr.shape[1:] == (1,)):
                raise ValueError(f"feature {key!r}: per-frame shape {arr.shape[1:]}, expected {tuple(spec.shape)}")
            if spec.dtype == "video" and arr.dtype != np.uint8:
                raise ValueError(f"video feature {key!r} must be uint8 (T,H,W,3), got {arr.dtype}")
        return next(iter(lengths.values()))

    # -- episodes -----------------------------------------------------------

    def add_episode(self, frames: dict[str, np.ndarray], task: str) -> int:
        """Append one episode.

        Args:
            frames: feature key -> array of length T; (T,) or (T, 1) for shape (1,),
                (T, D) for vectors, (T, H, W, 3) uint8 for videos.
            task: natural-language task of the episode.
        Returns:
            the new episode's index.
        """
        if self._finalized:
            raise RuntimeError("writer already finalized")
        length = self._episode_length(frames)
        ep_index = len(self._episodes)
        task_index = self._tasks.setdefault(task, len(self._tasks))
        columns = self._episode_columns(frames, length, ep_index, task_index)
        record: dict[str, Any] = {"episode_index": ep_index, "tasks": [task], "length": length}
        record.update(self._write_data(columns, length))
        for key, stream in self._videos.items():
            record.update(stream.add_episode(np.asarray(frames[key])))
        stats = {k: vector_stats(v) for k, v in columns.items()}
        stats.update({k: image_stats(np.asarray(frames[k])) for k in self.video_keys})
        self._episodes.append(record)
        self._ep_stats.append(stats)
        self._num_frames += length
        return ep_index

    def _episode_columns(self, frames: dict, length: int, ep_index: int, task_index: int) -> dict[str, np.ndarray]:
        """Numeric columns of one episode, default columns included; each (T,) or (T, D)."""
        specs = self._data_specs()
        cols = {k: np.asarray(frames[k], dtype=specs[k].dtype).reshape(length, -1) for k in frames if k in specs}
        cols = {k: (v[:, 0] if specs[k].shape == (1,) else v) for k, v in cols.items()}
        frame_index = np.arange(length, dtype=np.int64)
        cols["timestamp"] = (frame_index / self.fps).astype(np.float32)
        cols["frame_index"] = frame_index
        cols["episode_index"] = np.full(length, ep_index, dtype=np.int64)
        cols["index"] = np.arange(self._num_frames, self._num_frames + length, dtype=np.int64)
        cols["task_index"] = np.full(length, task_index, dtype=np.int64)
        return {k: cols[k] for k in specs}

    def _write_data(self, columns: dict[str, np.ndarray], length: int) -> dict[str, int]:
        """Append rows to the current data file (rolling over by size); return data/* columns."""
        specs = self._data_specs()
        table = pa.Table.from_arrays([_arrow_column(columns[k], specs[k]) for k in specs], schema=self._schema)
        roll = self._data_roll
        if roll.needs_roll(length):
            self._data_writer.close()
            self._data_writer = None
            roll.advance()
        if self._data_writer is None:
            final = self.root / DATA_PATH.format(chunk_index=roll.chunk, file_index=roll.file)
            final.parent.mkdir(parents=True, exist_ok=True)
            self._data_writer = pq.ParquetWriter(_tmp_path(final), self._schema, compression="snappy")
            self._data_pending.append((_tmp_path(final), final))
            roll.open = True
        self._data_writer.write_table(table)
        roll.bytes += table.nbytes
        roll.units += length
        return {
            "data/chunk_index": roll.chunk,
            "data/file_index": roll.file,
            "dataset_from_index": self._num_frames,
            "dataset_to_index": self._num_frames + length,
        }

    # -- finalize -----------------------------------------------------------

    def finalize(self) -> Path:
        """Close all files, move them into place and write the meta files. Returns root."""
        if self._finalized:
            return self.root
        if not self._episodes:
            raise ValueError("no episodes were added; nothing to finalize")
        self._data_writer.close()
        for stream in self._videos.values():
            stream.close()
        video_infos = {k: _probe_video(s.first_file) for k, s in self._videos.items()}
        pending = self._data_pending + [p for s in self._videos.values() for p in s.pending]
        for tmp, final in pending:
            os.replace(tmp, final)
        self._write_tasks()
        _write_table_atomic(self._episodes_table(), self.root / EPISODES_PATH.format(chunk_index=0, file_index=0))
        _write_json_atomic(_to_jsonable(self._dataset_stats()), self.root / STATS_PATH)
        _write_json_atomic(self._info(video_infos), self.root / INFO_PATH)
        self._finalized = True
        return self.root

    def _write_tasks(self) -> None:
        """meta/tasks.parquet: pandas frame indexed by task string with a task_index column."""
        tasks = sorted(self._tasks, key=self._tasks.get)
        frame = pd.DataFrame({"task_index": np.arange(len(tasks), dtype=np.int64)}, index=tasks)
        path = self.root / TASKS_PATH
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            frame.to_parquet(tmp)

    def _episodes_table(self) -> pa.Table:
        """One row per episode: bookkeeping columns, then stats/<feature>/<stat>, then meta/episodes/*."""
        rows = [dict(r) for r in self._episodes]
        for row, stats in zip(rows, self._ep_stats, strict=True):
            for feat, st in stats.items():
                row.update({f"stats/{feat}/{name}": val.tolist() for name, val in st.items()})
            row["meta/episodes/chunk_index"] = 0
            row["meta/episodes/file_index"] = 0
        return pa.Table.from_pylist(rows)

    def _dataset_stats(self) -> dict[str, dict[str, np.ndarray]]:
        keys = self._ep_stats[0].keys()
        return {k: aggregate_stats([s[k] for s in self._ep_stats]) for k in keys}

    def _info(self, video_infos: dict[str, dict]) -> dict[str, Any]:
        """The meta/info.json document."""
        features: dict[str, Any] = {}
        for key, spec in self.features.items():
            features[key] = spec.to_info()
            if key in video_infos:
                features[key]["info"] = video_infos[key]
        for key, dtype in DEFAULT_FEATURE_DTYPES.items():
            features[key] = {"dtype": dtype, "shape": [1], "names": None}
        chunks_size, data_mb, video_mb = self.settings
        return {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": self.robot_type,
            "total_episodes": len(self._episodes),
            "total_frames": self._num_frames,
            "total_tasks": len(self._tasks),
            "chunks_size": chunks_size,
            "data_files_size_in_mb": data_mb,
            "video_files_size_in_mb": video_mb,
            "fps": self.fps,
            "splits": {"train": f"0:{len(self._episodes)}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if self.video_keys else None,
            "features": features,
        }


def _check_writer_features(features: dict[str, FeatureSpec]) -> None:
    """Reject feature specs the writer cannot store faithfully."""
    for key, spec in features.items():
        if "/" in key:
            raise ValueError(f"feature name {key!r} must not contain '/'")
        if key in DEFAULT_FEATURE_DTYPES:
            raise ValueError(f"feature name {key!r} is reserved; the writer fills it in")
        if spec.dtype == "video":
            if len(spec.shape) != 3 or spec.shape[2] != 3:
                raise ValueError(f"video feature {key!r} needs shape (H, W, 3), got {spec.shape}")
        elif spec.dtype not in NUMERIC_DTYPES:
            raise ValueError(
                f"feature {key!r}: dtype {spec.dtype!r} unsupported; use one of {NUMERIC_DTYPES} or 'video'"
            )
        elif len(spec.shape) != 1:
            raise ValueError(f"feature {key!r}: numeric features need shape (1,) or (D,), got {spec.shape}")


# ---------------------------------------------------------------------------
# reader
# ---------------------------------------------------------------------------

INFO_REQUIRED_KEYS = ("codebase_version", "fps", "features", "data_path", "total_episodes", "total_frames")
EPISODE_REQUIRED_COLUMNS = (
    "episode_index",
    "length",
    "dataset_from_index",
    "dataset_to_index",
    "data/chunk_index",
    "data/file_index",
)
VIDEO_COLUMNS = ("chunk_index", "file_index", "from_timestamp", "to_timestamp")


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DatasetFormatError(f"missing {what}: {path} does not exist (expected a LeRobot v3.0 dataset)")
    return path


def _load_info(root: Path) -> dict[str, Any]:
    """Load and check meta/info.json."""
    path = _require_file(root / INFO_PATH, INFO_PATH)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DatasetFormatError(f"{path}: not valid JSON ({err})") from err
    missing = [k for k in INFO_REQUIRED_KEYS if k not in info]
    if missing:
        raise DatasetFormatError(f"{path}: missing key(s) {missing}; expected {list(INFO_REQUIRED_KEYS)}")
    if info["codebase_version"] != CODEBASE_VERSION:
        raise DatasetFormatError(
            f"{path}: codebase_version is {info['codebase_version']!r}, expected {CODEBASE_VERSION!r} "
            "(convert older datasets with lerobot's convert_dataset_v21_to_v30)"
        )
    for key, ft in info["features"].items():
        if not isinstance(ft, dict) or "dtype" not in ft or "shape" not in ft:
            raise DatasetFormatError(f"{path}: features[{key!r}] = {ft!r}, expected a dict with 'dtype' and 'shape'")
    return info


def _load_stats(root: Path) -> dict[str, dict[str, np.ndarray]]:
    """meta/stats.json as feature -> stat name -> np.ndarray."""
    raw = json.loads(_require_file(root / STATS_PATH, STATS_PATH).read_text(encoding="utf-8"))
    return {feat: {name: np.asarray(v) for name, v in st.items()} for feat, st in raw.items()}


def _read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    """A parquet file's table (or its `columns`); a damaged file is a DatasetFormatError naming it."""
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowInvalid, OSError) as err:
        raise DatasetFormatError(f"{path}: not a readable parquet file ({err})") from None


def _parquet_schema(path: Path) -> tuple[pa.Schema, int]:
    """A parquet file's schema and row count; a damaged file is a DatasetFormatError naming it."""
    try:
        meta = pq.read_metadata(path)
        return meta.schema.to_arrow_schema(), meta.num_rows
    except (pa.ArrowInvalid, OSError) as err:
        raise DatasetFormatError(f"{path}: not a readable parquet file ({err})") from None


def _load_tasks(root: Path) -> list[str]:
    """Task strings ordered by task_index."""
    path = _require_file(root / TASKS_PATH, TASKS_PATH)
    frame = _read_parquet(path).to_pandas()
    if "task_index" not in frame.columns:
        raise DatasetFormatError(f"{path}: columns {list(frame.columns)}, expected a 'task_index' column")
    names = frame["task"] if "task" in frame.columns else pd.Series(frame.index, index=frame.index)
    order = np.argsort(frame["task_index"].to_numpy(), kind="stable")
    return [str(t) for t in names.to_numpy()[order]]


def _load_episodes(root: Path, video_keys: list[str]) -> pd.DataFrame:
    """All meta/episodes/chunk-*/file-*.parquet rows (stats columns dropped), sorted by episode_index."""
    paths = sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    if not paths:
        raise DatasetFormatError(f"missing episode metadata: no {root / 'meta/episodes'}/chunk-*/file-*.parquet")
    frames = []
    for path in paths:
        names = _parquet_schema(path)[0].names
        needed = list(EPISODE_REQUIRED_COLUMNS) + [f"videos/{k}/{c}" for k in video_keys for c in VIDEO_COLUMNS]
        missing = [c for c in needed if c not in names]
        if missing:
            raise DatasetFormatError(f"{path}: missing column(s) {missing}")
        frames.append(_read_parquet(path, needed).to_pandas())
    episodes = pd.concat(frames, ignore_index=True).sort_values("episode_index", kind="stable")
    return episodes.reset_index(drop=True)


def _flatten_list_column(col: pa.ChunkedArray | pa.Array, shape: tuple[int, ...], where: str) -> np.ndarray:
    """Arrow (possibly nested) list column -> (N, *shape) numpy, checking every row has ``shape``."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    n = len(arr)
    if arr.null_count:
        raise DatasetFormatError(f"{where}: {arr.null_count} null row(s), expected none")
    while pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type) or pa.types.is_fixed_size_list(arr.type):
        arr = arr.flatten()
    values = arr.to_numpy(zero_copy_only=False)
    if values.size != n * math.prod(shape):
        per_row = values.size / max(n, 1)
        raise DatasetFormatError(
            f"{where}: {per_row:g} values per frame in the parquet data, expected shape {tuple(shape)} "
            f"({math.prod(shape)} values) as declared in meta/info.json"
        )
    return values.reshape((n, *shape))


def _column_to_numpy(col: pa.ChunkedArray, shape: tuple[int, ...], where: str) -> np.ndarray:
    """Arrow column -> (N,) for scalar columns, (N, *shape) for list columns."""
    t = col.type
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _flatten_list_column(col, shape, where)
    if tuple(shape) != (1,):
        raise DatasetFormatError(
            f"{where}: scalar column of type {t} in the parquet data, expected shape {tuple(shape)}"
        )
    if col.null_count:
        raise DatasetFormatError(f"{where}: {col.null_count} null row(s), expected none")
    return col.to_numpy()


class LeRobotV3Dataset:
    """Read-only view of a LeRobot v3.0 dataset, validated on open.

    Attributes:
        info: meta/info.json as a dict.
        stats: feature -> stat name -> np.ndarray (image stats have shape (3, 1, 1)).
        fps: frames per second.
        features: feature key -> FeatureSpec.
        num_episodes / num_frames: totals.
        episode_ranges: (E, 2) int64 [from, to) global frame indices, by episode_index.
        tasks: task strings ordered by task_index.
    """

    def __init__(self, root: str | Path, video_tolerance_s: float = 1e-4) -> None:
        self.root = Path(root)
        self.video_tolerance_s = video_tolerance_s
        self.info = _load_info(self.root)
        self.fps = int(self.info["fps"])
        self.features = {k: FeatureSpec.from_info(v) for k, v in self.info["features"].items()}
        self.video_keys = [k for k, s in self.features.items() if s.dtype == "video"]
        self.stats = _load_stats(self.root)
        self.tasks = _load_tasks(self.root)
        self._episodes = _load_episodes(self.root, self.video_keys)
        self.episode_ranges = self._episodes[["dataset_from_index", "dataset_to_index"]].to_numpy(np.int64)
        self.num_episodes = len(self._episodes)
        self.num_frames = int(self.info["total_frames"])
        self._data_files = self._find_data_files()
        self._check_episodes()
        self._check_data_schemas()
        self._order = self._frame_order()
        self._check_actions()

    # -- validation ---------------------------------------------------------

    def _find_data_files(self) -> list[Path]:
        """Data parquet files referenced by the episodes, in (chunk, file) order."""
        pairs = sorted(set(zip(self._episodes["data/chunk_index"], self._episodes["data/file_index"], strict=True)))
        paths = [self.root / self.info["data_path"].format(chunk_index=int(c), file_index=int(f)) for c, f in pairs]
        for path in paths:
            _require_file(path, "data file referenced by meta/episodes")
        return paths

    def _check_episodes(self) -> None:
        """Episode lengths, ranges and totals must agree with each other and info.json."""
        lengths = self._episodes["length"].to_numpy()
        spans = self.episode_ranges[:, 1] - self.episode_ranges[:, 0]
        bad = np.nonzero(spans != lengths)[0]
        if len(bad):
            i = int(bad[0])
            ep = int(self._episodes["episode_index"][i])
            raise DatasetFormatError(
                f"meta/episodes: episode {ep} has length {int(lengths[i])} "
                f"but dataset_to_index - dataset_from_index = {int(spans[i])}"
            )
        if int(self.info["total_episodes"]) != self.num_episodes:
            raise DatasetFormatError(
                f"{INFO_PATH}: total_episodes is {self.info['total_episodes']}, "
                f"but meta/episodes holds {self.num_episodes} episodes"
            )
        if int(lengths.sum()) != self.num_frames:
            raise DatasetFormatError(
                f"{INFO_PATH}: total_frames is {self.num_frames}, but episode lengths sum to {int(lengths.sum())}"
            )

    def _check_data_schemas(self) -> None:
        """Every data file has every non-visual feature column, with fixed list sizes matching info.json."""
        rows = 0
        for path in self._data_files:
            schema, num_rows = _parquet_schema(path)
            for key, spec in self.features.items():
                if spec.dtype == "video":
                    continue
                if key not in schema.names:
                    raise DatasetFormatError(f"{path}: missing column {key!r} declared in {INFO_PATH} features")
                t = schema.field(key).type
                if pa.types.is_fixed_size_list(t) and len(spec.shape) == 1 and t.list_size != spec.shape[0]:
                    raise DatasetFormatError(
                        f"{path}: column {key!r} holds {t.list_size} values per frame, "
                        f"expected shape {spec.shape} as declared in {INFO_PATH}"
                    )
            rows += num_rows
        if rows != self.num_frames:
            raise DatasetFormatError(
                f"data/: {rows} rows across {len(self._data_files)} file(s), expected {self.num_frames}"
            )

    def _frame_order(self) -> np.ndarray | None:
        """Permutation putting concatenated file rows in global ``index`` order (None if already ordered)."""
        index = self._read_column("index")
        if np.array_equal(index, np.arange(len(index))):
            return None
        if not np.array_equal(np.sort(index), np.arange(len(index))):
            raise DatasetFormatError(f"data/: column 'index' is not a permutation of 0..{len(index) - 1}")
        return np.argsort(index, kind="stable")

    def _check_actions(self) -> None:
        """Action features must be finite (no NaN/inf)."""
        for key in (k for k, s in self.features.items() if k.startswith("action") and s.dtype.startswith("float")):
            values = self._read_column(key)
            bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
            if bad.any():
                row = int(np.nonzero(bad)[0][0])
                raise DatasetFormatError(
                    f"data/: feature {key!r} has {int(bad.sum())} frame(s) with NaN/inf "
                    f"(first at row {row}: {values[row].tolist()}); expected finite values"
                )

    # -- numeric columns ----------------------------------------------------

    def _read_column(self, key: str) -> np.ndarray:
        """One column concatenated over all data files in file order."""
        shape = self.features[key].shape
        parts = []
        for path in self._data_files:
            table = _read_parquet(path, [key])
            parts.append(_column_to_numpy(table.column(key), shape, f"{path}: column {key!r}"))
        return np.concatenate(parts, axis=0)

    def columns(self, keys: list[str] | tuple[str, ...]) -> dict[str, np.ndarray]:
        """Load whole numeric columns in global frame order.

        Returns:
            key -> (N,) for scalar columns (shape (1,) stored as a plain value),
            (N, D) for vector features (N = num_frames).
        """
        out = {}
        for key in keys:
            check_numeric_feature(self.features, key)
            values = self._read_column(key)
            out[key] = values if self._order is None else values[self._order]
        return out

    # -- videos -------------------------------------------------------------

    def video_path(self, key: str, chunk_index: int, file_index: int) -> Path:
        """Absolute path of one video file."""
        return self.root / self.info["video_path"].format(video_key=key, chunk_index=chunk_index, file_index=file_index)

    def decode_video(self, key: str) -> np.ndarray:
        """Decode a video feature for every frame, in global frame order.

        Frame i of an episode is looked up at ``from_timestamp + timestamp[i]`` in its
        mp4 file (as lerobot does), i.e. frame ``round(t * fps)`` of the file.

        Returns:
            (N, H, W, 3) uint8.
        """
        if key not in self.video_keys:
            raise KeyError(f"{key!r} is not a video feature; video features: {self.video_keys}")
        timestamps = self.columns(["timestamp"])["timestamp"].astype(np.float64)
        h, w = _frame_hw(self.features[key], self.info["features"][key])
        out = np.empty((self.num_frames, h, w, 3), dtype=np.uint8)
        prefix = f"videos/{key}/"
        files: dict[tuple[int, int], list[tuple[np.ndarray, np.ndarray]]] = {}
        for (start, stop), (_, ep) in zip(self.episode_ranges, self._episodes.iterrows(), strict=True):
            rows = np.arange(start, stop)
            query = float(ep[prefix + "from_timestamp"]) + timestamps[start:stop]
            slot = (int(ep[prefix + "chunk_index"]), int(ep[prefix + "file_index"]))
            files.setdefault(slot, []).append((rows, query))
        for (chunk, file), items in sorted(files.items()):
            rows = np.concatenate([r for r, _ in items])
            query = np.concatenate([q for _, q in items])
            path = self.video_path(key, chunk, file)
            _decode_into(_require_file(path, f"video file for {key!r}"), rows, query, out, self.video_tolerance_s)
        return out


def check_numeric_feature(features: dict[str, FeatureSpec], key: str) -> None:
    """A KeyError for an unknown feature, a ValueError for a video, image or string one (not a numeric column)."""
    spec = features.get(key)
    if spec is None:
        raise KeyError(f"unknown feature {key!r}; known: {sorted(features)}")
    if spec.dtype in VISUAL_DTYPES or spec.dtype == "string":
        raise ValueError(f"feature {key!r} has dtype {spec.dtype!r}; use decode_video() for videos")


def _frame_hw(spec: FeatureSpec, raw: dict[str, Any]) -> tuple[int, int]:
    """(height, width) of a video feature, honouring names ordering (HWC or CHW)."""
    names = spec.names if isinstance(spec.names, list) else None
    if names and len(names) == 3 and names[0] in ("channel", "channels"):
        return spec.shape[1], spec.shape[2]
    return spec.shape[0], spec.shape[1]


def _decode_into(path: Path, rows: np.ndarray, query: np.ndarray, out: np.ndarray, tol: float) -> None:
    """Decode ``path`` once and write the frame nearest to each query time into ``out[rows]``.

    Args:
        rows: (M,) destination row indices; query: (M,) times in seconds within the file.
    """
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or stream.base_rate)
        targets = np.rint(query * rate).astype(np.int64)
        wanted: dict[int, list[int]] = {}
        for j, t in enumerate(targets):
            wanted.setdefault(int(t), []).append(j)
        last = int(targets.max())
        for frame in container.decode(stream):
            k = round(float(frame.time) * rate)
            if k > last:
                break
            if k not in wanted:
                continue
            image = frame.to_ndarray(format="rgb24")
            if image.shape != out.shape[1:]:
                raise DatasetFormatError(f"{path}: frames are {image.shape}, expected {out.shape[1:]} from {INFO_PATH}")
            for j in wanted.pop(k):
                if abs(float(frame.time) - query[j]) >= tol:
                    raise DatasetFormatError(
                        f"{path}: frame {k} is at {float(frame.time):.6f}s, query {query[j]:.6f}s "
                        f"(tolerance {tol}s) for global frame {int(rows[j])}"
                    )
                out[rows[j]] = image
    if wanted:
        first = min(wanted)
        raise DatasetFormatError(
            f"{path}: video has fewer frames than needed; frame {first} (t={first / rate:.4f}s) "
            f"is required by the episode timestamps in meta/episodes"
        )
