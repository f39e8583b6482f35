"""Policy objects: action-chunk queue, observation history, checkpoints and clear errors."""

from __future__ import annotations

import json
from collections import deque

import numpy as np
import pytest
import torch

from diffpilot.policies.checkpoint import CheckpointError
from diffpilot.policies.diffusion_policy import DiffusionPolicy

from .conftest import tiny_config


def _obs(batch: int, value: float = 100.0) -> dict[str, np.ndarray]:
    return {
        "observation.state": np.full((batch, 2), value, np.float32),
        "observation.environment_state": np.full((batch, 16), value, np.float32),
    }


def test_select_action_replans_every_n_action_steps(tiny_policy, monkeypatch):
    calls = []
    original = tiny_policy.predict_chunk

    def counting(window, **kw):
        calls.append({k: v.clone() for k, v in window.items()})
        return original(window, **kw)

    monkeypatch.setattr(tiny_policy, "predict_chunk", counting)
    tiny_policy.reset()
    actions = [tiny_policy.select_action(_obs(3, 100.0 + i)) for i in range(17)]
    assert len(calls) == 3  # steps 0, 8, 16
    assert actions[0].shape == (3, 2)
    first = calls[0]["observation.state"]
    assert first.shape == (3, 2, 2) and torch.all(first[:, 0] == first[:, 1])  # first obs repeated at reset
    second = calls[1]["observation.state"]
    assert torch.all(second[:, 0] == 107.0) and torch.all(second[:, 1] == 108.0)  # last n_obs_steps kept


def test_select_action_executes_the_chunk_from_the_current_step(tiny_policy):
    torch.manual_seed(0)
    tiny_policy.reset()
    obs = _obs(2)
    a0 = tiny_policy.select_action(obs)
    torch.manual_seed(0)
    window = {k: torch.as_tensor(v)[:, None].repeat(1, 2, 1) for k, v in obs.items()}
    chunk = tiny_policy.predict_chunk(window)
    assert np.allclose(a0, chunk[:, 1].numpy(), atol=1e-6)  # index n_obs_steps − 1


def test_predict_chunk_with_explicit_noise_is_deterministic(tiny_policy):
    window = {k: torch.as_tensor(v)[:, None].repeat(1, 2, 1) for k, v in _obs(2).items()}
    noise = torch.randn(2, 16, 2)
    a = tiny_policy.predict_chunk(window, noise=noise)
    b = tiny_policy.predict_chunk(window, noise=noise.clone())
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match=r"noise has shape \(2, 8, 2\); expected \(2, 16, 2\)"):
        tiny_policy.predict_chunk(window, noise=torch.randn(2, 8, 2))


def test_wrong_observation_shape_is_named(tiny_policy):
    tiny_policy.reset()
    bad = _obs(1)
    bad["observation.environment_state"] = np.zeros((1, 18), np.float32)
    with pytest.raises(ValueError, match=r"'observation\.environment_state' has shape \(1, 18\); expected \(B, 16\)"):
        tiny_policy.select_action(bad)
    one = {k: v[0] for k, v in _obs(1).items()}  # a single observation without its batch axis
    with pytest.raises(ValueError, match=r"'observation\.state' has shape \(2,\); expected \(B, 2\).*obs\[None\]"):
        tiny_policy.select_action(one)
    with pytest.raises(ValueError, match=r"expected \('B', 'n_obs', 16\)"):  # a whole window names its two axes
        tiny_policy.predict_chunk({k: torch.zeros(1, 2, 18 if "environment" in k else 2) for k in one})
    with pytest.raises(KeyError, match=r"missing feature 'observation\.state'"):
        tiny_policy.select_action({"observation.environment_state": np.zeros((1, 16), np.float32)})


