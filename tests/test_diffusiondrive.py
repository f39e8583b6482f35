"""DiffusionDrive (truncated anchored diffusion), the vanilla 20-step baseline and the ego-status MLP."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffpilot.policies.datasets.arrays import ArrayDataset
from diffpilot.policies.driving.diffusiondrive import (
    EGO_AXLE_TO_CENTER,
    EGO_RADIUS,
    DiffusionDriveConfig,
    DiffusionDrivePolicy,
    focal_loss,
    kmeans_anchors,
    proposal_geometry,
)
from diffpilot.policies.driving.ego_mlp import EgoMLPPolicy
from diffpilot.policies.registry import load_policy
from diffpilot.policies.samplers import DDIMSampler
from diffpilot.policies.train import BCTrainer, TrainConfig

torch.set_num_threads(1)
SMALL = {"d_model": 32, "n_heads": 2, "bev_size": 16, "max_agents": 4, "num_anchors": 4}


def fit(policy, data: dict, steps: int, batch_size: int, lr: float, out) -> None:
    """Behaviour cloning with the driving recipe's optimiser (no EMA, no warm-up, grad clip 1)."""
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, weight_decay=1e-4, betas=(0.9, 0.999),
                      warmup_steps=0, grad_clip_norm=1.0, use_ema=False, log_every=0)  # fmt: skip
    BCTrainer(policy, ArrayDataset(data), cfg, out).train()
    policy.eval()


def _data(n: int = 16, seed: int = 0, bev: int = 16, agents: int = 4) -> dict[str, np.ndarray]:
    """Synthetic demonstrations: straight ahead at the current speed, or a left turn when the command says so."""
    rng = np.random.default_rng(seed)
    v = rng.uniform(3.0, 12.0, n)
    cmd = rng.integers(0, 3, n)
    t = np.arange(1, 9) * 0.5
    traj = np.zeros((n, 8, 3), np.float32)
    traj[..., 0] = v[:, None] * t
    left = cmd == 0
    traj[left, :, 1] = 0.3 * t**2
    traj[left, :, 2] = 0.15 * t
    status = np.zeros((n, 8), np.float32)
    status[:, 0] = v
    status[np.arange(n), 4 + cmd] = 1.0
    return {
        "ego_status": status,
        "history": np.zeros((n, 4, 3), np.float32),
        "bev": rng.integers(0, 2, (n, 6, bev, bev)).astype(np.uint8) * 255,
        "agents": rng.normal(0, 5, (n, agents, 12)).astype(np.float32),
        "agents_mask": (rng.uniform(size=(n, agents)) < 0.5).astype(np.int8),
        "route": np.zeros((n, 16, 2), np.float32),
        "trajectory": traj,
    }


def test_kmeans_anchors_find_the_clusters():
    rng = np.random.default_rng(0)
    centres = np.zeros((3, 8, 3))
    centres[:, :, 0] = np.array([5.0, 20.0, 40.0])[:, None] * np.linspace(0.125, 1, 8)
    centres[2, :, 1] = 8.0
    data = np.concatenate([c + rng.normal(0, 0.1, (30, 8, 3)) for c in centres])
    anchors = kmeans_anchors(data, 3, seed=1)
    assert anchors.shape == (3, 8, 3)
    err = np.abs(anchors[np.argsort(anchors[:, -1, 0])][..., :2] - centres[..., :2]).max()
    assert err < 0.2
    with pytest.raises(ValueError, match="2 trajectories for 3 anchors"):
        kmeans_anchors(data[:2], 3)


def test_focal_loss_prefers_the_right_anchor_and_reduces_to_bce():
    target = torch.tensor([[0.0, 1.0, 0.0]])
    good = focal_loss(torch.tensor([[-4.0, 4.0, -4.0]]), target, 0.25, 2.0)
    bad = focal_loss(torch.tensor([[4.0, -4.0, -4.0]]), target, 0.25, 2.0)
    assert good < 0.01 < bad
    logits = torch.tensor([[0.3, -1.2, 2.0]])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="sum")
    assert focal_loss(logits, target, 0.5, 0.0) == pytest.approx(0.5 * bce.item(), rel=1e-5)


def _count_calls(monkeypatch, policy) -> list:
    calls = []
    real = DDIMSampler.sample

    def spy(self, denoiser, x_init, cond, timesteps=None, generator=None):
        calls.append(list(timesteps))
        return real(self, denoiser, x_init, cond, timesteps, generator)

    monkeypatch.setattr(DDIMSampler, "sample", spy)
    return calls


