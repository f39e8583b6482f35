"""Small matplotlib figures the commands write (Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

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