def test_save_and_load_pretrained_round_trip(tiny_policy, tmp_path):
    tiny_policy.load_stats(
        {
            "observation.state": {"min": np.zeros(2), "max": np.full(2, 512.0)},
            "observation.environment_state": {"min": np.zeros(16), "max": np.full(16, 512.0)},
            "action": {"min": np.zeros(2), "max": np.full(2, 512.0)},
        }
    )
    tiny_policy.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    loaded = DiffusionPolicy.from_pretrained(tmp_path)
    window = {k: torch.as_tensor(v)[:, None].repeat(1, 2, 1) for k, v in _obs(2).items()}
    noise = torch.randn(2, 16, 2)
    assert torch.equal(tiny_policy.predict_chunk(window, noise=noise), loaded.predict_chunk(window, noise=noise))
    assert torch.equal(loaded.normalizer.action__max, torch.full((2,), 512.0))


def test_checkpoint_of_another_policy_type_is_refused(tiny_policy, tmp_path):
    tiny_policy.save_pretrained(tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    meta["type"] = "act"
    (tmp_path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="type is 'act'; expected 'diffusion'"):
        DiffusionPolicy.from_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="does not exist"):
        DiffusionPolicy.from_pretrained(tmp_path / "nowhere")


def test_flow_and_transformer_variants_train_and_sample():
    for overrides in (
        dict(
            objective="flow",
            prediction_type="velocity",
            sampler={"name": "flow_midpoint", "num_inference_steps": 3, "clip_sample": None},
        ),
        dict(network={"type": "transformer", "d_model": 32, "n_layers": 1, "n_heads": 2}),
    ):
        policy = DiffusionPolicy(tiny_config(**overrides))
        batch = {k: torch.randn(4, 2, v.shape[0]) for k, v in policy.config.input_features.items()}
        batch["action"] = torch.randn(4, 16, 2)
        loss = policy.compute_loss(batch)
        loss.backward()
        assert torch.isfinite(loss)
        window = {k: v for k, v in batch.items() if k != "action"}
        assert policy.eval().predict_chunk(window).shape == (4, 16, 2)


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match=r"n_action_steps=20: expected ≤ horizon − n_obs_steps \+ 1 = 15"):
        tiny_config(n_action_steps=20)
    with pytest.raises(ValueError, match=r"sampler\.name='ddim': expected a flow sampler"):
        tiny_config(objective="flow", prediction_type="velocity")


def test_config_rejects_unusable_combinations():
    with pytest.raises(ValueError, match="prediction_type='epsilon' with objective='flow'"):
        tiny_config(objective="flow", sampler={"name": "flow_euler"}, prediction_type="epsilon")
    with pytest.raises(ValueError, match=r"n_obs_steps=0: expected an integer ≥ 1"):
        tiny_config(n_obs_steps=0)
    with pytest.raises(ValueError, match=r"horizon=9: the UNet with network\.down_dims=\[16, 32\] needs a multiple"):
        tiny_config(horizon=9, n_action_steps=4)
    with pytest.raises(ValueError, match=r"no mode for \['action'\]"):
        tiny_config(normalization={"state": "min_max"})


def test_image_statistics_are_per_channel():
    policy = DiffusionPolicy(
        tiny_config(
            input_features={"observation.image": {"kind": "image", "shape": [3, 32, 32]}},
            normalization={"state": "min_max", "image": "mean_std", "action": "min_max"},
            vision={"crop_shape": None},
        )
    )
    policy.load_stats(
        {
            "observation.image": {"mean": np.full((3, 1, 1), 0.5), "std": np.full((3, 1, 1), 0.25)},
            "action": {"min": np.zeros(2), "max": np.ones(2)},
        }
    )
    x = torch.full((1, 3, 32, 32), 0.75)
    assert torch.allclose(policy.normalizer.normalize("observation.image", x), torch.ones_like(x))
    # a constant action dimension comes back as itself, not spread over [lo, lo + 2]
    policy.load_stats(
        {
            "observation.image": {"mean": np.full((3, 1, 1), 0.5), "std": np.full((3, 1, 1), 0.25)},
            "action": {"min": np.array([0.0, 3.0]), "max": np.array([1.0, 3.0])},
        }
    )
    back = policy.normalizer.unnormalize("action", torch.tensor([[0.7, 0.7]]))
    assert back[0, 1].item() == pytest.approx(3.0)


