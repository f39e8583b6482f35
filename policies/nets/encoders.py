"""Observation encoders: state vectors pass through, images go through a GroupNorm ResNet-18 with
spatial-softmax keypoints (Diffusion Policy's vision backbone, written here: torchvision is unavailable), one
encoder per camera; CPU budgets may narrow it (`vision_width`) or halve its depth (`vision_backbone=resnet10`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _groups(channels: int) -> int:
    """GroupNorm groups of a layer: 16 channels per group (Diffusion Policy's choice), at least one group."""
    return max(channels // 16, 1)


NORMS = ("group", "batch")


def _norm(channels: int, norm: str = "group") -> nn.Module:
    """GroupNorm (Diffusion Policy's choice) or BatchNorm (torchvision's ResNet; LeRobot ≥ 0.6's default)."""
    return nn.GroupNorm(_groups(channels), channels) if norm == "group" else nn.BatchNorm2d(channels)


class BasicBlock(nn.Module):
    """ResNet basic block (two 3×3 convs), GroupNorm in place of BatchNorm unless `norm="batch"`."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: str = "group"):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.norm1 = _norm(c_out, norm)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.norm2 = _norm(c_out, norm)
        self.skip = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), _norm(c_out, norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(h)) + self.skip(x))


# Basic blocks per stage of the ResNet layouts an image encoder may use (`vision.backbone`).
BACKBONES: dict[str, tuple[int, int, int, int]] = {"resnet18": (2, 2, 2, 2), "resnet10": (1, 1, 1, 1)}


def check_vision(backbone: str, width: int, norm: str = "group") -> None:
    """ValueError naming `vision.backbone` / `vision.width` / `vision.norm` when no such ResNet can be built."""
    if norm not in NORMS:
        raise ValueError(f"vision.norm={norm!r}: expected one of {list(NORMS)}")
    if backbone not in BACKBONES:
        raise ValueError(f"vision.backbone={backbone!r}: expected one of {sorted(BACKBONES)}")
    stages = [int(width) * 2**k for k in range(4)]
    if int(width) < 1 or any(c % _groups(c) for c in stages):
        raise ValueError(
            f"vision.width={width}: the stage widths {stages} must each split into max(c // 16, 1) GroupNorm "
            "groups; expected a width such as 8, 16, 32 or 64 (ResNet-18's own)"
        )


class ResNetGN(nn.Module):
    """(B, 3, H, W) → (B, 8·width, ⌈H/32⌉, ⌈W/32⌉) feature map; ResNet layout with GroupNorm, no classifier.

    `backbone` names the blocks per stage (BACKBONES); `width` is the stem's and first stage's channel count,
    doubled at every later stage (64 is torchvision's ResNet; 16 or 32 cut the FLOPs about 16× or 4×); `norm`
    "batch" keeps torchvision's BatchNorm (an imported LeRobot ≥ 0.6 encoder).
    """

    def __init__(self, backbone: str = "resnet18", width: int = 64, norm: str = "group") -> None:
        super().__init__()
        check_vision(backbone, width, norm)
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 7, 2, 3, bias=False), _norm(width, norm), nn.ReLU(), nn.MaxPool2d(3, 2, 1)
        )
        layers, c_in = [], width
        for stage, n_blocks in enumerate(BACKBONES[backbone]):
            c_out = width * 2**stage
            for block in range(n_blocks):
                layers.append(BasicBlock(c_in, c_out, 2 if stage > 0 and block == 0 else 1, norm))
                c_in = c_out
        self.layers = nn.Sequential(*layers)
        self.out_channels = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.stem(x))


class ResNet18GN(ResNetGN):
    """ResNet-18 itself (width 64): (B, 3, H, W) → (B, 512, H/32, W/32)."""

    def __init__(self) -> None:
        super().__init__("resnet18", 64)


class SpatialSoftmax(nn.Module):
    """(B, C, H, W) → (B, 2K): expected image coordinates in [−1, 1] of K learned keypoint heat maps."""

    def __init__(self, in_channels: int, num_keypoints: int = 32):
        super().__init__()
        self.keypoints = nn.Conv2d(in_channels, num_keypoints, 1)
        self.num_keypoints = num_keypoints

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        heat = self.keypoints(features)
        b, k, h, w = heat.shape
        attention = heat.flatten(2).softmax(dim=-1).view(b, k, h, w)
        ys = torch.linspace(-1.0, 1.0, h, device=heat.device)
        xs = torch.linspace(-1.0, 1.0, w, device=heat.device)
        x_mean = (attention.sum(dim=2) * xs).sum(dim=-1)
        y_mean = (attention.sum(dim=3) * ys).sum(dim=-1)
        return torch.stack([x_mean, y_mean], dim=-1).flatten(1)


def crop_images(images: torch.Tensor, size: tuple[int, int], random: bool, generator=None) -> torch.Tensor:
    """Crop (B, C, H, W) to `size`: a random window per sample when `random`, else the centre."""
    _, _, h, w = images.shape
    ch, cw = size
    if (ch, cw) == (h, w):
        return images
    if ch > h or cw > w:
        raise ValueError(f"crop_shape={size}: larger than the image ({h}, {w})")
    if not random:
        top, left = (h - ch) // 2, (w - cw) // 2
        return images[:, :, top : top + ch, left : left + cw]
    tops = torch.randint(0, h - ch + 1, (images.shape[0],), generator=generator).tolist()
    lefts = torch.randint(0, w - cw + 1, (images.shape[0],), generator=generator).tolist()
    return torch.stack([img[:, t : t + ch, s : s + cw] for img, t, s in zip(images, tops, lefts)])


class ImageEncoder(nn.Module):
    """(B, 3, H, W) in [0, 1] → (B, feature_dim): crop, ResNet-GN, spatial softmax, linear + ReLU."""

    def __init__(
        self,
        crop_shape: tuple[int, int] | None,
        num_keypoints: int = 32,
        feature_dim: int = 64,
        backbone: str = "resnet18",
        width: int = 64,
        norm: str = "group",
    ):
        super().__init__()
        self.crop_shape = tuple(crop_shape) if crop_shape else None
        self.backbone = ResNetGN(backbone, width, norm)
        self.pool = SpatialSoftmax(self.backbone.out_channels, num_keypoints)
        self.out = nn.Sequential(nn.Linear(2 * num_keypoints, feature_dim), nn.ReLU())
        self.feature_dim = feature_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.crop_shape is not None:
            images = crop_images(images, self.crop_shape, random=self.training)
        return self.out(self.pool(self.backbone(images)))


class ObservationEncoder(nn.Module):
    """Dict of (B, n_obs, …) normalised observations → (B, n_obs · per-step features) global condition.

    `state_keys` are concatenated as they are; every key in `image_keys` ((B, n_obs, 3, H, W)) goes through an
    `ImageEncoder` and its (B, n_obs, image_feature_dim) features are appended. Each camera has its own encoder
    (Diffusion Policy's `share_rgb_model=False`), held in `image_encoders` in `image_keys` order; with
    `share_image_encoder` (or a single camera) one encoder, `image_encoder`, serves them all.
    """

    def __init__(
        self,
        state_dims: dict[str, int],
        image_keys: list[str],
        n_obs_steps: int,
        crop_shape: tuple[int, int] | None = None,
        image_feature_dim: int = 64,
        share_image_encoder: bool = False,
        backbone: str = "resnet18",
        width: int = 64,
        norm: str = "group",
    ):
        super().__init__()
        self.state_keys = list(state_dims)
        self.image_keys = list(image_keys)
        self.image_encoder: ImageEncoder | None = None
        self.image_encoders: nn.ModuleList | None = None

        def make() -> ImageEncoder:
            return ImageEncoder(crop_shape, feature_dim=image_feature_dim, backbone=backbone, width=width, norm=norm)

        if len(self.image_keys) == 1 or (self.image_keys and share_image_encoder):
            self.image_encoder = make()
        elif self.image_keys:
            self.image_encoders = nn.ModuleList(make() for _ in self.image_keys)
        per_step = sum(state_dims.values()) + image_feature_dim * len(self.image_keys)
        self.n_obs_steps = n_obs_steps
        self.output_dim = per_step * n_obs_steps

    def encoder_for(self, index: int) -> ImageEncoder:
        """The encoder of image key `index` (its own, or the shared one)."""
        return self.image_encoder if self.image_encoder is not None else self.image_encoders[index]

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [obs[k] for k in self.state_keys]
        for i, key in enumerate(self.image_keys):
            images = obs[key]
            b, n = images.shape[:2]
            parts.append(self.encoder_for(i)(images.flatten(0, 1)).view(b, n, -1))
        return torch.cat(parts, dim=-1).flatten(1)
