"""DSRL on the real PushT simulator with a tiny diffusion policy: chunk env + exact episode replay, the
latent-noise MDP, the replay buffer, the squashed-Gaussian actor, SAC and noise-aliasing training,
frozen base weights, exact resume, and the `diffpilot rl` entry point."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module

from diffpilot.envs.pusht import make_pusht_env
from diffpilot.rl.chunk_env import ChunkEnv, ChunkVecEnv
from diffpilot.rl.dsrl import DSRL, DSRLConfig
from diffpilot.rl.latent_env import FrozenChunkSampler, LatentNoiseVecEnv
from diffpilot.rl.replay import ReplayBuffer
from diffpilot.rl.runs import algo_config
from diffpilot.rl.sac import SquashedGaussianActor

from .conftest import tiny_config

MAKE_ENV = functools.partial(make_pusht_env, "state", 40)


@pytest.fixture(autouse=True)
def one_thread():
    """RL loops make many small tensor calls: one thread is fastest, and the machine is shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pusht_policy(seed: int = 0):
    """A tiny (untrained) state policy whose normaliser spans PushT's coordinates."""
    from diffpilot.policies.diffusion_policy import DiffusionPolicy

    torch.manual_seed(seed)
    policy = DiffusionPolicy(tiny_config(sampler={"name": "ddim", "num_inference_steps": 3}))
    box = {"min": np.zeros(2, np.float32), "max": np.full(2, 512.0, np.float32)}
    policy.load_stats(
        {
            "observation.state": box,
            "observation.environment_state": {"min": np.zeros(16, np.float32), "max": np.full(16, 512.0, np.float32)},
            "action": box,
        }
    )
    return policy.eval()


def small_cfg(**overrides) -> DSRLConfig:
    values = dict(
        n_envs=2,
        env_steps=400,
        buffer_size=1000,
        batch_size=16,
        hidden=[32, 32],
        utd=1.0,
        learning_starts=8,
        distill_batch=8,
        log_every=100,
        checkpoint_every=10_000,
        eval_episodes=0,
    )
    values.update(overrides)
    return DSRLConfig(**values)


def test_chunk_env_runs_a_chunk_and_gives_a_window_and_sparse_reward():
    env = ChunkEnv(MAKE_ENV(), n_obs_steps=2, n_action_steps=4)
    obs, _ = env.reset(seed=3)
    assert obs["observation.environment_state"].shape == (2, 16)
    np.testing.assert_array_equal(obs["observation.state"][0], obs["observation.state"][1])  # padded start
    chunk = np.tile(np.array([[300.0, 300.0]], np.float32), (4, 1))
    obs, reward, terminated, _, info = env.step(chunk)
    assert info["env_steps"] == 4 and not terminated
    assert -1.0 <= reward < 0.0  # mean of (coverage-based r) − 1 over the 4 steps, 0 only when solved
    assert env.episode_actions().shape == (4, 2)
    with pytest.raises(ValueError, match="expected \\(4, 2\\)"):
        env.step(np.zeros((3, 2), np.float32))


@pytest.mark.parametrize("vector", ["sync", "async"])
def test_vec_env_state_replays_episodes_exactly(vector):
    a = ChunkVecEnv(MAKE_ENV, 2, 2, 4, seed=11, vector=vector)
    a.reset()
    rng = np.random.default_rng(0)
    for _ in range(12):  # crosses the 40-step limit: episode counters and seeds move on
        a.step(rng.uniform(100, 400, (2, 4, 2)).astype(np.float32))
    saved = a.state()
    assert saved["next_episode"] > 2
    b = ChunkVecEnv(MAKE_ENV, 2, 2, 4, seed=11, vector=vector)
    obs = b.load_state(saved)
    for k in obs:
        np.testing.assert_array_equal(obs[k], a.obs[k])
    chunk = rng.uniform(100, 400, (2, 4, 2)).astype(np.float32)
    sa, sb = a.step(chunk), b.step(chunk)
    np.testing.assert_array_equal(sa.reward, sb.reward)
    for k in sa.next_obs:
        np.testing.assert_array_equal(sa.next_obs[k], sb.next_obs[k])
    a.close()
    b.close()


