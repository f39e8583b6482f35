"""BC trainer: exact resume, schedules, EMA, and DistributedDataParallel under torchrun (2 processes)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from diffpilot.policies.datasets.stats import compute_stats
from diffpilot.policies.datasets.windowed import WindowedDataset
from diffpilot.policies.diffusion_policy import DiffusionPolicy
from diffpilot.policies.ema import EMA
from diffpilot.policies.train import BatchOrder, BCTrainer, TrainConfig, lr_at

from .conftest import diffpilot, synthetic_episodes, tiny_config

CFG = dict(steps=12, batch_size=8, lr=1e-3, warmup_steps=3, log_every=4, seed=3)


def _trainer(out, **overrides) -> BCTrainer:
    torch.manual_seed(0)
    data = synthetic_episodes(4)
    policy = DiffusionPolicy(tiny_config())
    policy.load_stats(compute_stats(data.arrays))
    dataset = WindowedDataset(data, ["observation.state", "observation.environment_state"], "action", 2, 16, 8)
    return BCTrainer(policy, dataset, TrainConfig(**{**CFG, **overrides}), out)


def test_resume_is_bitwise_identical_to_an_uninterrupted_run(tmp_path):
    straight = _trainer(tmp_path / "a")
    final_a = straight.train()
    interrupted = _trainer(tmp_path / "b")
    half = interrupted.train(stop_at=6)
    assert half.name == "step_0000006"
    resumed = _trainer(tmp_path / "b")
    resumed.resume(half)
    assert resumed.step == 6
    final_b = resumed.train()
    for part in (
        "training_state/modules.safetensors",
        "pretrained_model/model.safetensors",
        "training_state/optim_policy.safetensors",
        "training_state/rng_rank0.safetensors",
    ):
        a, b = load_file(final_a / part), load_file(final_b / part)
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), (part, key)
    # and training did change the weights
    start = _trainer(tmp_path / "c").policy.state_dict()
    trained = load_file(final_a / "training_state/modules.safetensors")
    assert any(not torch.equal(start[k], trained[f"policy.{k}"]) for k in start)
    assert (tmp_path / "a" / "checkpoints" / "last").resolve() == final_a.resolve()
    assert any((tmp_path / "a" / "tensorboard").iterdir())


def test_lr_schedule_and_ema_decay():
    cfg = TrainConfig(steps=100, lr=1.0, warmup_steps=10)
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(55, cfg) == pytest.approx(0.5) and lr_at(100, cfg) == pytest.approx(0.0)
    ema = EMA(torch.nn.Linear(2, 2), power=0.75, max_decay=0.9999)
    assert ema.decay(0) == 0.0 and 0.4 < ema.decay(1) < 0.41  # 1 − 2^−0.75
    assert ema.decay(10**9) == 0.9999


def test_batch_order_splits_ranks_disjointly_and_reshuffles_epochs():
    a, b = BatchOrder(100, 10, seed=1, rank=0, world=2), BatchOrder(100, 10, seed=1, rank=1, world=2)
    assert a.batches_per_epoch == 5
    seen_a = np.concatenate([a.batch(0, i) for i in range(5)])
    seen_b = np.concatenate([b.batch(0, i) for i in range(5)])
    assert not set(seen_a) & set(seen_b) and len(set(seen_a) | set(seen_b)) == 100
    assert not np.array_equal(a.batch(0, 0), a.batch(1, 0))
    with pytest.raises(ValueError, match="needs at least 20"):
        BatchOrder(10, 10, 0, world=2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_training_runs_unchanged_under_torchrun_with_two_processes(tmp_path, lerobot_dataset):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        "-m",
        "diffpilot.cli",
        "train",
        f"dataset.root={lerobot_dataset}",
        f"output_dir={out}",
        "train.steps=4",
        "train.batch_size=4",
        "train.warmup_steps=1",
        "policy.network.down_dims=[16,32]",
        "policy.network.time_embed_dim=16",
        "policy.network.n_groups=4",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads((out / "checkpoints" / "last" / "training_state" / "state.json").read_text())
    assert state["world_size"] == 2 and state["step"] == 4 and state["unit"] == "step"
    assert (out / "checkpoints" / "last" / "training_state" / "rng_rank1.safetensors").exists()
    DiffusionPolicy.from_pretrained(out / "checkpoints" / "last" / "pretrained_model")


def test_resume_with_a_different_schedule_is_refused(tmp_path):
    from diffpilot.policies.checkpoint import CheckpointError

    ckpt = _trainer(tmp_path / "a").train(stop_at=2)
    other = _trainer(tmp_path / "a", batch_size=4)
    with pytest.raises(CheckpointError, match=r"train.batch_size=4 \(checkpoint: 8\)"):
        other.resume(ckpt)


def test_resume_with_another_policy_names_the_first_different_field(tmp_path):
    from diffpilot.policies.checkpoint import CheckpointError

    ckpt = _trainer(tmp_path / "a").train(stop_at=2)
    torch.manual_seed(0)
    data = synthetic_episodes(4)
    wider = DiffusionPolicy(tiny_config(network={"down_dims": [32, 64]}))
    wider.load_stats(compute_stats(data.arrays))
    dataset = WindowedDataset(data, ["observation.state", "observation.environment_state"], "action", 2, 16, 8)
    other = BCTrainer(wider, dataset, TrainConfig(**CFG), tmp_path / "a")
    with pytest.raises(
        CheckpointError, match=r"policy\.config\.network\.down_dims=\[32, 64\] \(checkpoint: \[16, 32\]\)"
    ):
        other.resume(ckpt)


def test_a_checkpoint_written_before_a_field_existed_resumes_with_its_default(tmp_path):
    import json

    ckpt = _trainer(tmp_path / "a").train(stop_at=2)
    config_path = ckpt / "pretrained_model" / "config.json"
    saved = json.loads(config_path.read_text())
    del saved["config"]["vision"]["norm"], saved["config"]["sampler"]["eps_from_clipped_sample"]
    config_path.write_text(json.dumps(saved))
    complete = json.loads((ckpt / "complete.json").read_text())
    complete["files"]["pretrained_model/config.json"] = config_path.stat().st_size
    (ckpt / "complete.json").write_text(json.dumps(complete))
    resumed = _trainer(tmp_path / "a")
    resumed.resume(ckpt)
    assert resumed.step == 2


def test_evaluation_during_training_does_not_change_the_run(tmp_path):
    def eval_fn(policy, step):  # draws from the global RNG, as rollouts with sampling noise do
        return {"noise": float(torch.randn(()).item()), "training": float(policy.training)}

    plain = _trainer(tmp_path / "a").train()
    with_eval = _trainer(tmp_path / "b", eval_every=4)
    with_eval.eval_fn = eval_fn
    evaluated = with_eval.train()
    a = load_file(plain / "training_state/modules.safetensors")
    b = load_file(evaluated / "training_state/modules.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_init_from_starts_a_new_run_from_saved_weights(tmp_path, lerobot_dataset):
    """`diffpilot train init_from=<pretrained_model>`: a new run (fresh schedule and step count) whose weights, EMA and
    stats start as the saved policy's; a policy of another shape is a named error, as is init_from with resume."""
    import torch
    from hydra import compose, initialize_config_module

    from diffpilot.commands.train import run_training
    from diffpilot.errors import ConfigError

    base = [
        f"dataset.root={lerobot_dataset}", "train.batch_size=4", "train.warmup_steps=1",
        "policy.network.down_dims=[16,32]", "policy.network.time_embed_dim=16", "policy.network.n_groups=4",
        "train.num_threads=1",
    ]  # fmt: skip
    saved = tmp_path / "a" / "checkpoints" / "last" / "pretrained_model"
    with initialize_config_module("diffpilot.configs", version_base="1.3"):
        first = compose("train", overrides=[*base, "train.steps=2", f"output_dir={tmp_path / 'a'}"])
        tuned = [*base, "train.steps=1", "train.lr=0", f"output_dir={tmp_path / 'b'}", f"init_from={saved}"]
        second = compose("train", overrides=tuned)
        other_shape = compose("train", overrides=[*tuned, "policy.network.down_dims=[16,64]"])
        both = compose("train", overrides=[*tuned, f"resume={saved.parent}"])
    run_training(first)
    run_training(second)  # lr 0: the one step leaves the loaded weights as they are
    a = DiffusionPolicy.from_pretrained(saved).state_dict()
    b = DiffusionPolicy.from_pretrained(tmp_path / "b" / "checkpoints" / "last" / "pretrained_model").state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ConfigError, match=r"init_from=.*other shapes"):
        run_training(other_shape)
    with pytest.raises(ConfigError, match="expected one of the two"):
        run_training(both)


