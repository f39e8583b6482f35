"""Typed, nested policy configs: checkpoints of the earlier flat layout load (kept as fixtures, each with the chunk it
sampled then), a saved config round-trips as version 2, and choosing a sampler or a chunk length gives a view — the
loaded policy and its config are never edited."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from diffpilot.policies.diffusion_config import CONFIG_VERSION, DiffusionPolicyConfig, upgrade_flat_config
from diffpilot.policies.diffusion_policy import DiffusionPolicy
from diffpilot.policies.nets import MoDEConfig, UNetConfig
from diffpilot.policies.registry import load_policy
from diffpilot.policies.samplers import SamplerConfig

from .conftest import tiny_config

FIXTURES = Path(__file__).parent / "fixtures" / "checkpoints_v1"


@pytest.mark.parametrize("name", ["diffusion_unet", "flow_shortcut", "mode_task"])
def test_checkpoints_of_the_flat_layout_load_and_sample_as_before(name, tmp_path):
    directory = FIXTURES / name
    assert "version" not in json.loads((directory / "config.json").read_text())["config"]  # the old layout
    policy = load_policy(directory)
    reference = load_file(str(directory / "reference.safetensors"))
    window = {k.removeprefix("window."): v for k, v in reference.items() if k.startswith("window.")}
    chunk = policy.predict_chunk(window, noise=reference["noise"])  # actions in pixels: float noise of threads only
    torch.testing.assert_close(chunk, reference["chunk"], rtol=1e-5, atol=1e-3)
    policy.save_pretrained(tmp_path / "again")  # written in the current layout, read back the same
    saved = json.loads((tmp_path / "again" / "config.json").read_text())["config"]
    assert saved["version"] == CONFIG_VERSION and isinstance(saved["sampler"], dict)
    assert DiffusionPolicy.from_pretrained(tmp_path / "again").config == policy.config


def test_the_flat_keys_move_into_their_parts():
    flat = json.loads((FIXTURES / "mode_task" / "config.json").read_text())["config"]
    nested = upgrade_flat_config(flat)
    assert nested["sampler"] == {"name": "ddim", "num_inference_steps": 3, "eta": 0.0, "clip_sample": 1.0,
                                 "timestep_spacing": "leading", "flow_time_power": 1.0}  # fmt: skip
    assert "down_dims" not in nested["network"] and nested["network"]["type"] == "mode"  # only MoDE's own fields
    config = DiffusionPolicyConfig.from_dict(flat)
    assert isinstance(config.network, MoDEConfig) and config.network.expert_hidden == 48
    assert config.task_conditioning.mode == "id" and config.task_conditioning.instructions == ("push", "pull")
    unet = DiffusionPolicyConfig.from_dict(
        json.loads((FIXTURES / "diffusion_unet" / "config.json").read_text())["config"]
    )
    assert unet.network == UNetConfig(down_dims=(16, 32), kernel_size=5, n_groups=4, time_embed_dim=16)
    assert unet.sampler.timestep_spacing == "quadratic" and unet.n_action_steps == 4


def test_unknown_keys_and_bad_values_are_named_with_their_path():
    with pytest.raises(ValueError, match=r"policy\.sampler: unknown key\(s\) \['steps'\]"):
        DiffusionPolicyConfig.from_dict(
            {"input_features": {"s": {"kind": "state", "shape": [2]}}, "sampler": {"steps": 3}}
        )
    with pytest.raises(ValueError, match=r"policy\.network\.type='resnet': expected one of"):
        tiny_config(network={"type": "resnet"})
    with pytest.raises(ValueError, match=r"policy\.network: unknown key\(s\) \['d_model'\]"):
        tiny_config(network={"d_model": 64})  # a UNet has no d_model
    with pytest.raises(ValueError, match=r"policy\.version=7: expected 2"):
        DiffusionPolicyConfig.from_dict({"version": 7})


def test_with_sampler_and_n_action_steps_are_views_of_the_same_weights(tiny_policy):
    before = tiny_policy.config
    ten = tiny_policy.with_sampler(SamplerConfig("ddim", 10, timestep_spacing="quadratic"))
    four = ten.with_n_action_steps(4)
    assert tiny_policy.config is before and tiny_policy.sampler.default_timesteps() == [80, 60, 40, 20, 0]
    assert ten.sampler.default_timesteps() == [90, 71, 54, 40, 28, 18, 10, 4, 1, 0]
    assert four.config.n_action_steps == 4 and ten.config.n_action_steps == 8
    assert four.net is tiny_policy.net  # shared, not copied
    window = {k: torch.randn(2, 2, *f.shape) for k, f in before.input_features.items()}
    noise = torch.randn(2, 16, 2)
    torch.testing.assert_close(four.predict_chunk(window, noise=noise), ten.predict_chunk(window, noise=noise))
    with pytest.raises(ValueError, match="n_action_steps=16"):
        tiny_policy.with_n_action_steps(16)
    with pytest.raises(ValueError, match=r"sampler\.name='flow_euler': expected a diffusion sampler"):
        tiny_policy.with_sampler(SamplerConfig("flow_euler"))
    with pytest.raises(AttributeError):
        before.n_action_steps = 4  # configs are frozen: a value is passed, never edited