def test_frozen_sampler_is_a_deterministic_noise_to_chunk_map():
    sampler = FrozenChunkSampler(pusht_policy(), num_inference_steps=3)
    assert len(sampler.timesteps) == 3 and sampler.noise_dim == 16 * 2
    assert not any(p.requires_grad for p in sampler.policy.parameters())
    cond = torch.randn(3, sampler.policy.obs_encoder.output_dim)
    w = torch.randn(3, sampler.noise_dim)
    first, again = sampler.chunk(cond, w), sampler.chunk(cond, w)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.allclose(first, sampler.chunk(cond, w + 0.5))
    assert sampler.executed(first).shape == (3, 8, 2)


def test_latent_env_maps_noise_to_executed_actions():
    sampler = FrozenChunkSampler(pusht_policy(), num_inference_steps=3)
    env = LatentNoiseVecEnv(ChunkVecEnv(MAKE_ENV, 2, 2, 8, seed=0), sampler)
    cond = env.reset()
    w = torch.zeros(2, sampler.noise_dim)
    nxt, final, executed, step = env.step(w)
    assert cond.shape == nxt.shape == final.shape == (2, 36)
    torch.testing.assert_close(executed, sampler.executed(sampler.chunk(cond, w)).flatten(1))
    assert step.env_steps == 16 and step.reward.shape == (2,)


def test_replay_buffer_wraps_and_round_trips():
    buf = ReplayBuffer(5, {"obs": 3, "reward": 1})
    for i in range(3):
        buf.add(obs=np.full((2, 3), i, np.float32), reward=np.full(2, i, np.float32))
    assert len(buf) == 5 and buf.pos == 1
    np.testing.assert_array_equal(buf.data["reward"][:, 0], [2, 0, 1, 1, 2])  # 2 overwrote slot 0
    saved = buf.state()
    other = ReplayBuffer(5, {"obs": 3, "reward": 1})
    other.load_state(saved)
    assert other.pos == 1 and len(other) == 5
    np.testing.assert_array_equal(other.data["obs"], buf.data["obs"])
    with pytest.raises(KeyError, match="expected"):
        buf.add(obs=np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(6, {"obs": 3, "reward": 1}).load_state(saved)


def test_actor_log_prob_matches_torch_distributions():
    torch.manual_seed(0)
    actor = SquashedGaussianActor(4, 3, [16], scale=1.5)
    obs = torch.randn(64, 4)
    gen = torch.Generator().manual_seed(1)
    w, logp = actor(obs, gen)
    assert w.abs().max() < 1.5
    mean, log_std = actor._dist(obs)
    dist = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, log_std.exp()),
        [torch.distributions.TanhTransform(), torch.distributions.AffineTransform(0.0, 1.5)],
    )
    inside = (w.abs() < 1.4).all(-1)  # away from saturation, where atanh(w / m) is well conditioned
    assert inside.sum() > 10
    torch.testing.assert_close(logp[inside], dist.log_prob(w).sum(-1)[inside], rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(actor.mode(obs), 1.5 * torch.tanh(mean))


def test_actor_with_a_fixed_std_learns_only_its_mean():
    """algo.actor_std: σ stays at the given value whatever the network's σ head says; the log-probability follows."""
    torch.manual_seed(0)
    actor = SquashedGaussianActor(4, 3, [16], scale=1.0, fixed_std=0.5)
    obs = torch.randn(256, 4)
    mean, log_std = actor._dist(obs)
    assert torch.equal(log_std, torch.full_like(mean, np.log(0.5)))
    w, logp = actor(obs, torch.Generator().manual_seed(1))
    u = torch.atanh(w.clamp(-0.999, 0.999))
    assert abs(float((u - mean).std()) - 0.5) < 0.05
    loss = -logp.mean()
    loss.backward()
    grads = actor.net[-1].weight.grad  # output rows: 3 means, then 3 (unused) log-σ
    assert grads[:3].abs().sum() > 0 and grads[3:].abs().sum() == 0
    with pytest.raises(ValueError, match=r"algo\.actor_std=0\.0: expected null \(σ learned\) or a fixed σ"):
        DSRLConfig(actor_std=0.0)


@pytest.mark.parametrize("variant", ["sac", "na"])
def test_training_updates_the_actor_and_leaves_the_base_policy_bit_identical(variant, tmp_path):
    policy = pusht_policy()
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    trainer = DSRL(policy, MAKE_ENV, small_cfg(variant=variant), tmp_path)
    actor_before = [p.clone() for p in trainer.actor.parameters()]
    trainer.train()
    assert trainer.env_steps >= 400 and trainer.counters["updates"] > 0
    assert trainer.counters["episodes"] >= 2 and trainer.history
    assert any(not torch.equal(a, p) for a, p in zip(actor_before, trainer.actor.parameters()))
    after = policy.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), f"base policy tensor {k} changed"
    assert (tmp_path / "tensorboard").is_dir()


