"""How far a flow policy's few-step paths land from its fine path — the offline proxy for few-step success.

Dataset windows (observation + the recorded action chunk x1), each re-noised to a start time t0 along the flow path
x_t0 = t0·x1 + (1 − t0)·ε (what an RTI warm start feeds the sampler, with the shifted previous chunk as x1), then
integrated to t = 1 twice with shared noise: with the few-step list under test and with `--fine-steps` uniform Euler
steps over the whole path (a shortcut model's flow field: steps of 1/M). Prints and writes the RMS distance in
normalised action units ([-1, 1]) per (start, steps) pair. On PushT a gap of ~0.004 was what let 10-step samplers
match the full sampler's success; RTI-3 on the 24k-step shortcut model was 0.0105 (docs/experiments/inference.md,
"RTI on a shortcut flow model").

  python bench/chunk_error.py --policy runs/cpu_shortcut/checkpoints/last/pretrained_model --data data/pusht \\
      --pairs 0.625:3 0.25:3 0:1 --out bench/results/chunk_error_shortcut.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from diffpilot.atomic import atomic_write_json
from diffpilot.policies.datasets.loading import load_episodes
from diffpilot.policies.datasets.windowed import WindowedDataset
from diffpilot.policies.registry import load_policy


def parse_pair(text: str) -> tuple[float, int]:
    """'0.625:3' → (start time 0.625, 3 steps)."""
    start, sep, steps = text.partition(":")
    try:
        pair = float(start), int(steps)
    except ValueError:
        pair = None
    if not sep or pair is None or not 0.0 <= pair[0] < 1.0 or pair[1] < 1:
        raise SystemExit(f"--pairs {text!r}: expected <start time in [0, 1)>:<steps ≥ 1>, e.g. 0.625:3")
    return pair


def uniform_times(start: float, steps: int) -> list[float]:
    """Start times of `steps` equal Euler steps from `start` to 1 (whatever the policy's flow_time_power)."""
    return [start + (1.0 - start) * i / steps for i in range(steps)]


@torch.no_grad()
def chunk_errors(policy_dir: Path, dataset: Path, pairs: list[tuple[float, int]], windows: int, fine: int, seed: int):
    """{'<start>:<steps>': RMS distance to the fine path} over `windows` dataset windows."""
    policy = load_policy(policy_dir)
    cfg = policy.config
    if cfg.objective != "flow":
        raise SystemExit(f"--policy {policy_dir}: objective={cfg.objective!r}; expected a flow policy")
    fmt = "robomimic_hdf5" if dataset.suffix == ".hdf5" else "lerobot_v3"
    keys = policy.observation_keys
    data, _ = load_episodes(dataset, fmt, [*keys, cfg.action_key])
    windowed = WindowedDataset(data, keys, cfg.action_key, cfg.n_obs_steps, cfg.horizon, cfg.n_action_steps)
    rng = np.random.default_rng(seed)
    batch = windowed.get_batch(rng.choice(len(windowed), size=min(windows, len(windowed)), replace=False))
    cond = policy.encode({k: batch[k] for k in keys})
    x1 = policy.normalizer.normalize(cfg.action_key, torch.as_tensor(batch[cfg.action_key]).float())
    noise = torch.randn(x1.shape, generator=torch.Generator().manual_seed(seed))
    sampler, den = policy.sampler, policy.denoiser
    out = {}
    for start, steps in pairs:
        x_start = sampler.add_noise(x1, noise, start)
        few = sampler.sample(den, x_start, cond, timesteps=uniform_times(start, steps))
        ref = sampler.sample(den, x_start, cond, timesteps=uniform_times(start, max(1, round(fine * (1.0 - start)))))
        out[f"{start:g}:{steps}"] = float((few - ref).pow(2).mean().sqrt())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", type=Path, required=True, help="a flow policy's pretrained_model directory")
    ap.add_argument("--data", type=Path, required=True, help="the dataset it was trained on")
    ap.add_argument("--pairs", nargs="+", default=["0.625:3", "0.25:3", "0:1"], help="<start>:<uniform steps>")
    ap.add_argument("--windows", type=int, default=512)
    ap.add_argument("--fine-steps", type=int, default=128, help="uniform steps over [0, 1] of the reference path")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pairs = [parse_pair(p) for p in args.pairs]
    errors = chunk_errors(args.policy, args.data, pairs, args.windows, args.fine_steps, args.seed)
    for name, rms in errors.items():
        print(f"start:steps {name:>9}  RMS to the {args.fine_steps}-step path: {rms:.4f}")
    if args.out:
        result = {
            "policy": str(args.policy),
            "dataset": str(args.data),
            "windows": args.windows,
            "fine_steps": args.fine_steps,
            "rms": errors,
        }
        atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
