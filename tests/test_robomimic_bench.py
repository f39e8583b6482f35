"""bench/robomimic.py --combine: seed blocks evaluated in separate processes pool into the row one run would write."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "robomimic.py"


def _part(path: Path, rates: dict[str, float], expert: float, steps: float) -> Path:
    row = {
        "obs": "image",
        "run": "runs/robomimic/lift_image_cpu",
        "checkpoints": {n: {"success_rate": r, "per_seed": [r], "mean_steps": steps} for n, r in rates.items()},
        "expert": {"episodes": 50, "success_rate": expert, "mean_steps": 40.0, "seconds": 10.0},
    }
    path.write_text(json.dumps({"tasks": {"lift_image": row}}))
    return path


def _combine(out: Path, *parts: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(BENCH), "--task", "lift_image", "--out", str(out), "--combine", *map(str, parts)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_combine_pools_the_blocks_of_each_checkpoint(tmp_path):
    a = _part(tmp_path / "a.json", {"step_0004000": 0.9, "step_0003000": 1.0}, 1.0, 60.0)
    b = _part(tmp_path / "b.json", {"step_0004000": 0.7, "step_0003000": 0.8}, 0.98, 80.0)
    out = tmp_path / "robomimic.json"
    out.write_text(json.dumps({"tasks": {"lift": {"obs": "state"}}}))
    proc = _combine(out, a, b)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["tasks"]["lift"] == {"obs": "state"}  # other tasks' rows stay
    row = report["tasks"]["lift_image"]
    ckpt = row["checkpoints"]["step_0004000"]
    assert ckpt["per_seed"] == [0.9, 0.7] and abs(ckpt["success_rate"] - 0.8) < 1e-9 and ckpt["mean_steps"] == 70.0
    assert abs(row["success_max"] - 0.9) < 1e-9 and abs(row["success_mean"] - 0.85) < 1e-9
    assert row["expert"]["episodes"] == 100 and abs(row["expert_success"] - 0.99) < 1e-9
    assert row["protocol"].startswith("50 rollouts x 2 seed blocks")


def test_combine_refuses_parts_of_different_runs(tmp_path):
    a = _part(tmp_path / "a.json", {"step_0004000": 0.9}, 1.0, 60.0)
    b = json.loads(_part(tmp_path / "b.json", {"step_0004000": 0.7}, 1.0, 60.0).read_text())
    b["tasks"]["lift_image"]["run"] = "runs/other"
    (tmp_path / "b.json").write_text(json.dumps(b))
    proc = _combine(tmp_path / "out.json", a, tmp_path / "b.json")
    assert proc.returncode != 0 and "different runs" in proc.stderr
