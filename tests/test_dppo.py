"""DPPO baseline: GAE, the Gaussian denoising chain (its mean path is the policy's own DDIM sampler, its
log-probabilities match a recomputation), PPO training on real PushT, exact resume, config errors."""

from __future__ import annotations

import pytest
import torch

from diffpilot.rl.dppo import DPPO, DenoisingChain, DPPOConfig, gae

from .test_dsrl import MAKE_ENV, one_thread, pusht_policy  # noqa: F401  (one_thread: autouse fixture)


def small_cfg(**overrides) -> DPPOConfig:
    values = dict(n_envs=2, n_steps=4, env_steps=192, epochs=2, minibatch_size=4, hidden=[16], eval_episodes=0)
    values.update(overrides)
    return DPPOConfig(**values)


def test_gae_matches_a_hand_computation():
    rewards = torch.tensor([[1.0], [0.0], [2.0]])
    values = torch.tensor([[0.5], [0.2], [0.1]])
    next_values = torch.tensor([[0.2], [0.0], [0.3]])  # step 1 ended the episode (value 0 after it)
    dones = torch.tensor([[0.0], [1.0], [0.0]])
    g, lam = 0.9, 0.8
    d2 = 2.0 + g * 0.3 - 0.1
    d1 = 0.0 + g * 0.0 - 0.2
    d0 = 1.0 + g * 0.2 - 0.5
    expected = torch.tensor([[d0 + g * lam * d1], [d1], [d2]])
    torch.testing.assert_close(gae(rewards, values, next_values, dones, g, lam), expected)


def test_chain_mean_path_is_the_policy_sampler_and_log_probs_recompute():
    policy = pusht_policy()
    levels = policy.sampler.default_timesteps(3)
    chain = DenoisingChain(policy, policy, levels, ft_steps=2, std=0.1)
    cond = torch.randn(3, policy.obs_encoder.output_dim)
    x = torch.randn(3, 16, 2)
    with torch.no_grad():
        mean_path = x
        for i in range(len(levels)):
            mean_path = chain.mean(policy.denoiser, mean_path, i, cond)
        reference = policy.sampler.sample(policy.denoiser, x, cond, levels)
    torch.testing.assert_close(mean_path, reference)
    torch.manual_seed(0)
    chunk, stored, logp = chain.sample(cond)
    assert stored.shape == (3, 3, 16, 2) and logp.shape == (3, 2)
    torch.testing.assert_close(stored[:, -1], chunk)
    with torch.no_grad():
        torch.testing.assert_close(chain.log_prob(stored, cond), logp)


def test_dppo_finetunes_a_copy_and_resumes_exactly(tmp_path):
    base = pusht_policy()
    before = {k: v.clone() for k, v in base.state_dict().items()}
    torch.manual_seed(3)
    straight = DPPO(base, MAKE_ENV, small_cfg(), tmp_path / "a")
    straight.train()
    assert straight.counters["iterations"] >= 2 and straight.history
    for k, v in base.state_dict().items():
        assert torch.equal(v, before[k]), f"base tensor {k} changed"
    assert any(not torch.equal(before[f"net.{k}"], v) for k, v in straight.finetuned.net.state_dict().items())

    policy = pusht_policy()
    torch.manual_seed(3)
    first = DPPO(policy, MAKE_ENV, small_cfg(), tmp_path / "b")
    first.train(stop_at=64)
    ckpt = first.save()
    assert (ckpt / "pretrained_model" / "config.json").is_file()
    second = DPPO(pusht_policy(), MAKE_ENV, small_cfg(), tmp_path / "b")
    second.resume(ckpt)
    second.train()
    assert second.counters == straight.counters and second.env_steps == straight.env_steps
    for (k, a), b in zip(straight.finetuned.net.state_dict().items(), second.finetuned.net.state_dict().values()):
        assert torch.equal(a, b), f"{k} differs after resume"


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match=r"algo\.ft_steps=4: expected ≤ algo\.num_inference_steps=3"):
        DPPOConfig(ft_steps=4)
    with pytest.raises(ValueError, match=r"algo\.clip_ratio=0: expected > 0"):
        DPPOConfig(clip_ratio=0)
