"""ONNX export of the whole chunk planner: parity with torch for the same noise (float32's floor) under diffusion
and flow samplers, RTI through the exported warm graph, an image policy, the refusal of samplers that draw noise
per step, and `diffpilot export` / `diffpilot serve engine=onnx` as processes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from diffpilot.policies.diffusion_policy import DiffusionPolicy
from diffpilot.policies.onnx_export import ExportError, OnnxPolicy, example_inputs, export_onnx
from diffpilot.policies.warmstart import RTIWarmStart

from .conftest import diffpilot, tiny_config
from .serve_support import websocket_serve

SPAN = {"min": np.zeros(2), "max": np.full(2, 512.0)}
KEYPOINTS = {"min": np.zeros(16), "max": np.full(16, 512.0)}
STATS = {"observation.state": SPAN, "action": SPAN, "observation.environment_state": KEYPOINTS}
WS = ("adapter=websocket", "port=0")
RTI = {"enabled": True, "num_steps": 3, "pad": "extrapolate"}


def tiny(**overrides) -> DiffusionPolicy:
    torch.manual_seed(0)
    policy = DiffusionPolicy(tiny_config(**overrides)).eval()
    policy.load_stats(STATS)
    return policy


def rollout(policy, steps: int = 20, seed: int = 0) -> np.ndarray:
    torch.manual_seed(seed)  # RTI's re-noising draws from torch's global generator
    policy.reset()
    rng = np.random.default_rng(seed)
    actions = []
    for _ in range(steps):
        obs = {
            "observation.state": rng.uniform(0, 512, (2, 2)).astype(np.float32),
            "observation.environment_state": rng.uniform(0, 512, (2, 16)).astype(np.float32),
        }
        actions.append(policy.select_action(obs))
    return np.array(actions)


@pytest.mark.parametrize(
    "overrides",
    [
        {},  # DDIM-5 (eta 0)
        {"sampler": {"name": "dpmpp_2m", "num_inference_steps": 4}},
        {
            "objective": "flow",
            "prediction_type": "velocity",
            "sampler": {"name": "flow_euler", "num_inference_steps": 4},
        },
    ],
    ids=["ddim", "dpmpp_2m", "flow_euler"],
)
def test_exported_planner_matches_torch_for_the_same_noise_with_rti(overrides, tmp_path):
    policy = tiny(**overrides)
    info = export_onnx(policy, tmp_path, RTI)
    assert set(info["graphs"]) == {"full", "warm"} and len(info["graphs"]["warm"]["timesteps"]) == 3
    # float32 floor: the sampler's space [-1, 1] to 1e-5; action units (0–512) to a few float32 steps (6.1e-5 at 512)
    assert all(g["max_abs_diff_normalized"] <= 1e-5 and g["max_abs_diff"] <= 1e-3 for g in info["graphs"].values())
    onnx = OnnxPolicy(tmp_path)
    inputs = example_inputs(policy, batch=3, seed=5)
    window = {k: v for k, v in inputs.items() if k != "noise"}
    with torch.no_grad():
        expected = policy.predict_chunk(window, noise=inputs["noise"])
    assert (onnx.predict_chunk(window, noise=inputs["noise"]) - expected).abs().max() <= 1e-3
    # The control loop with RTI: the same chunks from onnxruntime as from torch, step for step.
    policy.chunk_planner = RTIWarmStart.from_config(policy, RTI)
    onnx.chunk_planner = onnx.warm_start()
    ours, theirs = rollout(onnx), rollout(policy)
    assert onnx.chunk_planner.warm_samples >= 2 and np.abs(ours - theirs).max() <= 1e-3


def test_image_policy_exports_with_its_encoder(tmp_path):
    features = {
        "observation.state": {"kind": "state", "shape": [2]},
        "observation.image": {"kind": "image", "shape": [3, 24, 24]},
    }
    vision = {"crop_shape": [20, 20], "feature_dim": 16, "backbone": "resnet18", "width": 8}
    policy = tiny(input_features=features, vision=vision)
    info = export_onnx(policy, tmp_path, None)
    assert set(info["graphs"]) == {"full"} and info["graphs"]["full"]["max_abs_diff_normalized"] <= 1e-5
    onnx = OnnxPolicy(tmp_path)
    obs = {
        "observation.state": np.full((1, 2, 2), 100.0, np.float32),
        "observation.image": np.zeros((1, 2, 24, 24, 3), np.uint8),
    }
    noise = torch.randn(1, policy.config.horizon, 2)
    with torch.no_grad():
        expected = policy.predict_chunk(obs, noise=noise)
    assert (onnx.predict_chunk(obs, noise=noise) - expected).abs().max() <= 1e-3  # uint8 (H, W, 3) as cameras give it
    with pytest.raises(ExportError, match="no warm-start graph"):
        onnx.warm_start()


def test_samplers_that_draw_noise_every_step_are_refused(tmp_path):
    with pytest.raises(ExportError, match="sampler 'ddpm' draws noise at every step"):
        export_onnx(tiny(sampler={"name": "ddpm", "num_inference_steps": 5}), tmp_path, None)
    assert not list(tmp_path.glob("*.onnx"))


def test_export_and_serve_engine_onnx_from_the_command_line(tmp_path):
    from openpi_client.websocket_client_policy import WebsocketClientPolicy

    tiny().save_pretrained(tmp_path / "policy")
    out = tmp_path / "exported"
    proc = diffpilot("export", f"policy_path={tmp_path / 'policy'}", f"output={out}", "sampler.name=dpmpp_2m")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "largest difference from torch" in proc.stdout
    info = json.loads((out / "export.json").read_text())
    assert info["sampler"] == "dpmpp_2m" and (out / "warm.onnx").is_file() and (out / "config.json").is_file()
    bad = diffpilot("serve", f"policy={tmp_path / 'policy'}", "robot=pusht_state", "engine=onnx")
    assert bad.returncode == 2 and "has no export.json; expected a folder written by `diffpilot export" in bad.stderr
    serve, url = websocket_serve(f"policy={out}", "robot=pusht_state", "engine=onnx")
    try:
        client = WebsocketClientPolicy(host=url)
        obs = {
            "observation.state": np.array([100.0, 100.0], np.float32),
            "observation.environment_state": np.ones(16, np.float32),
        }
        replies = [client.infer(obs) for _ in range(30)]
        assert replies[-1]["state"] == "ok" and replies[-1]["actions"].shape == (1, 2)
        client._ws.close()
    finally:
        serve.send_signal(2)
        log = serve.communicate(timeout=60)[0]
    assert serve.returncode == 0, log[-3000:]
