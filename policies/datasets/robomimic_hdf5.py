"""Read and write robomimic's hdf5 dataset layout (robomimic 0.3 / LIBERO files load with the same reader).

Layout::

    data                      attrs: total (frames over all demos), env_args (JSON: env_name, type, env_kwargs)
    data/demo_N               attrs: num_samples (T); model_file (MJCF, optional)
    data/demo_N/actions       (T, A) float64
    data/demo_N/rewards       (T,)   float64
    data/demo_N/dones         (T,)   int64
    data/demo_N/states        (T, S) float64 flattened MuJoCo state (time, qpos, qvel)
    data/demo_N/obs/<key>     (T, …) e.g. robot0_eef_pos (T, 3) float64, agentview_image (T, 84, 84, 3) uint8
    data/demo_N/next_obs/<key> (T, …) the observation after each action (optional: LIBERO omits it)
    mask/train, mask/valid    byte strings of demo names (filter keys; optional)

In `EpisodeData` the per-step arrays get the names the rest of the package uses: `actions` → `action`,
`rewards` → `next.reward`, `dones` → `next.done`, `states` → `states`; observation keys keep robomimic's
names. Files are written atomically (a temporary file, fsynced, renamed into place).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from diffpilot.atomic import atomic_path

from .episodes import DatasetFormatError, EpisodeData

DEMO_RE = re.compile(r"^demo_(\d+)$")
# EpisodeData name ← robomimic per-step dataset name.
STEP_KEYS = {"action": "actions", "next.reward": "rewards", "next.done": "dones", "states": "states"}
ROBOSUITE_TYPE = 1  # robomimic.envs.env_base.EnvType.ROBOSUITE_TYPE
FPS = 20  # robosuite's control frequency in every robomimic dataset


@dataclass
class EnvArgs:
    """`data.attrs["env_args"]`: what robomimic's EnvUtils needs to rebuild the env."""

    env_name: str
    type: int = ROBOSUITE_TYPE
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    env_version: str | None = None  # the simulator's version (robosuite.__version__), checked by robomimic

    def to_json(self) -> str:
        raw = {"env_name": self.env_name, "type": self.type, "env_kwargs": self.env_kwargs}
        if self.env_version is not None:
            raw["env_version"] = self.env_version
        return json.dumps(raw)

    @classmethod
    def from_json(cls, text: str | bytes, where: str) -> EnvArgs:
        try:
            raw = json.loads(text)
        except (TypeError, json.JSONDecodeError) as err:
            raise DatasetFormatError(f"{where}: env_args is not JSON ({err}); expected an object") from err
        if not isinstance(raw, dict):
            raise DatasetFormatError(f"{where}: env_args={raw!r}; expected a JSON object")
        missing = [k for k in ("env_name", "type", "env_kwargs") if k not in raw]
        if missing:
            raise DatasetFormatError(f"{where}: env_args lacks {missing}; expected env_name, type and env_kwargs")
        if not isinstance(raw["env_name"], str) or not isinstance(raw["env_kwargs"], dict):
            raise DatasetFormatError(
                f"{where}: env_args env_name={raw['env_name']!r}, env_kwargs of type "
                f"{type(raw['env_kwargs']).__name__}; expected a string and an object"
            )
        return cls(raw["env_name"], int(raw["type"]), raw["env_kwargs"], raw.get("env_version"))


@dataclass
class RobomimicDemo:
    """One demonstration: arrays of length T (see the module docstring for shapes)."""

    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    states: np.ndarray
    obs: dict[str, np.ndarray]
    next_obs: dict[str, np.ndarray] = field(default_factory=dict)
    model_file: str | None = None

    @property
    def num_samples(self) -> int:
        return len(self.actions)

    def check(self, where: str) -> None:
        """Every per-step array has T rows (T = len(actions) ≥ 1)."""
        n = self.num_samples
        if n < 1:
            raise DatasetFormatError(f"{where}: actions has 0 rows; expected a demo of at least one step")
        arrays = {"rewards": self.rewards, "dones": self.dones, "states": self.states}
        arrays.update({f"obs/{k}": v for k, v in self.obs.items()})
        arrays.update({f"next_obs/{k}": v for k, v in self.next_obs.items()})
        for name, arr in arrays.items():
            if len(arr) != n:
                raise DatasetFormatError(f"{where}: {name} has {len(arr)} rows; expected {n} (the length of actions)")


