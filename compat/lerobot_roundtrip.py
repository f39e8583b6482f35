#!/usr/bin/env python
"""LeRobot (v0.4.4, dataset format v3.0) side of diffpilot's compatibility check.

Run with the PEER venv's python (``.venv-compat/bin/python``), never with the
project venv: it imports ``lerobot``, which pins an older torch.

Subcommands
-----------
``read OURS_DIR OUT_NPZ``
    Open the dataset at OURS_DIR (written by diffpilot) with
    ``LeRobotDataset(repo_id="local/...", root=OURS_DIR)``, fully offline.
    Checks len / num_episodes / features against ``meta/info.json``, iterates a
    torch ``DataLoader`` for a few batches, fetches every frame of the first two
    episodes by index, also exercises ``delta_timestamps`` (the way
    DiffusionPolicy training queries data) and saves what lerobot returned to
    OUT_NPZ (``np.savez``, numeric arrays only, no pickle). A JSON sidecar
    ``OUT_NPZ`` with suffix ``.json`` holds the non-numeric facts (features,
    video backend, checks).

    NPZ layout (N = number of frames fetched by index, in index order):
      ``<feature>``          every numeric feature lerobot returned, stacked;
                             video/image features in lerobot's layout
                             (N, C, H, W) as uint8 = round(float * 255)
      ``<feature>__float``   the same video/image frames as float32 in [0, 1]
      ``fetched_indices``    the dataset indices fetched (int64)
      ``loader/<feature>``   what the DataLoader yielded (first batches)
      ``delta/<feature>`` and ``delta/<feature>_is_pad``
                             items fetched with delta_timestamps
      ``delta/indices``      the indices those items were fetched at
      ``num_frames``, ``num_episodes``, ``fps``
      ``episode_lengths``    per-episode lengths from meta/episodes

``write OUT_DIR``
    Create a small dataset with lerobot's own writer (3 episodes of lengths
    7, 12, 5 at fps 10; observation.state/action float32 (2,), observation.image
    video 96x96x3) and save the exact arrays that were given to the writer to
    ``OUT_DIR/../lerobot_written_truth.npz`` (+ ``.json`` sidecar with the
    codec that was used). OUT_DIR must not exist (or use --overwrite).

Exit status: 0 success, 1 a check failed, 2 usage/environment problem.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

# --- fully offline: must be set before huggingface_hub / datasets are imported.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 encoder: errors only
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

import hashlib
import importlib.util
import re
import warnings

import numpy as np

# torchvision 0.25 still ships the pyav VideoReader lerobot uses, but warns on every call.
warnings.filterwarnings("ignore", message="The video decoding and encoding capabilities of torchvision")

FPS = 10
WRITE_EPISODE_LENGTHS = (7, 12, 5)
WRITE_TASKS = ("push the block", "push the block", "reach the goal")
IMG_H, IMG_W = 96, 96
LEROBOT_DEFAULT_VCODEC = "libsvtav1"


class CheckFailed(Exception):
    """A compatibility check failed (exit status 1)."""


class EnvProblem(Exception):
    """The peer environment cannot run the requested check (exit status 2)."""


def log(msg: str) -> None:
    print(f"[lerobot_roundtrip] {msg}", flush=True)


# ----------------------------------------------------------------------------
# environment helpers
# ----------------------------------------------------------------------------


def _isolate_hf_caches(tmp: Path) -> None:
    """Keep `datasets`' arrow cache out of ~/.cache so runs are hermetic."""
    os.environ["HF_DATASETS_CACHE"] = str(tmp / "hf_datasets_cache")
    os.environ.setdefault("HF_LEROBOT_HOME", str(tmp / "lerobot_home"))


def _forbid_hub_fallback() -> None:
    """LeRobotDataset silently falls back to downloading from the Hub when the local
    files cannot be loaded (FileNotFoundError / NotADirectoryError). That would hide the
    real cause behind an offline error, so make every fallback raise loudly instead;
    the original exception stays attached as __context__."""
    import lerobot.datasets.lerobot_dataset as lds

    def _no_hub(*_a, **_k):
        raise CheckFailed(
            "lerobot could not load the dataset from local files and tried to fall back to the "
            "Hugging Face Hub (disabled: fully offline). See the exception above for the local cause."
        )

    lds.get_safe_version = _no_hub
    lds.LeRobotDatasetMetadata.pull_from_repo = _no_hub
    lds.LeRobotDataset.pull_from_repo = _no_hub
    lds.LeRobotDataset.download = _no_hub


