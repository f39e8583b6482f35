"""BEV picture of one test scene (first cut-in of the test split by default): PDM-Closed's proposals and its
chosen trajectory, plus DiffusionDrive's 20 anchors when a checkpoint exists (read straight from its
safetensors file, no torch needed). Writes bench/results/driving_bev.png.

  OMP_NUM_THREADS=1 python bench/driving_bev.py [--family cut_in] [--ckpt runs/driving/checkpoints/diffusiondrive]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from diffpilot.envs.driving_plot import plot_driving_scene
from diffpilot.sim.planners import PDMClosedPlanner
from diffpilot.sim.scenarios import make_scene, split_seeds


def first_scene(family: str, search: int = 500):
    """The first test-split scene whose drawn family is `family` (else the first test seed forced to it)."""
    for seed in split_seeds("test", search):
        scene = make_scene(seed)
        if scene.family == family:
            return scene
    return make_scene(split_seeds("test", 1)[0], family=family)


def load_anchors(ckpt: Path) -> np.ndarray | None:
    weights = ckpt / "model.safetensors"
    if not weights.is_file():
        return None
    from safetensors.numpy import load_file

    tensors = load_file(str(weights))
    return np.asarray(tensors["anchors"], dtype=np.float64) if "anchors" in tensors else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", default="cut_in")
    ap.add_argument("--ckpt", default="runs/driving/checkpoints/diffusiondrive")
    ap.add_argument("--out", default="bench/results/driving_bev.png")
    args = ap.parse_args()

    scene = first_scene(args.family)
    planner = PDMClosedPlanner()
    chosen = planner.plan(scene)
    proposals, best = planner.last["proposals"], planner.last["best"]
    pdms = float(planner.last["scores"].pdms[best])
    anchors = load_anchors(Path(args.ckpt))
    title = f"{scene.token}: PDM-Closed {len(proposals)} proposals, chosen #{best} (PDMS {pdms:.2f})"
    if anchors is not None:
        title += f"; DiffusionDrive {len(anchors)} anchors"
    plot_driving_scene(args.out, scene, proposals=proposals, chosen=chosen, anchors=anchors, title=title)
    print(f"wrote {args.out}: {title}")


if __name__ == "__main__":
    main()
