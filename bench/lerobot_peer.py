"""The peer for bench/inference.py, run inside the compat venv (.venv-compat: torch 2.10 + lerobot 0.4.4):
per-chunk latency of LeRobot's DiffusionPolicy.select_action at batch 1 with its default config (U-Net
512/1024/2048, 100 DDPM steps; 84×84 crop as in LeRobot's PushT model). Prints one JSON object.

    .venv-compat/bin/python bench/lerobot_peer.py --shape state --threads 2 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def build(shape: str):
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
    )
    policy = DiffusionPolicy(cfg).eval()
    return policy, obs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=("state", "image"), default="state")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import lerobot
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
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
