"""Observation encoders: state vectors pass through, images go through a GroupNorm ResNet-18 with
spatial-softmax keypoints (Diffusion Policy's vision backbone, written here: torchvision is unavailable)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(max(channels // 16, 1), channels)


class BasicBlock(nn.Module):
    """ResNet basic block (two 3×3 convs) with GroupNorm in place of BatchNorm."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.norm1 = _group_norm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.norm2 = _group_norm(c_out)
        self.skip = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), _group_norm(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(h)) + self.skip(x))


class ResNet18GN(nn.Module):
    """(B, 3, H, W) → (B, 512, H/32, W/32) feature map; ResNet-18 layout, GroupNorm, no classifier."""

    out_channels = 512

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False), _group_norm(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)
        )
        layers, c_in = [], 64
        for c_out, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            layers += [BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1)]
            c_in = c_out
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.stem(x))


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
    """(B, 3, H, W) in [0, 1] → (B, feature_dim): crop, ResNet-18/GN, spatial softmax, linear + ReLU."""

    def __init__(self, crop_shape: tuple[int, int] | None, num_keypoints: int = 32, feature_dim: int = 64):
        super().__init__()
        self.crop_shape = tuple(crop_shape) if crop_shape else None
        self.backbone = ResNet18GN()
        self.pool = SpatialSoftmax(ResNet18GN.out_channels, num_keypoints)
        self.out = nn.Sequential(nn.Linear(2 * num_keypoints, feature_dim), nn.ReLU())
        self.feature_dim = feature_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.crop_shape is not None:
            images = crop_images(images, self.crop_shape, random=self.training)
        return self.out(self.pool(self.backbone(images)))


class ObservationEncoder(nn.Module):
    """Dict of (B, n_obs, …) normalised observations → (B, n_obs · per-step features) global condition.

    `state_keys` are concatenated as they are; every key in `image_keys` ((B, n_obs, 3, H, W)) goes
    through one shared `ImageEncoder` and its features are appended.
    """

    def __init__(
        self,
        state_dims: dict[str, int],
        image_keys: list[str],
        n_obs_steps: int,
        crop_shape: tuple[int, int] | None = None,
        image_feature_dim: int = 64,
    ):
        super().__init__()
        self.state_keys = list(state_dims)
        self.image_keys = list(image_keys)
        self.image_encoder = ImageEncoder(crop_shape, feature_dim=image_feature_dim) if image_keys else None
        per_step = sum(state_dims.values()) + image_feature_dim * len(self.image_keys)
        self.n_obs_steps = n_obs_steps
        self.output_dim = per_step * n_obs_steps

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [obs[k] for k in self.state_keys]
        if self.image_encoder is not None:
            for key in self.image_keys:
                images = obs[key]
                b, n = images.shape[:2]
                feats = self.image_encoder(images.flatten(0, 1))
                parts.append(feats.view(b, n, -1))
        return torch.cat(parts, dim=-1).flatten(1)
