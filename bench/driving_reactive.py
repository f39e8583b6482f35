"""Reactive against log-replay traffic (NAVSIM v2's two traffic policies) for the built-in planners on the first
--scenes test scenes, two-frame EC off, one thread -> the "reactive" entry of bench/results/driving.json.

  OMP_NUM_THREADS=1 python bench/driving_reactive.py --scenes 100
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from diffpilot.atomic import atomic_write_json
from diffpilot.sim.evaluate import evaluate_planners
from diffpilot.sim.planners import PRIVILEGED_PDM_CLOSED, ConstantVelocityPlanner, PDMClosedPlanner
from diffpilot.sim.scenarios import make_split

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, default=100)
    args = ap.parse_args()
    scenes = make_split("test", args.scenes)
    navsim, privileged = PDMClosedPlanner(), PDMClosedPlanner(PRIVILEGED_PDM_CLOSED)
    planners = {"constant_velocity": ConstantVelocityPlanner().plan, "pdm_closed": navsim.plan}
    out = {"scenes": args.scenes, "two_frame": False, "command": "python bench/driving_reactive.py"}
    for traffic in ("log_replay", "reactive"):
        t0 = time.perf_counter()
        res = evaluate_planners(scenes, planners, reference=navsim, two_frame=False, human=privileged, traffic=traffic)
        out[traffic] = {name: {"pdms": row["pdms"], "epdms": row["epdms"]} for name, row in res["table"].items()}
        out[traffic]["seconds"] = time.perf_counter() - t0
        print(traffic, out[traffic], flush=True)
    path = RESULTS / "driving.json"
    data = json.loads(path.read_text())
    data["reactive"] = out
    atomic_write_json(path, data)


if __name__ == "__main__":
    main()
