"""Training throughput at batch 256, diffpilot beside LeRobot's DiffusionPolicy with the same network size, one run.

Both sides time the same work on random batches already in memory: the policy's loss (observation encoder + the
denoising loss of a 1-D UNet 32/64/128 with a 64-d step embedding), backward and an AdamW step; no data loading, no
EMA, no gradient clipping. Shapes are PushT's: state (agent position + 16 keypoint coordinates) and image (agent
position + a 96×96 camera, ResNet-18 with spatial softmax on an 84×84 crop). LeRobot runs in the compat venv
(`make compat`: lerobot 0.4.4, torch 2.10), diffpilot here (torch 2.13). The machine's speed figure (a 512² matmul's
GFLOP/s on one thread) is recorded beside the timings. Writes bench/results/train_speed.json.

  python bench/train_speed.py --threads 2 --steps 10
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from inference import PEER_PYTHON, ROOT, SHAPES, untrained  # bench/ (this script's folder) is on sys.path
from parallel_eval import machine_gflops

from diffpilot.atomic import atomic_write_json

RESULTS = ROOT / "bench" / "results" / "train_speed.json"
DOWN_DIMS = (32, 64, 128)  # configs/policy/network/unet_small.yaml
EMBED_DIM = 64


def diffpilot_step_seconds(shape: str, batch: int, steps: int) -> dict:
    """Median seconds per training step of diffpilot's small-UNet policy on random batches (first step: warm-up)."""
    policy = untrained(shape, "diffusion_unet_small").train()
    assert tuple(policy.config.network.down_dims) == DOWN_DIMS
    n_obs, horizon = policy.config.n_obs_steps, policy.config.horizon
    data = {key: torch.rand(batch, n_obs, *dims) for key, dims in SHAPES[shape].items()}
    data["action"] = torch.rand(batch, horizon, 2)
    optimiser = torch.optim.AdamW(policy.parameters(), lr=1e-4)
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        loss = policy.compute_loss(data)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if i:
            times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    params = sum(p.numel() for p in policy.parameters())
    return {"parameters": params, "step_s": step_s, "samples_per_s": batch / step_s, "times_s": times}


def lerobot_step_seconds(shape: str, batch: int, steps: int, threads: int) -> dict | None:
    """The same measurement in the compat venv (bench/lerobot_peer.py --train), or None without it."""
    if not (PEER_PYTHON.parent.parent / ".installed").exists():
        print(f"LeRobot skipped: {PEER_PYTHON.parent.parent} is not installed (make compat builds it)", file=sys.stderr)
        return None
    cmd = [str(PEER_PYTHON), str(ROOT / "bench" / "lerobot_peer.py"), "--train", "--shape", shape]
    cmd += ["--down-dims", *map(str, DOWN_DIMS), "--embed-dim", str(EMBED_DIM), "--batch", str(batch)]
    cmd += ["--threads", str(threads), "--repeats", str(steps)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per row (after one warm-up step)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    report = {
        "command": "python " + " ".join(sys.argv),
        "machine_gflops_1thread": round(machine_gflops(), 1),
        "cpu": platform.processor() or platform.machine(),
        "threads": args.threads,
        "batch": args.batch,
        "torch": torch.__version__,
        "work": "loss + backward + AdamW on in-memory random batches; no data loading, EMA or clipping",
        "rows": [],
    }
    for shape in ("state", "image"):
        ours = diffpilot_step_seconds(shape, args.batch, args.steps)
        peer = lerobot_step_seconds(shape, args.batch, args.steps, args.threads)
        row = {"shape": shape, "down_dims": list(DOWN_DIMS), "diffpilot": ours, "lerobot": peer}
        if peer:
            row["speedup"] = ours["samples_per_s"] / peer["samples_per_s"]
        report["rows"].append(row)
        versus = f", LeRobot {peer['samples_per_s']:.0f} ({row['speedup']:.2f}×)" if peer else ""
        print(f"{shape}: diffpilot {ours['samples_per_s']:.0f} samples/s{versus}")
    report["machine_gflops_1thread_after"] = round(machine_gflops(), 1)
    atomic_write_json(args.output, report)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