def _two_camera_config(**overrides):
    features = {
        "agentview_image": {"kind": "image", "shape": [3, 40, 40]},
        "robot0_eye_in_hand_image": {"kind": "image", "shape": [3, 40, 40]},
        "robot0_eef_pos": {"kind": "state", "shape": [3]},
    }
    vision = {"crop_shape": (36, 36), "width": 8, "feature_dim": 16, **overrides}
    return tiny_config(input_features=features, vision=vision)


def test_each_camera_has_its_own_encoder_unless_shared(tmp_path):
    """Diffusion Policy's share_rgb_model=False: one encoder per camera, both trained by the loss; the shared variant
    and single-camera policies keep one `image_encoder` (the parameter names of earlier image checkpoints)."""
    torch.manual_seed(0)
    policy = DiffusionPolicy(_two_camera_config())
    encoders = policy.obs_encoder.image_encoders
    assert len(encoders) == 2 and policy.obs_encoder.image_encoder is None
    assert encoders[0].backbone.out_channels == 64  # width 8, doubled three times
    batch = {
        "agentview_image": torch.randint(0, 256, (3, 2, 40, 40, 3), dtype=torch.uint8),  # HWC uint8, as stored
        "robot0_eye_in_hand_image": torch.randint(0, 256, (3, 2, 40, 40, 3), dtype=torch.uint8),
        "robot0_eef_pos": torch.randn(3, 2, 3),
        "action": torch.randn(3, 16, 2),
    }
    loss = policy.compute_loss(batch)
    loss.backward()
    assert torch.isfinite(loss)
    for encoder in encoders:
        assert encoder.backbone.stem[0].weight.grad.abs().sum() > 0
    policy.save_pretrained(tmp_path / "two")
    loaded = DiffusionPolicy.from_pretrained(tmp_path / "two").eval()
    window = {k: v for k, v in batch.items() if k != "action"}
    noise = torch.randn(3, 16, 2)
    assert torch.allclose(policy.eval().predict_chunk(window, noise=noise), loaded.predict_chunk(window, noise=noise))

    shared = DiffusionPolicy(_two_camera_config(share_encoder=True))
    assert shared.obs_encoder.image_encoders is None and shared.obs_encoder.image_encoder is not None
    single = DiffusionPolicy(
        tiny_config(
            input_features={"observation.image": {"kind": "image", "shape": [3, 24, 24]}},
            vision={"crop_shape": None, "width": 8},
        )
    )
    assert any(k.startswith("obs_encoder.image_encoder.backbone.") for k in single.state_dict())


def test_vision_settings_are_checked_by_name():
    with pytest.raises(ValueError, match=r"vision.backbone='resnet50': expected one of \['resnet10', 'resnet18'\]"):
        _two_camera_config(backbone="resnet50")
    with pytest.raises(ValueError, match=r"vision.width=56: the stage widths \[56, 112, 224, 448\]"):
        _two_camera_config(width=56)
    tiny_config(vision={"width": 56})  # a state-only policy builds no image encoder: nothing to check


def test_a_fresh_chunk_from_one_observation_and_the_printed_spec(tiny_policy):
    """predict_action_chunk: one observation step, its history filled with it as at an episode start (the queue and
    the history select_action keeps are left alone); observation_spec says what to feed and from where."""
    tiny_policy.reset()
    obs = _obs(3)
    noise = torch.randn(3, 16, 2)
    chunk = tiny_policy.predict_action_chunk(obs, noise=noise)
    window = {k: torch.as_tensor(v)[:, None].repeat(1, 2, 1) for k, v in obs.items()}
    torch.testing.assert_close(chunk, tiny_policy.predict_chunk(window, noise=noise))
    assert tiny_policy._action_queue == deque() and tiny_policy._obs_history == {}
    spec = str(tiny_policy.observation_spec())
    assert "observation.environment_state" in spec and "state (16,)" in spec and "8 executed per chunk of 16" in spec
