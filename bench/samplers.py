"""Samplers on the same weights: success of one trained diffusion policy sampled with each variant, every variant
rolled out on the same seeds with the same noise stream (torch reseeded per variant), so the rows differ only by the
sampler. A variant is `<sampler>:<steps>[:<spacing>]` (the registered sampler names: ddim, dpmpp_2m, heun, …) or
`<sampler>@<level>,<level>,…` for an explicit step list.

  python bench/samplers.py --policy runs/cpu_diffusion/checkpoints/last/pretrained_model --episodes 200 \\
      --variants ddim:5 dpmpp_2m:5 ddim:10 dpmpp_2m:10 --out bench/results/dpm_solver.json
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import torch

from diffpilot.atomic import atomic_write_json
from diffpilot.envs.evaluate import evaluate
from diffpilot.envs.registry import env_factory
from diffpilot.policies.registry import load_policy

RESULTS = Path(__file__).resolve().parent / "results"


def parse_variant(text: str) -> tuple[dict, list[int] | None]:
    """'ddim:5:quadratic' → ({name, num_inference_steps, timestep_spacing}, None); 'heun@98,82,0' → (…, levels)."""
    if "@" in text:
        name, _, levels = text.partition("@")
        steps = [int(v) for v in levels.split(",")]
        return {"name": name, "num_inference_steps": len(steps)}, steps
    name, _, rest = text.partition(":")
    count, _, spacing = rest.partition(":")
    if not count.isdigit():
        raise SystemExit(f"--variants {text!r}: expected <sampler>:<steps>[:<spacing>] or <sampler>@<l1>,<l2>,…")
    fields = {"name": name, "num_inference_steps": int(count)}
    return fields | ({"timestep_spacing": spacing} if spacing else {}), None


class FixedSteps:
    """A chunk planner sampling every chunk over one explicit step list from pure noise."""

    def __init__(self, policy, steps: list[int]):
        self.policy, self.timesteps = policy, steps

    def reset(self) -> None:
        pass

    def __call__(self, window):
        return self.policy.predict_chunk(window, timesteps=self.timesteps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", type=Path, required=True, help="a diffusion policy's pretrained_model directory")
    ap.add_argument("--variants", nargs="+", required=True)
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--seed", type=int, default=100_000, help="first evaluation seed (demonstrations use < 100000)")
    ap.add_argument("--n-envs", type=int, default=10)
    ap.add_argument("--n-action-steps", type=int, default=4, help="actions executed per chunk")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS / "samplers.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    base = load_policy(args.policy).with_n_action_steps(args.n_action_steps)
    task = {"env": "pusht", "obs_mode": "state"}
    rows = []
    for text in args.variants:
        fields, steps = parse_variant(text)
        policy = base.with_sampler(base.config.sampler.replace(**fields))
        steps = steps or policy.sampler.default_timesteps()
        if steps != policy.sampler.default_timesteps():
            policy.chunk_planner = FixedSteps(policy, steps)
        torch.manual_seed(args.seed)  # the same noise stream for every variant
        start = time.perf_counter()
        summary = evaluate(policy, env_factory(task), args.episodes, args.seed, args.n_envs, progress=False).summary()
        row = {
            "variant": text,
            "sampler": fields["name"],
            "steps": steps,
            "nfe": policy.sampler.nfe(steps),
            "episodes": summary["episodes"],
            "success_rate": summary["success_rate"],
            "success_ci95": summary["success_ci95"],
            "mean_max_coverage": summary["mean_max_coverage"],
            "seconds": round(time.perf_counter() - start, 1),
        }
        rows.append(row)
        lo, hi = row["success_ci95"]
        print(f"{text:>28}  NFE {row['nfe']:>3}  success {row['success_rate']:.1%} ({lo:.1%}–{hi:.1%})", flush=True)
        report = {
            "command": shlex.join(["python", "bench/samplers.py", *sys.argv[1:]]),
            "policy": str(args.policy),
            "seeds": [args.seed, args.seed + args.episodes - 1],
            "n_action_steps": args.n_action_steps,
            "rows": rows,
        }
        atomic_write_json(args.out, report)


if __name__ == "__main__":
    main()