def demo_names(group) -> list[str]:
    """`demo_N` names of an hdf5 group sorted by N (robomimic's order: demo_2 before demo_10)."""
    names = [k for k in group if DEMO_RE.match(k)]
    return sorted(names, key=lambda k: int(DEMO_RE.match(k).group(1)))


def write_robomimic_hdf5(
    path: str | Path,
    demos: Sequence[RobomimicDemo],
    env_args: EnvArgs,
    valid_fraction: float = 0.1,
    seed: int = 0,
    compression: str | None = "gzip",
) -> Path:
    """Write `demos` as data/demo_0 … in robomimic's layout, with mask/train and mask/valid filter keys."""
    import h5py

    path = Path(path)
    if not demos:
        raise ValueError("demos=[]: expected at least one demonstration to write")
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"valid_fraction={valid_fraction}: expected a number in [0, 1)")
    for i, demo in enumerate(demos):
        demo.check(f"demo_{i}")
    names = [f"demo_{i}" for i in range(len(demos))]
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        data = f.create_group("data")
        for name, demo in zip(names, demos):
            _write_demo(data.create_group(name), demo, compression)
        data.attrs["total"] = int(sum(d.num_samples for d in demos))
        data.attrs["env_args"] = env_args.to_json()
        order = np.random.default_rng(seed).permutation(len(names))
        n_valid = validation_count(len(names), valid_fraction)
        valid = sorted((names[i] for i in order[:n_valid]), key=names.index)
        train = [n for n in names if n not in set(valid)]
        mask = f.create_group("mask")
        mask.create_dataset("train", data=np.array(train, dtype="S"))
        mask.create_dataset("valid", data=np.array(valid, dtype="S"))
    return path


def validation_count(n: int, valid_fraction: float) -> int:
    """Demos in mask/valid: round(fraction · n), at least one when there are two demos or more and the fraction
    is positive, and always leaving one for training."""
    if n < 2 or valid_fraction <= 0:
        return 0
    return min(max(1, round(valid_fraction * n)), n - 1)


def _write_demo(group, demo: RobomimicDemo, compression: str | None) -> None:
    group.attrs["num_samples"] = demo.num_samples
    if demo.model_file is not None:
        group.attrs["model_file"] = demo.model_file
    group.create_dataset("actions", data=np.asarray(demo.actions, dtype=np.float64))
    group.create_dataset("rewards", data=np.asarray(demo.rewards, dtype=np.float64))
    group.create_dataset("dones", data=np.asarray(demo.dones, dtype=np.int64))
    group.create_dataset("states", data=np.asarray(demo.states, dtype=np.float64))
    for sub, arrays in (("obs", demo.obs), ("next_obs", demo.next_obs)):
        if not arrays:
            continue
        g = group.create_group(sub)
        for key, arr in arrays.items():
            arr = np.asarray(arr)
            image = arr.ndim == 4 and arr.dtype == np.uint8
            if np.issubdtype(arr.dtype, np.floating):
                arr = arr.astype(np.float64)  # robomimic's low-dimensional observations are float64
            g.create_dataset(key, data=arr, compression=compression if image else None)


