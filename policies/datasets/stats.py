"""Normalisation statistics as LeRobot stores them: per feature min / max / mean / std / count and the
quantiles q01 … q99; images per channel in [0, 1] with shape (3, 1, 1). Computed per episode and pooled,
so the writer's meta/stats.json and statistics computed at load time are one computation."""

from __future__ import annotations

import numpy as np

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_KEYS = tuple(f"q{round(q * 100):02d}" for q in QUANTILES)


def vector_stats(x: np.ndarray) -> dict[str, np.ndarray]:
    """Stats of a numeric feature over time.

    Args:
        x: (T,) or (T, D) array.
    Returns:
        min/max/mean/std/q01..q99 of shape (1,) or (D,), count of shape (1,).
    """
    raw = x.reshape(len(x), -1)
    x2 = raw.astype(np.float64)
    out = {"min": raw.min(0), "max": raw.max(0), "mean": x2.mean(0), "std": x2.std(0)}
    out["count"] = np.array([len(x)], dtype=np.int64)
    for key, q in zip(QUANTILE_KEYS, np.quantile(x2, QUANTILES, axis=0), strict=True):
        out[key] = q
    return out


def _sample_count(n: int) -> int:
    """How many frames of an n-frame episode enter image stats (all up to 100, then ~n**0.75)."""
    return n if n <= 100 else max(100, min(int(n**0.75), 10000))


def image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel stats of uint8 frames scaled to [0, 1].

    Args:
        frames: (T, H, W, 3) uint8.
    Returns:
        min/max/mean/std/q01..q99 of shape (3, 1, 1); count (1,) = frames sampled.
    """
    idx = np.round(np.linspace(0, len(frames) - 1, _sample_count(len(frames)))).astype(int)
    step = max(1, max(frames.shape[1:3]) // 150) if max(frames.shape[1:3]) >= 300 else 1
    px = frames[idx, ::step, ::step].reshape(-1, frames.shape[-1]).astype(np.float64) / 255.0
    out = {"min": px.min(0), "max": px.max(0), "mean": px.mean(0), "std": px.std(0)}
    out["count"] = np.array([len(idx)], dtype=np.int64)
    for key, q in zip(QUANTILE_KEYS, np.quantile(px, QUANTILES, axis=0), strict=True):
        out[key] = q
    return {k: (v if k == "count" else v.reshape(-1, 1, 1)) for k, v in out.items()}


def aggregate_stats(per_episode: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Pool one feature's per-episode stats into dataset stats.

    min/max/mean/std/count are exact; quantiles are count-weighted means of the
    episode quantiles (the same approximation lerobot uses).
    """
    counts = np.array([float(s["count"][0]) for s in per_episode])
    total = counts.sum()
    w = counts.reshape((-1,) + (1,) * np.ndim(per_episode[0]["mean"])) / total
    means = np.stack([s["mean"] for s in per_episode])
    mean = (means * w).sum(0)
    var = ((np.stack([s["std"] for s in per_episode]) ** 2 + (means - mean) ** 2) * w).sum(0)
    out = {
        "min": np.min(np.stack([s["min"] for s in per_episode]), 0),
        "max": np.max(np.stack([s["max"] for s in per_episode]), 0),
        "mean": mean,
        "std": np.sqrt(var),
        "count": np.array([int(total)], dtype=np.int64),
    }
    for key in QUANTILE_KEYS:
        if all(key in s for s in per_episode):
            out[key] = (np.stack([s[key] for s in per_episode]) * w).sum(0)
    return out


def compute_stats(
    arrays: dict[str, np.ndarray], episode_ranges: np.ndarray | None = None
) -> dict[str, dict[str, np.ndarray]]:
    """Dataset stats of every feature: images (N, H, W, 3) uint8 per channel, vectors (N, D) per dimension.
    With `episode_ranges` ((E, 2) frame ranges) each episode is summarised first, then pooled."""
    n = len(next(iter(arrays.values()))) if arrays else 0
    ranges = np.asarray(episode_ranges if episode_ranges is not None else [[0, n]]).reshape(-1, 2)
    out = {}
    for key, arr in arrays.items():
        is_image = arr.ndim == 4 and arr.shape[-1] == 3 and arr.dtype == np.uint8
        summarise = image_stats if is_image else vector_stats
        pooled = aggregate_stats([summarise(arr[lo:hi]) for lo, hi in ranges])
        shape = (3, 1, 1) if is_image else (arr.shape[1:] or (1,))
        out[key] = {k: (v if k == "count" else np.asarray(v).reshape(shape)) for k, v in pooled.items()}
    return out
