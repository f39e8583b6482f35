"""Image augmentation of training batches (kornia): what it changes, what it leaves alone, its config errors, and
that a run with it still resumes bit-for-bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from diffpilot.errors import ConfigError
from diffpilot.policies.augmentation import AugmentationConfig, ImageAugmentation
from diffpilot.policies.datasets.episodes import EpisodeData
from diffpilot.policies.datasets.stats import compute_stats
from diffpilot.policies.datasets.windowed import WindowedDataset
from diffpilot.policies.diffusion_policy import DiffusionPolicy
from diffpilot.policies.train import BCTrainer, TrainConfig

from .conftest import diffpilot, tiny_config

CAMERAS = ["agentview_image", "robot0_eye_in_hand_image"]
NONE = {"color_p": 0.0, "sharpness_p": 0.0, "affine_p": 0.0, "noise_p": 0.0}


def _batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    images = {k: torch.randint(0, 256, (4, 2, 40, 40, 3), dtype=torch.uint8, generator=g) for k in CAMERAS}
    return {**images, "robot0_eef_pos": torch.randn(4, 2, 3, generator=g)}


def _plain(images: torch.Tensor) -> torch.Tensor:
    return images.float().div(255.0).movedim(-1, -3)


def test_images_are_augmented_per_frame_and_other_entries_pass_through():
    batch = _batch()
    torch.manual_seed(1)
    out = ImageAugmentation(AugmentationConfig.from_dict({"enabled": True, "color_p": 1.0}), CAMERAS)(batch)
    for key in CAMERAS:
        assert out[key].shape == (4, 2, 3, 40, 40) and out[key].dtype == torch.float32
        assert out[key].min() >= 0.0 and out[key].max() <= 1.0
        changed = (out[key] - _plain(batch[key])).abs().flatten(2).mean(-1)  # (B, T): every frame jittered
        assert (changed > 1e-3).all()
    assert torch.equal(out["robot0_eef_pos"], batch["robot0_eef_pos"])
    torch.manual_seed(1)  # the global generator decides: a resumed run draws the same augmentations
    again = ImageAugmentation(AugmentationConfig.from_dict({"enabled": True, "color_p": 1.0}), CAMERAS)(batch)
    assert all(torch.equal(out[k], again[k]) for k in CAMERAS)


def test_zero_probabilities_and_a_camera_set_to_null_leave_images_as_they_are():
    batch = _batch()
    out = ImageAugmentation(AugmentationConfig.from_dict({"enabled": True, **NONE}), CAMERAS)(batch)
    assert all(torch.allclose(out[k], _plain(batch[k])) for k in CAMERAS)
    cfg = AugmentationConfig.from_dict({"enabled": True, "cameras": {"robot0_eye_in_hand_image": None}})
    out = ImageAugmentation(cfg, CAMERAS)(batch)
    assert out["robot0_eye_in_hand_image"] is batch["robot0_eye_in_hand_image"]
    assert not torch.allclose(out["agentview_image"], _plain(batch["agentview_image"]))
    per_camera = AugmentationConfig.from_dict({"cameras": {"agentview_image": {"degrees": 0.0}}})
    assert per_camera.for_camera("agentview_image").degrees == 0.0 and per_camera.for_camera("x").degrees == 3.0


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"brightness": 2}, "augmentation.brightness=2.0: expected a number in [0, 1]"),
        ({"noise_std": -0.1}, "augmentation.noise_std=-0.1: expected a number >= 0"),
        ({"hue": "abc"}, "augmentation.hue='abc': expected a number"),
        ({"blur": 1}, "augmentation.blur: unknown field"),
        ({"enabled": "yes"}, "augmentation.enabled='yes': expected true or false"),
    ],
)
def test_bad_values_are_named(values, message):
    with pytest.raises(ConfigError) as err:
        AugmentationConfig.from_dict(values)
    assert str(err.value) == message


def test_unknown_cameras_are_named():
    cfg = AugmentationConfig.from_dict({"cameras": {"wrist": {"degrees": 0}}})
    with pytest.raises(ConfigError, match=r"augmentation.cameras.wrist: not an image input; the policy's are"):
        ImageAugmentation(cfg, CAMERAS)
    cfg = AugmentationConfig.from_dict({"cameras": {"agentview_image": {"blur": 0}}})
    with pytest.raises(ConfigError, match=r"augmentation.cameras.agentview_image.blur: unknown field"):
        ImageAugmentation(cfg, CAMERAS)


def _image_trainer(out, augment: bool) -> BCTrainer:
    rng = np.random.default_rng(0)
    n, episodes = 60, [(0, 25), (25, 60)]
    arrays = {k: rng.integers(0, 256, (n, 40, 40, 3), dtype=np.uint8) for k in CAMERAS}
    arrays["robot0_eef_pos"] = rng.normal(size=(n, 3)).astype(np.float32)
    arrays["action"] = rng.normal(size=(n, 2)).astype(np.float32)
    data = EpisodeData(arrays, np.array(episodes), fps=10)
    features = {k: {"kind": "image", "shape": [3, 40, 40]} for k in CAMERAS}
    features["robot0_eef_pos"] = {"kind": "state", "shape": [3]}
    torch.manual_seed(0)
    policy = DiffusionPolicy(tiny_config(input_features=features, vision={"crop_shape": (36, 36), "width": 8}))
    policy.load_stats(compute_stats(arrays, data.episode_ranges))
    dataset = WindowedDataset(data, [*CAMERAS, "robot0_eef_pos"], "action", 2, 16, 8)
    cfg = TrainConfig(steps=4, batch_size=4, lr=1e-3, warmup_steps=1, log_every=2, seed=0)
    augmentation = ImageAugmentation(AugmentationConfig.from_dict({"enabled": True}), CAMERAS) if augment else None
    return BCTrainer(policy, dataset, cfg, out, augment=augmentation)


def test_training_with_augmentation_changes_the_run_and_resumes_exactly(tmp_path):
    plain = _image_trainer(tmp_path / "plain", augment=False).train()
    straight = _image_trainer(tmp_path / "a", augment=True).train()
    half = _image_trainer(tmp_path / "b", augment=True).train(stop_at=2)
    resumed = _image_trainer(tmp_path / "b", augment=True)
    resumed.resume(half)
    final = resumed.train()
    a, b = (load_file(p / "training_state/modules.safetensors") for p in (straight, final))
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = load_file(plain / "training_state/modules.safetensors")
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_augmentation_of_a_state_policy_is_refused_in_one_line(tmp_path, lerobot_dataset):
    proc = diffpilot(
        "train", f"dataset.root={lerobot_dataset}", f"output_dir={tmp_path / 'run'}", "augmentation.enabled=true"
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "diffpilot: augmentation.enabled=true: the policy has no image input to augment"
    proc = diffpilot("train", "augmentation.brightness=3", f"output_dir={tmp_path / 'run'}")
    assert proc.returncode == 2 and proc.stderr.strip() == (
        "diffpilot: augmentation.brightness=3.0: expected a number in [0, 1]"
    )
