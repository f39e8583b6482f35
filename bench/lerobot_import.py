"""LeRobot DiffusionPolicy checkpoints imported into diffpilot: parity and latency, beside LeRobot in the same run.

Parity: LeRobot (the compat venv) saves small state policies under DDPM-100 and DDIM-10 with the chunks its own
pipeline computes for fixed observations and initial noise (compat/lerobot_policy_peer.py); `import_lerobot` must
give the same chunks. Latency: LeRobot's default DiffusionConfig on PushT's image + agent position (UNet 512 / 1024
/ 2048, ResNet-18, 84×84 crop, DDPM-100) saved by LeRobot and imported; per chunk at batch 1 with `--threads`
torch threads: diffpilot's DDPM-100 (the imported sampler), DDIM-10 (diffusers' DDIM, "leading" levels) and RTI-3
(a warm-started chunk), and LeRobot's own `select_action` on the same network size (bench/lerobot_peer.py), in
one run. LeRobot executes 8 actions of each chunk by default; per executed action = per chunk / 8.

    .venv/bin/python bench/lerobot_import.py    # → bench/results/lerobot_import.json (needs make compat's venv)
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

PEER = ROOT / ".venv-compat/bin/python"


def peer(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")} | {"HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([str(PEER), *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=3600)
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--output", default=str(ROOT / "bench/results/lerobot_import.json"))
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="diffpilot-bench-lerobot-import-"))
    diffs = {}
    for scheduler, steps in (("DDPM", None), ("DDIM", "10")):
        out = work / scheduler.lower()
        peer("compat/lerobot_policy_peer.py", "--out", str(out), "--variant", "state", "--scheduler", scheduler,
             *(["--steps", steps] if steps else []))  # fmt: skip
        diffs[scheduler.lower()] = chunk_difference(import_lerobot(out), out)
    default = work / "default"
    version = json.loads(
        peer("compat/lerobot_policy_peer.py", "--out", str(default), "--variant", "pusht_image_default")
    )
    lerobot = json.loads(peer("bench/lerobot_peer.py", "--shape", "image", "--threads", str(args.threads),
                              "--repeats", str(args.repeats)))  # fmt: skip
    torch.set_num_threads(args.threads)
    policy = import_lerobot(default)
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
    rows = {
        name: {"p50_ms": round(ms, 2), "times_ms": [round(t, 2) for t in times]}
        for name, (ms, times) in latency.items()
    }
    rows["lerobot_select_action_ddpm100"] = {"p50_ms": round(lerobot["p50_ms"], 2), "times_ms": lerobot["times_ms"]}
    n_exec = policy.config.n_action_steps
    for row in rows.values():
        row["per_executed_action_ms"] = round(row["p50_ms"] / n_exec, 3)
    result = {
        "max_abs_diff_ddpm": diffs["ddpm"],
        "max_abs_diff_ddim": diffs["ddim"],
        "units": "action units; the peer's actions span ~500 units ([-1, 1] normalised ↔ ±250)",
        "latency_ms": rows,
        "policy": "LeRobot default DiffusionConfig, PushT image 96x96 (crop 84) + state: "
        f"{sum(p.numel() for p in policy.parameters()) / 1e6:.1f} M parameters, {n_exec} actions executed per chunk",
        "lerobot": version.get("lerobot"),
        "threads": args.threads,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()}",
    }
    atomic_write_json(args.output, result)
    print(
        json.dumps(
            {k: v for k, v in result.items() if k != "latency_ms"}
            | {"p50_ms": {k: v["p50_ms"] for k, v in rows.items()}},
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
