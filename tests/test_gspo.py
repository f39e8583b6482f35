"""GSPO / GRPO (rl/gspo.py): advantages, the sequence ratio and its tight clipping computed by hand, how GRPO's
token ratio differs, exact resume on the real driving simulator, and the `diffpilot rl` command end to end."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from diffpilot.envs.driving import ObservationConfig
from diffpilot.errors import ConfigError
from diffpilot.policies.driving.wamdiff import WAMDiffConfig, WAMDiffPolicy
from diffpilot.rl.gspo import GroupPolicyTrainer, GSPOConfig, ScenePool, group_advantages, grpo_loss, gspo_loss
from tests.test_wamdiff import one_thread  # noqa: F401  (autouse: one torch thread for this module)


def test_group_advantages_by_hand():
    adv = group_advantages(torch.tensor([[1.0, 0.0, 0.5], [0.3, 0.3, 0.3]]))
    std = math.sqrt((0.25 + 0.25 + 0.0) / 3)
    assert torch.allclose(adv[0], torch.tensor([0.5 / std, -0.5 / std, 0.0]))
    assert (adv[1] == 0).all()  # a group with equal rewards teaches nothing


def test_gspo_sequence_ratio_and_tight_clipping_by_hand():
    # sequence 1: token log-ratios (0.001, 0) -> s = exp(0.0005) = 1.0005 > 1 + 4e-4, A = +1: clipped to 1.0004
    # sequence 2: (-0.001, 0) -> s = exp(-0.0005) = 0.9995 < 1 - 3e-4, A = -1: min(-0.9995, -0.9997) = -0.9997
    # sequence 3: (1e-4, 1e-4) -> s = exp(1e-4) inside the range, A = +2: 2 exp(1e-4)
    old = torch.zeros(3, 2)
    new = torch.tensor([[0.001, 0.0], [-0.001, 0.0], [1e-4, 1e-4]], requires_grad=True)
    adv = torch.tensor([1.0, -1.0, 2.0])
    loss, stats = gspo_loss(new, old, adv, 3e-4, 4e-4)
    expected = -(1.0004 - 0.9997 + 2 * math.exp(1e-4)) / 3
    assert loss.item() == pytest.approx(expected, abs=1e-7)
    assert stats["clip_frac"] == pytest.approx(2 / 3)
    loss.backward()
    assert (new.grad[:2] == 0).all()  # clipped sequences give no gradient
    # d/d new_t of -(1/3) 2 exp(mean) = -(1/3) 2 exp(1e-4) / 2 per token
    assert torch.allclose(new.grad[2], torch.full((2,), -math.exp(1e-4) / 3), atol=1e-7)


def test_grpo_token_ratio_differs_from_gspo_sequence_ratio():
    # token log-ratios (+0.3, -0.3): GSPO's geometric mean is exactly 1 (no clipping, objective A); GRPO clips
    # the first token at 1.2 and keeps exp(-0.3) for the second (A > 0 takes the min): (1.2 + e^-0.3) / 2 * A
    old = torch.zeros(1, 2)
    new = torch.tensor([[0.3, -0.3]])
    adv = torch.tensor([1.0])
    gspo, _ = gspo_loss(new, old, adv, 3e-4, 4e-4)
    grpo, stats = grpo_loss(new, old, adv, 0.2, 0.2)
    assert float(gspo) == pytest.approx(-1.0)
    assert float(grpo) == pytest.approx(-(1.2 + math.exp(-0.3)) / 2)
    assert stats["clip_frac"] == pytest.approx(0.5)


def test_bad_algo_settings_are_named():
    with pytest.raises(ConfigError, match=r"algo\.loss='ppo'"):
        GSPOConfig(loss="ppo")
    with pytest.raises(ConfigError, match=r"algo\.group_size=1"):
        GSPOConfig(group_size=1)


@pytest.fixture(scope="module")
def pool():
    return ScenePool(3, ObservationConfig())


def tiny_policy() -> WAMDiffPolicy:
    torch.manual_seed(0)
    return WAMDiffPolicy(WAMDiffConfig(d_model=32, n_heads=2, layers=1)).eval()


def test_rewards_are_pdms_of_the_sampled_trajectories(pool, tmp_path):
    cfg = GSPOConfig(group_size=2, scenes_per_update=2, updates=1, iterations=2, lr=1e-3)
    trainer = GroupPolicyTrainer(tiny_policy(), pool, cfg, tmp_path, seed=0)
    row = trainer.step()
    assert 0.0 <= row["reward_mean"] <= 1.0 and math.isfinite(row["loss"])
    assert row["ratio_mean"] == pytest.approx(1.0, abs=1e-3)
    assert set(row) >= {"nc", "dac", "ep_v1", "ttc", "c", "clip_frac"}


@pytest.mark.parametrize("loss", ["gspo", "grpo"])
def test_resume_is_exact(pool, tmp_path, loss):
    eps = (3e-4, 4e-4) if loss == "gspo" else (0.2, 0.2)
    cfg = GSPOConfig(
        loss=loss, group_size=2, scenes_per_update=2, updates=2, iterations=2, lr=1e-3, eps_low=eps[0], eps_high=eps[1]
    )
    straight = GroupPolicyTrainer(tiny_policy(), pool, cfg, tmp_path / "a", seed=3)
    straight.step()
    checkpoint = straight.save()
    straight.step()
    fresh = WAMDiffPolicy(WAMDiffConfig(d_model=32, n_heads=2, layers=1)).eval()
    resumed = GroupPolicyTrainer(fresh, pool, cfg, tmp_path / "b", seed=99)
    resumed.resume(checkpoint)
    assert resumed.update == 1
    resumed.step()
    assert resumed.history == straight.history
    for (name, a), b in zip(straight.policy.state_dict().items(), resumed.policy.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_rl_command_end_to_end(tmp_path):
    tiny_policy().save_pretrained(tmp_path / "bc")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    args = [
        "algo=gspo",
        "task=driving",
        f"policy_path={tmp_path / 'bc'}",
        f"output_dir={tmp_path / 'rl'}",
        "num_threads=1",
        "algo.updates=2",
        "algo.train_scenes=2",
        "algo.scenes_per_update=2",
        "algo.group_size=2",
        "algo.iterations=2",
        "algo.checkpoint_every=1",
    ]
    cmd = [sys.executable, "-m", "diffpilot.cli", "rl", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = json.loads((tmp_path / "rl" / "result.json").read_text())
    assert log["updates"] == 2 and len(log["history"]) == 2
    last = tmp_path / "rl" / "checkpoints" / "last"
    assert (last / "pretrained_model" / "model.safetensors").is_file() and last.resolve().name == "step_0000002"
    assert any((tmp_path / "rl" / "tensorboard").iterdir())
    state = json.loads((last / "training_state" / "state.json").read_text())
    assert state["step"] == 2 and state["unit"] == "update"
    rewards = np.array([r["reward_mean"] for r in log["history"]])
    assert ((rewards >= 0) & (rewards <= 1)).all()
    bad = subprocess.run([*cmd[:-7], "algo.loss=ppo"], capture_output=True, text=True, timeout=300, env=env)
    assert bad.returncode != 0 and "algo.loss='ppo'" in bad.stderr + bad.stdout