def _torchcodec_usable() -> tuple[bool, str]:
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401

        return True, ""
    except Exception as exc:  # torchcodec raises RuntimeError when FFmpeg libs are missing
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return False, first


_SHIM_ENV = "LEROBOT_ROUNDTRIP_FFMPEG_SHIM"
_FFMPEG_LIB_RE = re.compile(
    r"^(lib(?:avutil|avcodec|avformat|avdevice|avfilter|swscale|swresample))-[0-9a-f]+\.so\.(\d+)"
)


def _system_ffmpeg_present() -> bool:
    import ctypes.util

    return ctypes.util.find_library("avutil") is not None


def _build_ffmpeg_shim() -> Path | None:
    """torchcodec (lerobot's default decoder) dlopens libavutil.so.NN etc. from the system;
    PyAV wheels carry the same FFmpeg libraries under hashed names in site-packages/av.libs.
    A directory of plain-named symlinks to them lets torchcodec load without system FFmpeg."""
    spec = importlib.util.find_spec("av")
    if spec is None or spec.origin is None:
        return None
    libs = Path(spec.origin).resolve().parent.parent / "av.libs"
    if not libs.is_dir():
        return None
    tag = hashlib.sha1(str(libs).encode()).hexdigest()[:10]
    shim = Path(tempfile.gettempdir()) / f"lerobot_roundtrip_ffmpeg_{os.getuid()}_{tag}"
    shim.mkdir(exist_ok=True)
    n = 0
    for f in libs.iterdir():
        m = _FFMPEG_LIB_RE.match(f.name)
        if not m:
            continue
        link = shim / f"{m.group(1)}.so.{m.group(2)}"
        tmp = shim / f".{link.name}.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(f)
        os.replace(tmp, link)
        n += 1
    return shim if n >= 5 else None


def maybe_reexec_with_ffmpeg_shim(requested_backend: str, enabled: bool) -> None:
    """Re-run this process once with LD_LIBRARY_PATH pointing at the shim (the dynamic
    loader reads LD_LIBRARY_PATH only at process start)."""
    if not enabled or requested_backend == "pyav" or os.environ.get(_SHIM_ENV) is not None:
        return
    if _system_ffmpeg_present():
        return
    shim = _build_ffmpeg_shim()
    if shim is None:
        return
    env = dict(os.environ)
    env[_SHIM_ENV] = str(shim)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(shim), env.get("LD_LIBRARY_PATH", "")) if p)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, os.path.abspath(sys.argv[0]), *sys.argv[1:]], env)


def resolve_video_backend(requested: str) -> tuple[str, str]:
    """lerobot 0.4.4 defaults to 'torchcodec' whenever the package is importable, but
    torchcodec needs FFmpeg shared libraries (libavutil.so.56..60). 'auto' uses torchcodec
    when it loads (system FFmpeg or the PyAV shim), else lerobot's 'pyav' backend."""
    via = f" via PyAV's FFmpeg libs ({os.environ[_SHIM_ENV]})" if os.environ.get(_SHIM_ENV) else ""
    if requested == "pyav":
        return "pyav", "requested explicitly"
    ok, why = _torchcodec_usable()
    if requested == "torchcodec":
        if not ok:
            raise EnvProblem(f"torchcodec requested but it cannot load: {why}")
        return "torchcodec", f"requested explicitly{via}"
    if ok:
        return "torchcodec", f"lerobot default; torchcodec loads{via}"
    return "pyav", f"torchcodec unusable ({why}); using pyav"


def resolve_vcodec(requested: str) -> tuple[str, str]:
    """lerobot 0.4.4 encodes with 'libsvtav1' by default. PyAV wheels normally ship it;
    fall back to h264 when the encoder is missing."""
    import av

    if requested != "auto":
        return requested, "requested explicitly"
    for name in (LEROBOT_DEFAULT_VCODEC, "h264"):
        try:
            av.codec.Codec("libx264" if name == "h264" else name, "w")
            return name, ("lerobot default" if name == LEROBOT_DEFAULT_VCODEC else "libsvtav1 missing in PyAV")
        except Exception:
            continue
    raise CheckFailed("neither libsvtav1 nor h264 encoders are available in PyAV")


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for pkg in ("lerobot", "torch", "torchvision", "torchcodec", "av", "datasets", "numpy", "pyarrow"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "absent"
    return out


def _to_numpy(x):
    import torch

    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (int, float, bool, np.generic)):
        return np.asarray(x)
    return None  # strings (task) and other non-numeric values are not saved


