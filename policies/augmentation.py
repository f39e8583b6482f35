"""Image augmentation while training (kornia, on the training device): colour jitter, sharpness, a small affine
warp and Gaussian noise, each applied with its own probability, per camera. Never at evaluation: the policy's
own transform stays the random/centre crop of its vision encoder."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from diffpilot.errors import ConfigError, check_field_types


@dataclass(frozen=True)
class ImageAugmentationConfig:
    """One camera's augmentation; a strength of 0 (or a probability of 0) turns that transform off."""

    brightness: float = 0.2  # factor drawn in [1 − b, 1 + b]
    contrast: float = 0.2
    saturation: float = 0.3
    hue: float = 0.03  # shift in [−h, h] of a full turn
    color_p: float = 0.8
    sharpness: float = 0.5  # strength drawn in [0, s]
    sharpness_p: float = 0.3
    degrees: float = 3.0  # rotation in [−d, d]
    translate: float = 0.03  # shift up to this fraction of the width / height
    scale: float = 0.05  # zoom in [1 − s, 1 + s]
    affine_p: float = 0.5
    noise_std: float = 0.01  # in [0, 1] pixel units
    noise_p: float = 0.3

    def __post_init__(self) -> None:
        check_field_types(self, "augmentation")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            top = 1.0 if f.name.endswith("_p") or f.name in ("brightness", "contrast", "translate", "scale") else None
            if value < 0 or (top is not None and value > top):
                expected = f"a number in [0, {top:g}]" if top is not None else "a number >= 0"
                raise ConfigError(f"augmentation.{f.name}={value!r}: expected {expected}")
        if self.hue > 0.5:
            raise ConfigError(f"augmentation.hue={self.hue!r}: expected a number in [0, 0.5]")


@dataclass(frozen=True)
class AugmentationConfig:
    """`augmentation.*`: off by default; `cameras` changes fields per image key ({key: {field: value}}, or
    {key: null} to leave that camera unaugmented)."""

    enabled: bool = False
    image: ImageAugmentationConfig = field(default_factory=ImageAugmentationConfig)
    cameras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AugmentationConfig:
        values = dict(values)
        unknown = set(values) - {"enabled", "cameras"} - {f.name for f in dataclasses.fields(ImageAugmentationConfig)}
        if unknown:
            raise ConfigError(f"augmentation.{sorted(unknown)[0]}: unknown field")
        enabled, cameras = values.pop("enabled", False), values.pop("cameras", None) or {}
        if not isinstance(enabled, bool):
            raise ConfigError(f"augmentation.enabled={enabled!r}: expected true or false")
        return cls(enabled, ImageAugmentationConfig(**values), dict(cameras))

    def for_camera(self, key: str) -> ImageAugmentationConfig | None:
        """The camera's settings (None: not augmented)."""
        if key not in self.cameras:
            return self.image
        changes = self.cameras[key]
        if changes is None:
            return None
        unknown = set(changes) - {f.name for f in dataclasses.fields(ImageAugmentationConfig)}
        if unknown:
            raise ConfigError(f"augmentation.cameras.{key}.{sorted(unknown)[0]}: unknown field")
        return dataclasses.replace(self.image, **changes)


def _camera_pipeline(cfg: ImageAugmentationConfig) -> nn.Module:
    import kornia.augmentation as K

    steps: list[nn.Module] = []
    if cfg.color_p and (cfg.brightness or cfg.contrast or cfg.saturation or cfg.hue):
        steps.append(K.ColorJitter(cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue, p=cfg.color_p))
    if cfg.sharpness_p and cfg.sharpness:
        steps.append(K.RandomSharpness(cfg.sharpness, p=cfg.sharpness_p))
    if cfg.affine_p and (cfg.degrees or cfg.translate or cfg.scale):
        translate = (cfg.translate, cfg.translate) if cfg.translate else None
        scale = (1 - cfg.scale, 1 + cfg.scale) if cfg.scale else None
        steps.append(K.RandomAffine(cfg.degrees, translate=translate, scale=scale, p=cfg.affine_p))
    if cfg.noise_p and cfg.noise_std:
        steps.append(K.RandomGaussianNoise(std=cfg.noise_std, p=cfg.noise_p))
    return nn.Sequential(*steps)


class ImageAugmentation(nn.Module):
    """Augments the image entries of a training batch: (B, T, H, W, 3) uint8 or (B, T, 3, H, W) in [0, 1] →
    (B, T, 3, H, W) float in [0, 1], each frame drawn independently; other entries pass through."""

    def __init__(self, cfg: AugmentationConfig, image_keys: list[str]):
        super().__init__()
        unknown = sorted(set(cfg.cameras) - set(image_keys))
        if unknown:
            raise ConfigError(f"augmentation.cameras.{unknown[0]}: not an image input; the policy's are {image_keys}")
        self.pipelines = nn.ModuleDict()
        self.keys: dict[str, str] = {}  # image key → its pipeline's name (ModuleDict keys cannot hold dots)
        for key in image_keys:
            camera = cfg.for_camera(key)
            if camera is not None:
                self.keys[key] = key.replace(".", "__")
                self.pipelines[self.keys[key]] = _camera_pipeline(camera)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = dict(batch)
        for key, name in self.keys.items():
            images = batch[key]
            if images.dtype == torch.uint8:
                images = images.float() / 255.0
            if images.shape[-1] == 3 and images.shape[-3] != 3:
                images = images.movedim(-1, -3)
            lead = images.shape[:-3]
            flat = images.reshape(-1, *images.shape[-3:])
            out[key] = self.pipelines[name](flat).clamp(0.0, 1.0).reshape(*lead, *images.shape[-3:])
        return out
