"""Evaluation throughput: the same PushT episodes rolled out by each executor — inline (the envs stepped one after
another in this process), subprocess (one process per env, stepped in parallel) and Ray (batches of episodes on the
workers of a local cluster) — in one run, with the per-episode results compared. Writes
bench/results/parallel_eval.json.

  python bench/parallel_eval.py --policy runs/validation/pusht/checkpoints/last --episodes 500 --n-envs 10
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from diffpilot.atomic import atomic_write_json
from diffpilot.commands.common import load_task_config
from diffpilot.envs.evaluate import evaluate
from diffpilot.envs.registry import env_factory
from diffpilot.policies.registry import load_policy

RESULTS = Path(__file__).resolve().parent / "results" / "parallel_eval.json"


def machine_gflops(seconds: float = 2.0) -> float:
    """This machine's speed: GFLOP/s of a 512 × 512 float32 matmul on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    a, b = torch.randn(512, 512), torch.randn(512, 512)
    n, tic = 0, time.perf_counter()
    while time.perf_counter() - tic < seconds:
        a @ b
        n += 1
    elapsed = time.perf_counter() - tic
    torch.set_num_threads(threads)
    return 2 * 512**3 * n / elapsed / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", type=Path, required=True)
    parser.add_argument("--task", default="pusht_state")
    parser.add_argument("--episodes", type=int, default=500)
    parser.add_argument("--n-envs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=100_000)
    parser.add_argument("--ray-workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the policy (each Ray worker too)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task = load_task_config(args.task)
    policy = load_policy(args.policy)
    make_env = env_factory(task)
    runs = {}
    for executor in ("inline", "subprocess", "ray"):
        if executor == "ray":
            import ray

            ray.init(num_cpus=args.ray_workers, include_dashboard=False, log_to_driver=False)
        tic = time.perf_counter()
        result = evaluate(policy, make_env, args.episodes, args.seed, args.n_envs, executor=executor)
        seconds = time.perf_counter() - tic
        runs[executor] = {"seconds": seconds, "eps_per_s": args.episodes / seconds, **result.summary()}
        runs[executor]["per_episode"] = [(e.seed, e.success, e.max_coverage, e.steps) for e in result.episodes]
        print(f"{executor}: {args.episodes / seconds:.2f} episodes/s, success {result.success_rate:.3f}")
    first = runs["inline"]["per_episode"]
    same_outcomes = all(
        [(s, ok, k) for s, ok, _, k in first] == [(s, ok, k) for s, ok, _, k in runs[e]["per_episode"]]
        for e in ("subprocess", "ray")
    )
    coverage_gap = max(abs(a[2] - b[2]) for e in ("subprocess", "ray") for a, b in zip(first, runs[e]["per_episode"]))
    report = {
        "task": args.task,
        "policy": str(args.policy),
        "episodes": args.episodes,
        "n_envs": args.n_envs,
        "ray_workers": args.ray_workers,
        "torch_threads": args.threads,
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "machine_gflops_1thread": round(machine_gflops(), 1),
        "sequential_eps_per_s": runs["inline"]["eps_per_s"],
        "async_eps_per_s": runs["subprocess"]["eps_per_s"],
        "ray_eps_per_s": runs["ray"]["eps_per_s"],
        "identical_results": same_outcomes and coverage_gap < 1e-9,
        "same_seeds_successes_and_steps": same_outcomes,
        "max_coverage_difference": coverage_gap,
        "success_rate": {k: v["success_rate"] for k, v in runs.items()},
        "success_ci95": runs["inline"]["success_ci95"],
        "seconds": {k: round(v["seconds"], 1) for k, v in runs.items()},
        "note": "ray's time includes starting the local cluster's workers, not its ray.init; gym-pusht's coverage "
        "differs in its last bits even between two in-process runs, so coverage is compared to 1e-9",
    }
    atomic_write_json(args.out, report)
    print({k: v for k, v in report.items()})


if __name__ == "__main__":
    main()
