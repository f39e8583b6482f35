"""A training process killed (SIGKILL) in the middle of writing a checkpoint: the cut step is refused or skipped by
name, `last` stays on a complete one, and resuming from the run reproduces the uninterrupted run exactly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from diffpilot.errors import CheckpointError
from diffpilot.policies.registry import load_policy
from diffpilot.run import latest_checkpoint

from .conftest import diffpilot
from .test_train import _trainer

ROOT = Path(__file__).resolve().parents[1]

# The child trains with a checkpoint every 4 steps and is killed while state.json of step 8 is half-written.
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    import diffpilot.run as run_module
    from diffpilot.atomic import atomic_path
    from tests.test_train import _trainer

    real = run_module.atomic_write_json

    def dying_write(path, obj, indent=2):
        if path.name == "state.json" and obj["step"] == 8:
            with atomic_path(path) as tmp:
                tmp.write_bytes(b'{"step": 8, "unit"')
                os.kill(os.getpid(), signal.SIGKILL)
        real(path, obj, indent)

    run_module.atomic_write_json = dying_write
    torch.set_num_threads(int(sys.argv[2]))  # the parent's, so that its resumed run can match an uninterrupted one
    _trainer(sys.argv[1], save_every=4).train()
    """
)


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("crash") / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-c", CHILD, str(out), str(torch.get_num_threads())]
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    return out


def test_the_cut_step_is_left_incomplete_and_last_stays_on_a_complete_one(killed_run):
    cut = killed_run / "checkpoints" / "step_0000008"
    assert (cut / "pretrained_model" / "model.safetensors").is_file()  # the policy was written before the kill
    assert not (cut / "complete.json").exists() and list((cut / "training_state").glob(".state.json.*.tmp"))
    assert (killed_run / "checkpoints" / "last").resolve().name == "step_0000004"
    marker = json.loads((killed_run / "checkpoints" / "step_0000004" / "complete.json").read_text())
    assert marker["step"] == 4 and "training_state/state.json" in marker["files"]


def test_loaders_refuse_the_cut_step_by_name_and_skip_it_in_a_run(killed_run, capfd):
    cut = killed_run / "checkpoints" / "step_0000008"
    with pytest.raises(CheckpointError, match=r"step_0000008: incomplete checkpoint \(no complete.json"):
        load_policy(cut / "pretrained_model")
    with pytest.raises(CheckpointError, match="step_0000008: incomplete checkpoint"):
        _trainer(killed_run / "other").resume(cut)
    assert latest_checkpoint(killed_run).name == "step_0000004"
    assert "skipping incomplete checkpoint(s) step_0000008" in capfd.readouterr().err
    load_policy(killed_run)  # a run directory: its newest complete step's policy


def test_the_commands_name_the_cut_step_in_one_line(killed_run):
    cut = killed_run / "checkpoints" / "step_0000008"
    proc = diffpilot("info", f"checkpoint={cut / 'pretrained_model'}")
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert proc.stderr.startswith(f"diffpilot: {cut}: incomplete checkpoint")
    proc = diffpilot("info", f"checkpoint={killed_run}")
    assert proc.returncode == 0 and "skipping incomplete checkpoint(s) step_0000008" in proc.stderr


def test_resuming_the_run_replaces_the_cut_step_and_matches_an_uninterrupted_run(killed_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(killed_run, run, symlinks=True)
    resumed = _trainer(run, save_every=4)
    resumed.resume(run)
    assert resumed.step == 4
    final = resumed.train()
    cut = run / "checkpoints" / "step_0000008"
    assert (cut / "complete.json").is_file() and not list(cut.rglob(".*.tmp"))
    straight = _trainer(tmp_path / "straight", save_every=4).train()
    for part in ("training_state/modules.safetensors", "training_state/optim_policy.safetensors"):
        a, b = load_file(straight / part), load_file(final / part)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part


def test_a_file_changed_after_the_save_is_named(tmp_path):
    step = _trainer(tmp_path / "a").train(stop_at=2)
    weights = step / "training_state" / "modules.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match=r"modules.safetensors: \d+ bytes, but complete.json lists \d+"):
        latest_checkpoint(step)


def test_a_step_saved_again_by_a_new_run_in_the_same_directory_is_rewritten_whole(tmp_path):
    first = _trainer(tmp_path / "a").train(stop_at=2)
    again = _trainer(tmp_path / "a").train(stop_at=2)  # a rerun into the same output_dir
    assert again == first and latest_checkpoint(tmp_path / "a") == first
    load_policy(first / "pretrained_model")
    marker = json.loads((first / "complete.json").read_text())
    assert "complete.json" not in marker["files"]
