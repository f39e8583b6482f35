"""95 % intervals of a driving evaluation's PDMS and EPDMS: a percentile bootstrap over its scenes' scores.

NAVSIM reports the mean of per-scene scores; resampling the scenes (with replacement) gives the interval that mean
has over scenes like these. Reads an evaluation's scores.csv (`diffpilot eval task=driving …`).

  python bench/scene_bootstrap.py --scores runs/eval/diffusiondrive_score_head/scores.csv \\
      --output bench/results/shipped/diffusiondrive_score_head/interval.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from diffpilot.atomic import atomic_write_json

COLUMNS = {"pdms": "pdm_score", "epdms": "extended_pdm_score"}


def bootstrap_interval(scores: np.ndarray, resamples: int, seed: int) -> tuple[float, float]:
    """(low, high) of the 2.5th and 97.5th percentiles of the mean of `scores` (N,) over resampled scenes."""
    rng = np.random.default_rng(seed)
    means = scores[rng.integers(0, len(scores), size=(resamples, len(scores)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scores", type=Path, required=True, help="an evaluation's scores.csv")
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    table = pd.read_csv(args.scores)
    table = table[table["token"] != "average"]
    report = {"scores": str(args.scores), "scenes": len(table), "resamples": args.resamples, "seed": args.seed}
    for name, column in COLUMNS.items():
        values = table[column].astype(float).to_numpy() * 100
        low, high = bootstrap_interval(values, args.resamples, args.seed)
        report[name] = round(float(values.mean()), 2)
        report[f"{name}_ci95"] = [round(low, 2), round(high, 2)]
        print(f"{name.upper()} {values.mean():.1f} (95 % CI {low:.1f}–{high:.1f}) over {len(values)} scenes")
    if args.output:
        atomic_write_json(args.output, report)


if __name__ == "__main__":
    main()
