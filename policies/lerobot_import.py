"""LeRobot DiffusionPolicy checkpoints in: a `pretrained_model` folder written by LeRobot (config.json,
model.safetensors and, from LeRobot 0.4 on, the pre-processor's normaliser statistics) becomes a diffpilot
DiffusionPolicy with the same network, weights, statistics and noise scheduler — so RTI, the few-step samplers,
ONNX export and `diffpilot serve` work on it. Nothing of LeRobot is imported: the files are read as they are.

What maps onto what (LeRobot's `modeling_diffusion.py`): the 1-D UNet (`DiffusionConditionalUnet1d`, FiLM with
scale) → `ConditionalUnet1D`, key for key; the ResNet-18 with GroupNorm (or BatchNorm, LeRobot 0.6's default),
spatial softmax (32 keypoints) and linear + ReLU (`DiffusionRgbEncoder`) → `ImageEncoder` at width 64, one shared or
one per camera; the global condition — per observation step [robot state, camera features, environment state] — is
reordered to diffpilot's [states, cameras] by permuting the FiLM layers' input columns. The scheduler: DDPM over all
K levels → `ddpm`; DDPM with fewer steps → `ddim` with η = 1 on diffusers' "leading" levels (the same posterior
variance); DDIM → `ddim`, η = 0, "leading", the model's ε kept after clipping; `clip_sample_range` → `clip_sample`.
Normalisation: LeRobot's `normalization_mapping` per feature type, ENV features unnormalised unless mapped (identity
is written as min −1 / max 1). Anything without a faithful counterpart (other backbones, resizing, an odd
centre-crop margin, FiLM without scale) is refused by name."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from diffpilot.errors import CheckpointError

from .checkpoint import load_tensors, read_json
from .diffusion_config import DiffusionPolicyConfig
from .diffusion_policy import DiffusionPolicy

WHAT = "LeRobot checkpoint"  # how file errors name what was being read
KINDS = {"STATE": "state", "ENV": "state", "VISUAL": "image"}
MODES = {"MIN_MAX": "min_max", "MEAN_STD": "mean_std", "IDENTITY": "identity"}


def _fail(directory: Path, what: str) -> CheckpointError:
    return CheckpointError(f"LeRobot checkpoint {directory}: {what}")


def lerobot_stats(
    directory: Path, features: list[str], weights: dict[str, torch.Tensor]
) -> dict[str, dict[str, np.ndarray]]:
    """{feature: {stat: array}} from the pre- and post-processors' normalisers (LeRobot ≥ 0.4) or, for older
    checkpoints, the `normalize_inputs` / `unnormalize_outputs` buffers among `weights` (model.safetensors)."""
    stats: dict[str, dict[str, np.ndarray]] = {}
    pipeline = directory / "policy_preprocessor.json"
    if pipeline.is_file():
        files = []
        for name in ("policy_preprocessor.json", "policy_postprocessor.json"):
            if (directory / name).is_file():
                files += [s["state_file"] for s in read_json(directory / name, WHAT)["steps"] if "state_file" in s]
        for name in files:
            for key, value in load_tensors(directory / name, WHAT).items():
                feature, stat = key.rsplit(".", 1)
                stats.setdefault(feature, {})[stat] = value.numpy()
        return stats
    buffers = {k.replace(".", "_"): k for k in features}
    pattern = re.compile(r"^(?:normalize_inputs|normalize_targets|unnormalize_outputs)\.buffer_(.+)\.(\w+)$")
    for key, value in weights.items():
        match = pattern.match(key)
        if match and match.group(1) in buffers:
            stats.setdefault(buffers[match.group(1)], {})[match.group(2)] = value.numpy()
    return stats


def lerobot_config(directory: Path, meta: dict) -> DiffusionPolicyConfig:
    """The diffpilot config of a LeRobot DiffusionConfig (config.json), or a CheckpointError naming what has no
    faithful counterpart."""
    refuse = {
        "vision_backbone": lambda v: v != "resnet18",
        "resize_shape": lambda v: v is not None,
        "use_film_scale_modulation": lambda v: v is False,
        "spatial_softmax_num_keypoints": lambda v: v != 32,
        "beta_schedule": lambda v: v not in ("squaredcos_cap_v2", "linear"),
        "noise_scheduler_type": lambda v: v not in ("DDPM", "DDIM"),
    }
    vision_keys = ("vision_backbone", "resize_shape", "spatial_softmax_num_keypoints")
    has_images = any(f["type"] == "VISUAL" for f in meta["input_features"].values())
    for key, bad in refuse.items():
        if key in meta and bad(meta[key]) and (has_images or key not in vision_keys):
            raise _fail(directory, f"{key}={meta[key]!r} has no counterpart in diffpilot's DiffusionPolicy")
    if meta.get("beta_schedule") == "linear" and (meta.get("beta_start"), meta.get("beta_end")) != (0.0001, 0.02):
        raise _fail(directory, "a linear beta schedule other than 1e-4 … 0.02")
    features, images = {}, []
    for key, f in meta["input_features"].items():
        if f["type"] not in KINDS:
            raise _fail(directory, f"input feature {key!r} of type {f['type']!r}; expected one of {sorted(KINDS)}")
        features[key] = {"kind": KINDS[f["type"]], "shape": list(f["shape"])}
        if f["type"] == "VISUAL":
            images.append(key)
    crop = meta.get("crop_shape")
    for key in images:
        h, w = meta["input_features"][key]["shape"][1:]
        if crop and any((size - c) % 2 for size, c in zip((h, w), crop)):
            raise _fail(
                directory, f"crop_shape={crop} of a {h}×{w} image: an odd centre-crop margin rounds differently"
            )
    norm = {kind: MODES[mode] for kind, mode in meta["normalization_mapping"].items()}
    k = int(meta["num_train_timesteps"])
    steps = int(meta.get("num_inference_steps") or k)
    clip = float(meta["clip_sample_range"]) if meta.get("clip_sample", True) else None
    if meta["noise_scheduler_type"] == "DDPM" and steps == k:
        sampler = {"name": "ddpm", "num_inference_steps": k, "clip_sample": clip}
    else:
        eta = 1.0 if meta["noise_scheduler_type"] == "DDPM" else 0.0
        sampler = {"name": "ddim", "num_inference_steps": steps, "eta": eta, "timestep_spacing": "leading"}
        sampler["eps_from_clipped_sample"] = eta > 0  # DDPM's posterior mean does; diffusers' DDIM does not
        sampler["clip_sample"] = clip
    values = {
        "input_features": features,
        "action_dim": int(meta["output_features"]["action"]["shape"][0]),
        "n_obs_steps": int(meta["n_obs_steps"]),
        "horizon": int(meta["horizon"]),
        "n_action_steps": int(meta["n_action_steps"]),
        "objective": "diffusion",
        "prediction_type": meta["prediction_type"],
        "num_train_steps": k,
        "beta_schedule": meta["beta_schedule"],
        "sampler": sampler,
        "network": {
            "type": "unet",
            "down_dims": list(meta["down_dims"]),
            "kernel_size": int(meta["kernel_size"]),
            "n_groups": int(meta["n_groups"]),
            "time_embed_dim": int(meta["diffusion_step_embed_dim"]),
        },
        "vision": {
            "crop_shape": list(crop) if crop else None,
            "feature_dim": 64,
            "backbone": "resnet18",
            "width": 64,
            "share_encoder": not meta.get("use_separate_rgb_encoder_per_camera", False),
            "norm": "group" if meta.get("use_group_norm", True) else "batch",
        },
        "normalization": {
            "state": norm.get("STATE", "identity"),
            "image": norm.get("VISUAL", "identity"),
            "action": norm.get("ACTION", "identity"),
        },
    }
    env_mode, state_mode = norm.get("ENV", "identity"), values["normalization"]["state"]
    has_env = any(f["type"] == "ENV" for f in meta["input_features"].values())
    if has_env and env_mode not in ("identity", state_mode):
        raise _fail(directory, f"ENV features normalised {env_mode!r} while STATE uses {state_mode!r}")
    try:
        return DiffusionPolicyConfig.from_dict(values)
    except ValueError as err:
        raise _fail(directory, str(err)) from None


def _unet_key(key: str) -> str:
    key = key.replace("diffusion_step_encoder.", "time_encoder.")
    key = re.sub(r"^down_modules\.", "down.", key)
    key = re.sub(r"^mid_modules\.", "mid.", key)
    key = re.sub(r"^up_modules\.", "up.", key)
    key = re.sub(r"\.conv1\.block\.", ".block1.", key)
    key = re.sub(r"\.conv2\.block\.", ".block2.", key)
    key = key.replace(".cond_encoder.", ".film.").replace(".residual_conv.", ".skip.")
    key = re.sub(r"^(down|up)\.(\d+)\.2\.conv\.", r"\1.\2.2.", key)  # Downsample1d / Upsample1d wrap one conv
    key = re.sub(r"^final_conv\.0\.block\.", "head.0.", key)
    return re.sub(r"^final_conv\.1\.", "head.1.", key)


def _encoder_key(key: str) -> str | None:
    """A DiffusionRgbEncoder key → ImageEncoder's (None: the spatial softmax's fixed coordinate grid)."""
    if key == "pool.pos_grid":
        return None
    key = re.sub(r"^backbone\.0\.", "backbone.stem.0.", key)
    key = re.sub(r"^backbone\.1\.", "backbone.stem.1.", key)
    match = re.match(r"^backbone\.([4-7])\.(\d+)\.(.+)$", key)
    if match:
        stage, block, rest = int(match.group(1)) - 4, int(match.group(2)), match.group(3)
        rest = rest.replace("bn1.", "norm1.").replace("bn2.", "norm2.").replace("downsample.", "skip.")
        key = f"backbone.layers.{2 * stage + block}.{rest}"
    key = key.replace("pool.nets.", "pool.keypoints.")
    return re.sub(r"^out\.", "out.0.", key)


def _condition_order(meta: dict, config: DiffusionPolicyConfig) -> list[int]:
    """For each position of diffpilot's global condition, the position LeRobot's holds there."""
    dims = {k: int(np.prod(f["shape"])) for k, f in meta["input_features"].items() if f["type"] != "VISUAL"}
    state = [k for k, f in meta["input_features"].items() if f["type"] == "STATE"]
    env = [k for k, f in meta["input_features"].items() if f["type"] == "ENV"]
    cams = [k for k, f in meta["input_features"].items() if f["type"] == "VISUAL"]
    width = config.vision.feature_dim
    theirs = [(k, i) for k in state for i in range(dims[k])]
    theirs += [(k, i) for k in cams for i in range(width)] + [(k, i) for k in env for i in range(dims[k])]
    ours = [(k, i) for k in config.state_keys for i in range(dims[k])] + [(k, i) for k in cams for i in range(width)]
    per_step = len(theirs)
    where = {entry: j for j, entry in enumerate(theirs)}
    return [s * per_step + where[entry] for s in range(config.n_obs_steps) for entry in ours]


def lerobot_state_dict(
    theirs: dict[str, torch.Tensor], meta: dict, config: DiffusionPolicyConfig
) -> dict[str, torch.Tensor]:
    """LeRobot's model.safetensors tensors renamed to diffpilot's keys, the FiLM layers' condition columns in
    diffpilot's order."""
    ours: dict[str, torch.Tensor] = {}
    cams = [k for k, f in meta["input_features"].items() if f["type"] == "VISUAL"]
    for key, value in theirs.items():
        if key.startswith("diffusion.unet."):
            ours["net." + _unet_key(key[len("diffusion.unet.") :])] = value
        elif key.startswith("diffusion.rgb_encoder."):
            rest = key[len("diffusion.rgb_encoder.") :]
            prefix = "obs_encoder.image_encoder."
            match = re.match(r"^(\d+)\.(.+)$", rest)
            if match:  # one encoder per camera
                rest = match.group(2)
                if len(cams) > 1:
                    prefix = f"obs_encoder.image_encoders.{match.group(1)}."
            mapped = _encoder_key(rest)
            if mapped is not None:
                ours[prefix + mapped] = value
    order = torch.tensor(_condition_order(meta, config))
    time_dim = config.network.time_embed_dim
    for key in [k for k in ours if k.endswith(".film.1.weight")]:
        weight = ours[key]
        ours[key] = torch.cat([weight[:, :time_dim], weight[:, time_dim:][:, order]], dim=1)
    return ours


