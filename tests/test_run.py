"""The run loop's bookkeeping: when a periodic action is due, and that a step is checkpointed once."""

from __future__ import annotations

import pytest
import torch

from diffpilot.errors import CheckpointError
from diffpilot.run import Run, TrainingState, atomic_save_tensors, load_tensors


def test_a_multiple_crossed_anywhere_in_an_iteration_is_due_once():
    run = Run("unused", "env_step")
    fired = []
    for _ in range(10):  # an iteration of 16 vector steps of 128 env steps (DPPO's rollout), then the checks
        for _ in range(16):
            run.advance(128)
        if run.due(5000):
            fired.append(run.step)
    assert fired == [6144, 10240, 16384, 20480]  # 5000, 10000, 15000, 20000: each in the iteration that passed it


def test_every_check_of_one_round_sees_the_same_window():
    run = Run("unused")
    rounds = []
    for _ in range(6):
        run.advance()
        rounds.append((run.step, run.due(2), run.due(2), run.due(3), run.due(0)))
    due = [r for r in rounds if r[1] or r[3]]
    assert due == [(2, True, True, False, False), (3, False, False, True, False), (4, True, True, False, False),
                   (6, True, True, True, False)]  # fmt: skip


def test_a_step_is_checkpointed_once(tmp_path):
    run = Run(tmp_path)
    layer = torch.nn.Linear(2, 2)
    run.advance(3)
    first = run.save(TrainingState({"layer": layer}))
    stamp = (first / "training_state" / "modules.safetensors").stat().st_mtime_ns
    assert run.save(TrainingState({"layer": layer})) == first  # the final save after a loop's last checkpoint
    assert (first / "training_state" / "modules.safetensors").stat().st_mtime_ns == stamp  # not rewritten
    run.advance()
    assert run.save(TrainingState({"layer": layer})).name == "step_0000004"


def test_a_truncated_safetensors_file_is_named(tmp_path):
    path = tmp_path / "model.safetensors"
    atomic_save_tensors(path, {"w": torch.ones(64, 64)})
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(CheckpointError, match=r"model: .*model\.safetensors is not a readable safetensors file"):
        load_tensors(path, "model")
