"""LeRobot DiffusionPolicy checkpoints imported into diffpilot: parity and latency, beside LeRobot in the same run.

For each LeRobot peer venv (0.4.4: .venv-compat; 0.6.1: .venv-compat6; both from `make compat`). Parity: LeRobot
saves small state policies under DDPM-100 and DDIM-10 with the chunks its own pipeline computes for fixed
observations and initial noise (compat/lerobot_policy_peer.py); `import_lerobot` must give the same chunks.
Latency: LeRobot's default DiffusionConfig on PushT's image + agent position (UNet 512 / 1024 / 2048, ResNet-18,
84×84 crop, DDPM-100; 0.6: horizon 64) saved by LeRobot and imported; per chunk at batch 1 with `--threads` torch
threads: diffpilot's DDPM-100 (the imported sampler), DDIM-10 (diffusers' DDIM, "leading" levels) and RTI-3 (a
warm-started chunk), and LeRobot's own `select_action` on the same network size (bench/lerobot_peer.py), in one
run. Per executed action = per chunk / the version's default n_action_steps (0.4: 8 of 16; 0.6: 32 of 64).

    .venv/bin/python bench/lerobot_import.py    # → bench/results/lerobot_import.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from diffpilot.atomic import atomic_write_json  # noqa: E402
from diffpilot.policies.lerobot_import import import_lerobot  # noqa: E402
from diffpilot.policies.warmstart import RTIWarmStart  # noqa: E402
from tests.test_lerobot_import import chunk_difference  # noqa: E402

PEERS = {"0.4.4": ROOT / ".venv-compat/bin/python", "0.6.1": ROOT / ".venv-compat6/bin/python"}


def peer(python: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")} | {"HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([str(python), *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=3600)
    if proc.returncode:
        raise RuntimeError(f"peer {args[0]} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout.strip().splitlines()[-1]


def chunk_ms(fn, repeats: int) -> tuple[float, list[float]]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), times


def measure(python: Path, work: Path, args) -> dict:
    """Parity on LeRobot-saved state policies and latency of LeRobot's default image policy, for one LeRobot."""
    diffs = {}
    for scheduler, steps in (("DDPM", None), ("DDIM", "10")):
        out = work / scheduler.lower()
        peer(python, "compat/lerobot_policy_peer.py", "--out", str(out), "--variant", "state", "--scheduler", scheduler,
             *(["--steps", steps] if steps else []))  # fmt: skip
        diffs[scheduler.lower()] = chunk_difference(import_lerobot(out), out)
    default = work / "default"
    peer(python, "compat/lerobot_policy_peer.py", "--out", str(default), "--variant", "pusht_image_default")
    lerobot = json.loads(peer(python, "bench/lerobot_peer.py", "--shape", "image", "--threads", str(args.threads),
                              "--repeats", str(args.repeats)))  # fmt: skip
    policy = import_lerobot(default)
    horizon = policy.config.horizon
    obs = {"observation.state": torch.rand(1, 2, 2) * 500, "observation.image": torch.rand(1, 2, 3, 96, 96)}
    ddim = policy.with_sampler(
        policy.config.sampler.replace(name="ddim", num_inference_steps=10, eta=0.0, eps_from_clipped_sample=False)
    )
    rti = RTIWarmStart.from_config(ddim, {"num_steps": 3})
    with torch.inference_mode():
        rti(obs)  # the first chunk is a full sample; the timed ones are warm-started
        latency = {
            "diffpilot_ddpm100": chunk_ms(lambda: policy.predict_chunk(obs), args.repeats),
            "diffpilot_ddim10": chunk_ms(lambda: ddim.predict_chunk(obs), args.repeats * 4),
            "diffpilot_rti3": chunk_ms(lambda: rti(obs), args.repeats * 10),
        }
    rows = {k: {"p50_ms": round(ms, 2), "times_ms": [round(t, 2) for t in times]} for k, (ms, times) in latency.items()}
    rows["lerobot_select_action_ddpm100"] = {"p50_ms": round(lerobot["p50_ms"], 2), "times_ms": lerobot["times_ms"]}
    n_exec = policy.config.n_action_steps
    for row in rows.values():
        row["per_executed_action_ms"] = round(row["p50_ms"] / n_exec, 3)
    return {
        "max_abs_diff_ddpm": diffs["ddpm"],
        "max_abs_diff_ddim": diffs["ddim"],
        "latency_ms": rows,
        "policy": f"LeRobot {lerobot['name'].split()[1]} default DiffusionConfig, PushT image 96x96 (crop 84) + state: "
        f"{sum(p.numel() for p in policy.parameters()) / 1e6:.1f} M parameters, horizon {horizon}, "
        f"{n_exec} actions executed per chunk",
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--output", default=str(ROOT / "bench/results/lerobot_import.json"))
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="diffpilot-bench-lerobot-import-"))
    torch.set_num_threads(args.threads)
    versions = {}
    for version, python in PEERS.items():
        if not python.exists():
            print(f"no LeRobot {version} venv at {python}: make compat builds it", flush=True)
            continue
        versions[version] = measure(python, work / version, args)
        print(json.dumps({version: {k: v for k, v in versions[version].items() if k != "latency_ms"}}), flush=True)
    result = {
        "max_abs_diff_ddpm": max(v["max_abs_diff_ddpm"] for v in versions.values()),
        "max_abs_diff_ddim": max(v["max_abs_diff_ddim"] for v in versions.values()),
        "units": "action units; the peer's actions span ~500 units ([-1, 1] normalised ↔ ±250)",
        "latency_ms": {version: v.pop("latency_ms") for version, v in versions.items()},
        "versions": versions,
        "threads": args.threads,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()}",
    }
    atomic_write_json(args.output, result)
    p50 = {version: {k: v["p50_ms"] for k, v in rows.items()} for version, rows in result["latency_ms"].items()}
    print(json.dumps({k: v for k, v in result.items() if k != "latency_ms"} | {"p50_ms": p50}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