def _stack_items(items: list[dict], visual_keys: set[str], prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    keys = [k for k in items[0] if _to_numpy(items[0][k]) is not None]
    for k in keys:
        arr = np.stack([_to_numpy(it[k]) for it in items])
        if k in visual_keys:
            out[prefix + k + "__float"] = arr.astype(np.float32)
            out[prefix + k] = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
        else:
            out[prefix + k] = arr
    return out


def _atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    for k, v in arrays.items():
        if v.dtype == object:
            raise CheckFailed(f"refusing to save non-numeric array {k!r} (dtype=object)")
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _atomic_write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


# ----------------------------------------------------------------------------
# read
# ----------------------------------------------------------------------------


def _preflight(root: Path) -> dict:
    """Load each metadata piece with lerobot's own loaders, one at a time, so that a
    format problem is reported with the stage that failed (instead of a Hub fallback)."""
    from lerobot.datasets import utils as lu

    stages = {}

    def stage(name, fn):
        try:
            val = fn()
        except Exception as exc:
            cause = exc
            while cause.__cause__ is not None:  # datasets wraps the useful error
                cause = cause.__cause__
            why = f"{type(exc).__name__}: {exc}"
            if cause is not exc:
                why += f" <- caused by {type(cause).__name__}: {str(cause)[:600]}"
            raise CheckFailed(f"preflight stage '{name}' failed: {why}") from exc
        stages[name] = "ok"
        return val

    info = stage("meta/info.json", lambda: lu.load_info(root))
    from lerobot.datasets.lerobot_dataset import CODEBASE_VERSION

    stage(
        "codebase_version",
        lambda: lu.check_version_compatibility("local", info["codebase_version"], CODEBASE_VERSION),
    )
    tasks = stage("meta/tasks.parquet", lambda: lu.load_tasks(root))
    episodes = stage("meta/episodes/*.parquet", lambda: lu.load_episodes(root))
    stage("meta/stats.json", lambda: lu.load_stats(root))
    feats = stage("hf features from info.features", lambda: lu.get_hf_features_from_features(info["features"]))
    stage("data/*.parquet with those features", lambda: lu.load_nested_dataset(root / "data", features=feats))

    required_ep_cols = {
        "episode_index",
        "length",
        "tasks",
        "dataset_from_index",
        "dataset_to_index",
        "data/chunk_index",
        "data/file_index",
    }
    for k, ft in info["features"].items():
        if ft["dtype"] == "video":
            required_ep_cols |= {
                f"videos/{k}/chunk_index",
                f"videos/{k}/file_index",
                f"videos/{k}/from_timestamp",
                f"videos/{k}/to_timestamp",
            }
    missing = sorted(required_ep_cols - set(episodes.column_names))
    if missing:
        raise CheckFailed(f"meta/episodes parquet lacks columns lerobot reads: {missing}")
    if "task_index" not in tasks.columns:
        raise CheckFailed(
            f"meta/tasks.parquet must have a 'task_index' column, has {list(tasks.columns)} (index = task string)"
        )
    for k in ("index", "episode_index", "frame_index", "timestamp", "task_index"):
        if k not in info["features"]:
            raise CheckFailed(f"info.json features lack the default feature {k!r}")
    return info


def _policy_smoke(repo_id: str, root: Path, backend: str, tolerance_s: float) -> dict:
    """Build lerobot's DiffusionPolicy from this dataset's metadata/stats (as lerobot-train
    does), run one forward/backward on a batch with the policy's delta_timestamps, then
    select_action on the last observation. Small U-Net so it takes seconds on CPU."""
    import torch
    from lerobot.datasets.factory import resolve_delta_timestamps
    from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata
    from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig
    from lerobot.policies.factory import make_policy, make_pre_post_processors

    out: dict = {"ok": False}
    try:
        torch.manual_seed(0)
        meta = LeRobotDatasetMetadata(repo_id, root=root)
        cfg = DiffusionConfig(
            device="cpu",
            down_dims=(32, 64),
            n_obs_steps=2,
            horizon=16,
            n_action_steps=8,
            num_train_timesteps=10,
        )
        policy = make_policy(cfg, ds_meta=meta)
        delta = resolve_delta_timestamps(cfg, meta)
        ds = LeRobotDataset(
            repo_id,
            root=root,
            delta_timestamps=delta,
            video_backend=backend,
            download_videos=False,
            tolerance_s=tolerance_s,
        )
        pre, post = make_pre_post_processors(cfg, dataset_stats=meta.stats)
        loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0))
        batch = next(iter(loader))
        t0 = time.perf_counter()
        loss, _ = policy.forward(pre(batch))
        loss.backward()
        policy.eval()
        policy.reset()
        obs = {k: v[:, -1] for k, v in batch.items() if k.startswith("observation.") and not k.endswith("_is_pad")}
        obs["task"] = batch["task"]
        with torch.no_grad():
            action = post(policy.select_action(pre(obs)))
        out.update(
            loss=float(loss.item()),
            action_shape=list(action.shape),
            seconds=time.perf_counter() - t0,
            input_features=sorted(cfg.input_features),
            output_features=sorted(cfg.output_features),
        )
        if not np.isfinite(out["loss"]):
            out["error"] = f"non-finite loss {out['loss']}"
        elif not torch.isfinite(action).all():
            out["error"] = "non-finite action"
        else:
            out["ok"] = True
        log(f"DiffusionPolicy smoke: loss={out['loss']:.4f} action{tuple(action.shape)} ok={out['ok']}")
    except Exception as exc:  # report, do not crash the whole read
        out["error"] = f"{type(exc).__name__}: {exc}"
        log(f"DiffusionPolicy smoke FAILED: {out['error']}")
        traceback.print_exc()
    return out


