"""PushT benchmark: a trained policy's success and coverage beside its peer, the scripted expert that made
its demonstrations, measured in the same run on the same evaluation seeds. Writes bench/results/pusht.json.

  python bench/pusht.py --run runs/pusht_state_full     # a training run's final evaluation (result.json)
  python bench/pusht.py --policy <dir> --episodes 100   # evaluate a checkpoint here
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from diffpilot.commands.evaluate import EvalSettings, evaluate_policy, load_policy
from diffpilot.envs.evaluate import wilson_interval
from diffpilot.envs.experts.pusht import ExpertPushT
from diffpilot.envs.experts.record import record_episode
from diffpilot.envs.pusht import make_pusht_env
from diffpilot.policies.checkpoint import atomic_write_json
from diffpilot.run import record_evaluation

RESULTS = Path(__file__).parent / "results"


def measure_expert(episodes: int, seed: int) -> dict:
    """The scripted expert on the evaluation seeds: success, episode length, env steps/s with planning."""
    start, steps, wins = time.perf_counter(), 0, 0
    for s in range(seed, seed + episodes):
        ep = record_episode(lambda: make_pusht_env("state"), ExpertPushT, s)
        steps += ep.length
        wins += ep.success
    seconds = time.perf_counter() - start
    lo, hi = wilson_interval(wins, episodes)
    return {
        "episodes": episodes,
        "success_rate": wins / episodes,
        "success_ci95": [lo, hi],
        "mean_steps": steps / episodes,
        "env_steps_per_s": steps / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a training run directory holding result.json with 'eval'")
    parser.add_argument("--policy", type=Path, help="a pretrained_model directory to evaluate here")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=100_000)
    parser.add_argument("--expert-episodes", type=int, default=100)
    parser.add_argument("--name", help="what the policy is, for the report")
    parser.add_argument("--device-note", default=platform.processor() or platform.machine())
    parser.add_argument("--out", type=Path, default=RESULTS / "pusht.json")
    args = parser.parse_args()
    if args.run is None and args.policy is None:
        args.policy = Path("runs/demo/checkpoints/last/pretrained_model")

    if args.run is not None:
        train = json.loads((args.run / "result.json").read_text())
        if "eval" not in train:
            raise SystemExit(f"{args.run / 'result.json'} has no 'eval': train with eval.episodes=100")
        evaluation, train_steps = train["eval"], train["train_steps"]
    else:
        settings = EvalSettings(args.episodes, args.seed, n_envs=10)
        evaluation = evaluate_policy(load_policy(args.policy), {"env": "pusht", "obs_mode": "state"}, settings)
        record_evaluation(evaluation, args.policy / ".." / "bench_eval")
        train_steps = json.loads((args.policy.parent / "training_state" / "state.json").read_text())["step"]
    expert = measure_expert(args.expert_episodes, args.seed)
    result = {
        "policy": args.name or f"diffusion policy, sampler={evaluation['sampler']}",
        "episodes": evaluation["episodes"],
        "success_rate": evaluation["success_rate"],
        "success_ci95": evaluation["success_ci95"],
        "mean_max_coverage": evaluation["mean_max_coverage"],
        "train_steps": train_steps,
        "evaluation_seeds": [args.seed, args.seed + evaluation["episodes"] - 1],
        "expert": expert,
        "success_ratio_vs_expert": evaluation["success_rate"] / max(expert["success_rate"], 1e-9),
        "machine": args.device_note,
    }
    atomic_write_json(args.out, result)
    print(f"{'':24}{'success':>10}{'95% CI':>18}{'coverage':>10}")
    lo, hi = evaluation["success_ci95"]
    print(f"{'policy':24}{result['success_rate']:>10.1%}{f'{lo:.1%}–{hi:.1%}':>18}{result['mean_max_coverage']:>10.3f}")
    elo, ehi = expert["success_ci95"]
    print(f"{'scripted expert (peer)':24}{expert['success_rate']:>10.1%}{f'{elo:.1%}–{ehi:.1%}':>18}{'':>10}")
    print(f"policy / expert success ratio: {result['success_ratio_vs_expert']:.3f}; wrote {args.out}")
    print(f"expert: {expert['mean_steps']:.0f} steps per episode, {expert['env_steps_per_s']:.0f} env steps/s")


if __name__ == "__main__":
    main()