def import_lerobot(directory: str | Path) -> DiffusionPolicy:
    """The diffpilot DiffusionPolicy equal to the LeRobot DiffusionPolicy saved in `directory`."""
    directory = Path(directory)
    meta = read_json(directory / "config.json", WHAT)
    if meta.get("type") != "diffusion":
        raise _fail(directory, f"type is {meta.get('type')!r}; expected 'diffusion' (LeRobot's DiffusionPolicy)")
    config = lerobot_config(directory, meta)
    policy = DiffusionPolicy(config)
    theirs = load_tensors(directory / "model.safetensors", WHAT)
    weights = lerobot_state_dict(theirs, meta, config)
    expected = {k for k in policy.state_dict() if not k.startswith("normalizer.")}
    missing, unexpected = sorted(expected - set(weights)), sorted(set(weights) - expected)
    if missing or unexpected:
        raise _fail(directory, f"weights do not map: missing {missing[:5]}, unexpected {unexpected[:5]}")
    policy.load_state_dict(weights, strict=False)
    stats = lerobot_stats(directory, [*meta["input_features"], "action"], theirs)
    env_identity = (
        {"min": -1.0, "max": 1.0} if config.normalization["state"] == "min_max" else {"mean": 0.0, "std": 1.0}
    )
    for key, f in meta["input_features"].items():
        if f["type"] == "ENV" and "ENV" not in meta["normalization_mapping"]:
            stats[key] = {stat: np.full(f["shape"], value, np.float32) for stat, value in env_identity.items()}
    try:
        policy.load_stats(stats)
    except (KeyError, ValueError) as err:
        raise _fail(directory, f"normalisation statistics: {err}") from None
    return policy.eval()
