"""Driving on the command line: `diffpilot data task=driving` writes PDM-Closed demonstrations, `diffpilot train
task=driving policy=…` clones them on the one run loop, `diffpilot eval task=driving` scores a trained planner or a
built-in one with NAVSIM's open loop and writes the NAVSIM-style per-scene CSV."""

from __future__ import annotations

import csv
import json
import subprocess

import pytest
from hydra import compose, initialize_config_module

from .conftest import diffpilot as run_cli

SMALL_EVAL = ["task.eval.num_scenes=6"]


def diffpilot(*args: str) -> subprocess.CompletedProcess:
    return run_cli(*args, threads=1)  # beside the other tests' processes


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    out = tmp_path_factory.mktemp("driving") / "demos"
    proc = diffpilot("data", "task=driving", "task.demos.num_scenes=24", "task.demos.shard_size=10", f"output={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "wrote 24 PDM-Closed demonstrations of the train split" in proc.stdout
    return out


def test_task_driving_brings_its_training_recipe_and_dataset():
    with initialize_config_module("diffpilot.configs", version_base="1.3"):
        driving = compose("train", ["task=driving", "policy=diffusiondrive"])
        pusht = compose("train", [])
        tuned = compose("train", ["task=driving", "policy=diffusiondrive", "train.steps=5"])
        wam = compose("train", ["experiment=driving_wamdiff"])
    assert driving.train.steps == 22337 and driving.train.batch_size == 32 and not driving.train.use_ema
    assert driving.dataset.root == "data/driving/train" and driving.dataset.format == "driving"
    assert pusht.train.steps == 6000 and pusht.dataset.format == "lerobot_v3"  # other tasks keep train=quick
    assert tuned.train.steps == 5  # the command line still wins
    assert wam.policy.type == "wamdiff" and wam.train.batch_size == 64 and wam.train.steps == 1388


@pytest.mark.parametrize("policy", ["diffusiondrive", "wamdiff"])
def test_train_then_eval_a_driving_planner(demos, tmp_path, policy):
    run = tmp_path / "run"
    overrides = [
        f"dataset.root={demos}",
        f"output_dir={run}",
        "train.steps=3",
        "train.batch_size=8",
        "train.log_every=1",
    ]
    proc = diffpilot("train", "task=driving", f"policy={policy}", *overrides)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((run / "result.json").read_text())
    assert result["train_steps"] == 3 and (run / "checkpoints" / "last" / "training_state" / "state.json").is_file()
    proc = diffpilot(
        "eval", "task=driving", f"policy_path={run}/checkpoints/last/pretrained_model", f"output_dir={tmp_path / 'ev'}",
        *SMALL_EVAL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((tmp_path / "ev" / "eval_info.json").read_text())
    assert info["type"] == policy and info["scenes"] == 6 and info["split"] == "test"
    assert 0.0 <= info["pdms"] <= 100.0 and {"nc", "dac", "ep", "ttc", "c", "epdms"} <= set(info)
    with open(tmp_path / "ev" / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 7 and rows[-1]["token"] == "average"  # NAVSIM's file: one row per scene, then the mean
    assert {"no_at_fault_collisions", "ego_progress", "pdm_score", "extended_pdm_score"} <= set(rows[0])


def test_built_in_planners_are_scored_by_the_same_protocol(tmp_path):
    out = tmp_path / "pdm"
    proc = diffpilot("eval", "task=driving", "planner=pdm_closed", f"output_dir={out}", *SMALL_EVAL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((out / "eval_info.json").read_text())
    assert info["type"] == "builtin" and info["policy"] == "planner pdm_closed" and info["pdms"] > 80.0
    assert "PDMS" in proc.stdout and "over 6 test scenes" in proc.stdout
    # v2's two-stage EPDMS on the same scenes, with 5 follow-up scenes per frame
    two = info["two_stage"]
    assert two["scenes"] == 6 and 1 <= two["follow_ups"] <= 5 and info["epdms_two_stage"] == two["epdms"]
    assert 0.0 <= two["epdms"] <= min(two["stage_one"]["epdms"], two["stage_two"]["epdms"]) <= 100.0


def test_driving_errors_are_named(demos, tmp_path):
    proc = diffpilot("eval", "task=pusht_state", "planner=pdm_closed", f"output_dir={tmp_path}")
    assert proc.returncode != 0 and "expected task=driving" in proc.stderr
    proc = diffpilot("eval", "task=driving", "planner=bicycle", f"output_dir={tmp_path}", *SMALL_EVAL)
    assert proc.returncode != 0 and "planner='bicycle': expected one of" in proc.stderr
    proc = diffpilot("eval", "task=driving", "planner=pdm_closed", "task.eval.traffic=live", *SMALL_EVAL)
    assert proc.returncode != 0 and "task.eval.traffic='live': expected one of" in proc.stderr
    proc = diffpilot("eval", "task=driving", "planner=pdm_closed", "task.eval.follow_ups=0", *SMALL_EVAL)
    assert proc.returncode != 0 and "task.eval.follow_ups=0: expected a positive integer" in proc.stderr
    proc = diffpilot("train", "task=driving", "policy=diffusion_unet_small", f"dataset.root={demos}",
                     f"output_dir={tmp_path / 'x'}")  # fmt: skip
    assert proc.returncode != 0 and "expected a driving planner" in proc.stderr
    proc = diffpilot("train", "task=driving", f"dataset.root={tmp_path / 'none'}", f"output_dir={tmp_path / 'y'}")
    assert proc.returncode != 0 and "diffpilot data task=driving" in proc.stderr
