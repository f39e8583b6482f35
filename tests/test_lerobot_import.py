"""LeRobot DiffusionPolicy checkpoints in. The fixtures under tests/fixtures/lerobot_<version>/ were written by
LeRobot 0.4.4 and 0.6.1 themselves (`<venv>/bin/python compat/lerobot_policy_peer.py --out … --variant state
--scheduler DDPM`, and `--scheduler DDIM --steps 10`, with .venv-compat and .venv-compat6): model, config, pre- /
post-processors, and the action chunks LeRobot's own pipeline computed for fixed observations and initial noise.
The imported policy must give the same chunks; `make compat` repeats this live with image policies (one shared and
two separate camera encoders; GroupNorm in 0.4, BatchNorm in 0.6)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from diffpilot.errors import CheckpointError
from diffpilot.policies.lerobot_import import import_lerobot
from diffpilot.policies.registry import load_policy

from .conftest import diffpilot

FIXTURES = Path(__file__).parent / "fixtures" / "lerobot_0.4.4"
VERSIONS = ("lerobot_0.4.4", "lerobot_0.6.1")  # 0.6.1's defaults: horizon 64, 32 actions per chunk
ACTION_HALF_RANGE = 256.0  # the fixtures' action statistics span ~500 units: [-1, 1] normalised ↔ ±~250 units


def lerobot_reference(directory: Path) -> tuple[dict, torch.Tensor, torch.Tensor, int, int]:
    tensors = load_file(str(directory / "reference.safetensors"))
    with safe_open(str(directory / "reference.safetensors"), "pt") as f:
        meta = f.metadata()
    window = {k[len("window.") :]: v for k, v in tensors.items() if k.startswith("window.")}
    return window, tensors["noise"], tensors["actions"], int(meta["seed"]), int(meta["start"])


def chunk_difference(policy, directory: Path) -> float:
    """Largest |diffpilot − LeRobot| over the reference chunks, in action units."""
    window, noise, expected, seed, start = lerobot_reference(directory)
    torch.manual_seed(seed)  # DDPM's per-step noise comes from the global generator on both sides
    with torch.no_grad():
        chunk = policy.predict_chunk(window, noise=noise)
    return float((chunk[:, start : start + expected.shape[1]] - expected).abs().max())


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("name", "sampler"), [("state_ddpm", "ddpm"), ("state_ddim", "ddim")])
def test_imported_policy_reproduces_lerobots_chunks(version, name, sampler):
    folder = FIXTURES.parent / version / name
    policy = import_lerobot(folder)
    assert policy.config.sampler.name == sampler
    _, _, expected, _, _ = lerobot_reference(folder)
    assert expected.abs().max() > 100  # real actions, not a degenerate output
    assert policy.config.horizon == (64 if version.endswith("0.6.1") else 16)
    # float32 over 10–100 denoising steps: within 1e-5 of the normalised range (a few float32 steps at 512)
    assert chunk_difference(policy, folder) <= 1e-5 * ACTION_HALF_RANGE * 2


def test_import_command_writes_a_diffpilot_policy_that_loads_and_runs_rti(tmp_path):
    out = tmp_path / "imported"
    proc = diffpilot("import", "lerobot", str(FIXTURES / "state_ddim"), f"output={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "features ['observation.state', 'observation.environment_state'], sampler ddim 10 steps" in proc.stdout
    policy = load_policy(out)
    assert chunk_difference(policy, FIXTURES / "state_ddim") <= 1e-5 * ACTION_HALF_RANGE * 2
    from diffpilot.policies.warmstart import RTIWarmStart

    policy.chunk_planner = RTIWarmStart.from_config(policy, {"num_steps": 3})
    obs = {"observation.state": np.full((1, 2), 100.0, np.float32), "observation.environment_state": np.ones((1, 16))}
    actions = np.array([policy.select_action(obs) for _ in range(24)])
    assert np.isfinite(actions).all() and policy.chunk_planner.warm_samples == 2


def test_what_has_no_counterpart_is_refused_by_name(tmp_path):
    for key, value, message in [
        ("noise_scheduler_type", "DPMSolver", "noise_scheduler_type='DPMSolver' has no counterpart"),
        ("use_film_scale_modulation", False, "use_film_scale_modulation=False has no counterpart"),
        ("type", "act", "type is 'act'; expected 'diffusion'"),
    ]:
        folder = tmp_path / key
        shutil.copytree(FIXTURES / "state_ddpm", folder)
        meta = json.loads((folder / "config.json").read_text())
        meta[key] = value
        (folder / "config.json").write_text(json.dumps(meta))
        with pytest.raises(CheckpointError, match=message):
            import_lerobot(folder)
    proc = diffpilot("import", "lerobot", str(tmp_path / "missing"))
    missing = tmp_path / "missing" / "config.json"
    assert proc.returncode == 2 and proc.stderr.strip() == f"diffpilot: LeRobot checkpoint: {missing} does not exist"