def cmd_read(args) -> int:
    root = Path(args.ours_dir).resolve()
    out_npz = Path(args.out_npz).resolve()
    if not (root / "meta" / "info.json").is_file():
        raise CheckFailed(f"{root} has no meta/info.json: not a LeRobot v3 dataset")

    tmp = Path(tempfile.mkdtemp(prefix="lerobot_read_"))
    try:
        _isolate_hf_caches(tmp)
        import torch
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        _forbid_hub_fallback()
        backend, why_backend = resolve_video_backend(args.video_backend)
        log(f"video backend: {backend} ({why_backend})")

        info = _preflight(root)
        log(
            f"preflight ok: codebase_version={info['codebase_version']} fps={info['fps']} "
            f"episodes={info['total_episodes']} frames={info['total_frames']}"
        )

        t0 = time.perf_counter()
        ds = LeRobotDataset(
            repo_id=args.repo_id,
            root=root,
            video_backend=backend,
            download_videos=False,
            tolerance_s=args.tolerance_s,
        )
        log(
            f"LeRobotDataset opened in {time.perf_counter() - t0:.2f}s: len={len(ds)} "
            f"num_episodes={ds.num_episodes} features={list(ds.features)}"
        )

        checks: dict[str, str] = {}

        def check(name: str, ok: bool, detail: str) -> None:
            checks[name] = "ok" if ok else f"FAIL: {detail}"
            if not ok:
                log(f"CHECK FAILED {name}: {detail}")

        ep_meta = ds.meta.episodes
        ep_lengths = np.asarray(ep_meta["length"], dtype=np.int64)
        check(
            "len == info.total_frames",
            len(ds) == info["total_frames"],
            f"len(ds)={len(ds)} info.total_frames={info['total_frames']}",
        )
        check(
            "num_episodes == info.total_episodes",
            ds.num_episodes == info["total_episodes"],
            f"{ds.num_episodes} vs {info['total_episodes']}",
        )
        check(
            "sum(episode lengths) == len",
            int(ep_lengths.sum()) == len(ds),
            f"sum={int(ep_lengths.sum())} len={len(ds)}",
        )
        check(
            "hf_dataset rows == len",
            len(ds.hf_dataset) == len(ds),
            f"hf rows={len(ds.hf_dataset)} len={len(ds)}",
        )
        check("fps", ds.fps == info["fps"], f"{ds.fps} vs {info['fps']}")

        visual_keys = set(ds.meta.camera_keys)

        # ---- fetch every frame of the first episodes by index
        n_eps = ds.num_episodes if args.max_episodes <= 0 else min(args.max_episodes, ds.num_episodes)
        fetch_idx: list[int] = []
        for e in range(n_eps):
            fetch_idx += list(range(int(ep_meta[e]["dataset_from_index"]), int(ep_meta[e]["dataset_to_index"])))
        t0 = time.perf_counter()
        items = [ds[i] for i in fetch_idx]
        log(f"fetched {len(items)} items by index (episodes 0..{n_eps - 1}) in {time.perf_counter() - t0:.2f}s")

        # feature presence / shape checks against info.json
        it0 = items[0]
        for k, ft in info["features"].items():
            if k not in it0:
                check(f"feature {k} returned", False, "missing from item")
                continue
            v = _to_numpy(it0[k])
            shape = tuple(ft["shape"])
            if ft["dtype"] in ("video", "image"):
                names = ft.get("names") or ["height", "width", "channels"]
                hwc = dict(zip(names, shape))
                want = (
                    hwc.get("channels", shape[-1]),
                    hwc.get("height", shape[0]),
                    hwc.get("width", shape[1]),
                )
                check(
                    f"feature {k} shape",
                    tuple(v.shape) == want,
                    f"got {tuple(v.shape)}, lerobot returns (C,H,W)={want} for info shape {shape} names {names}",
                )
                check(
                    f"feature {k} range",
                    v.dtype == np.float32 and v.min() >= 0.0 and v.max() <= 1.0,
                    f"dtype={v.dtype} min={v.min()} max={v.max()}",
                )
            else:
                want = () if shape == (1,) else shape
                check(
                    f"feature {k} shape",
                    tuple(v.shape) in (want, shape),
                    f"got {tuple(v.shape)} expected {want}",
                )
                check(f"feature {k} dtype", str(v.dtype) == ft["dtype"], f"got {v.dtype} expected {ft['dtype']}")
        got_idx = np.array([int(it["index"]) for it in items])
        check(
            "item['index'] == requested index",
            np.array_equal(got_idx, np.array(fetch_idx)),
            f"first mismatch at {int(np.argmax(got_idx != np.array(fetch_idx)))}",
        )
        for it in items:
            if not isinstance(it.get("task"), str):
                check("item['task'] is a str", False, f"got {type(it.get('task'))}")
                break
        else:
            check("item['task'] is a str", True, "")

        arrays = _stack_items(items, visual_keys)
        arrays["fetched_indices"] = np.asarray(fetch_idx, dtype=np.int64)

        # ---- DataLoader, a few batches, no shuffle (so they are comparable)
        loader = torch.utils.data.DataLoader(
            ds, batch_size=args.batch_size, shuffle=False, num_workers=args.num_workers
        )
        batches = []
        t0 = time.perf_counter()
        for bi, batch in enumerate(loader):
            batches.append(batch)
            if bi + 1 >= args.num_batches:
                break
        log(
            f"DataLoader(batch_size={args.batch_size}, num_workers={args.num_workers}) yielded "
            f"{len(batches)} batches in {time.perf_counter() - t0:.2f}s"
        )
        for k in batches[0]:
            v = _to_numpy(batches[0][k]) if not isinstance(batches[0][k], list) else None
            if v is None:
                continue
            cat = np.concatenate([_to_numpy(b[k]) for b in batches])
            if k in visual_keys:
                arrays["loader/" + k] = np.clip(np.rint(cat * 255.0), 0, 255).astype(np.uint8)
            else:
                arrays["loader/" + k] = cat
        # the loader's first frames must equal __getitem__ for the same indices
        n_common = min(len(arrays["loader/index"]), len(fetch_idx))
        same = (
            all(
                np.array_equal(arrays["loader/" + k][:n_common], arrays[k][:n_common])
                for k in arrays
                if not k.startswith(("loader/", "fetched")) and "loader/" + k in arrays
            )
            if fetch_idx[:n_common] == list(range(n_common))
            else True
        )
        check("DataLoader batches == __getitem__", same, "DataLoader output differs from ds[i]")

        # ---- delta_timestamps, as DiffusionPolicy (n_obs_steps=2, horizon=16) queries data
        if not args.no_delta:
            dt = 1.0 / ds.fps
            delta = {"observation.state": [-dt, 0.0], "action": [i * dt for i in range(-1, 15)]}
            for k in visual_keys:
                delta[k] = [-dt, 0.0]
            dds = LeRobotDataset(
                repo_id=args.repo_id,
                root=root,
                video_backend=backend,
                download_videos=False,
                tolerance_s=args.tolerance_s,
                delta_timestamps={k: v for k, v in delta.items() if k in ds.features},
            )
            # first, middle and last frame of every episode (exercises padding at boundaries)
            d_idx = sorted(
                {
                    i
                    for e in range(ds.num_episodes)
                    for i in (
                        int(ep_meta[e]["dataset_from_index"]),
                        (int(ep_meta[e]["dataset_from_index"]) + int(ep_meta[e]["dataset_to_index"])) // 2,
                        int(ep_meta[e]["dataset_to_index"]) - 1,
                    )
                }
            )
            ditems = [dds[i] for i in d_idx]
            arrays.update(_stack_items(ditems, visual_keys, prefix="delta/"))
            arrays["delta/indices"] = np.asarray(d_idx, dtype=np.int64)
            log(f"delta_timestamps items fetched at {len(d_idx)} indices")

        # ---- lerobot's DiffusionPolicy on this dataset: one training step + one action, on CPU
        smoke = None
        if not args.no_policy_smoke:
            smoke = _policy_smoke(args.repo_id, root, backend, args.tolerance_s)
            check("DiffusionPolicy train step + select_action", smoke["ok"], smoke.get("error", ""))
            if "loss" in smoke:
                arrays["policy/loss"] = np.asarray(smoke["loss"], dtype=np.float64)

        arrays["num_frames"] = np.asarray(len(ds), dtype=np.int64)
        arrays["num_episodes"] = np.asarray(ds.num_episodes, dtype=np.int64)
        arrays["fps"] = np.asarray(ds.fps, dtype=np.int64)
        arrays["episode_lengths"] = ep_lengths
        _atomic_savez(out_npz, arrays)

        failed = {k: v for k, v in checks.items() if v != "ok"}
        sidecar = {
            "dataset": str(root),
            "versions": _versions(),
            "video_backend": backend,
            "video_backend_reason": why_backend,
            "features": info["features"],
            "codebase_version": info["codebase_version"],
            "checks": checks,
            "policy_smoke": smoke,
            "episodes_fetched_by_index": n_eps,
            "arrays": {k: [list(v.shape), str(v.dtype)] for k, v in sorted(arrays.items())},
            "ok": not failed,
        }
        _atomic_write_json(out_npz.with_suffix(".json"), sidecar)
        log(f"saved {len(arrays)} arrays to {out_npz}")
        if failed:
            raise CheckFailed(f"{len(failed)} check(s) failed: {failed}")
        log(f"all {len(checks)} checks ok")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------
