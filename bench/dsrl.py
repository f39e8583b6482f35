"""DSRL benchmark: the frozen weak BC policy (the peer) and the same policy improved by DSRL-SAC, DSRL-NA
and DPPO at one env-step budget, all evaluated here, in this run, on the same unseen seeds; ratios are
against the base policy. Writes bench/results/dsrl.json and a learning-curve PNG from the runs' logs.

  python bench/dsrl.py --base runs/dsrl/base_policy --sac runs/dsrl/dsrl_sac --na runs/dsrl/dsrl_na \\
      --dppo runs/dsrl/dppo --episodes 100 [--na-offline runs/dsrl/dsrl_na_offline] [--modes]
  python bench/dsrl.py --task lift --base runs/dsrl_lift/base_policy --sac runs/dsrl_lift/dsrl_sac \\
      --na none --dppo none --out bench/results/dsrl_lift.json   # a method given as `none` is left out (null)

--noise-laws 1 1.5 0 also evaluates the frozen base fed fixed noise laws instead of N(0, I): w = m·tanh(z),
z ~ N(0, I), for each m (what a DSRL actor with scale m and unit σ starts from; 0: always the zero noise).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from diffpilot.atomic import atomic_path, atomic_write_json
from diffpilot.envs.registry import env_factory
from diffpilot.policies.registry import load_policy
from diffpilot.rl.dsrl import checkpoint_config, load_steered_policy
from diffpilot.rl.latent_env import FrozenChunkSampler, LatentSteering
from diffpilot.rl.runs import evaluate_policy, with_ddim

RESULTS = Path(__file__).parent / "results"
# --task → (env, obs_mode, max episode steps, title of the learning-curve plot)
TASKS = {
    "pusht_state": ("pusht", "state", None, "PushT (state)"),
    "lift": ("lift", "state", 400, "robomimic Lift (state)"),
}


def run_result(run_dir: Path) -> dict:
    path = run_dir / "result.json"
    if not path.is_file():
        raise SystemExit(f"{path} does not exist: train first with `diffpilot rl … output_dir={run_dir}`")
    return json.loads(path.read_text())


def measure(name: str, policy, args) -> dict:
    torch.manual_seed(args.seed)  # the DSRL actors sample their noise: make the evaluation repeatable
    start = time.perf_counter()
    env, obs_mode, max_steps, _ = TASKS[args.task]
    make_env = env_factory({"env": env, "obs_mode": obs_mode, "max_episode_steps": max_steps})
    summary = evaluate_policy(policy, make_env, args.episodes, args.seed, args.n_envs)
    coverage = summary["mean_max_coverage"]  # None on tasks without a coverage measure (Lift)
    print(
        f"{name:>9}: success {summary['success_rate']:.3f} "
        f"(95 % CI {summary['success_ci95'][0]:.3f}–{summary['success_ci95'][1]:.3f}), "
        f"coverage {'n/a' if coverage is None else f'{coverage:.3f}'}, {time.perf_counter() - start:.0f} s"
    )
    return summary


def plot(curves: dict[str, list[dict]], base: float, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    labels = {"dppo": "dppo (training chain, σ = 0.1 per step)", "dsrl_na_offline": "dsrl_na + demonstrations"}
    for name, history in curves.items():
        history = [p for p in history if p["episodes"] >= 20]  # the first points average a handful of episodes
        ax.plot([p["env_steps"] for p in history], [p["recent_success"] for p in history], label=labels.get(name, name))
    ax.axhline(base, color="gray", linestyle="--", label="base policy (evaluation)")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("success, last 50 training episodes")
    ax.set_ylim(0, 1)
    ax.set_title(f"{title}: RL on a frozen weak diffusion policy")
    ax.legend(loc="upper left")
    fig.tight_layout()
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def fixed_noise_policy(base_dir: Path, steps: int, scale: float):
    """The frozen base whose DDIM noise is m·tanh(z), z ~ N(0, I), instead of z itself (m = 0: zero noise)."""
    policy = with_ddim(load_policy(base_dir), steps)
    sampler = FrozenChunkSampler(policy, steps)
    policy.chunk_planner = LatentSteering(
        sampler, lambda cond: scale * torch.tanh(torch.randn(cond.shape[0], sampler.noise_dim))
    )
    return policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(TASKS), default="pusht_state")
    parser.add_argument("--base", type=Path, default=Path("runs/dsrl/base_policy"))
    parser.add_argument("--sac", type=Path, default=Path("runs/dsrl/dsrl_sac"))
    parser.add_argument("--na", type=Path, default=Path("runs/dsrl/dsrl_na"))
    parser.add_argument("--dppo", type=Path, default=Path("runs/dsrl/dppo"))
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=100_000)
    parser.add_argument("--n-envs", type=int, default=10)
    parser.add_argument("--na-offline", type=Path, help="optional: a DSRL-NA run that also learned from demonstrations")
    parser.add_argument("--modes", action="store_true", help="also evaluate the DSRL actors' deterministic mode")
    parser.add_argument(
        "--noise-laws", type=float, nargs="*", default=[], metavar="M", help="also the base fed m·tanh(N(0, I)) noise"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "dsrl.json")
    args = parser.parse_args()
    torch.set_num_threads(1)

    given = {"dsrl_sac": args.sac, "dsrl_na": args.na, "dppo": args.dppo}
    runs = {name: run_result(path) for name, path in given.items() if str(path) != "none"}
    if args.na_offline is not None:
        runs["dsrl_na_offline"] = run_result(args.na_offline)
    base_policy = load_policy(args.base)
    steps = base_policy.config.sampler.num_inference_steps
    base_policy = with_ddim(base_policy, steps)
    evals = {"base": measure("base", base_policy, args)}
    for m in args.noise_laws:
        evals[f"base_noise_{m:g}tanh"] = measure(f"base, {m:g}·tanh(z)", fixed_noise_policy(args.base, steps, m), args)
    for name in [n for n in runs if n.startswith("dsrl")]:
        evals[name] = measure(name, load_steered_policy(runs[name]["checkpoint"], load_policy(args.base)), args)
        if checkpoint_config(runs[name]["checkpoint"]).actor_average > 0:  # the row above used the averaged actor
            online = load_steered_policy(runs[name]["checkpoint"], load_policy(args.base), online=True)
            evals[f"{name}_online"] = measure(f"{name} (online actor)", online, args)
        if args.modes:  # the actor's mode m·tanh(μ(s)) instead of sampled noise
            steered = load_steered_policy(runs[name]["checkpoint"], load_policy(args.base), deterministic=True)
            evals[f"{name}_mode"] = measure(f"{name} (mode)", steered, args)
    if "dppo" in runs:
        evals["dppo"] = measure("dppo", load_policy(runs["dppo"]["finetuned_policy"]), args)

    base = evals["base"]["success_rate"]
    env_steps = {name: r["counters"]["env_steps"] for name, r in runs.items()}
    for name in runs:
        gain = evals[name]["success_rate"] - base
        ratio = evals[name]["success_rate"] / base if base else float("inf")
        print(
            f"{name:>16}: {gain * 100:+.1f} points over the base policy, ratio {ratio:.2f}, {env_steps[name]} env steps"
        )
    result = {
        "task": args.task,
        "env_steps": max(env_steps.values()),
        "base_success": base,
        **{name: evals[name]["success_rate"] if name in runs else None for name in given},
        **({"dsrl_na_offline": evals["dsrl_na_offline"]["success_rate"]} if "dsrl_na_offline" in runs else {}),
        "details": {
            "episodes": args.episodes,
            "eval_seeds": [args.seed, args.seed + args.episodes - 1],
            "base_policy": str(args.base),
            "sampler": f"DDIM-{steps} (eta 0)",
            "env_steps_per_method": env_steps,
            "evaluations": evals,
            "runs": {name: {k: v for k, v in r.items() if k != "history"} for name, r in runs.items()},
        },
    }
    atomic_write_json(args.out, result)
    plot({name: r["history"] for name, r in runs.items()}, base, args.out.with_suffix(".png"), TASKS[args.task][3])
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
