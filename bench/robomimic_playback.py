"""robomimic's own tools on our robomimic files: `playback_dataset.py --use-actions` (robomimic 0.3.0's script, run
unchanged through `python -m diffpilot.envs.robomimic_tools`) on a fresh 20-demo Lift and Can file, and the same
open-loop replay through robomimic's `EnvUtils` to check every demo still ends solved.

A demo is replayed ok when the script reports no divergence for it (every state equals the recorded one) and
robomimic's env reports success after its last action. The peer, in the same run: the same seeds recorded from a
plain reset (the scene stored, but not reloaded before recording), which is how the files were made before; there
the controller's nullspace posture keeps the reset's joint noise, while robomimic's reload uses the home pose.

  python bench/robomimic_playback.py               # 20 demos per task → bench/results/robomimic_playback.json
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import h5py
import numpy as np

from diffpilot.atomic import atomic_write_json
from diffpilot.commands.data_robomimic import as_robomimic_demos, env_args_for, make_robomimic_demonstrations
from diffpilot.envs.experts.robomimic import expert_for
from diffpilot.envs.experts.robomimic_record import record_demo
from diffpilot.envs.robomimic import make_robomimic_env
from diffpilot.envs.robomimic_tools import enable_robomimic_tools
from diffpilot.policies.datasets.robomimic_hdf5 import demo_names, write_robomimic_hdf5

RESULTS = Path(__file__).parent / "results"
EPISODE_LINE = re.compile(r"^Playing back episode: (demo_\d+)")


def run_playback_script(path: Path) -> tuple[int, dict[str, int], float]:
    """robomimic's playback_dataset.py --use-actions on `path`: exit code, divergence warnings per demo, seconds."""
    cmd = [sys.executable, "-m", "diffpilot.envs.robomimic_tools", "playback_dataset", "--dataset", str(path)]
    start = time.perf_counter()
    out = subprocess.run([*cmd, "--use-actions"], capture_output=True, text=True)
    diverged, current = {}, None
    for line in out.stdout.splitlines():
        if match := EPISODE_LINE.match(line):
            current = match.group(1)
            diverged[current] = 0
        elif "playback diverged" in line and current is not None:
            diverged[current] += 1
    if out.returncode != 0:
        print(out.stderr[-3000:], file=sys.stderr)
    return out.returncode, diverged, time.perf_counter() - start


def replay_successes(path: Path) -> dict[str, bool]:
    """Each demo replayed open-loop in robomimic's env from its model_file and first state: solved at the end?"""
    here = Path(__file__).resolve().parent  # bench/robomimic.py would shadow the robomimic package
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    enable_robomimic_tools()
    import robomimic.utils.env_utils as EnvUtils
    import robomimic.utils.obs_utils as ObsUtils

    ObsUtils.initialize_obs_utils_with_obs_specs({"obs": {"low_dim": ["robot0_eef_pos"], "rgb": []}})
    with h5py.File(path, "r") as f:
        env = EnvUtils.create_env_from_metadata(json.loads(f["data"].attrs["env_args"]), render=False)
        solved = {}
        for name in demo_names(f["data"]):
            demo = f[f"data/{name}"]
            env.reset()
            env.reset_to({"model": demo.attrs["model_file"], "states": demo["states"][0]})
            for action in demo["actions"][()]:
                env.step(action)
            solved[name] = bool(env.is_success()["task"])
    return solved


def plain_reset_file(task: str, seeds: list[int], path: Path) -> Path:
    """The peer: successful demos of `seeds` recorded from a plain reset, their scenes stored as model_file."""
    env = make_robomimic_env(task, "state")
    recorded = [record_demo(env, expert_for(task, s), s, restore=False) for s in seeds]
    env.close()
    write_robomimic_hdf5(path, as_robomimic_demos([r for r in recorded if r.success]), env_args_for(task, "state"))
    return path


def measure(task: str, demos: int, seed: int, folder: Path) -> dict:
    path = folder / f"{task}.hdf5"
    made = make_robomimic_demonstrations(task, "state", demos, seed, path, overwrite=True)
    code, diverged, seconds = run_playback_script(path)
    solved = replay_successes(path)
    ok = [n for n in solved if solved[n] and diverged.get(n) == 0]
    with h5py.File(path, "r") as f:
        scenes = len({f[f"data/{n}"].attrs["model_file"] for n in demo_names(f["data"])})
    seeds = list(range(seed, seed + made["attempts"]))
    peer = plain_reset_file(task, seeds, folder / f"{task}_plain_reset.hdf5")
    peer_code, peer_diverged, _ = run_playback_script(peer)
    peer_solved = replay_successes(peer)
    row = {
        "demos": len(solved),
        "replayed_ok": len(ok),
        "script_exit_code": code,
        "demos_with_divergence": sum(v > 0 for v in diverged.values()),
        "solved_after_replay": sum(solved.values()),
        "script_seconds": round(seconds, 1),
        "distinct_model_files": scenes,  # Lift: one cube size per episode
        "plain_reset_peer": {
            "demos": len(peer_solved),
            "replayed_ok": sum(peer_solved[n] and peer_diverged.get(n) == 0 for n in peer_solved),
            "script_exit_code": peer_code,
            "demos_with_divergence": sum(v > 0 for v in peer_diverged.values()),
            "solved_after_replay": sum(peer_solved.values()),
        },
    }
    print(f"{task}: {row}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demos", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", nargs="+", default=["lift", "can"])
    parser.add_argument("--output", type=Path, default=RESULTS / "robomimic_playback.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = {task: measure(task, args.demos, args.seed, Path(tmp)) for task in args.tasks}
    import robomimic

    report = {
        **rows,
        "robomimic": robomimic.__version__,
        "script": "robomimic/scripts/playback_dataset.py --use-actions",
        "command": "python bench/robomimic_playback.py " + " ".join(sys.argv[1:]),
        "measured": date.today().isoformat(),
        "numpy": np.__version__,
    }
    atomic_write_json(args.output, report)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
