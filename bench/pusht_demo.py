"""`make demo` timed end to end (the venv already installed), with this machine's speed figure.

Runs `make demo` as a user would (demonstrations, training, the 50-episode evaluation and its videos), then writes
its evaluation (runs/demo/eval/eval_info.json) with `wall_seconds` of the whole target and the machine's speed
(GFLOP/s of a 512² matmul on one thread, before and after) to bench/results/pusht_demo/eval_info.json.

  python bench/pusht_demo.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from parallel_eval import machine_gflops  # bench/ (this script's folder) is on sys.path

from diffpilot.atomic import atomic_write_json

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "pusht_demo" / "eval_info.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not (ROOT / ".venv" / ".installed").exists():
        sys.exit("pusht_demo: .venv is not installed; run `make venv` first (the install is not timed)")
    before = machine_gflops()
    start = time.perf_counter()
    subprocess.run(["make", "demo"], cwd=ROOT, check=True, env=os.environ | {"PYTHONUNBUFFERED": "1"})
    wall = time.perf_counter() - start
    info = json.loads((ROOT / "runs" / "demo" / "eval" / "eval_info.json").read_text())
    info |= {
        "command": "make demo",
        "wall_seconds": round(wall, 1),
        "machine_gflops_1thread": round(before, 1),
        "machine_gflops_1thread_after": round(machine_gflops(), 1),
        "cpus": os.cpu_count(),
    }
    atomic_write_json(args.output, info)
    print(f"make demo: {wall / 60:.1f} min, success {info['success_rate']:.0%}; wrote {args.output}")


if __name__ == "__main__":
    main()
