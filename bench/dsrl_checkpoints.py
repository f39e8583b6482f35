"""How steady a DSRL run's steered policy is over training: every RL checkpoint's actor, and the actor whose weights
are the mean of the last --average checkpoints' actors, each steering the frozen base on the same seeds (the base
and its starting noise law 1·tanh(z) measured in the same run). Use seeds that no report uses (default 400000…):
this is for diagnosis and choices, the report seeds stay untouched. Writes bench/results/dsrl_checkpoints.json.

  python bench/dsrl_checkpoints.py --base runs/dsrl_noisy/base_policy \\
      --run runs/dsrl_noisy/sac_fixstd1_3x512 --run runs/dsrl_noisy/sac_fixstd1_3x512_seed1 --average 2 4
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import torch
from dsrl import TASKS, fixed_noise_policy, measure

from diffpilot.atomic import atomic_write_json
from diffpilot.policies.registry import load_policy
from diffpilot.rl.dsrl import checkpoint_config, evaluated_actor, load_steered_policy
from diffpilot.rl.runs import with_ddim
from diffpilot.run import STATE_FILE, TRAINING_STATE, atomic_save_tensors, load_tensors, mark_complete, read_state

RESULTS = Path(__file__).resolve().parent / "results"


def averaged_checkpoint(checkpoints: list[Path], out: Path) -> Path:
    """A copy of the last checkpoint whose evaluated actor ("actor" or, when the run kept one, "actor_average")
    holds the mean of `checkpoints`' actor weights."""
    prefix = evaluated_actor(checkpoint_config(checkpoints[-1])) + "."
    files = [c / TRAINING_STATE / "modules.safetensors" for c in checkpoints]
    tensors = [load_tensors(f, "RL checkpoint") for f in files]
    mean = dict(tensors[-1])
    for key in mean:
        if key.startswith(prefix):
            mean[key] = torch.stack([t[key] for t in tensors]).mean(dim=0)
    (out / TRAINING_STATE).mkdir(parents=True, exist_ok=True)
    shutil.copy(checkpoints[-1] / TRAINING_STATE / STATE_FILE, out / TRAINING_STATE / STATE_FILE)
    atomic_save_tensors(out / TRAINING_STATE / "modules.safetensors", mean)
    state = read_state(checkpoints[-1])
    mark_complete(out, state["step"], state["unit"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(TASKS), default="pusht_state")
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--run", type=Path, action="append", required=True, help="a DSRL run directory (repeatable)")
    parser.add_argument("--average", type=int, nargs="*", default=[2, 4], help="average the last k checkpoints' actors")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=400_000)
    parser.add_argument("--n-envs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=RESULTS / "dsrl_checkpoints.json")
    args = parser.parse_args()
    torch.set_num_threads(1)

    base = load_policy(args.base)
    steps = base.config.sampler.num_inference_steps
    base = with_ddim(base, steps)
    report: dict = {
        "task": args.task,
        "episodes": args.episodes,
        "seeds": [args.seed, args.seed + args.episodes - 1],
        "base_policy": str(args.base),
        "base": measure("base", base, args),
        "base_noise_1tanh": measure("1·tanh(z)", fixed_noise_policy(args.base, steps, 1.0), args),
        "runs": {},
    }
    for run in args.run:
        checkpoints = sorted((run / "checkpoints").glob("step_*"))
        if not checkpoints:
            raise SystemExit(f"--run {run}: no checkpoints under {run / 'checkpoints'}")
        rows = {c.name: measure(c.name, load_steered_policy(c, load_policy(args.base)), args) for c in checkpoints}
        with tempfile.TemporaryDirectory() as tmp:
            for k in args.average:
                last = checkpoints[-k:]
                ckpt = averaged_checkpoint(last, Path(tmp) / f"mean_last_{k}")
                rows[f"mean_of_last_{k}"] = {
                    "checkpoints": [c.name for c in last],
                    **measure(f"mean of last {k}", load_steered_policy(ckpt, load_policy(args.base)), args),
                }
        report["runs"][str(run)] = rows
        atomic_write_json(args.out, report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
