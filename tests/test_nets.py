"""Denoiser networks and encoders: shapes, sizes and the vision backbone written here."""

from __future__ import annotations

import pytest
import torch

from diffpilot.policies.nets import (
    ConditionalUnet1D,
    ObservationEncoder,
    ResNet18GN,
    ResNetGN,
    SpatialSoftmax,
    TransformerDenoiserNet,
)
from diffpilot.policies.nets.encoders import crop_images


def test_unet_shapes_and_paper_size():
    net = ConditionalUnet1D(action_dim=2, cond_dim=40)  # DP's PushT state: 2 obs steps × 20 dims
    out = net(torch.randn(3, 16, 2), torch.tensor([0, 5, 99]), torch.randn(3, 40))
    assert out.shape == (3, 16, 2)
    n = sum(p.numel() for p in net.parameters())
    assert 60e6 < n < 70e6, n  # Diffusion Policy reports ~66 M
    with pytest.raises(ValueError, match="multiple of 4"):
        net(torch.randn(1, 10, 2), torch.tensor([0]), torch.randn(1, 40))


def test_unet_film_uses_the_condition_and_time():
    torch.manual_seed(0)
    net = ConditionalUnet1D(2, 8, down_dims=(16, 32), n_groups=4, time_embed_dim=16)
    x, c = torch.randn(2, 8, 2), torch.randn(2, 8)
    base = net(x, torch.tensor([3, 3]), c)
    assert not torch.allclose(base, net(x, torch.tensor([3, 3]), c + 1.0))
    assert not torch.allclose(base, net(x, torch.tensor([50, 50]), c))


def test_transformer_denoiser():
    net = TransformerDenoiserNet(action_dim=7, cond_dim=12, horizon=10, d_model=32, n_layers=2, n_heads=4)
    assert net(torch.randn(2, 10, 7), torch.rand(2) * 1000, torch.randn(2, 12)).shape == (2, 10, 7)


def test_resnet18_groupnorm_and_spatial_softmax():
    backbone = ResNet18GN()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in backbone.modules())
    n = sum(p.numel() for p in backbone.parameters())
    assert 11.0e6 < n < 11.3e6, n  # ResNet-18 without its classifier has 11.18 M
    feats = backbone(torch.rand(2, 3, 84, 84))
    assert feats.shape == (2, 512, 3, 3)
    kp = SpatialSoftmax(512, 32)(feats)
    assert kp.shape == (2, 64) and kp.abs().max() <= 1.0


def test_narrow_and_shallow_resnets_keep_the_layout():
    """CPU budgets: ResNet-18's layout at a quarter of the width (76×76 crops → 3×3 maps, as DP's robomimic), or one
    block per stage (resnet10); ResNet-18 itself keeps its parameter names (earlier checkpoints load)."""
    narrow = ResNetGN("resnet18", 16)
    assert narrow(torch.rand(2, 3, 76, 76)).shape == (2, 128, 3, 3) and len(narrow.layers) == 8
    assert len(ResNetGN("resnet10", 16).layers) == 4
    assert sum(p.numel() for p in narrow.parameters()) < sum(p.numel() for p in ResNet18GN().parameters()) / 14
    assert set(ResNet18GN().state_dict()) == set(ResNetGN("resnet18", 64).state_dict())


def test_spatial_softmax_finds_a_bright_spot():
    pool = SpatialSoftmax(1, 1)
    torch.nn.init.ones_(pool.keypoints.weight)
    torch.nn.init.zeros_(pool.keypoints.bias)
    fmap = torch.zeros(1, 1, 9, 9)
    fmap[0, 0, 2, 7] = 50.0  # row 2 (y), column 7 (x)
    x, y = pool(fmap)[0].tolist()
    assert x == pytest.approx(-1 + 2 * 7 / 8, abs=1e-3) and y == pytest.approx(-1 + 2 * 2 / 8, abs=1e-3)


def test_crops_and_observation_encoder():
    images = torch.rand(4, 3, 96, 96)
    assert crop_images(images, (84, 84), random=False).shape == (4, 3, 84, 84)
    a = crop_images(images, (84, 84), random=True, generator=torch.Generator().manual_seed(1))
    assert a.shape == (4, 3, 84, 84)
    enc = ObservationEncoder({"observation.state": 2}, ["observation.image"], n_obs_steps=2, crop_shape=(84, 84))
    out = enc({"observation.state": torch.randn(4, 2, 2), "observation.image": torch.rand(4, 2, 3, 96, 96)})
    assert out.shape == (4, enc.output_dim) and enc.output_dim == 2 * (2 + 64)
