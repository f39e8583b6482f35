"""Run inside the compat venv (LeRobot): build a LeRobot DiffusionPolicy, save it as LeRobot saves a trained one
(model, config, pre- and post-processors with their normaliser statistics), and store reference action chunks
that LeRobot's own code computes for fixed observations and a fixed initial noise — the pipeline's normaliser,
`DiffusionModel.generate_actions(batch, noise)` (DDPM draws its per-step noise from torch's global generator, seeded
before each call) and the post-processor's unnormaliser. `diffpilot import lerobot` must reproduce them.

    .venv-compat/bin/python compat/lerobot_policy_peer.py --out DIR --variant state --scheduler DDPM
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SEED = 1234


def build(variant: str, scheduler: str, steps: int | None):
    import torch
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig
    from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy

    features = {"observation.state": PolicyFeature(FeatureType.STATE, (2,))}
    stats = {"observation.state": {"min": torch.tensor([10.0, 20.0]), "max": torch.tensor([500.0, 490.0])}}
    extra = {"down_dims": (16, 32), "diffusion_step_embed_dim": 16}
    if variant in ("state", "image_env"):
        features["observation.environment_state"] = PolicyFeature(FeatureType.ENV, (16,))
        stats["observation.environment_state"] = {"min": torch.zeros(16), "max": torch.full((16,), 512.0)}
    if variant in ("image", "image_env"):
        for camera in ("observation.images.top", "observation.images.wrist")[: 2 if variant == "image_env" else 1]:
            features[camera] = PolicyFeature(FeatureType.VISUAL, (3, 48, 48))
            stats[camera] = {
                "mean": torch.tensor([0.4, 0.5, 0.6]).view(3, 1, 1),
                "std": torch.tensor([0.2, 0.25, 0.3]).view(3, 1, 1),
            }
        extra |= {"crop_shape": (40, 40), "use_separate_rgb_encoder_per_camera": variant == "image_env"}
        extra["pretrained_backbone_weights"] = None  # LeRobot 0.6 defaults to ImageNet weights (a download)
    if variant == "pusht_image_default":  # LeRobot's default DiffusionConfig on PushT's image + agent position
        features["observation.image"] = PolicyFeature(FeatureType.VISUAL, (3, 96, 96))
        stats["observation.image"] = {"mean": torch.full((3, 1, 1), 0.5), "std": torch.full((3, 1, 1), 0.25)}
        extra = {"crop_shape": (84, 84), "pretrained_backbone_weights": None}  # 0.6 would download ImageNet weights
    stats["action"] = {"min": torch.tensor([0.0, 5.0]), "max": torch.tensor([512.0, 505.0])}
    cfg = DiffusionConfig(
        input_features=features,
        output_features={"action": PolicyFeature(FeatureType.ACTION, (2,))},
        device="cpu",
        noise_scheduler_type=scheduler,
        num_inference_steps=steps,
        **extra,
    )
    torch.manual_seed(0)
    policy = DiffusionPolicy(cfg).eval()
    if variant != "pusht_image_default":
        with torch.no_grad():  # an untrained UNet's output is near zero: spread the weights so the chunks differ
            for p in policy.parameters():
                p.add_(torch.randn_like(p) * 0.05)
    return policy, cfg, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--variant", choices=("state", "image", "image_env", "pusht_image_default"), default="state")
    parser.add_argument("--scheduler", choices=("DDPM", "DDIM"), default="DDPM")
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args()
    import torch
    from lerobot.policies.factory import make_pre_post_processors
    from safetensors.torch import save_file

    out = Path(args.out)
    policy, cfg, stats = build(args.variant, args.scheduler, args.steps)
    pre, post = make_pre_post_processors(cfg, dataset_stats=stats)
    policy.save_pretrained(out)
    pre.save_pretrained(out)
    post.save_pretrained(out)
    g = torch.Generator().manual_seed(7)
    batch, n_obs = 3, cfg.n_obs_steps
    window = {}
    for key, feature in cfg.input_features.items():
        shape = (batch, n_obs, *feature.shape)
        window[key] = (
            torch.rand(shape, generator=g) if len(feature.shape) == 3 else torch.rand(shape, generator=g) * 500
        )
    noise = torch.randn((batch, cfg.horizon, 2), generator=g)
    normalised = pre(dict(window))
    model_batch = {k: normalised[k] for k in window}
    if cfg.image_features:
        model_batch["observation.images"] = torch.stack([model_batch[k] for k in cfg.image_features], dim=-4)
    torch.manual_seed(SEED)
    with torch.no_grad():
        actions = post(policy.diffusion.generate_actions(model_batch, noise=noise))
    tensors = {f"window.{k}": v.contiguous() for k, v in window.items()}
    tensors |= {"noise": noise, "actions": actions.contiguous()}
    save_file(tensors, str(out / "reference.safetensors"), metadata={"seed": str(SEED), "start": str(n_obs - 1)})
    import lerobot

    print(json.dumps({"out": str(out), "lerobot": lerobot.__version__, "actions": list(actions.shape)}))


if __name__ == "__main__":
    main()
