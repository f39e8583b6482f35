"""RTI warm start: few network evaluations between chunks, full samples after reset or an observation jump."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffpilot.policies.diffusion_policy import DiffusionPolicy
from diffpilot.policies.warmstart import RTIWarmStart

from .conftest import tiny_config


def _obs(value: float) -> dict[str, np.ndarray]:
    return {
        "observation.state": np.full((2, 2), value, np.float32),
        "observation.environment_state": np.full((2, 16), value, np.float32),
    }


def _counting(policy: DiffusionPolicy) -> list[int]:
    calls = [0]
    predict = policy.denoiser.predict

    def counted(*args, **kwargs):
        calls[0] += 1
        return predict(*args, **kwargs)

    policy.denoiser.predict = counted
    return calls


def test_rti_runs_the_short_step_list_between_chunks():
    torch.manual_seed(0)
    policy = DiffusionPolicy(tiny_config(sampler={"name": "ddpm", "num_inference_steps": 100})).eval()
    calls = _counting(policy)
    policy.chunk_planner = RTIWarmStart(policy, start=2, num_steps=3)
    assert policy.chunk_planner.timesteps == [2, 1, 0]
    policy.reset()
    for i in range(24):  # chunks at steps 0, 8, 16
        action = policy.select_action(_obs(100.0 + 0.01 * i))
    assert action.shape == (2, 2) and np.isfinite(action).all()
    assert calls[0] == 100 + 3 + 3
    assert (policy.chunk_planner.full_samples, policy.chunk_planner.warm_samples) == (1, 2)
    policy.reset()  # a new episode starts from a full sample
    policy.select_action(_obs(100.0))
    assert calls[0] == 106 + 100


def test_rti_falls_back_to_a_full_sample_when_the_observation_jumps():
    policy = DiffusionPolicy(tiny_config(sampler={"name": "ddim", "num_inference_steps": 10})).eval()
    calls = _counting(policy)
    policy.chunk_planner = RTIWarmStart(policy, start=2, num_steps=3, jump_threshold=0.5)
    policy.reset()
    for _ in range(8):
        policy.select_action(_obs(100.0))
    policy.select_action(_obs(400.0))  # normalised by the default [−1, 1] stats: a jump of 300
    assert calls[0] == 10 + 10


def test_rti_for_flow_policies_starts_at_a_flow_time():
    policy = DiffusionPolicy(
        tiny_config(objective="flow", prediction_type="velocity", sampler={"name": "flow_euler", "clip_sample": None})
    ).eval()
    planner = RTIWarmStart(policy, start=0.8, num_steps=2)
    assert planner.timesteps == [0.8, 0.9]
    window = {k: torch.as_tensor(v)[:, None].repeat(1, 2, 1) for k, v in _obs(1.0).items()}
    first, second = planner(window), planner(window)
    assert first.shape == second.shape == (2, 16, 2) and planner.warm_samples == 1


def test_rti_with_a_jump_threshold_survives_a_batch_size_change():
    policy = DiffusionPolicy(tiny_config(sampler={"name": "ddim", "num_inference_steps": 4})).eval()
    planner = RTIWarmStart(policy, start=2, num_steps=3, jump_threshold=0.5)
    for batch in (2, 3):
        window = {k: torch.as_tensor(v[:1]).repeat(batch, 1)[:, None].repeat(1, 2, 1) for k, v in _obs(1.0).items()}
        assert planner(window).shape == (batch, 16, 2)
    assert planner.full_samples == 2


def test_shift_pads_by_holding_or_extrapolating():
    policy = DiffusionPolicy(tiny_config(horizon=8, n_action_steps=4)).eval()
    chunk = torch.arange(8, dtype=torch.float32).reshape(1, 8, 1).expand(1, 8, 2) * 0.1
    held = RTIWarmStart(policy, start=2, num_steps=3, pad="hold")._shift(chunk, 4)
    assert torch.allclose(held[0, :, 0], torch.tensor([0.4, 0.5, 0.6, 0.7, 0.7, 0.7, 0.7, 0.7]))
    extrapolated = RTIWarmStart(policy, start=2, num_steps=3)._shift(chunk, 4)  # the default, as eval and serve
    assert torch.allclose(extrapolated[0, :, 0], torch.arange(4, 12, dtype=torch.float32) * 0.1)
    with pytest.raises(ValueError, match="pad='zero'"):
        RTIWarmStart(policy, start=2, num_steps=3, pad="zero")


def test_explicit_step_list_replaces_the_even_steps_and_must_start_at_start():
    """timesteps=[0.125, 0.625, 0.875]: the warm chunk queries exactly those flow times (jumps 1/2, 1/4, 1/8)."""
    policy = DiffusionPolicy(
        tiny_config(objective="flow", prediction_type="velocity", sampler={"name": "flow_euler", "clip_sample": None})
    ).eval()
    planner = RTIWarmStart(policy, start=0.125, num_steps=3, timesteps=[0.125, 0.625, 0.875])
    assert planner.timesteps == [0.125, 0.625, 0.875] and planner.start == 0.125
    window = {k: torch.as_tensor(v)[:, None].repeat(1, 2, 1) for k, v in _obs(1.0).items()}
    planner(window)  # the first chunk: a full sample
    asked, predict = [], policy.denoiser.predict
    policy.denoiser.predict = lambda x, t, *a, **k: asked.append(round(float(t[0]), 6)) or predict(x, t, *a, **k)
    planner(window)
    assert asked == [0.125, 0.625, 0.875] and planner.warm_samples == 1
    with pytest.raises(
        ValueError, match=r"timesteps=\[0\.25, 0\.625, 0\.875\]: expected 3 \(num_steps\) levels starting"
    ):
        RTIWarmStart(policy, start=0.125, num_steps=3, timesteps=[0.25, 0.625, 0.875])


def test_defaults_are_the_commands_level_80_or_flow_time_07():
    """One default everywhere: eval, serve and RTIWarmStart(policy) start at diffusion level 80 of 100 (flow time 0.7),
    3 steps, the tail extrapolated."""
    diffusion = DiffusionPolicy(tiny_config(sampler={"name": "ddpm", "num_inference_steps": 100})).eval()
    planner = RTIWarmStart(diffusion)
    assert planner.timesteps == [80, 40, 0] and planner.pad == "extrapolate"
    flow = DiffusionPolicy(
        tiny_config(objective="flow", prediction_type="velocity", sampler={"name": "flow_euler", "clip_sample": None})
    ).eval()
    assert RTIWarmStart.from_config(flow, {"enabled": True, "start": None, "num_steps": 3}).start == 0.7
