"""The policies shipped in checkpoints/: each loads and gives its stored fixed-noise output; together ≤ 25 MB."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from diffpilot.configs import default_eval_dir
from diffpilot.policies.diffusion_policy import DiffusionPolicy
from diffpilot.policies.reference import REFERENCE_FILE, chunk_reference_inputs, reference_difference, write_reference
from diffpilot.policies.registry import load_policy

from .conftest import tiny_config

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = ROOT / "checkpoints"
SHIPPED = sorted(p for p in CHECKPOINTS.iterdir() if p.is_dir())
CARD_KEYS = {"name", "task", "policy", "headline", "evaluate", "reproduce", "seeds", "measured", "results"}


def test_the_shipped_checkpoints_are_there_and_small():
    names = {p.name for p in SHIPPED}
    assert {"pusht_diffusion_cpu", "lift_state_cpu", "diffusiondrive_score_head"} <= names
    total = sum(f.stat().st_size for p in SHIPPED for f in p.iterdir())
    assert total <= 25e6, f"checkpoints/ holds {total / 1e6:.1f} MB"


@pytest.mark.parametrize("folder", SHIPPED, ids=[p.name for p in SHIPPED])
def test_a_shipped_checkpoint_gives_its_stored_output(folder):
    card = json.loads((folder / "card.json").read_text())
    assert set(card) >= CARD_KEYS and card["name"] == folder.name
    assert f"policy_path=checkpoints/{folder.name}" in card["evaluate"]
    headline = card["headline"]
    measured = json.loads(
        (ROOT / card["results"] / ("" if card["results"].endswith(".json") else "eval_info.json")).read_text()
    )
    if headline["metric"] == "success_rate":
        assert headline["value"] == round(measured["success_rate"], 3)
        assert headline["ci95"] == [round(x, 3) for x in measured["success_ci95"]]
    else:
        assert headline["value"] == round(measured[headline["metric"]], 1)
    assert measured["policy"] == f"checkpoints/{folder.name}"
    policy = load_policy(folder)
    for key, diff in reference_difference(policy, folder).items():
        scale = max(1.0, load_file(str(folder / REFERENCE_FILE))[f"output.{key}"].abs().max().item())
        assert diff <= 1e-3 * scale, f"{folder.name}: {key} differs by {diff:.2e} from {REFERENCE_FILE}"


def test_a_changed_weight_is_caught_by_the_reference(tmp_path):
    policy = DiffusionPolicy(tiny_config())
    policy.save_pretrained(tmp_path)
    write_reference(policy, tmp_path, chunk_reference_inputs(policy))
    assert max(reference_difference(load_policy(tmp_path), tmp_path).values()) == 0.0
    with torch.no_grad():
        next(policy.parameters()).add_(0.05)
    assert max(reference_difference(policy, tmp_path).values()) > 1e-3


def test_a_stochastic_sampler_and_a_task_conditioned_policy_reproduce_their_reference(tmp_path):
    config = tiny_config(sampler={"name": "ddpm", "num_inference_steps": 20},
                         task_conditioning={"mode": "id", "instructions": ["push", "pull"]})  # fmt: skip
    policy = DiffusionPolicy(config)
    write_reference(policy, tmp_path, chunk_reference_inputs(policy))
    torch.rand(3)  # the global RNG moved on: the reference does not depend on it
    assert max(reference_difference(policy, tmp_path).values()) == 0.0


def test_evaluations_go_beside_a_runs_checkpoint_and_to_runs_eval_for_a_shipped_one(tmp_path):
    step = tmp_path / "run" / "checkpoints" / "step_0000002"
    for folder in (step / "pretrained_model", step / "pretrained_model_score_head", tmp_path / "mine"):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
    (step / "complete.json").write_text("{}")
    assert default_eval_dir(str(tmp_path / "mine"), None) == "runs/eval/mine"
    assert default_eval_dir(f"{tmp_path}/mine/", None) == "runs/eval/mine"
    assert (
        default_eval_dir(f"{step}/pretrained_model_score_head", None) == f"{step}/pretrained_model_score_head/../eval"
    )
    assert default_eval_dir(f"{step}/pretrained_model", None) == f"{step}/pretrained_model/../eval"
    assert default_eval_dir(str(step), None) == f"{step}/eval"
    assert default_eval_dir(f"{tmp_path}/run", None) == f"{tmp_path}/run/eval"
    assert default_eval_dir("x", "pdm_closed") == "runs/driving/pdm_closed/eval"
