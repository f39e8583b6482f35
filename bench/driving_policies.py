"""Learned driving planners on the NAVSIM-style test split, trained and scored by the same code as the commands:
`diffpilot train experiment=driving_<planner>` (behaviour cloning on PDM-Closed demonstrations, one thread) and
`diffpilot eval task=driving` (NAVSIM's open loop: PDMS, EPDMS, every sub-score). Adds each planner's row to
bench/results/driving.json beside the built-in planners (bench/driving_scorer.py scores those on the same scenes),
with its batch-1 planning latency (median over --latency-scenes scenes).

  diffpilot data task=driving                                   # 3,600 demonstrations → data/driving/train
  OMP_NUM_THREADS=1 python bench/driving_policies.py --only diffusiondrive,wamdiff
  OMP_NUM_THREADS=1 python bench/driving_policies.py --only wamdiff \
      --evaluate wamdiff_gspo=runs/driving/wamdiff_gspo/checkpoints/last/pretrained_model
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from diffpilot.atomic import atomic_write_json
from diffpilot.commands.evaluate import EvalSettings, evaluate_policy
from diffpilot.commands.train import run_training
from diffpilot.envs.driving import observe_batch
from diffpilot.policies.registry import load_policy
from diffpilot.run import RESULT_FILE, record_evaluation
from diffpilot.sim.scenarios import make_split

RESULTS = Path(__file__).resolve().parent / "results"
PLANNERS = ("ego_mlp", "diffusiondrive", "vanilla_diffusion", "wamdiff")
# driving.json's name of each trained planner's row: "diffusiondrive" is DiffusionDrive with its score head
# (bench/driving_score_head.py), the behaviour-cloned policy alone is "diffusiondrive_bc"
ROW_NAMES = {"diffusiondrive": "diffusiondrive_bc"}


def latency_b1(policy, obs: dict[str, np.ndarray]) -> float:
    """Median ms of `plan` on one scene at a time."""
    times = []
    for i in range(len(obs["ego_status"])):
        one = {k: v[i : i + 1] for k, v in obs.items()}
        t0 = time.perf_counter()
        policy.plan(one)
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def planner_row(info: dict, policy, latency_obs: dict[str, np.ndarray], earlier: dict | None = None) -> dict:
    """driving.json's row: every sub-score, PDMS, EPDMS, the valid fraction and the batch-1 latency (taken from
    the `earlier` row when given: a busy machine's timing is not comparable)."""
    keys = ("nc", "dac", "ddc", "tlc", "ep", "ep_v1", "ttc", "c", "lk", "hc", "ec", "pdms", "epdms")
    latency = earlier["latency_ms"] if earlier else latency_b1(policy, latency_obs)
    row = {k: info[k] for k in keys} | {"valid": info["valid"], "latency_ms": latency}
    if "two_stage" in info:
        row |= {"epdms_two_stage": info["epdms_two_stage"], "two_stage": info["two_stage"]}
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(PLANNERS[:3]), help=f"comma-separated subset of {PLANNERS}")
    ap.add_argument("--demos", default="data/driving/train", help="demonstrations (diffpilot data task=driving)")
    ap.add_argument("--runs", default="runs/driving", help="<runs>/<planner> is each planner's run directory")
    ap.add_argument("--retrain", action="store_true", help="train even where the run has a checkpoint")
    ap.add_argument("--latency-scenes", type=int, default=50)
    ap.add_argument("--keep-latency", action="store_true", help="keep each row's earlier latency (busy machine)")
    ap.add_argument(
        "--evaluate",
        action="append",
        default=[],
        metavar="NAME=CHECKPOINT",
        help="also score a saved planner (no training), e.g. "
        "wamdiff_gspo=runs/driving/wamdiff_gspo/checkpoints/last/pretrained_model",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    path = RESULTS / "driving.json"
    out = json.loads(path.read_text()) if path.is_file() else {"split": "test", "planners": {}}
    with initialize_config_module("diffpilot.configs", version_base="1.3"):
        task = OmegaConf.to_container(compose("eval", ["task=driving"]).task, resolve=True)
    scenes = make_split(task["eval"]["split"], args.latency_scenes)
    latency_obs = observe_batch(scenes)
    for item in args.evaluate:
        name, _, checkpoint = item.partition("=")
        policy = load_policy(checkpoint)
        eval_dir = Path(checkpoint).parent.parent / "eval"
        info = evaluate_policy(policy, task, EvalSettings(), eval_dir, {"policy": checkpoint})
        earlier = out["planners"].get(name) if args.keep_latency else None
        out["planners"][name] = planner_row(info, policy, latency_obs, earlier)
        out.setdefault("per_family_pdms", {})[name] = info["per_family_pdms"]
        out.setdefault("training", {})[name] = {"eval_command": f"diffpilot eval task=driving policy_path={checkpoint}"}
        print(name, {k: round(v, 3) for k, v in out["planners"][name].items() if isinstance(v, float)}, flush=True)
        atomic_write_json(path, out)
    for name in [n for n in args.only.split(",") if n]:
        run = Path(args.runs) / name
        overrides = [f"experiment=driving_{name}", f"dataset.root={args.demos}", f"output_dir={run}"]
        if args.retrain or not (run / RESULT_FILE).is_file():
            with initialize_config_module("diffpilot.configs", version_base="1.3"):
                run_training(compose("train", overrides))
        checkpoint = run / "checkpoints" / "last" / "pretrained_model"
        policy = load_policy(checkpoint)
        info = evaluate_policy(policy, task, EvalSettings(), run / "eval", {"policy": str(checkpoint)})
        record_evaluation(info, run / "eval")
        key = ROW_NAMES.get(name, name)
        row = planner_row(info, policy, latency_obs, out["planners"].get(key) if args.keep_latency else None)
        train = json.loads((run / RESULT_FILE).read_text())
        out["planners"][key] = row
        out.setdefault("per_family_pdms", {})[key] = info["per_family_pdms"]
        out.setdefault("training", {})[key] = {
            "steps": train["train_steps"],
            "command": "diffpilot train " + " ".join(overrides),
            "eval_command": f"diffpilot eval task=driving policy_path={checkpoint}",
        }
        out["scenes"] = info["scenes"]
        print(key, {k: round(v, 3) for k, v in row.items() if isinstance(v, float)}, flush=True)
        out["env"] = {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        }
        atomic_write_json(path, out)


if __name__ == "__main__":
    main()
