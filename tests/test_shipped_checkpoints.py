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

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
SHIPPED = sorted(p for p in CHECKPOINTS.iterdir() if p.is_dir())
CARD_KEYS = {"name", "task", "policy", "headline", "evaluate", "reproduce", "seeds", "measured"}


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
    low, high = card["headline"]["ci95"]
    assert low <= card["headline"]["value"] <= high
    policy = load_policy(folder)
    for key, diff in reference_difference(policy, folder).items():
        scale = max(1.0, load_file(str(folder / REFERENCE_FILE))[f"output.{key}"].abs().max().item())
        assert diff <= 1e-4 * scale, f"{folder.name}: {key} differs by {diff:.2e} from {REFERENCE_FILE}"


def test_a_changed_weight_is_caught_by_the_reference(tmp_path):
    policy = DiffusionPolicy(tiny_config())
    policy.save_pretrained(tmp_path)
    write_reference(policy, tmp_path, chunk_reference_inputs(policy))
    assert max(reference_difference(load_policy(tmp_path), tmp_path).values()) == 0.0
    with torch.no_grad():
        next(policy.parameters()).add_(0.05)
    assert max(reference_difference(policy, tmp_path).values()) > 1e-3


def test_a_policy_folder_outside_a_run_is_evaluated_into_runs_eval(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "config.json").write_text("{}")
    assert default_eval_dir(str(tmp_path / "mine"), None) == "runs/eval/mine"
    assert default_eval_dir("runs/x/checkpoints/last/pretrained_model", None).endswith("pretrained_model/../eval")
    assert default_eval_dir("x", "pdm_closed") == "runs/driving/pdm_closed/eval"