# write
# ----------------------------------------------------------------------------


def synthetic_episode(ep: int, length: int) -> dict[str, np.ndarray]:
    """Deterministic values; images are smooth (gradients + a moving square) so that lossy
    video coding errors stay small and a decoded frame is recognisable."""
    t = np.arange(length, dtype=np.float32)
    state = np.stack([np.sin(0.3 * t + ep), np.cos(0.2 * t - ep)], axis=1).astype(np.float32)
    action = np.stack([0.1 * t - ep, ep + 0.5 * np.sin(t)], axis=1).astype(np.float32)
    yy, xx = np.mgrid[0:IMG_H, 0:IMG_W]
    imgs = np.empty((length, IMG_H, IMG_W, 3), dtype=np.uint8)
    for f in range(length):
        img = np.empty((IMG_H, IMG_W, 3), dtype=np.float32)
        img[..., 0] = 40 + 150 * xx / (IMG_W - 1)
        img[..., 1] = 40 + 150 * yy / (IMG_H - 1)
        img[..., 2] = 60 + 40 * ep
        y0, x0 = 8 + 5 * f % 60, 10 + 3 * f % 60
        img[y0 : y0 + 20, x0 : x0 + 20, :] = (230, 230, 30)
        imgs[f] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return {"observation.state": state, "action": action, "observation.image": imgs}


