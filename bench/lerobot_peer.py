"""The peer for bench/inference.py and bench/train_speed.py, run inside the compat venv (.venv-compat: torch 2.10 +
lerobot 0.4.4). Default: per-chunk latency of LeRobot's DiffusionPolicy.select_action at batch 1 with its default
config (U-Net 512/1024/2048, 100 DDPM steps; 84×84 crop as in LeRobot's PushT model). `--train`: seconds per
training step (forward, backward, AdamW) at `--batch` with `--down-dims` (diffpilot's CPU UNet: 32 64 128).
Prints one JSON object.

    .venv-compat/bin/python bench/lerobot_peer.py --shape state --threads 2 --repeats 5
    .venv-compat/bin/python bench/lerobot_peer.py --train --shape image --down-dims 32 64 128 --batch 256
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def build(shape: str, **config):
    import torch
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig
    from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy

    features = {"observation.state": PolicyFeature(FeatureType.STATE, (2,))}
    obs = {"observation.state": torch.rand(1, 2)}
    if shape == "state":
        features["observation.environment_state"] = PolicyFeature(FeatureType.ENV, (16,))
        obs["observation.environment_state"] = torch.rand(1, 16)
    else:
        features["observation.image"] = PolicyFeature(FeatureType.VISUAL, (3, 96, 96))
        obs["observation.image"] = torch.rand(1, 3, 96, 96)
    cfg = DiffusionConfig(
        input_features=features,
        output_features={"action": PolicyFeature(FeatureType.ACTION, (2,))},
        device="cpu",
        crop_shape=(84, 84),
        pretrained_backbone_weights=None,  # LeRobot 0.6 defaults to ImageNet weights (a download); timing is the same
        **config,
    )
    policy = DiffusionPolicy(cfg).eval()
    return policy, obs


def time_training(shape: str, down_dims: list[int], embed_dim: int, batch: int, steps: int) -> dict:
    """Seconds per training step of LeRobot's DiffusionPolicy on random normalised batches (the first is warm-up)."""
    import torch

    policy, _ = build(shape, down_dims=tuple(down_dims), diffusion_step_embed_dim=embed_dim)
    policy.train()
    c = policy.config
    data = {
        "observation.state": torch.rand(batch, c.n_obs_steps, 2) * 2 - 1,
        "action": torch.rand(batch, c.horizon, 2) * 2 - 1,
        "action_is_pad": torch.zeros(batch, c.horizon, dtype=torch.bool),
    }
    if shape == "state":
        data["observation.environment_state"] = torch.rand(batch, c.n_obs_steps, 16) * 2 - 1
    else:
        data["observation.image"] = torch.rand(batch, c.n_obs_steps, 3, 96, 96)
    optimiser = torch.optim.AdamW(policy.parameters(), lr=1e-4)
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        loss = policy.forward(data)[0]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if i:
            times.append(time.perf_counter() - start)
    return {
        "parameters": sum(p.numel() for p in policy.parameters()),
        "step_s": statistics.median(times),
        "times_s": times,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=("state", "image"), default="state")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train", action="store_true", help="time training steps instead of inference")
    parser.add_argument(
        "--down-dims", type=int, nargs="+", default=[512, 1024, 2048], help="--train: the UNet's widths"
    )
    parser.add_argument("--embed-dim", type=int, default=128, help="--train: the diffusion-step embedding's size")
    parser.add_argument("--batch", type=int, default=256, help="--train: the batch size")
    args = parser.parse_args()
    import lerobot
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.train:
        report = time_training(args.shape, args.down_dims, args.embed_dim, args.batch, args.repeats)
        name = f"lerobot {lerobot.__version__} DiffusionPolicy, U-Net {args.down_dims}, training step"
        print(
            json.dumps(
                {
                    "name": name,
                    "torch": torch.__version__,
                    "threads": args.threads,
                    "batch": args.batch,
                    "samples_per_s": args.batch / report["step_s"],
                    **report,
                }
            )
        )
        return
    policy, obs = build(args.shape)
    params = sum(p.numel() for p in policy.parameters())
    times = []
    with torch.inference_mode():
        for i in range(args.repeats + 1):
            policy.reset()  # empty queue: the next select_action samples a whole chunk
            start = time.perf_counter()
            policy.select_action(obs)
            if i:  # the first call is warm-up
                times.append((time.perf_counter() - start) * 1000)
    times.sort()
    print(
        json.dumps(
            {
                "name": f"lerobot {lerobot.__version__} DiffusionPolicy (default config, DDPM-100)",
                "torch": torch.__version__,
                "parameters": params,
                "threads": args.threads,
                "repeats": len(times),
                "p50_ms": statistics.median(times),
                "p99_ms": times[min(len(times) - 1, round(0.99 * (len(times) - 1)))],
                "times_ms": times,
            }
        )
    )


if __name__ == "__main__":
    main()
