"""Batch-1 planning latency of DiffusionDrive (2 decoder calls, with and without the score head) against the
vanilla trajectory diffusion baseline (20 DDIM calls) at several torch thread counts, on the same test scenes.

Latency does not depend on the weights' values (no data-dependent control flow), so the planners are built from
their default configs with seeded random weights, or loaded with --dd / --dd-head / --vanilla checkpoints. Every
scene is planned by the three in turn (drifts of the machine's speed hit all alike); median per planner over
--passes passes of --scenes test scenes. Writes bench/results/driving_latency.json.

  OMP_NUM_THREADS=2 python bench/driving_latency.py --threads 1,2
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from diffpilot.atomic import atomic_write_json
from diffpilot.envs.driving import observe_batch
from diffpilot.policies.driving.diffusiondrive import DiffusionDriveConfig, DiffusionDrivePolicy
from diffpilot.policies.registry import load_policy
from diffpilot.sim.scenarios import make_split

RESULTS = Path(__file__).resolve().parent / "results"


def planner(path: str | None, **config) -> DiffusionDrivePolicy:
    """A saved planner, or one with seeded random weights of the given config."""
    if path:
        return load_policy(path).eval()
    torch.manual_seed(0)
    return DiffusionDrivePolicy(DiffusionDriveConfig(**config)).eval()


def time_planners(policies: dict, scenes: list[dict], passes: int) -> dict[str, float]:
    """Median ms per scene of `plan` at batch 1 for each planner, interleaved scene by scene."""
    for pol in policies.values():  # warm-up
        for one in scenes[:5]:
            pol.plan(one)
    samples: dict[str, list[float]] = {n: [] for n in policies}
    for _ in tqdm(range(passes), desc=f"latency, {torch.get_num_threads()} thread(s)"):
        for one in scenes:
            for name, pol in policies.items():
                t0 = time.perf_counter()
                pol.plan(one)
                samples[name].append(1e3 * (time.perf_counter() - t0))
    return {n: float(np.median(v)) for n, v in samples.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2", help="torch thread counts, comma-separated")
    ap.add_argument("--scenes", type=int, default=50, help="first N test-split scenes")
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--dd", default=None, help="a DiffusionDrive checkpoint (default: random weights)")
    ap.add_argument("--dd-head", default=None, help="a DiffusionDrive checkpoint with its score head")
    ap.add_argument("--vanilla", default=None, help="a vanilla diffusion checkpoint")
    ap.add_argument("--head-hidden", type=int, default=256, help="score-head width for the random-weight planner")
    ap.add_argument("--out", type=Path, default=RESULTS / "driving_latency.json")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",") if t]
    if not threads or min(threads) < 1:
        raise SystemExit(f"--threads={args.threads!r}: expected positive integers, e.g. 1,2")

    policies = {
        "diffusiondrive": planner(args.dd, variant="anchored"),
        "diffusiondrive_score_head": planner(args.dd_head, variant="anchored", score_head_hidden=args.head_hidden),
        "vanilla_diffusion": planner(args.vanilla, variant="vanilla"),
    }
    obs = observe_batch(make_split("test", args.scenes))
    scenes = [{k: v[i : i + 1] for k, v in obs.items()} for i in range(args.scenes)]
    rows = []
    with torch.inference_mode():
        for n in threads:
            torch.set_num_threads(n)
            ms = time_planners(policies, scenes, args.passes)
            ratios = {f"vanilla_over_{k}": ms["vanilla_diffusion"] / ms[k] for k in ms if k != "vanilla_diffusion"}
            rows.append({"threads": n, "latency_ms": ms, "ratios": ratios})
            print(n, "thread(s):", {k: round(v, 3) for k, v in ms.items()}, {k: round(v, 2) for k, v in ratios.items()})
    weights = {"dd": args.dd, "dd_head": args.dd_head, "vanilla": args.vanilla}
    report = {
        "batch": 1,
        "scenes": args.scenes,
        "passes": args.passes,
        "weights": {k: v or "random (seed 0), default config" for k, v in weights.items()},
        "machine": platform.processor() or platform.machine(),
        "rows": rows,
    }
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