def test_averaged_actor_trails_the_online_actor_and_is_what_evaluation_uses(tmp_path):
    from diffpilot.rl.dsrl import load_steered_policy

    trainer = DSRL(pusht_policy(), MAKE_ENV, small_cfg(actor_average=0.1), tmp_path)
    start = [p.clone() for p in trainer.actor_averaged.parameters()]
    trainer.train()
    averaged, online = list(trainer.actor_averaged.parameters()), list(trainer.actor.parameters())
    assert any(not torch.equal(a, s) for a, s in zip(averaged, start)), "the averaged actor never moved"
    assert any(not torch.equal(a, o) for a, o in zip(averaged, online)), "the averaged actor is the online one"
    # evaluation (in the run and from a checkpoint) steers with the averaged actor's mode, not the online actor's
    window = {k: torch.rand(3, 2, *f.shape) * 512 for k, f in trainer.sampler.policy.config.input_features.items()}
    cond = trainer.sampler.policy.encode(window)
    expected = trainer.sampler.chunk(cond, trainer.actor_averaged.mode(cond))
    online_chunk = trainer.sampler.chunk(cond, trainer.actor.mode(cond))
    assert not torch.allclose(expected, online_chunk)
    unnormalize = trainer.sampler.policy.normalizer.unnormalize
    in_run = trainer.steered_policy(deterministic=True).chunk_planner(window)
    checkpoint = trainer.save()
    loaded = load_steered_policy(checkpoint, pusht_policy(), deterministic=True).chunk_planner(window)
    torch.testing.assert_close(in_run, unnormalize("action", expected))
    torch.testing.assert_close(loaded, in_run)
    online = load_steered_policy(checkpoint, pusht_policy(), deterministic=True, online=True).chunk_planner(window)
    torch.testing.assert_close(online, unnormalize("action", online_chunk))