class RobomimicHdf5:
    """A robomimic hdf5 file opened and checked: env_args, demo names, observation keys, lengths.

    Use as a context manager or call `close()`.
    """

    def __init__(self, path: str | Path):
        import h5py

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such robomimic hdf5 file")
        self._file = h5py.File(self.path, "r")
        try:
            self._validate()
        except Exception:
            self._file.close()
            raise

    def _validate(self) -> None:
        where = str(self.path)
        if "data" not in self._file:
            raise DatasetFormatError(f"{where}: no 'data' group; expected robomimic's data/demo_N layout")
        data = self._file["data"]
        if "env_args" not in data.attrs:
            raise DatasetFormatError(f"{where}: data has no 'env_args' attribute; expected robomimic's env metadata")
        self.env_args = EnvArgs.from_json(data.attrs["env_args"], where)
        self.demos = demo_names(data)
        if not self.demos:
            raise DatasetFormatError(f"{where}: data holds no demo_N groups; found {sorted(data)}")
        first = data[self.demos[0]]
        if "obs" not in first:
            raise DatasetFormatError(f"{where}: data/{self.demos[0]} has no 'obs' group")
        self.obs_keys = sorted(first["obs"])
        lengths = []
        for name in self.demos:
            demo = data[name]
            for key in ("actions", "obs"):
                if key not in demo:
                    raise DatasetFormatError(f"{where}: data/{name} has no {key!r}; it has {sorted(demo)}")
            n = len(demo["actions"])
            if "num_samples" in demo.attrs and int(demo.attrs["num_samples"]) != n:
                raise DatasetFormatError(
                    f"{where}: data/{name} num_samples={int(demo.attrs['num_samples'])} but actions has {n} rows"
                )
            for sub in ("obs", "next_obs"):
                for key in demo.get(sub, {}):
                    if len(demo[sub][key]) != n:
                        raise DatasetFormatError(
                            f"{where}: data/{name}/{sub}/{key} has {len(demo[sub][key])} rows; expected {n}"
                        )
            for key in ("rewards", "dones", "states"):
                if key in demo and len(demo[key]) != n:
                    raise DatasetFormatError(f"{where}: data/{name}/{key} has {len(demo[key])} rows; expected {n}")
            lengths.append(n)
        self.lengths = np.array(lengths, dtype=np.int64)
        if "total" in data.attrs and int(data.attrs["total"]) != int(self.lengths.sum()):
            raise DatasetFormatError(
                f"{where}: data total={int(data.attrs['total'])} but the demos hold {int(self.lengths.sum())} steps"
            )

    def filter(self, key: str | None) -> list[str]:
        """Demo names of mask/<key> (all demos for None), in file order."""
        if key is None:
            return list(self.demos)
        masks = self._file.get("mask", {})
        if key not in masks:
            raise DatasetFormatError(f"{self.path}: no filter key mask/{key}; the file has {sorted(masks)}")
        chosen = {m.decode() if isinstance(m, bytes) else str(m) for m in masks[key][()]}
        return [d for d in self.demos if d in chosen]

    def read_demo(self, name: str) -> RobomimicDemo:
        g = self._file["data"][name]
        n = len(g["actions"])

        def step(key: str, default: np.ndarray) -> np.ndarray:
            return g[key][()] if key in g else default

        return RobomimicDemo(
            actions=g["actions"][()],
            rewards=step("rewards", np.zeros(n)),
            dones=step("dones", np.zeros(n, dtype=np.int64)),
            states=step("states", np.zeros((n, 0))),
            obs={k: g["obs"][k][()] for k in g["obs"]},
            next_obs={k: g["next_obs"][k][()] for k in g.get("next_obs", {})},
            model_file=g.attrs.get("model_file"),
        )

    def episodes(self, keys: Iterable[str], filter_key: str | None = None) -> EpisodeData:
        """`keys` (observation keys and/or action, next.reward, next.done, states) of the chosen demos, concatenated."""
        keys = list(keys)
        missing = [k for k in keys if k not in STEP_KEYS and k not in self.obs_keys]
        if missing:
            raise DatasetFormatError(
                f"{self.path}: no observation key(s) {missing}; obs has {self.obs_keys} "
                f"(and per-step {sorted(STEP_KEYS)})"
            )
        names = self.filter(filter_key)
        if not names:
            raise DatasetFormatError(f"{self.path}: filter key {filter_key!r} selects no demos")
        data = self._file["data"]
        arrays: dict[str, np.ndarray] = {}
        for key in keys:
            parts = []
            for name in names:
                g = data[name]
                src = STEP_KEYS.get(key)
                if src is not None and src not in g:
                    raise DatasetFormatError(f"{self.path}: data/{name} has no {src!r}; it has {sorted(g)}")
                parts.append(g[src][()] if src is not None else g["obs"][key][()])
            arrays[key] = np.concatenate(parts, axis=0)
            if key == "action" or arrays[key].dtype == np.float64:
                arrays[key] = arrays[key].astype(np.float32)
        lengths = np.array([len(data[n]["actions"]) for n in names], dtype=np.int64)
        ends = np.cumsum(lengths)
        ranges = np.stack([ends - lengths, ends], axis=1)
        return EpisodeData(arrays, ranges, FPS, source=str(self.path), tasks=[self.env_args.env_name])

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RobomimicHdf5:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_robomimic_hdf5(path: str | Path, keys: Iterable[str], filter_key: str | None = None) -> EpisodeData:
    """Open `path` and return `keys` of its demos (all, or those of mask/`filter_key`) as EpisodeData."""
    with RobomimicHdf5(path) as f:
        return f.episodes(keys, filter_key)


