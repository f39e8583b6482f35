#!/usr/bin/env python
"""LeRobot v3.0 dataset compatibility check, both directions.

Run with the PROJECT venv (``.venv/bin/python``). lerobot itself lives in a separate
"peer" venv (``.venv-compat``, built by ``make compat`` from
compat/requirements-lerobot.txt) and is driven through compat/lerobot_roundtrip.py.

A. diffpilot -> lerobot
   diffpilot's LeRobotV3Writer writes a dataset (several episodes, small file-size limits
   so data and video roll over into several files and chunks); the peer runs
   ``lerobot_roundtrip.py read`` once per video backend (torchcodec = lerobot's default,
   and pyav); what lerobot returns is compared with diffpilot's own LeRobotV3Dataset
   reading: numeric fields exactly, video frames by mean absolute error (uint8 levels),
   delta_timestamps windows and padding against the episode boundaries, plus lerobot's
   own checks and a DiffusionPolicy train-step smoke test.
B. lerobot -> diffpilot
   the peer runs ``lerobot_roundtrip.py write`` (lerobot's own recorder, default codec);
   diffpilot's reader is compared with the exact arrays given to lerobot.

Prints a PASS/FAIL table, writes bench/results/lerobot_compat.json (atomically) and
exits 1 on any FAIL, 2 when the peer venv is missing or broken.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ROUNDTRIP = REPO / "compat" / "lerobot_roundtrip.py"
DEFAULT_PEER = REPO / ".venv-compat" / "bin" / "python"
DEFAULT_OUT = REPO / "bench" / "results" / "lerobot_compat.json"

FPS = 10
EP_LENGTHS = (9, 14, 5, 11, 7)  # different lengths; several episodes per file and file rollover
TASKS = (
    "push the T into the goal",
    "push the T into the goal",
    "reach the goal",
    "push the T into the goal",
    "reach the goal",
)
H, W = 96, 96
NUMERIC_KEYS = (
    "observation.state",
    "action",
    "next.reward",
    "next.done",
    "timestamp",
    "frame_index",
    "episode_index",
    "index",
    "task_index",
)


# ----------------------------------------------------------------------------
# results bookkeeping
# ----------------------------------------------------------------------------


class Report:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, direction: str, name: str, status: str, detail: str = "", **metrics) -> None:
        assert status in ("PASS", "FAIL", "SKIP")
        self.rows.append({"direction": direction, "check": name, "status": status, "detail": detail, **metrics})

    def check(self, direction: str, name: str, ok: bool, detail: str = "", **metrics) -> bool:
        self.add(direction, name, "PASS" if ok else "FAIL", detail, **metrics)
        return ok

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.rows if r["status"] == "FAIL"]

    def print_table(self) -> None:
        w_dir = max(len(r["direction"]) for r in self.rows)
        w_chk = min(58, max(len(r["check"]) for r in self.rows))
        print()
        print(f"{'dir':<{w_dir}}  {'check':<{w_chk}}  result  detail")
        print(f"{'-' * w_dir}  {'-' * w_chk}  ------  {'-' * 40}")
        for r in self.rows:
            print(f"{r['direction']:<{w_dir}}  {r['check'][:w_chk]:<{w_chk}}  {r['status']:<6}  {r['detail']}")
        n = {s: sum(r["status"] == s for r in self.rows) for s in ("PASS", "FAIL", "SKIP")}
        print(f"\n{n['PASS']} passed, {n['FAIL']} failed, {n['SKIP']} skipped")


def atomic_write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=False, default=str)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ----------------------------------------------------------------------------
# synthetic data (deterministic)
# ----------------------------------------------------------------------------


def synthetic_episode(ep: int, length: int) -> dict[str, np.ndarray]:
    """state (3,) != action (2,) so a swapped/transposed column cannot pass; smooth images
    (gradients + moving square) so video coding error stays small."""
    t = np.arange(length, dtype=np.float32)
    state = np.stack([np.sin(0.3 * t + ep), np.cos(0.2 * t - ep), 0.01 * t * (ep + 1)], axis=1).astype(np.float32)
    action = np.stack([0.1 * t - ep, ep + 0.5 * np.sin(t)], axis=1).astype(np.float32)
    reward = (t / max(length - 1, 1)).astype(np.float32)
    done = np.zeros(length, dtype=bool)
    done[-1] = True
    yy, xx = np.mgrid[0:H, 0:W]
    imgs = np.empty((length, H, W, 3), dtype=np.uint8)
    for f in range(length):
        img = np.empty((H, W, 3), dtype=np.float32)
        img[..., 0] = 30 + 170 * xx / (W - 1)
        img[..., 1] = 30 + 170 * yy / (H - 1)
        img[..., 2] = 50 + 35 * ep
        y0, x0 = 6 + (4 * f) % 64, 8 + (3 * f + 11 * ep) % 64
        img[y0 : y0 + 22, x0 : x0 + 22, :] = (235, 225, 40)
        imgs[f] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return {
        "observation.state": state,
        "action": action,
        "next.reward": reward,
        "next.done": done,
        "observation.image": imgs,
    }


def write_ours(root: Path) -> dict[str, np.ndarray]:
    from diffpilot.policies.datasets.lerobot_v3 import FeatureSpec, LeRobotV3Writer

    features = {
        "observation.state": FeatureSpec("float32", (3,), ["x", "y", "z"]),
        "action": FeatureSpec("float32", (2,), ["vx", "vy"]),
        "next.reward": FeatureSpec("float32", (1,), None),
        "next.done": FeatureSpec("bool", (1,), None),
        "observation.image": FeatureSpec("video", (H, W, 3), ["height", "width", "channels"]),
    }
    # tiny size limits: data and video roll over into several files, chunks_size=2 -> several chunks
    writer = LeRobotV3Writer(
        root,
        fps=FPS,
        features=features,
        robot_type="synthetic",
        chunks_size=2,
        data_files_size_in_mb=0.0005,
        video_files_size_in_mb=0.006,
    )
    truth: dict[str, list[np.ndarray]] = {}
    for ep, length in enumerate(EP_LENGTHS):
        data = synthetic_episode(ep, length)
        writer.add_episode(data, task=TASKS[ep])
        for k, v in data.items():
            truth.setdefault(k, []).append(v)
    writer.finalize()
    return {k: np.concatenate(v) for k, v in truth.items()}


def read_ours(root: Path) -> tuple[object, dict[str, np.ndarray]]:
    from diffpilot.policies.datasets.lerobot_v3 import LeRobotV3Dataset

    ds = LeRobotV3Dataset(root)
    keys = [k for k in NUMERIC_KEYS if k in ds.features]
    out = ds.columns(keys)
    for k in ds.video_keys:
        out[k] = ds.decode_video(k)  # (N, H, W, 3) uint8
    return ds, out


# ----------------------------------------------------------------------------
# peer
# ----------------------------------------------------------------------------


def run_peer(peer: Path, args: list[str], log_path: Path, timeout: float, script: Path = ROUNDTRIP) -> tuple[int, str]:
    cmd = [str(peer), str(script), *args]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["HF_HUB_OFFLINE"] = "1"
    env["HF_DATASETS_OFFLINE"] = "1"
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            timeout=timeout,
            cwd=str(REPO),
        )
        rc, out = proc.returncode, proc.stdout
    except subprocess.TimeoutExpired as exc:
        rc, out = 124, (exc.stdout or "") + f"\n[timeout after {timeout}s]"
    log_path.write_text(f"$ {' '.join(cmd)}\n{out}\n[rc={rc} in {time.perf_counter() - t0:.1f}s]\n")
    return rc, out


def tail(text: str, n: int = 15) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join("    | " + ln for ln in lines[-n:])


def _mae(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return float(d.mean()), int(d.max())


def _first_diff(a: np.ndarray, b: np.ndarray) -> str:
    if a.shape != b.shape:
        return f"shape {a.shape} vs {b.shape}"
    bad = np.argwhere(
        ~np.isclose(a.astype(np.float64), b.astype(np.float64), rtol=0, atol=0, equal_nan=True)
        if a.dtype.kind == "f"
        else a != b
    )
    if not len(bad):
        return f"dtype {a.dtype} vs {b.dtype}"
    i = tuple(bad[0])
    return f"{len(bad)} value(s) differ, first at {i}: {a[i]!r} vs {b[i]!r}"


def compare_numeric(rep: Report, d: str, label: str, got: np.ndarray, want: np.ndarray) -> None:
    """Exact comparison; bool/int/float dtypes must match too (lerobot returns shape (N,) for (1,))."""
    g = got.reshape(want.shape) if got.size == want.size else got
    ok = g.shape == want.shape and g.dtype == want.dtype and np.array_equal(g, want)
    rep.check(
        d,
        label,
        ok,
        "exact" if ok else f"{_first_diff(g, want)} (got {got.dtype}{got.shape}, expected {want.dtype}{want.shape})",
    )


# ----------------------------------------------------------------------------
# direction A: diffpilot -> lerobot
# ----------------------------------------------------------------------------


def direction_a(rep: Report, peer: Path, work: Path, backends: list[str], opt) -> dict:
    d = "A"
    info: dict = {}
    root = work / "diffpilot_written"
    try:
        t0 = time.perf_counter()
        truth = write_ours(root)
        info["write_seconds"] = round(time.perf_counter() - t0, 3)
        ds, ours = read_ours(root)
    except Exception as exc:  # diffpilot side broken: nothing else to compare
        rep.check(d, "diffpilot writes + reads its own dataset", False, f"{type(exc).__name__}: {exc}")
        return info
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    info["files"] = files
    rep.check(
        d,
        "diffpilot writer: several data/video files",
        sum("data/" in f for f in files) > 1 and sum("videos/" in f for f in files) > 1,
        f"{len(files)} files",
    )
    for k in ("observation.state", "action", "next.reward", "next.done"):
        compare_numeric(rep, d, f"diffpilot self-roundtrip {k}", ours[k], truth[k].reshape(ours[k].shape))
    mae, mx = _mae(ours["observation.image"], truth["observation.image"])
    info["diffpilot_video_mae_vs_truth"] = mae
    rep.check(
        d,
        "diffpilot self-roundtrip observation.image (codec loss)",
        mae <= opt.truth_mae_max,
        f"MAE {mae:.3f} max {mx} (limit {opt.truth_mae_max})",
    )

    for backend in backends:
        tag = f"A/{backend}"
        read = peer_read(rep, tag, peer, work, root, backend, opt, ds, ours, opt.policy_smoke, info)
        if read is None:
            continue
        r, idx = read
        if "observation.image" in r:
            got = r["observation.image"].transpose(0, 2, 3, 1)  # lerobot (N,C,H,W) -> (N,H,W,C)
            mae, mx = _mae(got, ours["observation.image"][idx])
            info[f"video_mae_lerobot_vs_diffpilot_{backend}"] = mae
            rep.check(
                tag,
                "ds[i]['observation.image'] vs diffpilot decode",
                mae <= opt.decoder_mae_max,
                f"MAE {mae:.3f} max {mx} (limit {opt.decoder_mae_max})",
                mae=mae,
            )
            mae_t, mx_t = _mae(got, truth["observation.image"][idx])
            rep.check(
                tag,
                "ds[i]['observation.image'] vs written truth",
                mae_t <= opt.truth_mae_max,
                f"MAE {mae_t:.3f} max {mx_t} (limit {opt.truth_mae_max})",
                mae=mae_t,
            )
        # DataLoader batches (first frames, no shuffle)
        li = r["loader/index"]
        ok = all(
            np.array_equal(r["loader/" + k].reshape(len(li), -1), ours[k][li].reshape(len(li), -1))
            for k in NUMERIC_KEYS
            if k in ours and "loader/" + k in r
        )
        rep.check(tag, "DataLoader batches == diffpilot", ok, f"{len(li)} frames")
        # delta_timestamps: windows clamp at episode edges, padding flags mark outside frames
        if "delta/indices" in r:
            rep.check(tag, "delta_timestamps windows/padding", *_check_delta(r, ours, ds))
    return info


def peer_read(
    rep: Report, tag: str, peer: Path, work: Path, root: Path, backend: str, opt, ds, ours, smoke_test: bool, info: dict
) -> tuple[dict, np.ndarray] | None:
    """lerobot opens the dataset at `root` (the peer's `read`), passes its own checks, and returns every frame equal
    to diffpilot's reading `ours` of it: (what the peer returned, the indices it fetched), or None when it could not."""
    name = root.name
    npz = work / f"lerobot_read_{name}_{backend}.npz"
    rc, out = run_peer(
        peer,
        [
            "read",
            str(root),
            str(npz),
            "--video-backend",
            backend,
            "--max-episodes",
            "0",
            *([] if smoke_test else ["--no-policy-smoke"]),
        ],
        work / f"peer_read_{name}_{backend}.log",
        opt.timeout,
    )
    if rc == 2:
        rep.add(tag, "lerobot opens diffpilot dataset", "SKIP", out.strip().splitlines()[-1] if out else "")
        return None
    side = {}
    side_path = npz.with_suffix(".json")
    if side_path.exists():
        side = json.loads(side_path.read_text())
        info.setdefault("peer_versions", side.get("versions"))
        info[f"lerobot_checks_{name}_{backend}"] = side.get("checks")
        if smoke_test:
            info[f"policy_smoke_{backend}"] = side.get("policy_smoke")
    if not npz.exists():
        rep.check(tag, "lerobot opens diffpilot dataset", False, f"rc={rc}\n{tail(out)}")
        return None
    rep.check(tag, "lerobot opens diffpilot dataset", True, f"video backend {side.get('video_backend')}")
    lr_checks = side.get("checks") or {}
    bad = {k: v for k, v in lr_checks.items() if v != "ok"}
    rep.check(
        tag,
        "lerobot's own checks (len, features, dtypes, ...)",
        bool(lr_checks) and not bad,
        f"{len(lr_checks) - len(bad)}/{len(lr_checks)} ok" + "".join(f"\n    | {k}: {v}" for k, v in bad.items()),
    )
    smoke = side.get("policy_smoke")
    if smoke:
        rep.check(
            tag,
            "lerobot DiffusionPolicy train step + select_action",
            bool(smoke.get("ok")),
            f"loss {smoke['loss']:.4f}, action {smoke.get('action_shape')}"
            if smoke.get("ok")
            else smoke.get("error", ""),
        )
    r = dict(np.load(npz))
    idx = r["fetched_indices"]
    rep.check(tag, "every frame fetched by index", len(idx) == ds.num_frames, f"{len(idx)}/{ds.num_frames}")
    compare_numeric(
        rep,
        tag,
        "num_frames / num_episodes / fps",
        np.array([r["num_frames"], r["num_episodes"], r["fps"]]),
        np.array([ds.num_frames, ds.num_episodes, ds.fps], dtype=np.int64),
    )
    compare_numeric(
        rep,
        tag,
        "episode lengths",
        r["episode_lengths"],
        (ds.episode_ranges[:, 1] - ds.episode_ranges[:, 0]).astype(np.int64),
    )
    for k in NUMERIC_KEYS:
        if k in ours:
            if k not in r:
                rep.check(tag, f"ds[i]['{k}'] == diffpilot", False, "missing in lerobot output")
                continue
            compare_numeric(rep, tag, f"ds[i]['{k}'] == diffpilot", r[k], ours[k][idx])
    return r, idx


def direction_s(rep: Report, peer: Path, work: Path, backend: str, opt) -> dict:
    """`diffpilot dataset split` and `merge` outputs of direction A's dataset: lerobot opens each and returns what
    diffpilot reads, and the parts hold the source's episodes unchanged."""
    from diffpilot.policies.datasets.edit import merge_datasets, split_dataset

    d = "S"
    info: dict = {}
    source = work / "diffpilot_written"
    try:
        parts = split_dataset(source, {"even": [0, 2, 4], "odd": [1, 3]}, work / "split")
        merged = merge_datasets([parts["odd"], parts["even"]], work / "merged")
        source_ds, whole = read_ours(source)
    except Exception as exc:
        rep.check(d, "diffpilot dataset split + merge", False, f"{type(exc).__name__}: {exc}")
        return info
    ranges = source_ds.episode_ranges
    for root, episodes in ((parts["even"], [0, 2, 4]), (parts["odd"], [1, 3]), (merged, [1, 3, 0, 2, 4])):
        ds, ours = read_ours(root)
        rows = np.concatenate([np.arange(*ranges[e]) for e in episodes])
        for k in ("observation.state", "action"):
            compare_numeric(rep, d, f"{root.name}: {k} == source episodes {episodes}", ours[k], whole[k][rows])
        mae, most = _mae(ours["observation.image"], whole["observation.image"][rows])
        limit = opt.truth_mae_max
        rep.check(
            d, f"{root.name}: observation.image vs source (re-encoded)", mae <= limit, f"MAE {mae:.3f} max {most}"
        )
        read = peer_read(rep, f"S/{root.name}", peer, work, root, backend, opt, ds, ours, False, info)
        if read is not None and "observation.image" in read[0]:
            frames, idx = read[0]["observation.image"].transpose(0, 2, 3, 1), read[1]
            mae, most = _mae(frames, ours["observation.image"][idx])
            rep.check(
                f"S/{root.name}",
                "ds[i]['observation.image'] vs diffpilot decode",
                mae <= opt.decoder_mae_max,
                f"MAE {mae:.3f} max {most} (limit {opt.decoder_mae_max})",
            )
    return info


def _check_delta(r, ours, ds) -> tuple[bool, str]:
    ranges = ds.episode_ranges
    ep_of = np.repeat(np.arange(len(ranges)), ranges[:, 1] - ranges[:, 0])
    offsets = {"observation.state": np.array([-1, 0]), "action": np.arange(-1, 15)}
    for n, i in enumerate(r["delta/indices"]):
        lo, hi = ranges[ep_of[i]]
        for k, off in offsets.items():
            if "delta/" + k not in r:
                continue
            want_idx = np.clip(i + off, lo, hi - 1)
            want_pad = (i + off < lo) | (i + off >= hi)
            if not np.array_equal(r["delta/" + k][n], ours[k][want_idx]):
                return False, f"{k} window at index {int(i)} differs from diffpilot rows {want_idx.tolist()}"
            if not np.array_equal(r[f"delta/{k}_is_pad"][n], want_pad):
                return (
                    False,
                    f"{k}_is_pad at index {int(i)}: {r[f'delta/{k}_is_pad'][n].tolist()} vs {want_pad.tolist()}",
                )
    return True, f"{len(r['delta/indices'])} items (episode starts, middles, ends)"


# ----------------------------------------------------------------------------
# direction B: lerobot -> diffpilot
# ----------------------------------------------------------------------------


def direction_b(rep: Report, peer: Path, work: Path, opt) -> dict:
    d = "B"
    info: dict = {}
    out_dir = work / "lerobot_written"
    rc, out = run_peer(peer, ["write", str(out_dir), "--vcodec", opt.vcodec], work / "peer_write.log", opt.timeout)
    truth_path = work / "lerobot_written_truth.npz"
    if rc != 0 or not truth_path.exists():
        rep.check(d, "lerobot writes a dataset (LeRobotDataset.create)", False, f"rc={rc}\n{tail(out)}")
        return info
    side = json.loads(truth_path.with_suffix(".json").read_text())
    info.update(
        vcodec=side.get("vcodec"),
        vcodec_reason=side.get("vcodec_reason"),
        video_info=side.get("video_info"),
        lerobot_readback_video_mae=side.get("lerobot_readback_video_mae_u8"),
        peer_versions=side.get("versions"),
    )
    rep.check(
        d,
        "lerobot writes a dataset (LeRobotDataset.create)",
        True,
        f"vcodec {side.get('vcodec')} ({side.get('video_info', {}).get('video.codec')})",
    )
    truth = np.load(truth_path)
    try:
        ds, ours = read_ours(out_dir)
    except Exception as exc:
        rep.check(d, "diffpilot LeRobotV3Dataset opens it", False, f"{type(exc).__name__}: {exc}")
        return info
    rep.check(d, "diffpilot LeRobotV3Dataset opens it", True, "")
    compare_numeric(
        rep,
        d,
        "num_frames / num_episodes / fps",
        np.array([ds.num_frames, ds.num_episodes, ds.fps]),
        np.array([len(truth["index"]), len(truth["episode_lengths"]), int(truth["fps"])]),
    )
    compare_numeric(
        rep,
        d,
        "episode lengths",
        (ds.episode_ranges[:, 1] - ds.episode_ranges[:, 0]).astype(np.int64),
        truth["episode_lengths"],
    )
    for k in (
        "observation.state",
        "action",
        "timestamp",
        "frame_index",
        "episode_index",
        "index",
        "task_index",
    ):
        if k not in ours:
            rep.check(d, f"diffpilot '{k}' == truth", False, "missing in diffpilot reading")
            continue
        compare_numeric(rep, d, f"diffpilot '{k}' == truth", ours[k], truth[k])
    want_tasks = [side["tasks"][str(i)] for i in range(len(side["tasks"]))]
    rep.check(d, "tasks (by task_index)", list(ds.tasks) == want_tasks, f"{list(ds.tasks)} vs {want_tasks}")
    if "observation.image" in ours:
        mae, mx = _mae(ours["observation.image"], truth["observation.image"])
        lr = side.get("lerobot_readback_video_mae_u8")
        info["diffpilot_video_mae_vs_truth"] = mae
        rep.check(
            d,
            "diffpilot video decode vs truth",
            mae <= opt.truth_mae_max,
            f"MAE {mae:.3f} max {mx} (limit {opt.truth_mae_max}); lerobot's own read-back MAE {lr:.3f}",
            mae=mae,
        )
        rep.check(
            d,
            "diffpilot decode ~ lerobot's own decode",
            lr is not None and abs(mae - lr) <= opt.decoder_mae_max,
            f"|{mae:.3f} - {lr:.3f}| <= {opt.decoder_mae_max}",
        )
    else:
        rep.check(d, "diffpilot video decode vs truth", False, "observation.image not decoded")
    missing = sorted(set(ds.features) - set(ds.stats))
    rep.check(d, "stats.json covers every feature", not missing, f"missing {missing}" if missing else "")
    return info


# ----------------------------------------------------------------------------


POLICY_PEER = REPO / "compat" / "lerobot_policy_peer.py"
# (variant, scheduler, inference steps): a state policy under both schedulers, one camera with a shared encoder,
# two cameras with one encoder each plus an environment state (the condition reordered).
POLICY_CASES = (("state", "DDPM", None), ("state", "DDIM", 10), ("image", "DDIM", 10), ("image_env", "DDPM", None))


def peer_version(peer: Path) -> str:
    probe = subprocess.run(
        [str(peer), "-c", "import importlib.metadata as m; print(m.version('lerobot'))"], capture_output=True, text=True
    )
    return probe.stdout.strip() or "unknown"


def direction_p(rep: Report, peer: Path, work: Path, opt) -> dict:
    """LeRobot saves DiffusionPolicy checkpoints with reference chunks; `diffpilot import lerobot` must give the
    same chunks for the same observations and initial noise (policies/lerobot_import.py)."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file

    from diffpilot.policies.lerobot_import import import_lerobot

    version = peer_version(peer)
    d, info = f"lerobot {version}→diffpilot policy", {}
    for variant, scheduler, steps in POLICY_CASES:
        name = f"{variant}_{scheduler.lower()}"
        out = work / f"policies_{version}" / name
        args = ["--out", str(out), "--variant", variant, "--scheduler", scheduler]
        args += ["--steps", str(steps)] if steps else []
        rc, text = run_peer(peer, args, work / f"policy_{version}_{name}.log", opt.timeout, POLICY_PEER)
        if rc != 0:
            rep.check(d, f"{name}: lerobot saves the policy", False, f"rc={rc}\n{tail(text)}")
            continue
        try:
            policy = import_lerobot(out)
            ref = load_file(str(out / "reference.safetensors"))
            with safe_open(str(out / "reference.safetensors"), "pt") as f:
                meta = f.metadata()
            window = {k[len("window.") :]: v for k, v in ref.items() if k.startswith("window.")}
            torch.manual_seed(int(meta["seed"]))
            with torch.no_grad():
                chunk = policy.predict_chunk(window, noise=ref["noise"])
            start, expected = int(meta["start"]), ref["actions"]
            diff = float((chunk[:, start : start + expected.shape[1]] - expected).abs().max())
        except Exception as exc:
            rep.check(d, f"{name}: imported chunks == lerobot", False, f"{type(exc).__name__}: {exc}")
            continue
        half_range = 250.0  # the peer's action statistics span ~500 units
        info[name] = {"max_abs_diff": diff, "max_abs_diff_normalized": diff / half_range}
        rep.check(
            d,
            f"{name}: imported chunks == lerobot ({policy.config.sampler.name})",
            diff / half_range <= 1e-5,
            f"max |diff| {diff:.2e} action units ({diff / half_range:.1e} normalised)",
            max_abs_diff=diff,
        )
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--peer-python",
        type=Path,
        default=DEFAULT_PEER,
        help="python of the lerobot peer venv (default: .venv-compat/bin/python)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="JSON results (default bench/results/lerobot_compat.json)",
    )
    p.add_argument("--workdir", type=Path, default=None, help="keep datasets/logs here (default: temp dir, removed)")
    p.add_argument("--backends", default="torchcodec,pyav", help="lerobot video backends to read with")
    p.add_argument("--vcodec", default="auto", help="codec for lerobot's writer (auto = lerobot default libsvtav1)")
    p.add_argument(
        "--decoder-mae-max",
        type=float,
        default=1.0,
        help="max mean |diffpilot decode - lerobot decode| in uint8 levels (same file)",
    )
    p.add_argument(
        "--truth-mae-max",
        type=float,
        default=8.0,
        help="max mean |decoded - written| in uint8 levels (lossy codec)",
    )
    p.add_argument(
        "--no-policy-smoke",
        dest="policy_smoke",
        action="store_false",
        help="skip lerobot DiffusionPolicy train-step on diffpilot's dataset",
    )
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per peer call")
    p.add_argument(
        "--policy-peer-python",
        type=Path,
        action="append",
        default=[],
        help="another LeRobot venv's python for the policy import check only (e.g. LeRobot 0.6 on Python 3.12)",
    )
    opt = p.parse_args(argv)

    peer = opt.peer_python if opt.peer_python.is_absolute() else (Path.cwd() / opt.peer_python)
    if not peer.exists():
        print(f"peer python {peer} not found: build the lerobot venv first (make compat)", file=sys.stderr)
        return 2
    probe = subprocess.run(
        [str(peer), "-c", "import lerobot, importlib.metadata as m; print(m.version('lerobot'))"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        print(f"peer python {peer} cannot import lerobot:\n{probe.stderr[-2000:]}", file=sys.stderr)
        return 2

    keep = opt.workdir is not None
    work = opt.workdir.resolve() if keep else Path(tempfile.mkdtemp(prefix="lerobot_compat_"))
    if keep and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)

    rep = Report()
    t0 = time.perf_counter()
    backends = [b.strip() for b in opt.backends.split(",") if b.strip()]
    try:
        info_a = direction_a(rep, peer, work, backends, opt)
        info_b = direction_b(rep, peer, work, opt)
        info_s = direction_s(rep, peer, work, backends[0], opt)
        info_p = {peer_version(peer): direction_p(rep, peer, work, opt)}
        for extra in opt.policy_peer_python:
            extra = extra if extra.is_absolute() else Path.cwd() / extra  # not resolved: a venv's python is a link
            info_p[peer_version(extra)] = direction_p(rep, extra, work, opt)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    rep.print_table()
    ok = not rep.failed
    result = {
        "ok": ok,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - t0, 2),
        "lerobot_version": probe.stdout.strip(),
        "peer_python": str(peer),
        "host": {"python": platform.python_version(), "platform": platform.platform()},
        "counts": {s: sum(r["status"] == s for r in rep.rows) for s in ("PASS", "FAIL", "SKIP")},
        "diffpilot_to_lerobot": info_a,
        "lerobot_to_diffpilot": info_b,
        "split_and_merge": info_s,
        "policy_import": info_p,
        "checks": rep.rows,
        "workdir": str(work) if keep else None,
    }
    atomic_write_json(opt.out, result)
    print(f"{'PASS' if ok else 'FAIL'}: results written to {opt.out}" + (f" (datasets/logs in {work})" if keep else ""))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