def test_resume_continues_exactly(tmp_path):
    torch.manual_seed(5)
    straight = DSRL(pusht_policy(), MAKE_ENV, small_cfg(env_steps=480, actor_average=0.05), tmp_path / "a")
    straight.train()

    torch.manual_seed(5)
    first = DSRL(pusht_policy(), MAKE_ENV, small_cfg(env_steps=480, actor_average=0.05), tmp_path / "b")
    first.train(stop_at=240)
    ckpt = first.save()
    torch.manual_seed(123)  # the checkpoint's RNG state must win over whatever state the process is in
    second = DSRL(pusht_policy(), MAKE_ENV, small_cfg(env_steps=480, actor_average=0.05), tmp_path / "b")
    second.resume(ckpt)
    second.train()
    assert second.counters == straight.counters and second.env_steps == straight.env_steps
    assert "actor_average" in straight.modules  # the averaged actor is part of the exact state
    for name in straight.modules:
        for (k, a), b in zip(straight.modules[name].state_dict().items(), second.modules[name].state_dict().values()):
            assert torch.equal(a, b), f"{name}.{k} differs after resume"


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match=r"algo\.variant='ppo'"):
        DSRLConfig(variant="ppo")
    with pytest.raises(ValueError, match=r"algo\.actor_average=1\.0: expected a Polyak rate in \[0, 1\)"):
        DSRLConfig(actor_average=1.0)
    with pytest.raises(ValueError, match=r"algo\.n_envs=0: expected > 0"):
        DSRLConfig(n_envs=0)
    with pytest.raises(ValueError, match="unknown keys \\['utd_ratio'\\]"):
        algo_config(DSRLConfig, {"runner": "x", "utd_ratio": 3})
    # no noise law on [−1, 1] has more entropy than the uniform's log 2 per dim: an unreachable target
    with pytest.raises(ValueError, match=r"algo\.target_entropy_per_dim=0\.8 with algo\.noise_scale=1\.0"):
        DSRLConfig(noise_scale=1.0, target_entropy_per_dim=0.8)
    assert DSRLConfig(noise_scale=1.0, target_entropy_per_dim=0.5).noise_scale == 1.0
    from diffpilot.rl.dsrl import TANH_NORMAL_ENTROPY

    z = torch.randn(1_000_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    entropy = 0.5 * np.log(2 * np.pi * np.e) + float(torch.log1p(-(torch.tanh(z) ** 2)).mean())
    assert abs(entropy - TANH_NORMAL_ENTROPY) < 0.005  # the constant quoted in the error message


def tiny_rl_overrides(policy_dir, output_dir) -> list[str]:
    """`diffpilot rl` overrides for a seconds-long DSRL-SAC run of the tiny policy on 40-step PushT episodes."""
    return [
        "algo=dsrl_sac",
        f"policy_path={policy_dir}",
        f"output_dir={output_dir}",
        "task.max_episode_steps=40",
        "algo.n_envs=2",
        "algo.batch_size=16",
        "algo.hidden=[32]",
        "algo.learning_starts=8",
    ]


def test_diffpilot_rl_runs_dsrl_end_to_end(tmp_path):
    from diffpilot.commands.rl import run

    policy_dir = tmp_path / "base"
    pusht_policy().save_pretrained(policy_dir)
    overrides = [*tiny_rl_overrides(policy_dir, tmp_path / "run"), "algo.env_steps=200"]
    overrides += ["algo.eval_episodes=2", "algo.eval_n_envs=2"]
    with initialize_config_module("diffpilot.configs", version_base="1.3"):
        cfg = compose("rl", overrides)
    result = run(cfg)
    assert result["eval"]["episodes"] == 2 and 0 <= result["eval"]["success_rate"] <= 1
    assert (tmp_path / "run" / "result.json").is_file()
    assert (tmp_path / "run" / "checkpoints").is_dir()
    with initialize_config_module("diffpilot.configs", version_base="1.3"):
        more = compose(
            "rl", [*overrides[:-3], "algo.env_steps=300", "algo.eval_episodes=0", f"resume={tmp_path / 'run'}"]
        )
    resumed = run(more)  # continues from the newest checkpoint of the run directory
    assert resumed["counters"]["env_steps"] >= 300 > result["counters"]["env_steps"]
    assert resumed["history"][: len(result["history"])] == result["history"]
    with initialize_config_module("diffpilot.configs", version_base="1.3"):
        bad = compose("rl", ["algo=dsrl_na", f"policy_path={tmp_path / 'nowhere'}"])
    with pytest.raises(ValueError, match=r"policy_path=.*nowhere"):
        run(bad)


def test_noise_aliasing_learns_from_demonstrations(tmp_path):
    from diffpilot.commands.data import make_demonstrations
    from diffpilot.rl.offline import demo_transitions

    make_demonstrations("pusht", "state", 2, 0, tmp_path / "demos", workers=1)
    policy = pusht_policy()
    rows = demo_transitions(tmp_path / "demos", "lerobot_v3", policy)
    m = len(rows["obs"])
    assert rows["obs"].shape == rows["next_obs"].shape == (m, 36) and rows["action"].shape == (m, 16)
    assert rows["done"].sum() == 2  # each successful demonstration ends with one terminal chunk
    assert rows["reward"].max() <= 0.0 and rows["reward"].min() >= -1.0
    assert np.abs(rows["action"]).max() <= 1.0 + 1e-5  # normalised by the policy's own statistics
    sparse = demo_transitions(tmp_path / "demos", "lerobot_v3", policy, reward="success")
    assert set(np.unique(sparse["reward"][sparse["done"] == 0])) == {-1.0}  # no credit for coverage
    assert (sparse["reward"] <= rows["reward"] + 1e-6).all() and (sparse["reward"] < rows["reward"] - 0.1).any()
    shaped = demo_transitions(tmp_path / "demos", "lerobot_v3", policy, reward="success", shaping=3.0, gamma=1.0)
    per_episode = np.split(shaped["reward"] - sparse["reward"], np.flatnonzero(sparse["done"])[:-1] + 1)
    for bonus in per_episode:  # γ = 1: the shaping telescopes to w·(Φ(end) − Φ(start)) = 3·(1 − 0) per solved demo
        assert bonus.sum() == pytest.approx(3.0, abs=1e-4)
    trainer = DSRL(policy, MAKE_ENV, small_cfg(variant="na", offline_data=str(tmp_path / "demos")), tmp_path / "run")
    assert len(trainer.replay) == m
    trainer.train(stop_at=160)
    assert len(trainer.replay) > m and trainer.counters["updates"] > 0
    with pytest.raises(ValueError, match=r"only 'na' can learn from demonstrations"):
        DSRLConfig(variant="sac", offline_data="x")


def test_dsrl_bench_leaves_out_methods_given_as_none(tmp_path):
    """bench/dsrl.py evaluates the base and a DSRL run on one task and writes null for skipped methods."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from diffpilot.commands.rl import run

    policy_dir = tmp_path / "base"
    pusht_policy().save_pretrained(policy_dir)
    with initialize_config_module("diffpilot.configs", version_base="1.3"):
        run(
            compose(
                "rl",
                [
                    *tiny_rl_overrides(policy_dir, tmp_path / "sac"),
                    *("algo.env_steps=100", "algo.eval_episodes=0", "algo.actor_average=0.1"),
                ],
            )
        )
    bench = Path(__file__).parents[1] / "bench" / "dsrl.py"
    out = tmp_path / "dsrl_small.json"
    args = ["--task", "pusht_state", "--base", str(policy_dir), "--sac", str(tmp_path / "sac"), "--na", "none"]
    args += ["--dppo", "none", "--episodes", "2", "--n-envs", "2", "--noise-laws", "1", "0", "--out", str(out)]
    subprocess.run([sys.executable, str(bench), *args], check=True, capture_output=True, timeout=120)
    result = json.loads(out.read_text())
    assert result["task"] == "pusht_state" and result["dsrl_na"] is None and result["dppo"] is None
    assert 0 <= result["base_success"] <= 1 and 0 <= result["dsrl_sac"] <= 1
    evaluations = result["details"]["evaluations"]
    assert evaluations["base"]["episodes"] == 2
    assert evaluations["base_noise_1tanh"]["episodes"] == evaluations["base_noise_0tanh"]["episodes"] == 2
    assert evaluations["dsrl_sac_online"]["episodes"] == 2  # the run averaged its actor: the online one is a row too
    assert result["env_steps"] >= 100 and out.with_suffix(".png").is_file()


def test_chunk_env_success_reward_is_minus_one_until_solved():
    chunk = np.tile(np.array([[300.0, 300.0]], np.float32), (4, 1))
    rewards = {}
    for kind in ("env", "success"):
        env = ChunkEnv(MAKE_ENV(), n_obs_steps=2, n_action_steps=4, reward=kind)
        env.reset(seed=3)
        rewards[kind] = env.step(chunk)[1]
    assert rewards["success"] == -1.0 and rewards["env"] > -1.0  # same steps: only the env's r counts coverage
    with pytest.raises(ValueError, match="reward='dense'"):
        ChunkEnv(MAKE_ENV(), 2, 4, reward="dense")
    with pytest.raises(ValueError, match=r"algo\.reward='dense'"):
        small_cfg(reward="dense")


def test_chunk_env_shaping_is_the_potential_difference_of_the_env_reward():
    """shaping w adds w·(γ·Φ(s') − Φ(s)) per chunk, Φ = the env's r (PushT: coverage / 0.95, capped at 1)."""
    w, gamma = 2.0, 0.9
    plain = ChunkEnv(MAKE_ENV(), 2, 4, reward="success")
    shaped = ChunkEnv(MAKE_ENV(), 2, 4, reward="success", shaping=w, shaping_gamma=gamma)
    plain.reset(seed=3)
    shaped.reset(seed=3)
    rng = np.random.default_rng(0)
    potential, moved = 0.0, False
    for _ in range(6):
        chunk = rng.uniform(150, 350, (4, 2)).astype(np.float32)
        _, r_plain, *_ = plain.step(chunk)
        _, r_shaped, _, _, info = shaped.step(chunk)
        after = min(info["coverage"] / 0.95, 1.0)
        assert r_shaped - r_plain == pytest.approx(w * (gamma * after - potential), abs=1e-6)
        moved |= after != potential
        potential = after
    assert moved  # the block moved: the test saw a non-trivial potential
    with pytest.raises(ValueError, match="shaping=-1"):
        ChunkEnv(MAKE_ENV(), 2, 4, shaping=-1.0)
    with pytest.raises(ValueError, match=r"algo\.shaping=-0\.5: expected ≥ 0"):
        small_cfg(shaping=-0.5)


def test_pusht_recipe_config_extends_dsrl_sac():
    with initialize_config_module("diffpilot.configs", version_base="1.3"):
        base = compose("rl", ["algo=dsrl_sac"]).algo
        recipe = compose("rl", ["algo=dsrl_sac_pusht"]).algo
    cfg = algo_config(DSRLConfig, recipe)
    assert (cfg.variant, cfg.reward, cfg.actor_std, cfg.hidden) == ("sac", "success", 1.0, [512, 512, 512])
    assert cfg.actor_average == 2e-4 and base.actor_average == 0.0
    assert recipe.runner == base.runner and recipe.utd == base.utd  # everything else inherited


def test_checkpoint_bench_evaluates_every_checkpoint_and_the_mean_actor(tmp_path, monkeypatch):
    """bench/dsrl_checkpoints.py: one row per RL checkpoint plus the actor averaged over the last k checkpoints."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from diffpilot.commands.rl import run
    from diffpilot.run import TRAINING_STATE, load_tensors

    def load_module_file(checkpoint):
        return load_tensors(checkpoint / TRAINING_STATE / "modules.safetensors", "checkpoint")

    policy_dir = tmp_path / "base"
    pusht_policy().save_pretrained(policy_dir)
    overrides = [*tiny_rl_overrides(policy_dir, tmp_path / "sac"), "algo.env_steps=160", "algo.eval_episodes=0"]
    with initialize_config_module("diffpilot.configs", version_base="1.3"):
        run(compose("rl", [*overrides, "algo.checkpoint_every=80", "algo.actor_average=0.1"]))
    checkpoints = sorted((tmp_path / "sac" / "checkpoints").glob("step_*"))
    assert len(checkpoints) >= 2
    bench_dir = Path(__file__).parents[1] / "bench"
    out = tmp_path / "checkpoints.json"
    args = ["--base", str(policy_dir), "--run", str(tmp_path / "sac"), "--average", "2", "--episodes", "2"]
    args += ["--n-envs", "2", "--out", str(out)]
    subprocess.run(
        [sys.executable, str(bench_dir / "dsrl_checkpoints.py"), *args], check=True, capture_output=True, timeout=120
    )
    rows = json.loads(out.read_text())["runs"][str(tmp_path / "sac")]
    assert set(rows) == {c.name for c in checkpoints} | {"mean_of_last_2"}
    assert rows["mean_of_last_2"]["checkpoints"] == [c.name for c in checkpoints[-2:]]
    assert all(row["episodes"] == 2 for row in rows.values())

    monkeypatch.syspath_prepend(str(bench_dir))
    from dsrl_checkpoints import averaged_checkpoint

    mean = load_module_file(averaged_checkpoint(checkpoints[-2:], tmp_path / "mean"))
    a, b = (load_module_file(c) for c in checkpoints[-2:])
    key = next(k for k in mean if k.startswith("actor_average."))  # the actor that evaluation loads
    torch.testing.assert_close(mean[key], (a[key] + b[key]) / 2)
    other = next(k for k in mean if k.startswith("critic."))
    assert torch.equal(mean[other], b[other])  # everything else from the last checkpoint