def test_anchored_policy_plans_through_the_sampler_with_two_steps(monkeypatch, tmp_path):
    data = _data()
    policy = DiffusionDrivePolicy(DiffusionDriveConfig(**SMALL)).eval()
    policy.set_normalization(data)
    calls = _count_calls(monkeypatch, policy)
    details = policy.plan_details(data)
    assert calls == [[10, 0]]
    assert details["trajectories"].shape == (16, 4, 8, 3) and details["confidence"].shape == (16, 4)
    plan = policy.plan(data)
    rows = np.arange(16)
    assert np.allclose(plan, details["trajectories"][rows, details["confidence"].argmax(1)])
    # anchors come from the demonstrations and travel with the checkpoint
    assert np.allclose(policy.anchors.numpy(), kmeans_anchors(data["trajectory"], 4, seed=0), atol=1e-5)
    policy.save_pretrained(tmp_path)
    again = load_policy(tmp_path)
    assert isinstance(again, DiffusionDrivePolicy) and np.allclose(again.plan(data), plan, atol=1e-6)


def test_vanilla_policy_takes_twenty_steps(monkeypatch):
    data = _data()
    policy = DiffusionDrivePolicy(DiffusionDriveConfig(variant="vanilla", **SMALL)).eval()
    policy.set_normalization(data)
    calls = _count_calls(monkeypatch, policy)
    out = policy.plan(data)
    assert len(calls[0]) == 20 and calls[0][-1] == 0 and out.shape == (16, 8, 3)


def test_anchored_training_fits_demonstrations(tmp_path):
    data = _data(n=12)
    torch.manual_seed(0)  # the initial weights, independent of the tests that ran before
    policy = DiffusionDrivePolicy(DiffusionDriveConfig(**SMALL))
    policy.set_normalization(data)
    gen = torch.Generator().manual_seed(0)
    before = policy.compute_loss(data, generator=gen).item()
    fit(policy, data, steps=150, batch_size=12, lr=3e-3, out=tmp_path)
    after = policy.compute_loss(data, generator=torch.Generator().manual_seed(0)).item()
    assert after < 0.3 * before
    d = policy.plan_details(data)
    gt = data["trajectory"]
    pos = np.linalg.norm(gt[:, None, :, :2] - d["anchors"][None, ..., :2], axis=-1).mean(-1).argmin(1)
    err = np.abs(d["trajectories"][np.arange(12), pos] - gt)[..., :2].mean()
    assert err < 0.5  # metres: the positive anchor is denoised onto the expert (trajectories reach 48 m)
    assert (d["best"] == pos).mean() >= 5 / 12  # and the confidence head picks it well above chance (1 / 4)


def test_ego_mlp_learns_speed_and_command_and_round_trips(tmp_path):
    data = _data(n=64)
    policy = EgoMLPPolicy()
    policy.set_normalization(data)
    fit(policy, data, steps=400, batch_size=64, lr=3e-3, out=tmp_path / "run")
    err = np.abs(policy.plan(data) - data["trajectory"])[..., :2].mean()
    assert err < 0.5
    policy.save_pretrained(tmp_path / "ego")
    assert np.allclose(load_policy(tmp_path / "ego").plan(data), policy.plan(data), atol=1e-6)


def test_bad_observations_name_the_key():
    data = _data()
    policy = DiffusionDrivePolicy(DiffusionDriveConfig(**SMALL))
    bad = {**data, "agents": data["agents"][:, :2]}
    with pytest.raises(ValueError, match=r"'agents'.*expected \(B, 4, 12\)"):
        policy.plan(bad)
    with pytest.raises(ValueError, match="missing 'ego_status'"):
        EgoMLPPolicy().plan({k: v for k, v in data.items() if k != "ego_status"})
    with pytest.raises(ValueError, match="variant='diffusion'"):
        DiffusionDriveConfig(variant="diffusion")


