"""Small matplotlib figures the commands write (Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diffpilot.atomic import atomic_path


def plot_weight_sweep(
    path: str | Path, weights: list[float], rates: list[float], cis: list, parents: list[str]
) -> None:
    """Success (with 95 % intervals) against the weight on the second parent of a two-policy composition."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    lo = [r - c[0] for r, c in zip(rates, cis)]
    hi = [c[1] - r for r, c in zip(rates, cis)]
    ax.errorbar(weights, rates, yerr=[lo, hi], marker="o", capsize=3)
    ax.set_xlabel(f"weight on {parents[1]}  (1 − weight on {parents[0]})")
    ax.set_ylabel("success rate (95 % CI)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title("GPC weight sweep")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def plot_episode(
    path: str | Path,
    episode: dict[str, np.ndarray],
    fps: float,
    title: str,
    chunks: list[tuple[int, np.ndarray]] | None = None,
    action_key: str = "action",
) -> None:
    """One panel per low-dimensional float feature of an episode ((T, D), D ≤ 32) against time; `chunks` (start
    frame, (horizon, A) chunk) are drawn dashed over the action panel, in each dimension's colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {
        k: v.reshape(len(v), -1)
        for k, v in episode.items()
        if v.ndim <= 2 and np.issubdtype(v.dtype, np.floating) and v.reshape(len(v), -1).shape[1] <= 32
    }
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.2 * len(panels)), sharex=True, squeeze=False)
    for ax, (key, values) in zip(axes[:, 0], panels.items()):
        t = np.arange(len(values)) / fps
        colours = [f"C{i % 10}" for i in range(values.shape[1])]
        for d in range(values.shape[1]):
            ax.plot(t, values[:, d], color=colours[d], lw=1.2)
        if key == action_key and chunks:
            for start, chunk in chunks:
                tc = (start + np.arange(len(chunk))) / fps
                for d in range(min(chunk.shape[1], values.shape[1])):
                    ax.plot(tc, chunk[:, d], color=colours[d], lw=0.8, ls="--", alpha=0.7)
        ax.set_ylabel(key, fontsize=8)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("time (s)" + ("; dashed: the policy's predicted chunks" if chunks else ""))
    axes[0, 0].set_title(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
