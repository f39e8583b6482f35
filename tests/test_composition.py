"""GPC composition: one noise sample and one time grid over K parents, diffusion and flow on one scale."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from diffpilot.policies.compose import ComposedPolicy, CompositionConfig, matched_level
from diffpilot.policies.diffusion_policy import DiffusionPolicy
from diffpilot.policies.registry import load_policy
from diffpilot.policies.samplers import DiffusionSchedule, FlowSchedule, SamplerConfig

from .conftest import tiny_config


def _window(batch: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "observation.state": torch.rand(batch, 2, 2, generator=g) * 2 - 1,
        "observation.environment_state": torch.rand(batch, 2, 16, generator=g) * 2 - 1,
    }


def _policy(seed: int, **overrides) -> DiffusionPolicy:
    torch.manual_seed(seed)
    return DiffusionPolicy(tiny_config(**overrides)).eval()


def _flow_policy(seed: int) -> DiffusionPolicy:
    return _policy(
        seed, objective="flow", prediction_type="velocity", sampler={"name": "flow_euler", "clip_sample": None}
    )


class OracleNet(nn.Module):
    """A network that answers exactly for data concentrated on `target` (1, T, A): it reads the noise level
    from the model time it is given, through its own copy of each schedule's definition."""

    def __init__(self, target: torch.Tensor, schedule, kind: str):
        super().__init__()
        self.target, self.schedule, self.kind = target, schedule, kind

    def _alpha_sigma(self, model_time: torch.Tensor):
        if isinstance(self.schedule, FlowSchedule):
            t = model_time.double() / self.schedule.time_scale
            return t, 1 - t
        ab = self.schedule.alphas_cumprod.double().numpy()
        log_snr = np.log(ab / (1 - ab))  # linear in the (fractional) level between integers
        ls = torch.from_numpy(np.interp(model_time.double().numpy(), np.arange(len(ab)), log_snr))
        return torch.sigmoid(ls).sqrt(), torch.sigmoid(-ls).sqrt()

    def forward(self, x_t, model_time, cond):
        a, s = (v.reshape(-1, 1, 1) for v in self._alpha_sigma(model_time))
        x0 = self.target.double().expand_as(x_t)
        eps = (x_t.double() - a * x0) / s
        return {"epsilon": eps, "velocity": x0 - eps, "sample": x0}[self.kind].float()


def _oracle(policy: DiffusionPolicy, target: torch.Tensor) -> DiffusionPolicy:
    policy.denoiser.net = OracleNet(target, policy.schedule, policy.denoiser.prediction_type)
    return policy


def test_matched_level_recovers_the_same_process():
    schedule = DiffusionSchedule(100)
    levels = torch.tensor([0, 3, 50, 99])
    alpha, sigma = schedule.alpha_sigma(levels)
    t, a, s = matched_level(schedule, alpha, sigma)
    assert torch.allclose(t, levels.float(), atol=1e-3)
    assert torch.allclose(a, alpha, atol=1e-5) and torch.allclose(s, sigma, atol=1e-5)
    t, a, s = matched_level(FlowSchedule(), alpha, sigma)  # flow time with the same α/σ
    assert torch.allclose(a / s, alpha / sigma, rtol=1e-4) and torch.allclose(t, a)


@pytest.mark.parametrize("sampler", ["ddim", "flow_euler", "heun"])
def test_diffusion_and_flow_parents_agree_on_one_scale(sampler):
    """Exact parents of both kinds for the same data point: any convex mix, under any driver, lands on it.
    A wrong level match or rescaling of x_t would pull the flow parent's estimate away from the point."""
    target = torch.rand(1, 16, 2) * 1.6 - 0.8
    parents = [_oracle(_policy(0), target), _oracle(_flow_policy(1), target)]
    for weights in ([0.5, 0.5], [0.1, 0.9], [0.9, 0.1]):
        composed = ComposedPolicy(parents, CompositionConfig(weights, SamplerConfig(sampler, 6)))
        out = composed.predict_chunk(_window(), noise=torch.randn(3, 16, 2), normalized=True)
        assert torch.allclose(out, target.expand(3, -1, -1), atol=2e-3), (weights, (out - target).abs().max())


def test_one_hot_weights_reproduce_the_parent_exactly():
    a, b = _policy(0), _policy(1)
    noise = torch.randn(3, 16, 2)
    composed = ComposedPolicy([a, b], CompositionConfig([1.0, 0.0], SamplerConfig("ddim", 5)))
    assert torch.equal(composed.predict_chunk(_window(), noise=noise), a.predict_chunk(_window(), noise=noise))
    only_b = composed.with_weights([0.0, 1.0])
    assert torch.equal(only_b.predict_chunk(_window(), noise=noise), b.predict_chunk(_window(), noise=noise))
    assert composed.composition.weights == (1.0, 0.0)  # the view left the composition as it was
    mixed = composed.with_weights([0.5, 0.5]).predict_chunk(_window(), noise=noise)
    assert not torch.allclose(mixed, a.predict_chunk(_window(), noise=noise))


def test_composition_saves_and_loads_as_a_policy(tmp_path):
    composed = ComposedPolicy([_policy(0), _flow_policy(1)], CompositionConfig([0.3, 0.7], SamplerConfig("ddim", 5)))
    composed.save_pretrained(tmp_path / "gpc")
    loaded = load_policy(tmp_path / "gpc")
    assert isinstance(loaded, ComposedPolicy) and loaded.composition.weights == (0.3, 0.7)
    noise = torch.randn(3, 16, 2)
    assert torch.equal(loaded.predict_chunk(_window(), noise=noise), composed.predict_chunk(_window(), noise=noise))
    obs = {k: v[:, -1].numpy() for k, v in _window().items()}
    loaded.reset()
    assert loaded.select_action(obs).shape == (3, 2)
    assert not (tmp_path / "gpc.tmp").exists()


def test_bad_compositions_are_refused():
    with pytest.raises(ValueError, match="convex"):
        CompositionConfig([0.7, 0.7])
    with pytest.raises(ValueError, match="horizon"):
        ComposedPolicy([_policy(0), _policy(1, horizon=8)], CompositionConfig([0.5, 0.5]))
    other = _policy(1)
    stats = {
        k: {"min": -np.ones(n), "max": np.ones(n)}
        for k, n in (("observation.state", 2), ("observation.environment_state", 16))
    }
    other.normalizer.load_stats({**stats, "action": {"min": np.array([-2.0, -1.0]), "max": np.array([1.0, 1.0])}})
    with pytest.raises(ValueError, match="normalises 'action' differently"):
        ComposedPolicy([_policy(0), other], CompositionConfig([0.5, 0.5]))