TASK_KEY = "task_index"


def hdf5_files(root: str | Path | Sequence[str | Path]) -> list[Path]:
    """The files a robomimic `dataset.root` names: one file, a list of files, or a directory of *.hdf5 files
    (LIBERO ships a suite as one file per task), in sorted order."""
    if isinstance(root, (str, Path)):
        path = Path(root)
        if path.is_dir():
            files = sorted([*path.glob("*.hdf5"), *path.glob("*.h5")])
            if not files:
                raise FileNotFoundError(f"dataset.root={str(path)!r}: a directory with no .hdf5 files")
            return files
        return [path]
    files = [Path(p) for p in root]
    if not files:
        raise ValueError("dataset.root=[]: expected at least one robomimic hdf5 file")
    return files


def task_of(f: RobomimicHdf5, position: int) -> tuple[int, str]:
    """A file's task index and instruction: env_kwargs' task_index / language_instruction (our LIBERO files),
    LIBERO's `problem_info` attribute for the instruction, else the file's position and env name."""
    kwargs = f.env_args.env_kwargs
    instruction = kwargs.get("language_instruction")
    info = f._file["data"].attrs.get("problem_info")
    if instruction is None and info is not None:
        instruction = json.loads(info).get("language_instruction")
    return int(kwargs.get("task_index", position)), str(instruction or f.env_args.env_name)


def filter_key_episodes(root: str | Path | Sequence[str | Path], filter_key: str) -> np.ndarray:
    """Indices, in the order read_robomimic_task_files loads them, of the demos listed in mask/<filter_key> of each
    file `root` names (e.g. robomimic's mask/valid)."""
    indices, offset = [], 0
    for path in hdf5_files(root):
        with RobomimicHdf5(path) as f:
            chosen = set(f.filter(filter_key))
            indices += [offset + i for i, name in enumerate(f.demos) if name in chosen]
            offset += len(f.demos)
    return np.array(indices, dtype=np.int64)


def read_robomimic_task_files(
    root: str | Path | Sequence[str | Path], keys: Iterable[str], filter_key: str | None = None
) -> EpisodeData:
    """`keys` of the demos in one or several robomimic hdf5 files, one task per file (LIBERO's layout), as one
    EpisodeData. `task_index` may be asked for where the files do not store it: every frame of a file gets that
    file's task index (see `task_of`). `tasks` lists the instructions by task index ("" where no file has it)."""
    keys = list(keys)
    files = hdf5_files(root)
    parts: list[EpisodeData] = []
    instructions: dict[int, str] = {}
    for position, path in enumerate(files):
        with RobomimicHdf5(path) as f:
            index, instruction = task_of(f, position)
            if instructions.get(index, instruction) != instruction:
                raise DatasetFormatError(
                    f"{path}: task_index={index} with instruction {instruction!r}, but another file gives that index "
                    f"{instructions[index]!r}; expected one instruction per task index"
                )
            instructions[index] = instruction
            stored = [k for k in keys if k != TASK_KEY or TASK_KEY in f.obs_keys]
            part = f.episodes(stored, filter_key)
            if TASK_KEY in keys and TASK_KEY not in f.obs_keys:
                part.arrays[TASK_KEY] = np.full((part.num_frames, 1), index, dtype=np.int64)
            parts.append(part)
    offsets = np.cumsum([0] + [p.num_frames for p in parts[:-1]])
    tasks = [instructions.get(i, "") for i in range(max(instructions) + 1)]
    return EpisodeData(
        {k: np.concatenate([p.arrays[k] for p in parts], axis=0) for k in keys},
        np.concatenate([p.episode_ranges + o for p, o in zip(parts, offsets)], axis=0),
        FPS,
        source=", ".join(str(f) for f in files),
        tasks=tasks,
    )
