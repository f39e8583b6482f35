"""PushT from pixels (96×96 image + agent position): evaluate image-policy runs on the same 200 seeds and collect
success with its interval and mean max coverage, with and without the kornia augmentation.

Each run is `diffpilot train experiment=pusht_image_cpu` (add `augmentation.enabled=true output_dir=…` for the
augmented one); its evaluation is `diffpilot eval task=pusht_image policy_path=<run> episodes=200` into
runs/eval/<run name>, run here unless `--reuse` finds it there already.

    .venv/bin/python bench/pusht_image.py runs/pusht_image_cpu runs/pusht_image_cpu_aug   # → pusht_image.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from diffpilot.atomic import atomic_write_json  # noqa: E402


def evaluate(run: Path, episodes: int, reuse: bool) -> dict:
    out = ROOT / "runs" / "eval" / run.name
    command = ["diffpilot", "eval", "task=pusht_image", f"policy_path={run}", f"episodes={episodes}",
               f"output_dir=runs/eval/{run.name}"]  # fmt: skip
    if not (reuse and (out / "eval_info.json").is_file()):
        subprocess.run([sys.executable, "-m", "diffpilot.cli", *command[1:]], check=True, cwd=ROOT)
    info = json.loads((out / "eval_info.json").read_text())
    config = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
    steps = json.loads((run / "result.json").read_text())["train_steps"] if (run / "result.json").is_file() else None
    return {
        "run": str(run),
        "episodes": info["episodes"],
        "success_rate": info["success_rate"],
        "success_ci95": info["success_ci95"],
        "mean_max_coverage": info["mean_max_coverage"],
        "augmentation": bool(config.get("augmentation", {}).get("enabled", False)),
        "train_steps": steps,
        "batch_size": config["train"]["batch_size"],
        "vision": config["policy"]["vision"],
        "sampler": info.get("sampler"),
        "n_action_steps": info.get("n_action_steps"),
        "command": " ".join(command),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--reuse", action="store_true", help="use an evaluation already in runs/eval/<run name>")
    p.add_argument("--output", default=str(ROOT / "bench/results/pusht_image.json"))
    args = p.parse_args()
    runs = [evaluate(run, args.episodes, args.reuse) for run in args.runs]
    atomic_write_json(args.output, {"runs": runs})
    print(json.dumps(runs, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