def test_trajectory_points_read_the_raster_where_they_are():
    cfg = DiffusionDriveConfig(**SMALL)  # 16 px at 0.75 m: x in [-12, 0], y in [-6, 6]
    policy = DiffusionDrivePolicy(cfg)
    data = _data(n=1)
    data["bev"][:] = 0
    i, j = 11, 3  # pixel centre x = -12 + 11.5 * 0.75 = -3.375 m, y = -6 + 3.5 * 0.75 = -3.375 m
    data["bev"][0, 2, i - 1 : i + 2, j - 1 : j + 2] = 255
    xy = torch.tensor([[[[-3.375, -3.375], [-1.0, 4.0], [40.0, 0.0]]]])
    with torch.no_grad():
        out = policy.encoder.sample_points(policy.encoder(data, torch.device("cpu")), xy)[0, 0]
    assert out[0, 2] == pytest.approx(1.0) and out[1, 2] == 0.0  # the vehicle channel, at and away from it
    assert out[:2, -1].tolist() == [1.0, 1.0] and out[2, -1] == 0.0  # 40 m ahead is outside the raster


def test_score_head_learns_proposal_scores_and_then_chooses_the_trajectory(tmp_path):
    """The score head (scorer distillation) is fitted on the policy's own proposals and their PDM scores; once
    fitted it, not the focal-loss confidence, picks the trajectory, and it travels with the checkpoint."""
    data = _data()
    torch.manual_seed(0)
    policy = DiffusionDrivePolicy(DiffusionDriveConfig(score_head_hidden=32, **SMALL)).eval()
    policy.set_normalization(data)
    d = policy.plan_details(data)
    assert d["features"].shape == (16, 4, 32) and d["trajectories_normalized"].shape == (16, 4, 8, 3)
    scores = np.ones((16, 4, 5))
    scores[:, :, 0] = 0.0  # every proposal collides ...
    scores[:, 2, 0] = 1.0  # ... except anchor 2's, in every scene
    args = (d["features"], d["trajectories_normalized"], d["geometry"])
    losses = policy.fit_score_head(*args, scores, epochs=60, batch_size=8)
    assert losses[-1] < losses[0]
    d2 = policy.plan_details(data)
    assert np.all(d2["best"] == 2) and np.allclose(d2["trajectories"], d["trajectories"], atol=1e-6)
    plan = policy.plan(data)
    policy.save_pretrained(tmp_path)
    again = load_policy(tmp_path)
    assert again.score_head is not None and np.allclose(again.plan(data), plan, atol=1e-6)
    with pytest.raises(ValueError, match="scores must be sub-scores"):
        policy.fit_score_head(*args, scores * 2)
    with pytest.raises(ValueError, match="no score head"):
        DiffusionDrivePolicy(DiffusionDriveConfig(**SMALL)).fit_score_head(*args, scores)
    with pytest.raises(ValueError, match="expected"):
        policy.fit_score_head(*args, scores[..., 0])


def test_proposal_geometry_clearance_and_raster_under_the_poses():
    """Clearance uses the agents' constant-velocity forecast and bounding circles; the drivable and red-light
    raster values are read under each pose."""
    cfg = DiffusionDriveConfig(**SMALL)  # 16 px at 0.75 m behind 12 m: x in [-12, 0], y in [-6, 6]
    obs = {
        "agents": np.zeros((1, 4, 12), np.float32),
        "agents_mask": np.array([[1, 0, 0, 0]], np.int8),
        "bev": np.zeros((1, 6, 16, 16), np.uint8),
    }
    obs["agents"][0, 0, :8] = [-20.0, 3.0, 1, 0, 2.0, 0.0, 4.0, 3.0]  # 20 m behind, 3 m left, 2 m/s forward
    obs["bev"][0, 0] = 255  # drivable everywhere
    traj = torch.zeros(1, 1, 8, 3)
    traj[0, 0, :, 0] = -torch.arange(1, 9) * 1.0  # reversing at 2 m/s: poses at -1 .. -8 m
    g = proposal_geometry(obs, traj, cfg)[0, 0]
    tau = np.arange(1, 9) * 0.5
    centre_x = -np.arange(1, 9) + EGO_AXLE_TO_CENTER
    agent_x = -20.0 + 2.0 * tau
    expected = np.hypot(centre_x - agent_x, 3.0) - 2.5 - EGO_RADIUS
    assert np.allclose(g[:8].numpy(), np.clip(expected, -5, 20) / 10, atol=1e-5)
    assert torch.all(g[8:16] > 0.99) and torch.all(g[16:] == 0)  # on drivable area, no red-light region
    ctx = {  # what SceneEncoder passes on: the same inputs as tensors
        "agents": torch.as_tensor(obs["agents"]),
        "agents_valid": torch.as_tensor(obs["agents_mask"]) > 0.5,
        "raster": torch.as_tensor(obs["bev"]).float() / 255.0,
    }
    assert torch.equal(proposal_geometry(obs, traj, cfg, ctx)[0, 0], g)
