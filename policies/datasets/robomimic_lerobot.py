"""Convert between robomimic's hdf5 layout and the LeRobot v3 layout, both ways.

Feature names on the LeRobot side follow LeRobot's conventions: `obs/<cam>_image` ↔ the video feature
`observation.images.<cam>`, `obs/<key>` ↔ `observation.<key>`, `actions` ↔ `action`, `rewards` ↔
`next.reward`, `dones` ↔ `next.done`, `states` (flattened MuJoCo state) ↔ `sim_state`. robomimic's
`env_args` travel in `meta/robomimic_env_args.json`. `next_obs` is not a LeRobot feature: converting back
writes demos without it (robomimic reads them with `load_next_obs=False`; LIBERO's files have none).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from diffpilot.atomic import atomic_write_json

from .episodes import DatasetFormatError
from .lerobot_v3 import FeatureSpec, LeRobotV3Dataset, LeRobotV3Writer
from .robomimic_hdf5 import FPS, EnvArgs, RobomimicDemo, RobomimicHdf5, write_robomimic_hdf5

ENV_ARGS_PATH = "meta/robomimic_env_args.json"
IMAGE_SUFFIX = "_image"
# Natural-language task strings for LeRobot's meta/tasks.parquet.
TASK_TEXT = {
    "Lift": "Lift the cube.",
    "PickPlaceCan": "Pick up the can and place it in its bin.",
    "NutAssemblySquare": "Fit the square nut onto the square peg.",
}


def lerobot_name(obs_key: str) -> str:
    """robomimic observation key → LeRobot feature name."""
    if obs_key.endswith(IMAGE_SUFFIX):
        return f"observation.images.{obs_key[: -len(IMAGE_SUFFIX)]}"
    return f"observation.{obs_key}"


def robomimic_name(feature: str) -> str | None:
    """LeRobot feature name → robomimic observation key (None for non-observation features)."""
    if feature.startswith("observation.images."):
        return feature[len("observation.images.") :] + IMAGE_SUFFIX
    if feature.startswith("observation."):
        return feature[len("observation.") :]
    return None


def robomimic_to_lerobot(path: str | Path, root: str | Path, task: str | None = None) -> Path:
    """Write every demo of the robomimic file `path` as one episode of a new LeRobot v3 dataset at `root`."""
    root = Path(root)
    with RobomimicHdf5(path) as src:
        text = task or TASK_TEXT.get(src.env_args.env_name, src.env_args.env_name)
        writer: LeRobotV3Writer | None = None
        for name in src.demos:
            demo = src.read_demo(name)
            frames = {lerobot_name(k): v for k, v in demo.obs.items()}
            frames["action"] = demo.actions.astype(np.float32)
            frames["next.reward"] = demo.rewards.astype(np.float32)
            frames["next.done"] = demo.dones.astype(bool)
            if demo.states.shape[-1] > 0:
                frames["sim_state"] = demo.states.astype(np.float64)
            if writer is None:
                writer = LeRobotV3Writer(root, FPS, _feature_specs(frames), robot_type="panda")
            writer.add_episode(frames, task=text)
        writer.finalize()
        atomic_write_json(root / ENV_ARGS_PATH, json.loads(src.env_args.to_json()))
    return root


def _feature_specs(frames: dict[str, np.ndarray]) -> dict[str, FeatureSpec]:
    """Video features for (T, H, W, 3) uint8 cameras; every other column keeps its dtype and per-step shape."""

    def spec(arr: np.ndarray) -> FeatureSpec:
        if arr.ndim == 4 and arr.dtype == np.uint8:
            return FeatureSpec("video", arr.shape[1:], ["height", "width", "channels"])
        return FeatureSpec("bool" if arr.dtype == np.bool_ else str(arr.dtype), arr.shape[1:] or (1,), None)

    return {key: spec(arr) for key, arr in frames.items()}


def lerobot_to_robomimic(root: str | Path, path: str | Path, env_args: EnvArgs | None = None) -> Path:
    """Write each episode of the LeRobot v3 dataset `root` as data/demo_N of a new robomimic file `path`.

    env_args: robomimic's env metadata; by default the one saved by `robomimic_to_lerobot`.
    """
    root = Path(root)
    if env_args is None:
        meta = root / ENV_ARGS_PATH
        if not meta.is_file():
            raise DatasetFormatError(f"{meta}: no robomimic env_args; pass env_args= to say which env made the data")
        env_args = EnvArgs.from_json(meta.read_text(), str(meta))
    ds = LeRobotV3Dataset(root)
    if "action" not in ds.features:
        raise DatasetFormatError(f"{root}: no 'action' feature; the dataset has {sorted(ds.features)}")
    obs_features = [k for k in ds.features if robomimic_name(k) is not None]
    numeric = [k for k in ds.features if k not in ds.video_keys]
    step_keys = ("action", "next.reward", "next.done", "sim_state")
    columns = ds.columns([k for k in numeric if k in obs_features or k in step_keys])
    videos = {k: ds.decode_video(k) for k in ds.video_keys if k in obs_features}
    n = ds.num_frames
    demos = []
    for lo, hi in ds.episode_ranges:
        obs = {robomimic_name(k): v[lo:hi] for k, v in {**columns, **videos}.items() if k in obs_features}
        demos.append(
            RobomimicDemo(
                actions=columns["action"][lo:hi],
                rewards=columns.get("next.reward", np.zeros(n))[lo:hi],
                dones=columns.get("next.done", np.zeros(n))[lo:hi].astype(np.int64),
                states=columns.get("sim_state", np.zeros((n, 0)))[lo:hi],
                obs=obs,
            )
        )
    return write_robomimic_hdf5(path, demos, env_args)
