"""Robomimic benchmark with the robomimic / Diffusion Policy protocol: every saved checkpoint of a training run
is rolled out 50 times on each of 3 evaluation seed blocks; success is reported as the max and the mean over
checkpoints, beside the peer measured in the same run on the same seeds: the scripted expert that made the
demonstrations. Merges its task into bench/results/robomimic.json.

  python bench/robomimic.py --task lift --run runs/robomimic/lift_state_cpu --last 2
  python bench/robomimic.py --task square --run runs/robomimic/square_abs_state_cpu --last 2   # → square_absolute
  python bench/robomimic.py --task lift_image --run runs/robomimic/lift_image_cpu --last 2 --workers 2  # image
  python bench/robomimic.py --task square --expert-only      # a task without a trained policy: the expert alone
  python bench/robomimic.py --task lift_image --combine b0.json b1.json b2.json   # seed blocks run in parallel

Image runs roll the policy out in the image env (only the task's cameras rendered, ~8-12 env steps/s); the expert
needs no images, so it runs in the state env on the same seeds (initial states agree to ~1e-5; no renderer).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

from diffpilot.commands.common import load_task_config
from diffpilot.commands.evaluate import load_policy
from diffpilot.envs.evaluate import evaluate, wilson_interval
from diffpilot.envs.experts.robomimic import expert_for
from diffpilot.envs.registry import env_factory
from diffpilot.envs.robomimic import TASKS, make_robomimic_env
from diffpilot.policies.checkpoint import atomic_write_json

RESULTS = Path(__file__).parent / "results"
SEED_BLOCK = 1000  # evaluation seed block k starts at seed + k * SEED_BLOCK


def measure_expert(task: str, obs_mode: str, seeds: list[int], control: str = "delta") -> dict:
    """The scripted expert on the evaluation seeds (driving the env's delta or absolute controller)."""
    env = make_robomimic_env(task, obs_mode, control=control)
    wins, steps, start = 0, 0, time.perf_counter()
    for seed in seeds:
        env.reset(seed=seed)
        expert = expert_for(task, seed, control)
        expert.reset(env.unwrapped.sim)
        while True:
            _, _, terminated, truncated, info = env.step(expert.act())
            steps += 1
            if terminated or truncated:
                wins += bool(info["is_success"])
                break
    env.close()
    lo, hi = wilson_interval(wins, len(seeds))
    return {
        "episodes": len(seeds),
        "success_rate": wins / len(seeds),
        "success_ci95": [lo, hi],
        "mean_steps": steps / len(seeds),
        "seconds": time.perf_counter() - start,
    }


def evaluate_block(path: Path, task: dict, episodes: int, seed: int, n_envs: int) -> dict:
    """One checkpoint on one seed block (its own process when --workers > 1): the block's summary."""
    torch.set_num_threads(1)
    policy = load_policy(path, device="cpu")
    make_env = env_factory(task)
    torch.manual_seed(seed)  # the sampling noise follows the block's seed: a block gives the same rollouts alone
    result = evaluate(policy, make_env, episodes, seed, n_envs, progress=False)
    print(f"  {path.parent.name} seed {seed}: success {result.success_rate:.3f} in {result.seconds:.0f} s", flush=True)
    return result.summary()


def pooled_success(blocks: list[dict]) -> dict:
    """Seed blocks' rollouts pooled: success with its 95 % interval and the mean episode length over all rollouts."""
    wins = sum(round(b["success_rate"] * b["episodes"]) for b in blocks)
    total = sum(b["episodes"] for b in blocks)
    steps = sum(b["mean_steps"] * b["episodes"] for b in blocks) / total
    return {"success_rate": wins / total, "success_ci95": list(wilson_interval(wins, total)), "mean_steps": steps}


def pool_blocks(blocks: list[dict]) -> dict:
    """A checkpoint's seed blocks pooled (``pooled_success``) with the per-block success."""
    return {**pooled_success(blocks), "per_seed": [b["success_rate"] for b in blocks]}


def evaluate_checkpoints(checkpoints: list[Path], task: dict, args: argparse.Namespace, seeds: list[int]) -> dict:
    """Every (checkpoint, seed block) pair, in order or spread over --workers processes -> per checkpoint rows."""
    jobs = [
        (ckpt / "pretrained_model", task, args.episodes, seed, args.n_envs) for ckpt in checkpoints for seed in seeds
    ]
    if args.workers > 1:
        context = multiprocessing.get_context("spawn")  # fresh interpreters: no forked MuJoCo / GL state
        with ProcessPoolExecutor(max_workers=args.workers, mp_context=context) as pool:
            blocks = list(pool.map(evaluate_block, *zip(*jobs)))
    else:
        blocks = [evaluate_block(*job) for job in jobs]
    n = len(seeds)
    return {ckpt.name: pool_blocks(blocks[i * n : (i + 1) * n]) for i, ckpt in enumerate(checkpoints)}


def merge_report(out: Path, task: str, entry: dict) -> None:
    """Put `entry` under tasks/<task> of the JSON report, keeping the other tasks' results."""
    report = json.loads(out.read_text()) if out.exists() else {"tasks": {}}
    report["tasks"][task] = entry
    report["env"] = {"python": platform.python_version(), "torch": torch.__version__, "threads": 1}
    atomic_write_json(out, report)


def combine_parts(task: str, parts: list[Path]) -> dict:
    """One task row from reports of the same run made on disjoint seed blocks (each `--seeds 1 --seed S`, in block
    order), as if one run had evaluated every block: per checkpoint and for the expert, the blocks' rollouts pooled
    (success, 95 % interval, per-block success, mean steps). Lets the blocks run in parallel processes."""
    rows = [json.loads(part.read_text())["tasks"][task] for part in parts]
    if len({r["run"] for r in rows}) != 1:
        raise SystemExit(f"--combine: the parts come from different runs: {sorted({r['run'] for r in rows})}")
    names = sorted(rows[0]["checkpoints"])
    if any(sorted(r["checkpoints"]) != names for r in rows):
        raise SystemExit("--combine: the parts evaluated different checkpoints")
    if any(len(c["per_seed"]) != 1 for r in rows for c in r["checkpoints"].values()):
        raise SystemExit("--combine: expected parts of one seed block each (--seeds 1 --seed S)")
    episodes = rows[0]["expert"]["episodes"]  # one block per part: the expert ran the block's episodes

    per_ckpt = {}
    for name in names:
        blocks = [{**r["checkpoints"][name], "episodes": r["expert"]["episodes"]} for r in rows]
        per_seed = [rate for r in rows for rate in r["checkpoints"][name]["per_seed"]]
        per_ckpt[name] = {**pooled_success(blocks), "per_seed": per_seed}
    expert = {**pooled_success([r["expert"] for r in rows]), "episodes": sum(r["expert"]["episodes"] for r in rows)}
    expert["seconds"] = sum(r["expert"]["seconds"] for r in rows)
    rates = [c["success_rate"] for c in per_ckpt.values()]
    return {
        **rows[0],
        "success_max": max(rates),
        "success_mean": float(np.mean(rates)),
        "expert_success": expert["success_rate"],
        "success_max_over_expert": max(rates) / max(expert["success_rate"], 1e-9),
        "protocol": f"{episodes} rollouts x {len(rows)} seed blocks per checkpoint, "
        "max/mean over checkpoints (blocks evaluated in parallel processes, combined)",
        "checkpoints": per_ckpt,
        "expert": expert,
        "combined_from": [str(p) for p in parts],
    }


def report_expert(args: argparse.Namespace, episode_seeds: list[int]) -> None:
    """A task without a trained policy yet: its scripted expert on the evaluation seeds."""
    task = load_task_config(args.task) or {}
    if task.get("env") not in TASKS:
        raise SystemExit(f"--task {args.task}: expected a robomimic task config, one of {sorted(TASKS)} or lift_image")
    expert = measure_expert(task["env"], "state", episode_seeds)
    entry = {
        "obs": task["obs_mode"],
        "expert_success": expert["success_rate"],
        "expert_obs_mode": "state",
        "expert": expert,
        "policy": None,
    }
    merge_report(args.out, args.task, entry)
    rate, n = expert["success_rate"], expert["episodes"]
    print(f"{args.task}: expert success {rate:.3f} over {n} episodes; wrote {args.out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True, help="a configs/task name: lift, can, square, lift_image")
    parser.add_argument("--run", type=Path, help="a training run with checkpoints/step_*/")
    parser.add_argument("--expert-only", action="store_true", help="measure only the scripted expert (no run)")
    parser.add_argument("--episodes", type=int, default=50, help="rollouts per seed block")
    parser.add_argument("--seeds", type=int, default=3, help="evaluation seed blocks")
    parser.add_argument("--seed", type=int, default=100_000)
    parser.add_argument("--n-envs", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1, help="processes for the (checkpoint, block) pairs")
    parser.add_argument("--last", type=int, default=0, help="evaluate only the newest N checkpoints (0: all)")
    parser.add_argument("--out", type=Path, default=RESULTS / "robomimic.json")
    parser.add_argument("--combine", type=Path, nargs="+", help="reports of one run on disjoint seed blocks → one row")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.combine:
        entry = combine_parts(args.task, args.combine)
        merge_report(args.out, args.task, entry)
        rates = f"success max {entry['success_max']:.3f}, mean {entry['success_mean']:.3f}"
        print(f"{args.task}: {rates} over {len(entry['checkpoints'])} checkpoints; wrote {args.out}")
        return

    from omegaconf import OmegaConf

    seeds = [args.seed + k * SEED_BLOCK for k in range(args.seeds)]
    episode_seeds = [s + i for s in seeds for i in range(args.episodes)]
    if args.expert_only:
        report_expert(args, episode_seeds)
        return
    if args.run is None:
        raise SystemExit("--run is required unless --expert-only")
    cfg = OmegaConf.load(args.run / ".hydra" / "config.yaml")
    task = OmegaConf.to_container(cfg.task, resolve=True)
    if task["env"] not in TASKS:
        raise SystemExit(f"--task {args.task}: the run's task env={task['env']!r} is not a robomimic task")
    if task["name"] != args.task:
        raise SystemExit(
            f"--task {args.task}: the run {args.run} trained task {task['name']!r} (obs_mode={task['obs_mode']}); "
            f"expected --task {task['name']}"
        )
    checkpoints = sorted((args.run / "checkpoints").glob("step_*"))[-args.last if args.last else 0 :]
    if not checkpoints:
        raise SystemExit(f"--run {args.run}: no checkpoints/step_*/ directories")
    per_ckpt = evaluate_checkpoints(checkpoints, task, args, seeds)
    rates = [c["success_rate"] for c in per_ckpt.values()]
    action_space = task.get("action_space", "delta")
    expert = measure_expert(task["env"], "state", episode_seeds, action_space)  # no images needed: the same seeds
    result_file = args.run / "result.json"
    train = json.loads(result_file.read_text()) if result_file.exists() else {}
    entry = {
        "task": task["env"],
        "obs": task["obs_mode"],
        "action_space": action_space,
        "success_max": max(rates),
        "success_mean": float(np.mean(rates)),
        "expert_success": expert["success_rate"],
        "expert_obs_mode": "state",
        "success_max_over_expert": max(rates) / max(expert["success_rate"], 1e-9),
        "protocol": f"{args.episodes} rollouts x {args.seeds} seed blocks per checkpoint, max/mean over checkpoints",
        "horizon": task["max_episode_steps"],
        "checkpoints": per_ckpt,
        "expert": expert,
        "run": str(args.run),
        "train_steps": train.get("train_steps"),
        "parameters": train.get("parameters"),
        "train_config": OmegaConf.to_container(cfg.train, resolve=True),
        "dataset": OmegaConf.to_container(cfg.dataset, resolve=True),
    }
    merge_report(args.out, args.task if action_space == "delta" else f"{args.task}_{action_space}", entry)
    print(
        f"{args.task} ({task['obs_mode']}, {action_space} actions): success max {entry['success_max']:.3f}, "
        f"mean {entry['success_mean']:.3f} "
        f"over {len(rates)} checkpoints; expert {expert['success_rate']:.3f} on the same seeds "
        f"(policy/expert {entry['success_max_over_expert']:.2f}); wrote {args.out}"
    )


if __name__ == "__main__":
    main()
