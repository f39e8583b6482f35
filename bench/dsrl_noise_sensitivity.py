"""How much a frozen DSRL base policy's executed actions depend on its initial noise — the room DSRL has to steer.

For each base (a policy checkpoint and the dataset it was trained on): observation windows from the dataset, each
with --noises initial noises (standard normal times each --scales factor) through the policy's deterministic DDIM
sampler (its checkpoint's step count); the per-dimension std of the executed actions across the noises, in the
policy's normalised action units ([-1, 1]), averaged over dimensions and windows. DSRL's actor picks noises
w = m·tanh(u) with m = 1.5, so the scales 1 and 1.5 span what it can reach. Writes
bench/results/dsrl_noise_sensitivity.json.

  python bench/dsrl_noise_sensitivity.py \\
      --base pusht=runs/dsrl_pusht/base_policy@data/pusht_demo \\
      --base lift=runs/dsrl_lift/base_policy@data/robomimic/lift_state_10demos.hdf5
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from diffpilot.atomic import atomic_write_json
from diffpilot.policies.datasets.loading import load_episodes
from diffpilot.policies.registry import load_policy
from diffpilot.rl.latent_env import FrozenChunkSampler

RESULTS = Path(__file__).resolve().parent / "results"


def parse_base(text: str) -> tuple[str, Path, Path]:
    """'name=policy_dir@dataset_root' → (name, policy_dir, dataset_root)."""
    name, sep, rest = text.partition("=")
    policy, at, dataset = rest.partition("@")
    if not (sep and at and name and policy and dataset):
        raise SystemExit(f"--base {text!r}: expected name=<policy dir>@<dataset root>")
    return name, Path(policy), Path(dataset)


def sensitivity(policy_dir: Path, dataset: Path, windows: int, noises: int, scales: list[float], seed: int) -> dict:
    policy = load_policy(policy_dir)
    steps = json.loads((policy_dir / "config.json").read_text())["config"]["num_inference_steps"]
    sampler = FrozenChunkSampler(policy, steps)
    keys = list(policy.config.input_features)
    fmt = "robomimic_hdf5" if dataset.suffix == ".hdf5" else "lerobot_v3"
    data, _ = load_episodes(dataset, fmt, keys)
    n_obs = policy.config.n_obs_steps
    episodes = [(int(a), int(b)) for a, b in data.episode_ranges if b - a > n_obs]  # windows inside one episode
    rng = np.random.default_rng(seed)
    frames = [
        int(rng.integers(a, b - n_obs)) for a, b in (episodes[i] for i in rng.integers(len(episodes), size=windows))
    ]
    gen = torch.Generator().manual_seed(seed)
    out = {"policy": str(policy_dir), "dataset": str(dataset), "ddim_steps": steps, "levels": sampler.timesteps}
    for scale in scales:
        stds, magnitude = [], []
        for f in frames:
            window = {k: data.arrays[k][f : f + n_obs][None].astype(np.float32) for k in keys}
            cond = sampler.encode(window).repeat(noises, 1)
            actions = sampler.executed(
                sampler.chunk(cond, scale * torch.randn(noises, sampler.noise_dim, generator=gen))
            )
            stds.append(actions.std(0).mean().item())
            magnitude.append(actions.abs().mean().item())
        out[f"scale_{scale:g}"] = {"action_std": float(np.mean(stds)), "mean_abs_action": float(np.mean(magnitude))}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", action="append", required=True, help="name=<policy dir>@<dataset root>, repeatable")
    ap.add_argument("--windows", type=int, default=20, help="observation windows per base")
    ap.add_argument("--noises", type=int, default=256, help="initial noises per window")
    ap.add_argument("--scales", default="1,1.5", help="noise scale factors, comma-separated")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS / "dsrl_noise_sensitivity.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    scales = [float(s) for s in args.scales.split(",") if s]
    report = {"windows": args.windows, "noises": args.noises, "bases": {}}
    for name, policy_dir, dataset in map(parse_base, args.base):
        row = sensitivity(policy_dir, dataset, args.windows, args.noises, scales, args.seed)
        report["bases"][name] = row
        shown = {k: round(v["action_std"], 3) for k, v in row.items() if k.startswith("scale_")}
        print(f"{name}: executed-action std across noises {shown} (DDIM-{row['ddim_steps']} {row['levels']})")
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
