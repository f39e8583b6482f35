"""WAM-Diff on the synthetic NAVSIM-style driving split (CPU): BC, then BC + GSPO and BC + GRPO at the same
budget, evaluated with the v1 open-loop protocol (EC from the previous frame) on the first --scenes test
scenes, the same scenes as bench/results/driving.json (DiffusionDrive, PDM-Closed rows are read from there).

Stages (each one process, OMP_NUM_THREADS=1):

  bc     BC-train WAM-Diff on the PDM-Closed demonstrations (read-only: runs/driving/demos_train{,_b}) for
         --budget seconds; saves runs/wamdiff/bc.
  eval   evaluate runs/wamdiff/bc, runs/wamdiff/gspo/policy, runs/wamdiff/grpo/policy (where present) with the
         config's decoding; with --orders also the four decoding orders and classifier-free guidance scales
         (--guidance) on the BC policy over the first --order-scenes scenes; writes bench/results/wamdiff.json
         ({"split", "scenes", "bc", "bc_gspo", "bc_grpo", "orders", "reference", ...}) and the reward-curve
         PNG bench/results/wamdiff_reward.png from the RL runs' logs.

The RL runs in between are the CLI:

  OMP_NUM_THREADS=1 python bench/wamdiff.py bc --budget 1200
  OMP_NUM_THREADS=1 diffpilot rl algo=gspo task=navsim_driving policy_path=runs/wamdiff/bc output_dir=runs/wamdiff/gspo
  OMP_NUM_THREADS=1 diffpilot rl algo=grpo task=navsim_driving policy_path=runs/wamdiff/bc output_dir=runs/wamdiff/grpo
  OMP_NUM_THREADS=1 python bench/wamdiff.py eval --scenes 500 --orders --order-scenes 200 --guidance 3
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from diffpilot.atomic import atomic_write_json
from diffpilot.envs.driving import evaluate_open_loop, load_demonstrations
from diffpilot.policies.ego_mlp import fit
from diffpilot.policies.samplers.masked import ORDERS
from diffpilot.policies.wamdiff import WAMDiffConfig, WAMDiffPolicy
from diffpilot.sim.planners import PDMClosedPlanner
from diffpilot.sim.scenarios import make_scene, split_seeds

RESULTS = Path(__file__).resolve().parent / "results"
RUNS = Path("runs/wamdiff")
POLICY_YAML = Path(__file__).resolve().parents[1] / "configs" / "policy" / "wamdiff.yaml"


def policy_config() -> WAMDiffConfig:
    """WAMDiffConfig from configs/policy/wamdiff.yaml (the single source of the hyper-parameters)."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(OmegaConf.load(POLICY_YAML))
    cfg.pop("type")
    return WAMDiffConfig.from_dict(cfg)


def load_demos(dirs: str) -> dict[str, np.ndarray]:
    parts = [load_demonstrations(d) for d in dirs.split(",")]
    data = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    if len(set(data["token"])) != len(data["token"]):
        raise SystemExit("the demonstration directories overlap (a token appears twice)")
    return data


def stage_bc(args) -> None:
    data = load_demos(args.demo_dir)
    print(f"{len(data['trajectory'])} demonstrations", flush=True)
    policy = WAMDiffPolicy(policy_config())
    log = fit(
        policy, data, steps=1_000_000, batch_size=args.batch_size, lr=args.lr, time_budget_s=args.budget, log_every=200
    )
    policy.save_pretrained(RUNS / "bc")
    log.update(budget_s=args.budget, lr=args.lr, batch_size=args.batch_size, demos=len(data["trajectory"]))
    atomic_write_json(RUNS / "bc_training.json", log)
    print(log, flush=True)


def evaluate(policy, scenes, refs, **decoding) -> dict:
    class Planner:
        def plan(self, obs):
            return policy.plan(obs, **decoding)

    res = evaluate_open_loop(Planner(), scenes, batch_size=64, reference_plans=refs, two_frame=True)
    return res.table()


def reward_curve(out_png: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {}
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name in ("gspo", "grpo"):
        path = RUNS / name / "rl_log.json"
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
    scenes = [make_scene(s) for s in split_seeds("test", args.scenes)]
    reference = PDMClosedPlanner()
    refs = [reference.plan(s) for s in scenes]
    path = RESULTS / "wamdiff.json"
    out = json.loads(path.read_text()) if path.is_file() else {}
    out.update(split="test", scenes=args.scenes)
    rows = {"bc": RUNS / "bc", "bc_gspo": RUNS / "gspo" / "policy", "bc_grpo": RUNS / "grpo" / "policy"}
    for key, ckpt in rows.items():
        if not ckpt.is_dir() or (args.only and key not in args.only.split(",")):
            continue
        policy = WAMDiffPolicy.from_pretrained(ckpt)
        t0 = time.perf_counter()
        out[key] = evaluate(policy, scenes, refs)
        out[key]["eval_s"] = time.perf_counter() - t0
        print(key, {k: round(v, 3) for k, v in out[key].items()}, flush=True)
        atomic_write_json(path, out)
    if args.orders:
        policy = WAMDiffPolicy.from_pretrained(RUNS / "bc")
        orders = {}
        for order in ORDERS:
            n = args.order_scenes
            orders[order] = evaluate(policy, scenes[:n], refs[:n], order=order)
            orders[order]["scenes"] = n
            print(order, round(orders[order]["pdms"], 2), flush=True)
        out["orders"] = {"policy": "bc", "iterations": policy.config.iterations, **orders}
        guidance = {"policy": "bc", "order": policy.config.order, "1.0": orders[policy.config.order]}
        for w in [float(v) for v in args.guidance.split(",") if v]:
            guidance[str(w)] = evaluate(policy, scenes[:n], refs[:n], guidance_scale=w)
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
    for name in ("gspo", "grpo"):
        log = RUNS / name / "rl_log.json"
        if log.is_file():
            meta = json.loads(log.read_text())
            out.setdefault("rl", {})[name] = {k: v for k, v in meta.items() if k != "history"}
    bc_log = RUNS / "bc_training.json"
    if bc_log.is_file():
        out["bc_training"] = json.loads(bc_log.read_text())
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
    ap.add_argument("stage", choices=("bc", "eval"))
    ap.add_argument("--demo-dir", default="runs/driving/demos_train,runs/driving/demos_train_b")
    ap.add_argument("--budget", type=float, default=1200.0, help="BC seconds")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--scenes", type=int, default=500, help="test scenes")
    ap.add_argument("--orders", action="store_true", help="also compare decoding orders on the BC policy")
    ap.add_argument("--order-scenes", type=int, default=200)
    ap.add_argument("--guidance", default="3", help="CFG scales to compare on the order scenes (w = 1 is the base)")
    ap.add_argument("--only", default="", help="comma-separated subset of bc,bc_gspo,bc_grpo")
    args = ap.parse_args()
    torch.set_num_threads(1)
    {"bc": stage_bc, "eval": stage_eval}[args.stage](args)


if __name__ == "__main__":
    main()
