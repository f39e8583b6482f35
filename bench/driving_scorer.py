"""NAVSIM-style driving benchmark on the synthetic test split (numpy only, CPU).

1. Test-split generation time for --generate scenes.
2. Scorer throughput: proposals scored per second by the vectorised scorer (all proposals of a scene in one
   call) against a naive loop that scores the same proposals one at a time with the same scorer, in the
   same run -> bench/results/driving_scorer.json.
3. Constant velocity and PDM-Closed (NAVSIM's, constant-velocity forecasts: EP's reference; and the privileged
   one, which forecasts with the scene's logged future: the demonstrator and the scenes' human driver for v2's
   human filter) on the first --scenes test scenes: PDMS / EPDMS with every sub-score, and v2's two-stage EPDMS
   on the first --two-stage-scenes of them (sim/two_stage.py) -> bench/results/driving.json.

  OMP_NUM_THREADS=1 python bench/driving_scorer.py --generate 1000 --scenes 500
  OMP_NUM_THREADS=1 python bench/driving_scorer.py --generate 20 --throughput-only
  OMP_NUM_THREADS=1 python bench/driving_scorer.py --generate 500 --scenes 500 --skip-throughput
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

from diffpilot.atomic import atomic_write_json
from diffpilot.envs.driving import BuiltinPlanner, evaluate_two_stage, two_stage_split
from diffpilot.sim.evaluate import evaluate_planners
from diffpilot.sim.planners import (
    PRIVILEGED_PDM_CLOSED,
    ConstantVelocityPlanner,
    PDMClosedPlanner,
    simulate_in_scene,
)
from diffpilot.sim.scenarios import make_split
from diffpilot.sim.scoring import ScoringContext, score_states

RESULTS = Path(__file__).resolve().parent / "results"
# rows scored by another scorer version or against another reference are not merged into driving.json
SCORER_VERSION = (
    "navsim-v2 terms, reference pdm_closed (constant-velocity forecasts), human filter, navtest-like scenes"
)
# navtest PDMS as published (NAVSIM's leaderboard and the DiffusionDrive paper), beside ours in the docs
NAVTEST_PUBLISHED = {"constant_velocity": 20.6, "ego_mlp": 65.6, "pdm_closed": 93.0, "diffusiondrive": 88.1}
NOTES = (
    "PDMS/EPDMS in percent, sub-scores as fractions (means over scenes): nc, dac, ddc, tlc, ep, ttc, lk, hc, ec "
    "are NAVSIM v2's (after the human filter), ep_v1 and c v1.1's. pdm_closed is NAVSIM's PDM-Closed (agents "
    "forecast at constant velocity) and EP's yardstick for every planner; pdm_closed_privileged forecasts agents "
    "with the scene's logged future: it wrote the demonstrations and plays the scenes' human driver for v2's "
    "human penalty filter. EC compares each planner's plan with its plan for the same scene 0.5 s earlier "
    "(sim.frames.previous_frame). Generator realism: cut-ins used to start moving sideways only after "
    "t = 0 (zero lateral velocity in every history frame), now the manoeuvre's onset is uniform in [-1.2, 0.8] s; "
    "forced lead braking used to step to 3-6 m/s^2 within 0.1 s, now it builds up over 0.4 s, onset in "
    "[-1.0, 1.5] s. Stronger IDM proposals for the CV-forecast variant (2 s headway, 2 m gap, a stop fraction) "
    "changed its PDMS by < 1 point on 160 test scenes: every proposal is judged against the same forecast, in "
    "which the fast one looks safe. What it cannot see: a lead braking to a stop inside the 4 s, a pedestrian "
    "stepping off the kerb, curved traffic (straight-line extrapolation costs TTC). The family mix is unchanged. "
    "Learned planners (bench/driving_policies.py) are added to this file on the same scenes."
)

TWO_STAGE_PROTOCOL = (
    "NAVSIM v2's two-stage EPDMS (run_pdm_score.py): each scene and its previous frame (-0.5 s), and up to 5 "
    "follow-up scenes 4 s later (and their previous frames, 3.5 s) cut from the same world simulated on with the "
    "human driver (pdm_closed_privileged) in the ego's place, the ego's start moved up to 3 m along, 1 m across and "
    "its speed by up to 20 % (starts touching another road user, off the road or in a red connector dropped; the "
    "driver's own state when none is left); every frame planned by the planner and scored with reactive traffic, "
    "the human filter on the original frames only, one EC per frame pair; follow-ups weighted by exp(-d^2 / 0.2) "
    "of their start's distance to the stage-one plan's last pose; epdms = mean over scenes of (now x weighted "
    "follow-ups + previous x weighted follow-ups) / 2; stage_one / stage_two: each term's mean per stage"
)


def throughput(scenes, proposals_per_scene: int, repeats: int = 3, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    pdm = PDMClosedPlanner()
    batches, all_props = [], []
    for scene in scenes:
        pdm.plan(scene)
        base = pdm.last["proposals"]
        extra = base[rng.integers(0, len(base), proposals_per_scene - len(base))]
        extra = extra + rng.normal(0, 0.5, extra.shape) * np.array([1.0, 1.0, 0.02])
        props = np.concatenate([base, extra])[:proposals_per_scene]
        batches.append((ScoringContext(scene), simulate_in_scene(scene, props)))
        all_props.append(props)
    n_total = sum(len(s) for _, s in batches)
    for ctx, st in batches[:2]:  # warm-up (filter operators are built on first use)
        score_states(ctx, st)
    t_vec, t_loop = np.inf, np.inf
    for _ in range(repeats):  # best of `repeats` for both, in alternation, so load spikes hit both alike
        t0 = time.perf_counter()
        vec = [score_states(ctx, st) for ctx, st in batches]
        t_vec = min(t_vec, time.perf_counter() - t0)
        t0 = time.perf_counter()
        loop = [[score_states(ctx, st.take([i])) for i in range(len(st))] for ctx, st in batches]
        t_loop = min(t_loop, time.perf_counter() - t0)
    # same logic: every sub-score but EP agrees row by row (EP differs by design: the batch normalises
    # progress by its best proposal, a lone proposal by itself)
    same = all(
        np.array_equal(getattr(v, k), np.array([getattr(r, k)[0] for r in rows]))
        for v, rows in zip(vec, loop)
        for k in ("nc", "dac", "ddc", "tlc", "ttc", "c", "lk", "hc", "ec", "progress")
    )
    t0 = time.perf_counter()
    for scene, props in zip(scenes, all_props):
        score_states(ScoringContext(scene), simulate_in_scene(scene, props))
    t_full = time.perf_counter() - t0
    return {
        "scenes": len(scenes),
        "proposals": n_total,
        "proposals_per_scene": proposals_per_scene,
        "vectorised_proposals_per_s": n_total / t_vec,
        "naive_loop_proposals_per_s": n_total / t_loop,
        "speedup": t_loop / t_vec,
        "simulate_and_score_proposals_per_s": n_total / t_full,
        "subscores_agree": bool(same),
        "timing": f"best of {repeats} passes each, vectorised and loop alternating; scoring only (contexts and "
        "simulation prepared beforehand); simulate_and_score includes both, vectorised",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generate", type=int, default=1000, help="test scenes to generate (timed)")
    ap.add_argument("--scenes", type=int, default=500, help="test scenes to evaluate planners on")
    ap.add_argument("--throughput-scenes", type=int, default=20)
    ap.add_argument("--proposals", type=int, default=64, help="proposals per scene for the throughput test")
    ap.add_argument("--throughput-only", action="store_true", help="skip the planners' table")
    ap.add_argument("--skip-throughput", action="store_true", help="keep driving_scorer.json (a busy machine)")
    ap.add_argument("--two-stage-scenes", type=int, default=100, help="scenes for the two-stage EPDMS")
    ap.add_argument("--follow-ups", type=int, default=5, help="follow-up scenes per frame")
    args = ap.parse_args()

    t0 = time.perf_counter()
    scenes = make_split("test", max(args.generate, args.scenes))
    gen_s = time.perf_counter() - t0
    env = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cpu": platform.processor() or platform.machine(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    print(f"generated {len(scenes)} test scenes in {gen_s:.1f} s")

    if not args.skip_throughput:
        tp = throughput(scenes[: args.throughput_scenes], args.proposals)
        tp["env"] = env
        print(tp)
        atomic_write_json(RESULTS / "driving_scorer.json", tp)
    if args.throughput_only:
        return

    evalset = scenes[: args.scenes]
    navsim, privileged = PDMClosedPlanner(), PDMClosedPlanner(PRIVILEGED_PDM_CLOSED)
    res = evaluate_planners(
        evalset,
        {
            "constant_velocity": ConstantVelocityPlanner().plan,
            "pdm_closed": navsim.plan,
            "pdm_closed_privileged": privileged.plan,
        },
        reference=navsim,
        human=privileged,
    )
    families = {}
    for name, rows in res["rows"].items():
        by = defaultdict(list)
        for r in rows:
            by[r["family"]].append(r["pdms"] * 100)
        families[name] = {f: {"scenes": len(v), "pdms": float(np.mean(v))} for f, v in sorted(by.items())}
    out = {
        "split": "test",
        "scenes": len(evalset),
        "reference": "pdm_closed",
        "scorer": SCORER_VERSION,
        "navtest_published": NAVTEST_PUBLISHED,
        "planners": res["table"],
        "per_family_pdms": families,
        "generation": {"scenes": len(scenes), "seconds": gen_s, "scenes_per_s": len(scenes) / gen_s},
        "notes": NOTES,
        "two_stage": {
            "scenes": args.two_stage_scenes,
            "follow_ups": args.follow_ups,
            "protocol": TWO_STAGE_PROTOCOL,
        },
        "env": env,
    }
    cases = two_stage_split("test", args.two_stage_scenes, args.follow_ups)
    for name, row in res["table"].items():
        t0 = time.perf_counter()
        row["two_stage"] = evaluate_two_stage(BuiltinPlanner(name), cases)
        row["two_stage"]["seconds"] = time.perf_counter() - t0
        row["epdms_two_stage"] = row["two_stage"]["epdms"]
        print(name, {k: round(v, 3) for k, v in row.items() if not isinstance(v, dict)})
    previous = RESULTS / "driving.json"
    if previous.is_file():  # keep the learned planners' rows measured on the same scenes with the same scorer
        old = json.loads(previous.read_text())
        if old.get("scenes") == out["scenes"] and old.get("scorer") == SCORER_VERSION:
            for key in ("planners", "per_family_pdms"):
                out[key] = {**out[key], **{k: v for k, v in old.get(key, {}).items() if k not in out[key]}}
            for key, value in old.items():
                if key != "epdms_two_stage":  # an earlier file's placeholder
                    out.setdefault(key, value)
    atomic_write_json(RESULTS / "driving.json", out)


if __name__ == "__main__":
    main()
