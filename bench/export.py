"""ONNX export of the chunk planner vs torch on the same weights, step list and noise: parity and per-chunk latency.

Policies: the shipped PushT state policy (checkpoints/pusht_diffusion_cpu: UNet down_dims [32, 64, 128], 2 + 16
state inputs) sampled with RTI-3 (its warm step list [80, 40, 0]), DDIM-10 and DPM-Solver++ (2M) 10 steps; and a
flow policy of the same network and inputs (untrained: latency does not depend on the weights) with Euler 10
steps. Each chunk at batch 1; torch in inference mode with `torch.set_num_threads(n)`, onnxruntime with n intra-op
threads; the median of `--repeats` chunks after warm-up, torch and onnxruntime alternating in the same process.

    .venv/bin/python bench/export.py    # → bench/results/export.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from diffpilot.atomic import atomic_write_json  # noqa: E402
from diffpilot.policies.diffusion_policy import DiffusionPolicy  # noqa: E402
from diffpilot.policies.onnx_export import OnnxPolicy, example_inputs, export_onnx  # noqa: E402
from diffpilot.policies.registry import load_policy  # noqa: E402
from diffpilot.policies.samplers import SamplerConfig  # noqa: E402

SHIPPED = ROOT / "checkpoints/pusht_diffusion_cpu"
RTI = {"enabled": True, "num_steps": 3, "pad": "extrapolate"}


def flow_policy(shipped) -> DiffusionPolicy:
    config = shipped.config.replace(
        objective="flow", prediction_type="velocity", sampler=SamplerConfig(name="flow_euler", num_inference_steps=10)
    )
    torch.manual_seed(0)
    policy = DiffusionPolicy(config).eval()
    policy.normalizer.load_state_dict(shipped.normalizer.state_dict())
    return policy


def chunk_of(policy, window, noise, steps):
    return lambda: policy.predict_chunk(window, noise=noise, timesteps=steps)


def median_ms(fn, repeats: int) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--output", default=str(ROOT / "bench/results/export.json"))
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="diffpilot-bench-export-"))
    shipped = load_policy(SHIPPED)
    cases = [  # (row name, torch policy, export folder, step list of the timed graph)
        ("rti3", shipped, work / "ddim", [80, 40, 0]),
        ("ddim10", shipped, work / "ddim", None),
        ("dpmpp_2m10", shipped.with_sampler(shipped.config.sampler.replace(name="dpmpp_2m")), work / "dpm", None),
        ("flow_euler10", flow_policy(shipped), work / "flow", None),
    ]
    exported = {}
    for _, policy, folder, _ in cases:
        if folder not in exported:
            print(f"exporting {folder.name} …", flush=True)
            exported[folder] = export_onnx(policy, folder, RTI if folder.name == "ddim" else None)
    inputs = example_inputs(shipped, batch=1, seed=3)
    window = {k: v for k, v in inputs.items() if k != "noise"}
    rows, diffs = [], {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for name, policy, folder, steps in cases:
            onnx = OnnxPolicy(folder, threads=threads)
            noise = inputs["noise"]
            with torch.inference_mode():
                expected = policy.predict_chunk(window, noise=noise, timesteps=steps)
                got = onnx.predict_chunk(window, noise=noise, timesteps=steps)
                diffs[name] = float((got - expected).abs().max())
                torch_ms = median_ms(chunk_of(policy, window, noise, steps), args.repeats)
            onnx_ms = median_ms(chunk_of(onnx, window, noise, steps), args.repeats)
            row = {"sampler": name, "threads": threads, "torch_ms": round(torch_ms, 3), "onnx_ms": round(onnx_ms, 3)}
            row["speedup"] = round(torch_ms / onnx_ms, 2)
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {
        "max_abs_diff": max(diffs.values()),
        "max_abs_diff_by_sampler": diffs,
        "max_abs_diff_normalized_at_export": {
            f"{folder.name}/{g}": info["graphs"][g]["max_abs_diff_normalized"]
            for folder, info in exported.items()
            for g in info["graphs"]
        },
        "rows": rows,
        "units": "max_abs_diff: action units (PushT 0–512; float32 spacing at 512 is 6.1e-5); latency: ms per chunk",
        "torch": torch.__version__,
        "onnxruntime": __import__("onnxruntime").__version__,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()}",
    }
    atomic_write_json(args.output, result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