def test_train_config_types_are_checked_and_numbers_converted():
    from diffpilot.errors import ConfigError

    cfg = TrainConfig(steps=3, lr=1, betas=[0.9, 1])
    assert isinstance(cfg.lr, float) and cfg.betas == (0.9, 1.0) and isinstance(cfg.betas[1], float)
    for bad, message in (
        ({"steps": 2.5}, "train.steps=2.5: expected an integer"),
        ({"steps": True}, "train.steps=True: expected an integer"),
        ({"betas": [0.9]}, "train.betas=[0.9]: expected a list of 2 numbers"),
        ({"device": 0}, "train.device=0: expected a string"),
    ):
        with pytest.raises(ConfigError, match=re.escape(message)):
            TrainConfig(**bad)


def _loss_curve(run) -> np.ndarray:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return np.array([e.value for e in events.Scalars("train/loss")])


def test_two_nodes_with_c10d_rendezvous_follow_the_single_process_loss_curve(tmp_path, lerobot_dataset):
    """`torchrun --nnodes 2 --nproc_per_node 1` with c10d rendezvous on 127.0.0.1: two "nodes" on this machine.
    Each rank takes every second window of the epoch's permutation, so with half the batch per rank the two ranks
    see exactly the single process's batches; only the diffusion noise differs (seeded per rank), so the loss
    curves agree within noise."""
    common = [
        f"dataset.root={lerobot_dataset}", "train.steps=40", "train.warmup_steps=1", "train.log_every=1",
        "train.lr=3e-3", "train.use_ema=false", "policy.network.down_dims=[16,32]",
        "policy.network.time_embed_dim=16", "policy.network.n_groups=4",
    ]  # fmt: skip
    single = tmp_path / "single"
    proc = diffpilot("train", *common, "train.batch_size=16", f"output_dir={single}", threads=1)
    assert proc.returncode == 0, proc.stderr[-3000:]
    port, nodes = _free_port(), tmp_path / "nodes"
    launch = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
        "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}", "--rdzv_id", "diffpilot-test",
        "-m", "diffpilot.cli", "train", *common, "train.batch_size=8", f"output_dir={nodes}",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen(launch, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [w.communicate(timeout=300) for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs[0][1][-3000:]
    state = json.loads((nodes / "checkpoints/last/training_state/state.json").read_text())
    assert state["world_size"] == 2 and state["step"] == 40
    a, b = _loss_curve(single), _loss_curve(nodes)
    assert len(a) == len(b) == 40
    assert b[-10:].mean() < 0.7 * b[:3].mean()  # it learns
    for lo in range(0, 40, 10):  # and follows the single process, window by window
        assert abs(a[lo : lo + 10].mean() - b[lo : lo + 10].mean()) < 0.15 * a[lo : lo + 10].mean(), (lo, a, b)
