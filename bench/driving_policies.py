"""Learned driving planners on the synthetic NAVSIM-style test split (CPU): BC on PDM-Closed demonstrations,
then the v1 open-loop protocol. Adds ego_mlp, diffusiondrive (2 denoiser calls) and vanilla_diffusion (20)
beside the constant-velocity and PDM-Closed rows that bench/driving_scorer.py wrote in
bench/results/driving.json (the same first --scenes test scenes).

1. demonstrations: PDM-Closed (privileged, oracle forecast) on the first --train-scenes train scenes
   (envs.driving.write_demonstrations; skipped when the first --demo-dir already holds them; further
   comma-separated directories, written beforehand, are concatenated)
2. BC: each policy for at most its time budget (seconds) on one thread
3. evaluation: envs.driving.evaluate_open_loop, EC from the previous frame (two_frame); latency_ms is the
   planning time per scene at batch size 1 (median of --latency-scenes single-scene calls, measured for every
   saved learned planner in one interleaved pass at the end, median of 3), the batched per-scene time is kept
   as batch_latency_ms

  OMP_NUM_THREADS=1 python bench/driving_policies.py --train-scenes 1200 --scenes 500 \
      --budget-mlp 45 --budget-dd 255 --budget-vanilla 255
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from diffpilot.atomic import atomic_write_json
from diffpilot.envs.driving import evaluate_open_loop, load_demonstrations, observe_batch, write_demonstrations
from diffpilot.policies.diffusiondrive import DiffusionDriveConfig, DiffusionDrivePolicy
from diffpilot.policies.ego_mlp import EgoMLPPolicy, fit
from diffpilot.policies.registry import load_policy
from diffpilot.sim.planners import PDMClosedPlanner
from diffpilot.sim.scenarios import make_scene, split_seeds

RESULTS = Path(__file__).resolve().parent / "results"


def latency_b1(policy, obs: dict[str, np.ndarray], n: int) -> float:
    times = []
    for i in range(n):
        one = {k: v[i : i + 1] for k, v in obs.items()}
        t0 = time.perf_counter()
        policy.plan(one)
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-scenes", type=int, default=1200)
    ap.add_argument("--scenes", type=int, default=500, help="test scenes to evaluate on")
    ap.add_argument("--demo-dir", default="runs/driving/demos_train", help="demonstration directories, comma-separated")
    ap.add_argument("--ckpt-dir", default="runs/driving/checkpoints")
    ap.add_argument("--budget-mlp", type=float, default=45.0)
    ap.add_argument("--budget-dd", type=float, default=255.0)
    ap.add_argument("--budget-vanilla", type=float, default=255.0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--latency-scenes", type=int, default=50)
    ap.add_argument("--only", default="", help="comma-separated subset of ego_mlp,diffusiondrive,vanilla_diffusion")
    ap.add_argument("--latency-only", action="store_true", help="skip training and evaluation; re-time saved planners")
    args = ap.parse_args()
    torch.set_num_threads(1)

    t0 = time.perf_counter()
    parts = []
    for k, demo_dir in enumerate(Path(d) for d in args.demo_dir.split(",")):
        if not (demo_dir / "meta.json").is_file():
            if k:
                raise SystemExit(f"{demo_dir}: no demonstrations (only the first --demo-dir is written here)")
            write_demonstrations(demo_dir, "train", args.train_scenes, shard_size=300)
        parts.append(load_demonstrations(demo_dir))
    data = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    if len(set(data["token"])) != len(data["token"]):
        raise SystemExit("the demonstration directories overlap (a token appears twice)")
    demo_s = time.perf_counter() - t0
    print(f"{len(data['trajectory'])} demonstrations ({demo_s:.0f} s)", flush=True)

    policies = {
        "ego_mlp": (EgoMLPPolicy(), args.budget_mlp, 1e-3),
        "diffusiondrive": (DiffusionDrivePolicy(DiffusionDriveConfig(variant="anchored")), args.budget_dd, 1e-3),
        "vanilla_diffusion": (DiffusionDrivePolicy(DiffusionDriveConfig(variant="vanilla")), args.budget_vanilla, 1e-3),
    }
    if args.only:
        policies = {k: v for k, v in policies.items() if k in args.only.split(",")}
    if args.latency_only:
        policies = {}

    scenes = [make_scene(s) for s in split_seeds("test", args.scenes if policies else args.latency_scenes)]
    reference = PDMClosedPlanner()
    refs = [reference.plan(s) for s in scenes] if policies else []
    lat_obs = observe_batch(scenes[: args.latency_scenes])

    path = RESULTS / "driving.json"
    out = json.loads(path.read_text()) if path.is_file() else {"split": "test", "scenes": args.scenes, "planners": {}}
    if policies and out.get("scenes") != args.scenes:
        print(f"warning: driving.json holds {out.get('scenes')} scenes, this run evaluates {args.scenes}")
    training = out.setdefault("training", {})
    for name, (policy, budget, lr) in policies.items():
        policy.set_normalization(data)
        log = fit(policy, data, steps=100_000, batch_size=args.batch_size, lr=lr, time_budget_s=budget, log_every=500)
        policy.save_pretrained(Path(args.ckpt_dir) / name)
        res = evaluate_open_loop(policy, scenes, batch_size=64, reference_plans=refs, two_frame=True)
        row = res.table()
        row["batch_latency_ms"] = row.pop("latency_ms")
        row["latency_ms"] = latency_b1(policy, lat_obs, args.latency_scenes)
        if hasattr(policy.config, "variant"):
            row["denoiser_calls"] = len(policy.timesteps())
        out["planners"][name] = row
        by = defaultdict(list)
        for r in res.rows:
            by[r["family"]].append(100.0 * r["pdm_score"])
        out.setdefault("per_family_pdms", {})[name] = {
            f: {"scenes": len(v), "pdms": float(np.mean(v))} for f, v in sorted(by.items())
        }
        demos = len(data["trajectory"])
        training[name] = {**log, "budget_s": budget, "lr": lr, "batch_size": args.batch_size, "demos": demos}
        print(name, {k: round(v, 3) for k, v in row.items()}, log, flush=True)
        atomic_write_json(path, out)
    p = out["planners"]
    # latency of every saved learned planner measured again in one interleaved pass (same load for all)
    names = [n for n in ("ego_mlp", "diffusiondrive", "vanilla_diffusion") if (Path(args.ckpt_dir) / n).is_dir()]
    loaded = {n: load_policy(Path(args.ckpt_dir) / n) for n in names if n in p}
    samples: dict[str, list[float]] = {n: [] for n in loaded}
    for _ in range(3):
        for n, pol in loaded.items():
            samples[n].append(latency_b1(pol, lat_obs, args.latency_scenes))
    for n, vals in samples.items():
        p[n]["latency_ms"] = float(np.median(vals))
    if "diffusiondrive" in p and "vanilla_diffusion" in p:
        out["diffusiondrive_vs_vanilla"] = {
            "latency_ratio_b1": p["vanilla_diffusion"]["latency_ms"] / p["diffusiondrive"]["latency_ms"],
            "pdms_delta": p["diffusiondrive"]["pdms"] - p["vanilla_diffusion"]["pdms"],
        }
    if "diffusiondrive" in p and "pdm_closed" in p:
        out["diffusiondrive_over_pdm_closed"] = p["diffusiondrive"]["pdms"] / p["pdm_closed"]["pdms"]
    flags = [f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}") for k, v in vars(args).items()]
    kept = [f for f, v in zip(flags, vars(args).values()) if v not in ("", False)]
    command = "OMP_NUM_THREADS=1 python bench/driving_policies.py " + " ".join(kept)
    runs = out.setdefault("policy_runs", [])
    runs.append(
        {
            "command": command,
            "trained": list(policies),
            "env": {
                "python": platform.python_version(),
                "torch": torch.__version__,
                "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                "torch_threads": torch.get_num_threads(),
            },
        }
    )
    atomic_write_json(path, out)


if __name__ == "__main__":
    main()
