"""DiffusionDrive with a distilled score head: which of its 20 proposals to drive.

DiffusionDrive's focal-loss confidence learns which anchor is nearest the expert; it does not know which
proposal the simulator would score well, and on this test split the best of the 20 proposals scores ~95 PDMS
while the most confident one scores ~65. Here the trained policy's proposals on the training scenes are
simulated and scored (privileged: the training scenes' logged futures — what a scorer-distillation planner such
as Hydra-MDP learns from), a small MLP on each proposal's final query features, its trajectory and simple geometry
from the agent input (clearance to the agents' constant-velocity forecast, drivable and red-light raster under each
pose) learns to predict its sub-scores, and the PDM score they make picks the trajectory at test time (no
simulator at test time). Only the head trains.

1. proposals + features of the BC policy on the first --train-scenes train scenes (cached in an npz)
2. each proposal simulated and scored: the sub-scores NC, DAC, EP, TTC, C (EP normalised by PDM-Closed's plan)
3. the head (predicting the five sub-scores, combined by the PDMS formula) fitted on 90 % of the scenes; on the
   other 10 %: PDMS of the focal choice, the head's choice, the oracle
4. both policies evaluated on the first --scenes test scenes (open loop, EC from the previous frame) in this run;
   the rows go to bench/results/driving.json as diffusiondrive_bc (the policy alone, refreshed) and diffusiondrive
   (the policy with its score head: driving.json's DiffusionDrive)

  OMP_NUM_THREADS=1 python bench/driving_score_head.py --policy runs/driving/checkpoints_long/diffusiondrive \\
      --train-scenes 14400 --scenes 500 --hidden 512 --epochs 100 --seed 0
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from driving_policies import latency_b1  # bench/ (this script's folder) is on sys.path
from tqdm import tqdm

from diffpilot.atomic import atomic_path, atomic_write_json
from diffpilot.envs.driving import evaluate_open_loop, observe_batch, scored_split
from diffpilot.policies.driving.diffusiondrive import SCORE_TERMS, DiffusionDriveConfig, DiffusionDrivePolicy
from diffpilot.policies.registry import load_policy
from diffpilot.sim.evaluate import score_scene_proposals
from diffpilot.sim.planners import PDMClosedPlanner
from diffpilot.sim.scenarios import make_scene, make_split, split_seeds

RESULTS = Path(__file__).resolve().parent / "results"
HEAD_INPUTS = ("features", "trajectories_normalized", "geometry")  # what the score head reads per proposal


def score_head_dir(args) -> Path:
    """Where the policy with its head is saved: --output, or beside --policy with a _score_head suffix."""
    return Path(args.output or Path(args.policy).with_name(Path(args.policy).name + "_score_head"))


def with_score_head(base: DiffusionDrivePolicy, hidden: int) -> DiffusionDrivePolicy:
    """A copy of `base` (same weights) with a fresh score head of `hidden` units."""
    config = DiffusionDriveConfig.from_dict({**base.config.to_dict(), "score_head_hidden": hidden})
    policy = DiffusionDrivePolicy(config)
    missing, unexpected = policy.load_state_dict(base.state_dict(), strict=False)
    if unexpected or any(not k.startswith("score_head.") for k in missing):
        raise RuntimeError(f"weights do not fit: missing {missing}, unexpected {unexpected}")
    return policy.eval()


def proposals_and_scores(policy: DiffusionDrivePolicy, seeds: list[int], batch: int = 64) -> dict[str, np.ndarray]:
    """For each training scene (by seed): the policy's K proposals with their features and focal confidence, and
    each proposal's sub-scores (N, K, 5) and PDMS (N, K) — EP normalised by NAVSIM's PDM-Closed plan."""
    keys = ("features", "trajectories_normalized", "geometry", "trajectories", "confidence")
    parts: dict[str, list] = {k: [] for k in keys}
    subs, pdms = [], []
    reference = PDMClosedPlanner()
    for lo in tqdm(range(0, len(seeds), batch), desc="proposals + scores", unit="batch"):
        scenes = [make_scene(s) for s in seeds[lo : lo + batch]]
        d = policy.plan_details(observe_batch(scenes))
        for key in parts:
            parts[key].append(d[key])
        for scene, trajs in zip(scenes, d["trajectories"]):
            s = score_scene_proposals(scene, trajs, reference.plan(scene))
            subs.append(np.stack([getattr(s, t) for t in SCORE_TERMS], -1))
            pdms.append(s.pdms)
    out = {k: np.concatenate(v) for k, v in parts.items()}
    out["subscores"], out["pdms"], out["seed"] = np.stack(subs), np.stack(pdms), np.asarray(seeds)
    return out


def cached_proposals(policy: DiffusionDrivePolicy, seeds: list[int], cache: Path) -> dict[str, np.ndarray]:
    """proposals_and_scores, kept in an npz beside the policy (scoring is the slow part: ~8 scenes/s)."""
    data: dict[str, np.ndarray] = {}
    if cache.is_file():
        with np.load(cache) as z:
            data = {k: z[k] for k in z.files}
        n = min(len(data["seed"]), len(seeds))
        if not np.array_equal(data["seed"][:n], seeds[:n]) or "geometry" not in data:
            data = {}  # another seed list, or written before the head read geometry: start over
    done = len(data.get("seed", ()))
    if done < len(seeds):  # score only the scenes the cache lacks
        more = proposals_and_scores(policy, seeds[done:])
        data = {k: np.concatenate([data[k], v]) for k, v in more.items()} if data else more
    with atomic_path(cache) as tmp, open(tmp, "wb") as f:
        np.savez(f, **data)
    return {k: v[: len(seeds)] for k, v in data.items()}


def time_planners(args) -> None:
    """Batch-1 planning latency of the base policy, the one with the score head and the vanilla baseline,
    interleaved scene by scene (each scene planned by all three in turn, so drifts of the machine's speed hit
    all alike; median over --latency-passes passes of --latency-scenes test scenes), and the time per scene
    with all --latency-scenes scenes in one batch, into driving.json."""
    dirs = {
        "diffusiondrive_bc": args.policy,
        "diffusiondrive": score_head_dir(args),
        "vanilla_diffusion": args.vanilla,
    }
    policies = {name: load_policy(d).eval() for name, d in dirs.items()}
    obs = observe_batch(make_split("test", args.latency_scenes))
    scenes = [{k: v[i : i + 1] for k, v in obs.items()} for i in range(args.latency_scenes)]
    for pol in policies.values():  # warm-up
        latency_b1(pol, {k: v[:5] for k, v in obs.items()})
    samples: dict[str, list[float]] = {n: [] for n in policies}
    for _ in tqdm(range(args.latency_passes), desc="latency passes"):
        for one in scenes:
            for name, pol in policies.items():
                t0 = time.perf_counter()
                pol.plan(one)
                samples[name].append(1e3 * (time.perf_counter() - t0))
    batched: dict[str, list[float]] = {n: [] for n in policies}  # all scenes in one batch: time per scene
    for _ in range(args.latency_passes):
        for name, pol in policies.items():
            t0 = time.perf_counter()
            pol.plan(obs)
            batched[name].append(1e3 * (time.perf_counter() - t0) / args.latency_scenes)
    path = RESULTS / "driving.json"
    report = json.loads(path.read_text())
    for name in policies:
        row = report["planners"][name]
        row["latency_ms"] = float(np.median(samples[name]))
        row["batch_latency_ms"] = float(np.median(batched[name]))
        row["batch_latency_scenes"] = args.latency_scenes
    p = report["planners"]
    for key, suffix in (("latency_ms", "b1"), ("batch_latency_ms", f"batch{args.latency_scenes}")):
        for planner in ("diffusiondrive_bc", "diffusiondrive"):
            ratio = p["vanilla_diffusion"][key] / p[planner][key]
            report["score_head"][f"latency_ratio_vanilla_over_{planner}_{suffix}"] = ratio
    report["score_head"].pop("latency_ratio_vanilla_over_score_head_b1", None)  # the older name
    atomic_write_json(path, report)
    print("batch 1, ms per scene:", {n: round(float(np.median(v)), 2) for n, v in samples.items()})
    print(f"batch {args.latency_scenes}, ms per scene:", {n: round(float(np.median(v)), 3) for n, v in batched.items()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", default="runs/driving/checkpoints_long/diffusiondrive")
    ap.add_argument("--train-scenes", type=int, default=14400, help="first N scenes of the train split")
    ap.add_argument("--scenes", type=int, default=500, help="first N scenes of the test split")
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--val-frac", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", default=None, help="where the policy with its head is saved (default: beside --policy)")
    ap.add_argument("--validate-only", action="store_true", help="fit the head, print validation, save nothing")
    ap.add_argument("--latency-only", action="store_true", help="re-time the saved planners at batch 1 and stop")
    ap.add_argument("--latency-scenes", type=int, default=50)
    ap.add_argument("--latency-passes", type=int, default=5)
    ap.add_argument("--vanilla", default="runs/driving/checkpoints/vanilla_diffusion")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.latency_only:
        time_planners(args)
        return
    t_start = time.perf_counter()

    base = load_policy(args.policy).eval()
    if not isinstance(base, DiffusionDrivePolicy) or base.config.variant != "anchored":
        raise SystemExit(f"--policy {args.policy}: expected an anchored DiffusionDrive checkpoint")
    seeds = list(split_seeds("train", args.train_scenes))
    props = cached_proposals(base, seeds, Path(args.policy).parent / "score_head_proposals.npz")

    n = len(props["pdms"])
    order = np.random.default_rng(0).permutation(n)
    val, train = order[: int(args.val_frac * n)], order[int(args.val_frac * n) :]
    torch.manual_seed(args.seed)  # the head's initial weights (fit_score_head seeds its own batch order)
    policy = with_score_head(base, args.hidden)
    losses = policy.fit_score_head(
        *(props[k][train] for k in HEAD_INPUTS), props["subscores"][train], epochs=args.epochs
    )
    with torch.no_grad():
        logits = policy.score_head(*(torch.as_tensor(props[k][val]) for k in HEAD_INPUTS))
        head = policy.score_head.pdm_score(logits).numpy()
    rows = np.arange(len(val))
    pv = props["pdms"][val]
    validation = {
        "scenes": len(val),
        "pdms_focal_choice": 100 * float(pv[rows, props["confidence"][val].argmax(1)].mean()),
        "pdms_head_choice": 100 * float(pv[rows, head.argmax(1)].mean()),
        "pdms_oracle_choice": 100 * float(pv.max(1).mean()),
        "pdms_mean_proposal": 100 * float(pv.mean()),
    }
    print("validation (train-split scenes held out from the head):", json.dumps(validation), flush=True)
    if args.validate_only:
        return
    out_dir = score_head_dir(args)
    policy.save_pretrained(out_dir)

    scenes, refs, humans = scored_split("test", args.scenes)
    path = RESULTS / "driving.json"
    report = json.loads(path.read_text())
    for name, pol in (("diffusiondrive_bc", base), ("diffusiondrive", policy)):
        res = evaluate_open_loop(pol, scenes, batch_size=64, reference_plans=refs, two_frame=True, human_plans=humans)
        row = res.table()
        row["batch_latency_ms"] = row.pop("latency_ms")
        old = report["planners"].get(name, {})
        row["latency_ms"] = old.get("latency_ms") if name == "diffusiondrive_bc" else None
        row["denoiser_calls"] = len(pol.timesteps())
        report["planners"][name] = row
        print(name, {k: round(v, 3) for k, v in row.items() if isinstance(v, float)}, flush=True)
    pdm = report["planners"].get("pdm_closed", {}).get("pdms")
    report["score_head"] = {
        "policy": args.policy,
        "saved_to": str(out_dir),
        "train_scenes": len(train),
        "proposals_scored": int(props["pdms"].size),
        "hidden": args.hidden,
        "epochs": args.epochs,
        "loss_first_last": [losses[0], losses[-1]],
        "validation": validation,
        "test_pdms_over_pdm_closed": report["planners"]["diffusiondrive"]["pdms"] / pdm if pdm else None,
        "seconds": round(time.perf_counter() - t_start, 1),
        "command": "OMP_NUM_THREADS=1 python bench/driving_score_head.py "
        + f"--policy {args.policy} --train-scenes {args.train_scenes} --scenes {args.scenes} --hidden {args.hidden} "
        + f"--epochs {args.epochs} --seed {args.seed}",
    }
    atomic_write_json(path, report)
    print(json.dumps(report["score_head"], indent=2))


if __name__ == "__main__":
    main()
