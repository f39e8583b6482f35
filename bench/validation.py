"""Does the validation score follow rollout success? For a run trained with validation (held-out episodes) and a
checkpoint at every validation step, roll out every checkpoint's policy on the same evaluation seeds and correlate
its success with the two validation metrics logged at that step: the sampled action error (`val/action_mse`) and
the denoising loss (`val/loss`), each the peer of the other. Writes one row per task to bench/results/validation.json.

  diffpilot data episodes=100 obs_mode=state output=data/pusht_val seed=0
  diffpilot train dataset.root=data/pusht_val output_dir=runs/validation/pusht train.save_every=500 \\
      validation.episodes=0.1 validation.every=500
  python bench/validation.py --task pusht_state --run runs/validation/pusht --episodes 50
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from diffpilot.atomic import atomic_write_json
from diffpilot.commands.common import load_task_config
from diffpilot.commands.evaluate import EvalSettings, evaluate_policy
from diffpilot.policies.registry import load_policy
from diffpilot.run import CHECKPOINTS, is_complete

RESULTS = Path(__file__).resolve().parent / "results" / "validation.json"


def ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 0…n−1 with ties given their mean rank."""
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(len(x))
    for value in np.unique(x):
        tied = x == value
        r[tied] = r[tied].mean()
    return r


def pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt((x**2).sum() * (y**2).sum())
    return None if denominator == 0 else float((x * y).sum() / denominator)


def spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    return pearson(ranks(x), ranks(y))


def logged(run: Path, tag: str) -> dict[int, float]:
    """A TensorBoard scalar of the run by step."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return {e.step: e.value for e in events.Scalars(tag)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True, help="the task config the run was trained on (pusht_state, lift)")
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=100_000)
    parser.add_argument("--n-envs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task = load_task_config(args.task)
    if task is None:
        raise SystemExit(f"--task {args.task!r}: no configs/task/{args.task}.yaml")
    mse, loss = logged(args.run, "val/action_mse"), logged(args.run, "val/loss")
    steps = sorted(int(c.name.removeprefix("step_")) for c in (args.run / CHECKPOINTS).glob("step_*") if is_complete(c))
    steps = [s for s in steps if s in mse]
    if len(steps) < 3:
        raise SystemExit(f"--run {args.run}: {len(steps)} checkpoints with a validation score; expected at least 3")
    rows = []
    tic = time.perf_counter()
    for step in steps:
        policy = load_policy(args.run / CHECKPOINTS / f"step_{step:07d}")
        info = evaluate_policy(policy, task, EvalSettings(args.episodes, args.seed, args.n_envs))
        rows.append(
            {
                "step": step,
                "action_mse": mse[step],
                "loss": loss[step],
                "success_rate": info["success_rate"],
                "success_ci95": info["success_ci95"],
                **({"mean_max_coverage": info["mean_max_coverage"]} if "mean_max_coverage" in info else {}),
            }
        )
        print(json.dumps(rows[-1]))
    success = np.array([r["success_rate"] for r in rows])
    by_mse = min(rows, key=lambda r: r["action_mse"])
    by_loss = min(rows, key=lambda r: r["loss"])
    result = {
        "task": args.task,
        "run": str(args.run),
        "episodes": args.episodes,
        "seed": args.seed,
        "checkpoints": rows,
        "spearman_success_vs_neg_action_mse": spearman(success, -np.array([r["action_mse"] for r in rows])),
        "spearman_success_vs_neg_loss": spearman(success, -np.array([r["loss"] for r in rows])),
        "pearson_success_vs_neg_action_mse": pearson(success, -np.array([r["action_mse"] for r in rows])),
        "pearson_success_vs_neg_loss": pearson(success, -np.array([r["loss"] for r in rows])),
        "best_by_action_mse": {"step": by_mse["step"], "success_rate": by_mse["success_rate"]},
        "best_by_loss": {"step": by_loss["step"], "success_rate": by_loss["success_rate"]},
        "last": {"step": rows[-1]["step"], "success_rate": rows[-1]["success_rate"]},
        "best_success": max(r["success_rate"] for r in rows),
        "eval_seconds": round(time.perf_counter() - tic, 1),
    }
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {"runs": []}
    previous["runs"] = [r for r in previous["runs"] if r["task"] != args.task] + [result]
    atomic_write_json(args.out, previous)
    print(json.dumps({k: v for k, v in result.items() if k != "checkpoints"}, indent=2))


if __name__ == "__main__":
    main()
