"""MoDE vs a dense transformer diffusion policy at equal total parameters and training budget, on a multi-task suite.

Suites (--suite):
- libero_object (default): LIBERO-Object's eight tasks whose scripted expert solves all 50 initial states
  (0, 2, 3, 4, 5, 7, 8, 9), from state; 50 expert demonstrations per task (one robomimic hdf5 per task); both
  policies from `configs/experiment/libero_object_multitask_cpu.yaml` (MoDE: policy=mode_small, dense:
  policy=mode_dense_small), evaluated with LIBERO's protocol (50 official initial states per task).
- pusht: gym-pusht's PushT with three goal poses for the T, one per task, that the observation does not show
  (envs/pusht_tasks.py); 100 expert demonstrations per task as one LeRobot v3 dataset.
Both policies see the task as a learned id embedding + the all-MiniLM-L6-v2 embedding of its instruction.

Measured in the same run: total / active parameters, FLOPs per chunk, per-chunk latency at batch 1 on one thread
(or each of --threads; MoDE with and without expert caching, dense, interleaved), success with a 95 % Wilson interval
per policy and per task. Writes bench/results/mode.json (libero_object) or mode_pusht.json.

  python bench/mode.py                                     # demos + train both + latency + evaluate (hours on CPU)
  python bench/mode.py --stages latency,eval               # reuse runs/mode_libero/{dense,mode} checkpoints
  python bench/mode.py --suite pusht --steps 1500 --batch-size 64 --lr 1e-3   # the earlier PushT suite
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from diffpilot.commands.data import feature_specs
from diffpilot.envs.evaluate import evaluate, wilson_interval
from diffpilot.envs.experts.pusht import ExpertPushT
from diffpilot.envs.experts.record import RecordedEpisode, record_episode
from diffpilot.envs.pusht_tasks import PUSHT_TASKS, TASK_KEY, make_multitask_pusht_env
from diffpilot.policies.checkpoint import atomic_write_json
from diffpilot.policies.datasets.lerobot_v3 import LeRobotV3Writer
from diffpilot.policies.datasets.loading import feature_shape, load_episodes
from diffpilot.policies.datasets.windowed import WindowedDataset
from diffpilot.policies.diffusion_config import DiffusionPolicyConfig, InputFeature
from diffpilot.policies.diffusion_policy import DiffusionPolicy
from diffpilot.policies.mode_stats import count_policy, dummy_window
from diffpilot.policies.nets.mode import MoDEDenoiserNet
from diffpilot.policies.train import BCTrainer, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
OBS_KEYS = ["observation.state", "observation.environment_state"]


# ------------------------------------------------------------------------------------------- demonstrations
def _record(args: tuple[int, int]) -> RecordedEpisode:
    task, seed = args
    return record_episode(functools.partial(make_multitask_pusht_env, task), ExpertPushT, seed)


def make_suite_dataset(root: Path, per_task: int, seed: int, workers: int) -> dict:
    """`per_task` successful expert demonstrations of each task (tasks in index order, so the dataset's
    task_index is the suite's) as one LeRobot v3 dataset whose task strings are the instructions."""
    if (root / "meta" / "info.json").is_file():
        return {"dataset": str(root), "reused": True}
    writer, counts = None, []
    with ProcessPoolExecutor(workers) as pool:
        for task in range(len(PUSHT_TASKS)):
            kept = attempts = 0
            jobs = ((task, s) for s in range(seed, seed + per_task + per_task // 10 + 5))  # the expert rarely fails
            for episode in pool.map(_record, jobs, chunksize=4):
                attempts += 1
                if not episode.success:
                    continue
                frames = {k: v for k, v in episode.frames.items() if k != TASK_KEY}  # the writer adds task_index
                if writer is None:
                    writer = LeRobotV3Writer(root, fps=10, features=feature_specs(frames), robot_type="pusht")
                writer.add_episode(frames, task=PUSHT_TASKS[task].instruction)
                kept += 1
                if kept == per_task:
                    break
            if kept < per_task:
                raise RuntimeError(f"task {task}: the expert succeeded in only {kept} of {attempts} attempts")
            counts.append({"task": task, "demos": kept, "attempts": attempts})
    writer.finalize()
    return {"dataset": str(root), "per_task": counts}


# ------------------------------------------------------------------------------------------- policies
def policy_config(name: str, data) -> DiffusionPolicyConfig:
    """configs/policy/<name>.yaml (composed by Hydra) with the suite's features and task conditioning."""
    with initialize_config_module("diffpilot.configs", version_base="1.3"):
        values = OmegaConf.to_container(compose("train", overrides=[f"policy={name}"]).policy, resolve=True)
    features = {k: InputFeature("state", feature_shape(data.arrays[k])) for k in OBS_KEYS}
    values.pop("type")
    values.update(
        input_features=features,
        action_dim=data.arrays["action"].shape[-1],
        task_conditioning={"mode": "id+text", "instructions": [t.instruction for t in PUSHT_TASKS]},
    )
    return DiffusionPolicyConfig.from_dict(values)


def train_policy(name: str, data, stats, out: Path, train_cfg: TrainConfig) -> dict:
    torch.manual_seed(train_cfg.seed)
    policy = DiffusionPolicy(policy_config(name, data))
    policy.load_stats({k: v for k, v in stats.items() if k in (*OBS_KEYS, "action")})
    pc = policy.config
    dataset = WindowedDataset(data, [*OBS_KEYS, TASK_KEY], "action", pc.n_obs_steps, pc.horizon, pc.n_action_steps)
    trainer = BCTrainer(policy, dataset, train_cfg, out)
    tic = time.perf_counter()
    checkpoint = trainer.train()
    ckpt = checkpoint / "pretrained_model"
    shown = ckpt.relative_to(ROOT) if ckpt.is_relative_to(ROOT) else ckpt
    return {"checkpoint": str(shown), "train_seconds": time.perf_counter() - tic}


# ------------------------------------------------------------------------------------------- measurements
def chunk_latency(policy: DiffusionPolicy, repeats: int) -> list[float]:
    """Per-chunk wall time in ms of `predict_chunk` at batch 1 (encoder + all sampler steps)."""
    window = dummy_window(policy)
    window[TASK_KEY] = torch.ones_like(window.get(TASK_KEY, torch.zeros(1, 2, 1, dtype=torch.long)))
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        policy.predict_chunk(window, generator=gen)
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        policy.predict_chunk(window, generator=gen)
        times.append((time.perf_counter() - tic) * 1e3)
    return times


def latencies(dense: DiffusionPolicy, mode: DiffusionPolicy, repeats: int, rounds: int) -> dict[str, dict]:
    """p50 / p90 per-chunk ms of dense, MoDE cached and MoDE uncached, interleaved in `rounds` so that the shared
    machine's load hits all three alike."""
    samples: dict[str, list[float]] = {"dense": [], "mode_cached": [], "mode_uncached": []}
    assert isinstance(mode.net, MoDEDenoiserNet)
    for _ in range(rounds):
        samples["dense"] += chunk_latency(dense, repeats)
        samples["mode_cached"] += chunk_latency(mode, repeats)
        with mode.net.cache_disabled():
            samples["mode_uncached"] += chunk_latency(mode, repeats)
    return {
        k: {"p50_ms": statistics.median(v), "p90_ms": float(np.percentile(v, 90)), "n": len(v)}
        for k, v in samples.items()
    }


def evaluate_suite(policy: DiffusionPolicy, episodes: int, seed: int, n_envs: int) -> dict:
    """Every task on seeds seed … seed + episodes − 1; success pooled over tasks with a Wilson interval."""
    per_task, wins, total, coverage = [], 0, 0, []
    for task in range(len(PUSHT_TASKS)):
        result = evaluate(policy, functools.partial(make_multitask_pusht_env, task), episodes, seed, n_envs)
        s = result.summary()
        per_task.append({"task": task, "instruction": PUSHT_TASKS[task].instruction, **s})
        wins += sum(e.success for e in result.episodes)
        total += len(result.episodes)
        coverage += [e.max_coverage for e in result.episodes]
    lo, hi = wilson_interval(wins, total)
    half = 1.959964 * float(np.std(coverage, ddof=1)) / np.sqrt(len(coverage))  # normal approximation
    return {
        "success": wins / total,
        "success_ci95": [lo, hi],
        "episodes": total,
        "mean_max_coverage": float(np.mean(coverage)),
        "mean_max_coverage_ci95": [float(np.mean(coverage)) - half, float(np.mean(coverage)) + half],
        "per_task": per_task,
    }


# ------------------------------------------------------------------------------------------- LIBERO-Object suite
LIBERO_EXPERIMENT = "libero_object_multitask_cpu"


def libero_cfg(overrides: list[str]):
    """The composed `diffpilot train` config of the LIBERO multi-task experiment with `overrides`."""
    with initialize_config_module("diffpilot.configs", version_base="1.3"):
        return compose("train", overrides=[f"experiment={LIBERO_EXPERIMENT}", *overrides])


def libero_train(name: str, out: Path, data: Path, args) -> dict:
    """`diffpilot train experiment=libero_object_multitask_cpu policy=<name>` (budget overrides from args)."""
    from diffpilot.commands.train import run_training

    overrides = [f"policy={name}", f"output_dir={out}", f"dataset.root={data}"]
    overrides += [f"train.{k}={v}" for k, v in (("steps", args.steps), ("batch_size", args.batch_size), ("lr", args.lr))
                  if v is not None]  # fmt: skip
    cfg = libero_cfg(overrides)
    tic = time.perf_counter()
    result = run_training(cfg)
    ckpt = Path(result["checkpoint"]) / "pretrained_model"
    return {
        "checkpoint": str(ckpt.relative_to(ROOT) if ckpt.is_relative_to(ROOT) else ckpt),
        "train_seconds": time.perf_counter() - tic,
        "policy_config": name,
        "steps": cfg.train.steps,
        "batch_size": cfg.train.batch_size,
        "lr": cfg.train.lr,
        "command": f"diffpilot train experiment={LIBERO_EXPERIMENT} " + " ".join(overrides),
    }


def libero_evaluate(policy: DiffusionPolicy, task_cfg: dict, out: Path, args) -> dict:
    """LIBERO's protocol on the suite's tasks (`args.episodes` each from initial state 0 on); pooled success."""
    from diffpilot.atomic import atomic_write_json
    from diffpilot.envs.libero import evaluate_suite

    saved = out / "eval_info.json"
    info = json.loads(saved.read_text()) if args.reuse_eval and saved.is_file() else None
    same = info is not None and info["episodes_per_task"] == args.episodes
    same = same and set(info["tasks"]) == {str(t) for t in task_cfg["tasks"]}
    if not (same and info["init_states"].startswith(f"seed {args.seed} ")):  # not the same protocol: run it
        info = evaluate_suite(policy, task_cfg, args.episodes, args.seed, args.n_envs)
        atomic_write_json(saved, info)
    return {
        "success": info["success_rate"],
        "success_ci95": info["success_ci95"],
        "episodes": info["episodes"],
        "mean_task_success": info["mean_task_success"],
        "per_task": {
            k: {key: t[key] for key in ("instruction", "success_rate", "success_ci95", "episodes", "mean_steps")}
            for k, t in info["tasks"].items()
        },
        "eval_info": str(out / "eval_info.json"),
    }


def libero_suite(args, report: dict) -> tuple[Path, dict]:
    """Data and training stages of the LIBERO-Object suite; returns the runs directory and the task config."""
    from diffpilot.commands.data_libero import make_libero_demonstrations

    cfg = libero_cfg([])
    task_cfg = OmegaConf.to_container(cfg.task, resolve=True)
    data = args.data or ROOT / "runs" / "libero" / "demos"
    runs = args.runs or ROOT / "runs" / "mode_libero"
    report.update(suite=SUITES["libero_object"], tasks=len(task_cfg["tasks"]), task_indices=task_cfg["tasks"])
    if "data" in args.stages:
        files = [data / f"libero_object_task{t}.hdf5" for t in task_cfg["tasks"]]
        if all(f.is_file() for f in files):
            report["data"] = {"dataset": str(data), "reused": True}
        else:
            report["data"] = make_libero_demonstrations(task_cfg, args.demos_per_task or 50, 0, data)
    loaded, _ = load_episodes(data, "robomimic_hdf5", ["task_index", "action"])
    first = loaded.arrays["task_index"][loaded.episode_ranges[:, 0], 0]
    report["instructions"] = {int(t): loaded.tasks[int(t)] for t in task_cfg["tasks"]}
    report["dataset"] = {
        "root": str(data.relative_to(ROOT) if data.is_relative_to(ROOT) else data),
        "episodes": loaded.num_episodes,
        "frames": loaded.num_frames,
        "episodes_per_task": {int(t): int((first == t).sum()) for t in task_cfg["tasks"]},
    }
    if "train" in args.stages:
        for key, name in POLICY_CONFIGS.items():
            report.setdefault(key, {})["train"] = libero_train(name, runs / key, data, args)
            atomic_write_json(args.out, report)
    return runs, task_cfg


def pusht_suite(args, report: dict) -> Path:
    """Data and training stages of the multi-task PushT suite; returns the runs directory."""
    data_root = args.data or ROOT / "data" / "pusht_multitask"
    runs = args.runs or ROOT / "runs" / "mode"
    report.update(suite=SUITES["pusht"], tasks=len(PUSHT_TASKS), instructions=[t.instruction for t in PUSHT_TASKS])
    if "data" in args.stages:
        report["data"] = make_suite_dataset(data_root, args.demos_per_task or 100, 0, workers=2)
        print(json.dumps(report["data"]))
    data, stats = load_episodes(data_root, "lerobot_v3", [*OBS_KEYS, "action", TASK_KEY])
    first = data.arrays[TASK_KEY].reshape(-1)[data.episode_ranges[:, 0]]
    report["dataset"] = {
        "root": str(data_root.relative_to(ROOT) if data_root.is_relative_to(ROOT) else data_root),
        "episodes": data.num_episodes,
        "frames": data.num_frames,
        "episodes_per_task": np.bincount(first, minlength=len(PUSHT_TASKS)).tolist(),
        "tasks": list(data.tasks),
    }
    train_cfg = TrainConfig(
        steps=args.steps or 1500,
        batch_size=args.batch_size or 64,
        lr=args.lr or 1e-3,
        warmup_steps=200,
        log_every=100,
        num_threads=1,
    )
    if "train" in args.stages:
        for key, name in POLICY_CONFIGS.items():
            report.setdefault(key, {})["train"] = {
                **train_policy(name, data, stats, runs / key, train_cfg),
                "policy_config": name,
                "steps": train_cfg.steps,
                "batch_size": train_cfg.batch_size,
                "lr": train_cfg.lr,
            }
            atomic_write_json(args.out, report)
    return runs


SUITES = {
    "libero_object": "LIBERO-Object, 8 tasks (0, 2, 3, 4, 5, 7, 8, 9), state observations, LIBERO's protocol",
    "pusht": "multi-task PushT (gym-pusht, 3 goal poses with instructions; envs/pusht_tasks.py)",
}
POLICY_CONFIGS = {"dense": "mode_dense_small", "mode": "mode_small"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=sorted(SUITES), default="libero_object")
    parser.add_argument("--stages", default="data,train,latency,eval")
    parser.add_argument("--data", type=Path, help="demonstrations (default: per suite)")
    parser.add_argument("--runs", type=Path, help="where the two policies train (default: runs/mode_libero, runs/mode)")
    parser.add_argument("--demos-per-task", type=int, help="default: 50 (LIBERO), 100 (PushT)")
    parser.add_argument("--steps", type=int, help="training steps (default: the experiment config's; PushT 1500)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--episodes", type=int, default=50, help="evaluation episodes per task")
    parser.add_argument("--seed", type=int, default=100_000)
    parser.add_argument("--n-envs", type=int, default=10)
    parser.add_argument(
        "--reuse-eval", action="store_true", help="LIBERO: take <runs>/<policy>/eval/eval_info.json when it matches"
    )
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1], help="torch threads for the latency rows")
    parser.add_argument("--out", type=Path, help="default: bench/results/mode.json (LIBERO), mode_pusht.json")
    args = parser.parse_args()
    args.stages = set(args.stages.split(","))
    args.out = args.out or RESULTS / ("mode.json" if args.suite == "libero_object" else "mode_pusht.json")
    torch.set_num_threads(1)

    report: dict = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if args.suite == "libero_object":
        runs, task_cfg = libero_suite(args, report)
    else:
        runs, task_cfg = pusht_suite(args, report), None
    policies = {
        key: DiffusionPolicy.from_pretrained(runs / key / "checkpoints" / "last" / "pretrained_model")
        for key in POLICY_CONFIGS
    }
    for key, policy in policies.items():
        report.setdefault(key, {}).update(count_policy(policy).to_dict())
    if "latency" in args.stages:
        machine = platform.processor() or platform.machine()
        by_threads = {}
        for threads in args.threads:  # the first count gives the headline numbers
            torch.set_num_threads(threads)
            lat = latencies(policies["dense"], policies["mode"], args.repeats, args.rounds)
            by_threads[str(threads)] = {**lat, "batch": 1, "threads": threads, "machine": machine}
            print(f"{threads} thread(s):", {k: round(v["p50_ms"], 2) for k, v in lat.items()})
        torch.set_num_threads(1)
        lat = by_threads[str(args.threads[0])]
        report["dense"]["p50_ms"] = lat["dense"]["p50_ms"]
        report["mode"]["p50_ms_cached"] = lat["mode_cached"]["p50_ms"]
        report["mode"]["p50_ms_uncached"] = lat["mode_uncached"]["p50_ms"]
        report["latency"], report["latency_by_threads"] = lat, by_threads
        atomic_write_json(args.out, report)
    if "eval" in args.stages:
        for key, policy in policies.items():
            if task_cfg is not None:
                report[key]["eval"] = libero_evaluate(policy, task_cfg, runs / key / "eval", args)
            else:
                report[key]["eval"] = evaluate_suite(policy, args.episodes, args.seed, n_envs=args.n_envs)
            report[key]["success"] = report[key]["eval"]["success"]
            atomic_write_json(args.out, report)
    d, m = report["dense"], report["mode"]
    report["ratios"] = {
        "active_params_fewer_than_dense": 1 - m["active_params"] / d["active_params"],
        "total_params_mode_over_dense": m["total_params"] / d["total_params"],
        "flops_per_chunk_mode_over_dense": m["flops_per_chunk"] / d["flops_per_chunk"],
    }
    if "p50_ms_cached" in m:
        report["ratios"].update(
            cached_speedup_over_uncached=m["p50_ms_uncached"] / m["p50_ms_cached"],
            cached_speedup_over_dense=d["p50_ms"] / m["p50_ms_cached"],
        )
    atomic_write_json(args.out, report)
    print(json.dumps({k: report[k] for k in ("ratios",)}, indent=2))


if __name__ == "__main__":
    main()