def cmd_write(args) -> int:
    out_dir = Path(args.out_dir).resolve()
    truth_path = out_dir.parent / "lerobot_written_truth.npz"
    if out_dir.exists():
        if not args.overwrite:
            raise CheckFailed(f"{out_dir} exists (LeRobotDataset.create refuses to reuse it); use --overwrite")
        shutil.rmtree(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)

    tmp = Path(tempfile.mkdtemp(prefix="lerobot_write_"))
    try:
        _isolate_hf_caches(tmp)
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        _forbid_hub_fallback()
        vcodec, why_codec = resolve_vcodec(args.vcodec)
        backend, why_backend = resolve_video_backend(args.video_backend)
        log(f"vcodec: {vcodec} ({why_codec}); video backend for read-back: {backend} ({why_backend})")

        features = {
            "observation.state": {"dtype": "float32", "shape": (2,), "names": ["x", "y"]},
            "action": {"dtype": "float32", "shape": (2,), "names": ["x", "y"]},
            "observation.image": {
                "dtype": "video",
                "shape": (IMG_H, IMG_W, 3),
                "names": ["height", "width", "channels"],
            },
        }
        t0 = time.perf_counter()
        ds = LeRobotDataset.create(
            repo_id=args.repo_id,
            fps=FPS,
            root=out_dir,
            features=features,
            use_videos=True,
            vcodec=vcodec,
            video_backend=backend,
        )
        truth: dict[str, list] = {
            k: []
            for k in (
                "observation.state",
                "action",
                "observation.image",
                "episode_index",
                "frame_index",
                "timestamp",
                "index",
                "task_index",
            )
        }
        task_ids: dict[str, int] = {}
        gidx = 0
        for ep, length in enumerate(WRITE_EPISODE_LENGTHS):
            data = synthetic_episode(ep, length)
            task = WRITE_TASKS[ep]
            task_ids.setdefault(task, len(task_ids))
            for f in range(length):
                frame = {k: v[f].copy() for k, v in data.items()}
                frame["task"] = task
                ds.add_frame(frame)
                for k in data:
                    truth[k].append(data[k][f])
                truth["episode_index"].append(ep)
                truth["frame_index"].append(f)
                truth["timestamp"].append(np.float32(f / FPS))
                truth["index"].append(gidx)
                truth["task_index"].append(task_ids[task])
                gidx += 1
            ds.save_episode()
        ds.finalize()
        write_s = time.perf_counter() - t0
        log(f"wrote {len(WRITE_EPISODE_LENGTHS)} episodes / {gidx} frames in {write_s:.2f}s to {out_dir}")

        arrays = {
            "observation.state": np.stack(truth["observation.state"]).astype(np.float32),
            "action": np.stack(truth["action"]).astype(np.float32),
            "observation.image": np.stack(truth["observation.image"]).astype(np.uint8),  # (N, H, W, C)
            "episode_index": np.asarray(truth["episode_index"], dtype=np.int64),
            "frame_index": np.asarray(truth["frame_index"], dtype=np.int64),
            "timestamp": np.asarray(truth["timestamp"], dtype=np.float32),
            "index": np.asarray(truth["index"], dtype=np.int64),
            "task_index": np.asarray(truth["task_index"], dtype=np.int64),
            "episode_lengths": np.asarray(WRITE_EPISODE_LENGTHS, dtype=np.int64),
            "fps": np.asarray(FPS, dtype=np.int64),
        }

        # read back with lerobot itself: sanity + the codec's own error level (baseline for diffpilot)
        rb = LeRobotDataset(repo_id=args.repo_id, root=out_dir, video_backend=backend, download_videos=False)
        if len(rb) != gidx or rb.num_episodes != len(WRITE_EPISODE_LENGTHS):
            raise CheckFailed(
                f"lerobot read-back: len={len(rb)} num_episodes={rb.num_episodes}, "
                f"expected {gidx} / {len(WRITE_EPISODE_LENGTHS)}"
            )
        items = [rb[i] for i in range(len(rb))]
        for k in ("observation.state", "action"):
            got = np.stack([it[k].numpy() for it in items])
            if not np.array_equal(got, arrays[k]):
                raise CheckFailed(f"lerobot read-back of {k} differs from what was written")
        imgs = np.stack([it["observation.image"].numpy() for it in items])  # (N, C, H, W) float [0,1]
        imgs_u8 = np.clip(np.rint(imgs * 255.0), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
        mae = float(np.abs(imgs_u8.astype(np.float64) - arrays["observation.image"]).mean())
        log(f"lerobot read-back ok; video mean abs error vs truth = {mae:.3f} (uint8 levels)")
        _atomic_savez(truth_path, arrays)

        info = json.loads((out_dir / "meta" / "info.json").read_text())
        vinfo = info["features"]["observation.image"].get("info", {})
        sidecar = {
            "dataset": str(out_dir),
            "versions": _versions(),
            "vcodec_requested": args.vcodec,
            "vcodec": vcodec,
            "vcodec_reason": why_codec,
            "video_info": vinfo,
            "video_backend_readback": backend,
            "lerobot_readback_video_mae_u8": mae,
            "write_seconds": write_s,
            "tasks": {str(v): k for k, v in task_ids.items()},
            "image_layout": "truth observation.image is (N, H, W, C) uint8 as given to add_frame",
        }
        _atomic_write_json(truth_path.with_suffix(".json"), sidecar)
        log(f"truth saved to {truth_path} (codec in info.json: {vinfo.get('video.codec')})")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    decoding = argparse.ArgumentParser(add_help=False)  # options both subcommands take
    decoding.add_argument(
        "--video-backend",
        default="auto",
        choices=["auto", "torchcodec", "pyav"],
        help="auto: torchcodec (lerobot's default) if it loads, else pyav",
    )
    decoding.add_argument(
        "--no-ffmpeg-shim",
        action="store_true",
        help="do not point torchcodec at PyAV's bundled FFmpeg libraries",
    )
    sub = p.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("read", help="read a diffpilot-written dataset with lerobot, save to NPZ", parents=[decoding])
    r.add_argument("ours_dir")
    r.add_argument("out_npz")
    r.add_argument("--repo-id", default="local/diffpilot_written")
    r.add_argument("--batch-size", type=int, default=8)
    r.add_argument("--num-batches", type=int, default=3)
    r.add_argument("--num-workers", type=int, default=0)
    r.add_argument("--tolerance-s", type=float, default=1e-4, help="lerobot's default is 1e-4")
    r.add_argument("--no-delta", action="store_true", help="skip the delta_timestamps check")
    r.add_argument(
        "--max-episodes",
        type=int,
        default=2,
        help="fetch every frame of the first N episodes by index (<= 0: all episodes)",
    )
    r.add_argument(
        "--no-policy-smoke",
        action="store_true",
        help="skip the DiffusionPolicy train-step/select_action smoke test",
    )

    w = sub.add_parser("write", help="write a small dataset with lerobot's writer + truth NPZ", parents=[decoding])
    w.add_argument("out_dir")
    w.add_argument("--repo-id", default="local/lerobot_written")
    w.add_argument("--vcodec", default="auto", help="auto = lerobot's default libsvtav1 if PyAV has it, else h264")
    w.add_argument("--overwrite", action="store_true")

    args = p.parse_args(argv)
    if importlib.util.find_spec("lerobot") is None:
        print(
            f"[lerobot_roundtrip] ERROR: lerobot is not importable with {sys.executable}.\n"
            "Run this script with the peer venv (make compat builds .venv-compat).",
            file=sys.stderr,
        )
        return 2
    if argv is None:  # only when run as a program: may replace this process
        maybe_reexec_with_ffmpeg_shim(args.video_backend, not args.no_ffmpeg_shim)
    try:
        import lerobot  # noqa: F401
    except ImportError as exc:
        print(
            f"[lerobot_roundtrip] ERROR: lerobot is not importable with {sys.executable}: {exc}\n"
            "Run this script with the peer venv (make compat builds .venv-compat).",
            file=sys.stderr,
        )
        return 2
    try:
        return cmd_read(args) if args.cmd == "read" else cmd_write(args)
    except EnvProblem as exc:
        print(f"[lerobot_roundtrip] ENVIRONMENT: {exc}", file=sys.stderr, flush=True)
        return 2
    except CheckFailed as exc:
        traceback.print_exc()
        print(f"[lerobot_roundtrip] FAIL: {exc}", file=sys.stderr, flush=True)
        return 1
    except Exception as exc:  # unexpected lerobot error: still a compatibility failure
        traceback.print_exc()
        print(f"[lerobot_roundtrip] FAIL ({type(exc).__name__}): {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
