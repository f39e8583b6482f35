"""MoDE denoiser: noise-conditioned routing, expert caching (cached == uncached), load balancing, parameter
counts, and its use inside DiffusionPolicy with DDIM / EDM-Heun sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffpilot.policies.diffusion_config import DiffusionPolicyConfig
from diffpilot.policies.diffusion_policy import DiffusionPolicy
from diffpilot.policies.nets.mode import MoDEDenoiserNet, NoiseRouter, Routes, balance_loss
from diffpilot.policies.samplers import SamplerConfig

STATE = {"observation.state": {"kind": "state", "shape": (4,)}}


def perturbed_net(seed: int = 0, **kwargs) -> MoDEDenoiserNet:
    """A small MoDE net whose zero-initialised modulation and unit norms are randomised, so every folded term
    of the cache is exercised."""
    torch.manual_seed(seed)
    net = MoDEDenoiserNet(2, 6, 8, d_model=32, n_layers=3, n_heads=4, **kwargs)
    with torch.no_grad():
        for block in net.blocks:
            block.attn.modulation.weight.normal_(0, 0.2)
            block.attn.modulation.bias.normal_(0, 0.2)
            block.ffn_norm.weight.normal_(1, 0.3)
            block.ffn_norm.bias.normal_(0, 0.3)
    return net.eval()


def policy(network: dict | None = None, **overrides) -> DiffusionPolicy:
    torch.manual_seed(0)
    net = {"type": "mode", "d_model": 32, "n_layers": 2, "n_heads": 4, **(network or {})}
    cfg = dict(input_features=STATE, network=net, horizon=8, n_action_steps=4)
    p = DiffusionPolicy(DiffusionPolicyConfig.from_dict({**cfg, **overrides}))
    stats = {"min": np.full(4, -1.0), "max": np.full(4, 1.0)}
    p.load_stats({"observation.state": stats, "action": {"min": np.full(2, -1.0), "max": np.full(2, 1.0)}})
    return p


def test_routing_depends_on_the_noise_level_only():
    net = perturbed_net()
    x, cond = torch.randn(4, 8, 2), torch.randn(4, 6)
    patterns = set()
    with torch.no_grad():
        for level in range(0, 100, 5):
            _, routes = net.forward_with_routes(x, torch.full((4,), float(level)), cond)
            experts = torch.stack([r.experts for r in routes])  # (layers, B, k)
            assert (experts == experts[:, :1]).all(), "samples at one noise level must share their routes"
            patterns.add(tuple(experts[:, 0].flatten().tolist()))
            # other actions and observations at the same level: the same experts
            _, other = net.forward_with_routes(torch.randn(4, 8, 2), torch.full((4,), float(level)), torch.randn(4, 6))
            assert all(torch.equal(a.experts, b.experts) for a, b in zip(routes, other))
    assert len(patterns) >= 3, f"routes should change with the noise level; saw {patterns}"


def test_expert_cache_matches_the_uncached_pass():
    net = perturbed_net()
    levels = [99.0, 70.0, 41.0, 12.0, 0.0]
    x, cond = torch.randn(3, 8, 2), torch.randn(3, 6)
    with torch.no_grad():
        uncached = [net(x, torch.full((3,), t), cond) for t in levels]
        net.build_expert_cache(levels)
        cached = [net(x, torch.full((3,), t), cond) for t in levels]
    for a, b in zip(uncached, cached):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    routes = net.cached_routes()
    assert set(routes) == set(levels) and all(len(r) == 3 and all(len(e) == 2 for e in r) for r in routes.values())
    # the cached pass really is different code (one fused FFN per block, no router); other levels are routed
    seen = []
    hook = net.blocks[0].router.noise_proj.register_forward_hook(lambda *a: seen.append(1))
    with torch.no_grad():
        net(x, torch.full((3,), 70.0), cond)
        assert seen == []
        net(x, torch.full((3,), 50.0), cond)
    hook.remove()
    assert seen == [1]


def test_cache_follows_weight_updates_and_training_mode():
    net = perturbed_net()
    x, cond, t = torch.randn(2, 8, 2), torch.randn(2, 6), torch.full((2,), 30.0)
    net.build_expert_cache([30.0])
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))  # an optimiser / EMA step changes weights in place
        cached = net(x, t, cond)
        with net.cache_disabled():
            fresh = net(x, t, cond)
    torch.testing.assert_close(cached, fresh, rtol=1e-5, atol=1e-5)
    net.train()
    out = net(x, t, cond)  # training never uses the cache: the router learns through its gates
    (out.square().mean() + net.balance_loss).backward()
    assert net.blocks[0].router.noise_proj.weight.grad.abs().sum() > 0


def test_balance_loss_is_one_when_balanced_and_larger_when_collapsed():
    e = 4
    uniform = Routes(torch.tensor([[0], [1], [2], [3]]), torch.ones(4, 1), torch.full((4, e), 0.25))
    assert balance_loss(uniform, e).item() == pytest.approx(1.0)
    probs = torch.tensor([[0.97, 0.01, 0.01, 0.01]]).repeat(4, 1)
    collapsed = Routes(torch.zeros(4, 1, dtype=torch.long), torch.ones(4, 1), probs)
    assert balance_loss(collapsed, e).item() == pytest.approx(4 * 0.97)


def test_token_routing_routes_each_token_and_refuses_caching():
    net = perturbed_net(token_routing=True)
    x, cond = torch.randn(2, 8, 2), torch.randn(2, 6)
    with torch.no_grad():
        _, routes = net.forward_with_routes(x, torch.full((2,), 10.0), cond)
    assert routes[0].experts.shape == (2 * 10, 2)  # (B · tokens, k): 8 actions + noise + condition tokens
    with pytest.raises(ValueError, match="cannot be cached"):
        net.build_expert_cache([10.0])
    with pytest.raises(ValueError, match=r"network\.token_routing=true: token-dependent routes cannot be cached"):
        DiffusionPolicyConfig.from_dict({"input_features": STATE, "network": {"type": "mode", "token_routing": True}})
    with pytest.raises(ValueError, match=r"network\.top_k=5"):
        DiffusionPolicyConfig.from_dict({"input_features": STATE, "network": {"type": "mode", "top_k": 5}})
    with pytest.raises(ValueError, match="top_k"):
        NoiseRouter(8, 2, 3, False)


def test_active_parameters_leave_out_the_idle_experts():
    net = MoDEDenoiserNet(2, 6, 8, d_model=32, n_layers=3, n_heads=4, n_experts=4, top_k=1, expert_hidden=16)
    total = sum(p.numel() for p in net.parameters())
    per_expert = 3 * 32 * 16
    assert net.active_parameters() == total - 3 * 3 * per_expert


@pytest.mark.parametrize("sampler,steps", [("ddim", 5), ("heun", 4)])
def test_policy_samples_the_same_chunk_with_and_without_the_cache(sampler, steps):
    p = policy(sampler={"name": sampler, "num_inference_steps": steps}).eval()
    levels = p.sampler.default_timesteps()
    assert sorted(p.net.cached_routes()) == sorted(float(t) for t in levels)
    window = {"observation.state": torch.rand(3, 2, 4) * 2 - 1}
    cached = p.predict_chunk(window, generator=torch.Generator().manual_seed(1))
    with p.net.cache_disabled():
        uncached = p.predict_chunk(window, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(cached, uncached, rtol=1e-4, atol=1e-5)
    three = p.with_sampler(SamplerConfig("ddim", 3))  # another step list is cached in its turn, the first one kept
    assert {float(t) for t in [*levels, *three.sampler.default_timesteps()]} == set(p.net.cached_routes())
    torch.testing.assert_close(p.predict_chunk(window, generator=torch.Generator().manual_seed(1)), cached)


def test_mode_training_loss_includes_the_balance_term():
    p = policy(network={"balance_weight": 0.5}).train()
    batch = {"observation.state": torch.rand(6, 2, 4), "action": torch.rand(6, 8, 2)}
    torch.manual_seed(3)
    with_balance = p.compute_loss(batch)
    p.net.balance_weight = 0.0
    torch.manual_seed(3)
    without = p.compute_loss(batch)
    assert with_balance.item() == pytest.approx(without.item() + 0.5 * p.net.balance_loss.item(), rel=1e-5)
    assert p.net.balance_loss.item() >= 1.0 - 1e-6  # E·Σ f·P is at least 1


def test_a_flow_midpoint_policy_caches_its_midpoints_too():
    sampler = {"name": "flow_midpoint", "num_inference_steps": 2}
    p = policy(objective="flow", prediction_type="velocity", sampler=sampler).eval()
    window = {"observation.state": torch.rand(2, 2, 4)}
    cached = p.predict_chunk(window, generator=torch.Generator().manual_seed(0))
    with p.net.cache_disabled():
        uncached = p.predict_chunk(window, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(cached, uncached, rtol=1e-4, atol=1e-5)
    assert len(p.net.cached_routes()) == 4
