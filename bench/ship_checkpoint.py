"""Copy a trained policy into checkpoints/<name>/ with its fingerprint (a fixed-noise output, reference.safetensors).

The folder gets the policy's config.json and model.safetensors, and reference.safetensors: fixed inputs (one
observation drawn inside the normaliser's range, or the first test scenes for a driving planner), the initial
noise and what the policy outputs for them. tests/test_shipped_checkpoints.py loads every folder and compares.
card.json (what the checkpoint is, its headline number and the commands behind it) is written by hand.

  python bench/ship_checkpoint.py --policy runs/cpu_diffusion/checkpoints/last --name pusht_diffusion_cpu
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from diffpilot.policies.reference import chunk_reference_inputs, reference_difference, write_reference
from diffpilot.policies.registry import load_policy
from diffpilot.run import policy_dir

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
POLICY_FILES = ("config.json", "model.safetensors")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", required=True, help="a saved policy (…/pretrained_model), a step or a run")
    parser.add_argument("--name", required=True, help="the folder under checkpoints/")
    parser.add_argument("--scenes", type=int, default=2, help="driving planners: test scenes in the reference")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    source = policy_dir(args.policy)
    target = CHECKPOINTS / args.name
    target.mkdir(parents=True, exist_ok=True)
    for name in POLICY_FILES:
        shutil.copyfile(source / name, target / name)
    policy = load_policy(target)
    if hasattr(policy, "plan_details"):
        from diffpilot.envs.driving import observe_batch
        from diffpilot.sim.scenarios import make_split

        inputs = {f"input.{k}": v for k, v in observe_batch(make_split("test", args.scenes)).items()}
    else:
        inputs = chunk_reference_inputs(policy, args.seed)
    path = write_reference(policy, target, inputs, args.seed)
    print(f"{target}: {sum(f.stat().st_size for f in target.iterdir()) / 1e6:.2f} MB; {path.name}", end=" ")
    print(f"reproduces to {max(reference_difference(load_policy(target), target).values()):.1e}")


if __name__ == "__main__":
    main()
