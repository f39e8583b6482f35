"""WAM-Diff on the synthetic NAVSIM-style driving split (CPU): BC, then BC + GSPO and BC + GRPO at the same budget,
scored with NAVSIM's open loop (EC from the previous frame) on the test scenes of bench/results/driving.json
(DiffusionDrive's and PDM-Closed's rows are read from there). Training and RL are the commands:

  OMP_NUM_THREADS=1 diffpilot train experiment=driving_wamdiff            # → runs/driving/wamdiff
  OMP_NUM_THREADS=1 diffpilot rl algo=gspo task=driving output_dir=runs/driving/wamdiff_gspo \\
      policy_path=runs/driving/wamdiff/checkpoints/last/pretrained_model
  OMP_NUM_THREADS=1 diffpilot rl algo=grpo task=driving output_dir=runs/driving/wamdiff_grpo \\
      policy_path=runs/driving/wamdiff/checkpoints/last/pretrained_model
  OMP_NUM_THREADS=1 python bench/wamdiff.py --orders --order-scenes 200 --guidance 3

This script evaluates the three policies (where present) as `diffpilot eval task=driving` does, compares the four
decoding orders and classifier-free guidance scales (--guidance) on the BC policy over the first --order-scenes
scenes, and writes bench/results/wamdiff.json and the reward-curve PNG bench/results/wamdiff_reward.png.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from diffpilot.atomic import atomic_write_json
from diffpilot.commands.evaluate import EvalSettings, evaluate_policy
from diffpilot.envs.driving import evaluate_open_loop, scored_split
from diffpilot.policies.driving.wamdiff import WAMDiffPolicy
from diffpilot.policies.registry import load_policy
from diffpilot.policies.samplers.masked import ORDERS

RESULTS = Path(__file__).resolve().parent / "results"
RUNS = Path("runs/driving")
POLICIES = {
    "bc": RUNS / "wamdiff",
    "bc_gspo": RUNS / "wamdiff_gspo",
    "bc_grpo": RUNS / "wamdiff_grpo",
}


def evaluate(policy, scenes, refs, humans, **decoding) -> dict:
    class Planner:
        def plan(self, obs):
            return policy.plan(obs, **decoding)

    res = evaluate_open_loop(Planner(), scenes, batch_size=64, reference_plans=refs, two_frame=True, human_plans=humans)
    return res.table()


def reward_curve(out_png: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {}
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name in ("gspo", "grpo"):
        path = RUNS / f"wamdiff_{name}" / "result.json"
        if not path.is_file():
            continue
        log = json.loads(path.read_text())
        steps = [r["step"] for r in log["history"]]
        reward = [r["reward_mean"] for r in log["history"]]
        k = max(1, len(reward) // 20)
        smooth = np.convolve(reward, np.ones(k) / k, mode="valid")
        ax.plot(steps, 100 * np.asarray(reward), alpha=0.25)
        ax.plot(
            steps[k - 1 :], 100 * smooth, label=f"{name.upper()} (moving mean of {k})", color=ax.lines[-1].get_color()
        )
        curves[name] = {"steps": steps, "reward_mean": reward}
    ax.set_xlabel("RL update (rollout batch)")
    ax.set_ylabel("mean PDMS of sampled trajectories")
    ax.set_title("WAM-Diff: training reward (train split)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    return curves


def stage_eval(args) -> None:
    torch.manual_seed(0)
    path = RESULTS / "wamdiff.json"
    out = json.loads(path.read_text()) if path.is_file() else {}
    out.update(split="test", scenes=args.scenes)
    with initialize_config_module("diffpilot.configs", version_base="1.3"):
        task = OmegaConf.to_container(compose("eval", ["task=driving", f"task.eval.num_scenes={args.scenes}"]).task)
    for key, run in POLICIES.items():
        ckpt = run / "checkpoints" / "last" / "pretrained_model"
        if not ckpt.is_dir() or (args.only and key not in args.only.split(",")):
            continue
        t0 = time.perf_counter()
        info = evaluate_policy(load_policy(ckpt), task, EvalSettings(), run / "eval", {"policy": str(ckpt)})
        out[key] = {k: v for k, v in info.items() if k not in ("per_family_pdms", "protocol", "split", "policy")}
        out[key]["eval_s"] = time.perf_counter() - t0
        print(key, {k: round(v, 3) for k, v in out[key].items()}, flush=True)
        atomic_write_json(path, out)
    if args.orders:
        policy = WAMDiffPolicy.from_pretrained(POLICIES["bc"] / "checkpoints" / "last" / "pretrained_model")
        n = args.order_scenes
        scenes, refs, humans = scored_split("test", n)
        orders = {}
        for order in ORDERS:
            orders[order] = evaluate(policy, scenes[:n], refs[:n], humans[:n], order=order)
            orders[order]["scenes"] = n
            print(order, round(orders[order]["pdms"], 2), flush=True)
        out["orders"] = {"policy": "bc", "iterations": policy.config.iterations, **orders}
        guidance = {"policy": "bc", "order": policy.config.order, "1.0": orders[policy.config.order]}
        for w in [float(v) for v in args.guidance.split(",") if v]:
            guidance[str(w)] = evaluate(policy, scenes[:n], refs[:n], humans[:n], guidance_scale=w)
            guidance[str(w)]["scenes"] = n
            print("guidance", w, round(guidance[str(w)]["pdms"], 2), flush=True)
        out["guidance"] = guidance
    driving = RESULTS / "driving.json"
    if driving.is_file():
        d = json.loads(driving.read_text())
        if d.get("scenes") == args.scenes:
            out["reference"] = {
                k: d["planners"][k] for k in ("pdm_closed", "diffusiondrive", "ego_mlp") if k in d["planners"]
            }
    out["reward_curves"] = reward_curve(RESULTS / "wamdiff_reward.png")
    for key, run in POLICIES.items():
        log = run / "result.json"
        if log.is_file():
            meta = json.loads(log.read_text())
            out.setdefault("runs", {})[key] = {k: v for k, v in meta.items() if k not in ("history", "eval")}
    if "bc" in out and "bc_gspo" in out:
        out["gspo_minus_bc_pdms"] = out["bc_gspo"]["pdms"] - out["bc"]["pdms"]
    if "bc" in out and "bc_grpo" in out:
        out["grpo_minus_bc_pdms"] = out["bc_grpo"]["pdms"] - out["bc"]["pdms"]
    out["env"] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    atomic_write_json(path, out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, default=500, help="test scenes")
    ap.add_argument("--orders", action="store_true", help="also compare decoding orders on the BC policy")
    ap.add_argument("--order-scenes", type=int, default=200)
    ap.add_argument("--guidance", default="3", help="CFG scales to compare on the order scenes (w = 1 is the base)")
    ap.add_argument("--only", default="", help="comma-separated subset of bc,bc_gspo,bc_grpo")
    args = ap.parse_args()
    torch.set_num_threads(1)
    stage_eval(args)


if __name__ == "__main__":
    main()
