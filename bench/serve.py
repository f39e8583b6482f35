"""End-to-end serving latency over a real rosmaster on loopback: a fake PushT-sized robot (JointState at
100 Hz, 16 keypoints at 100 Hz) ↔ `diffpilot serve` at 50 Hz with an RTI-warm-started UNet state policy
(configs/policy/diffusion_unet_small.yaml: down_dims [32, 64, 128], DDIM-10 full samples, RTI 3 steps between
chunks; untrained weights — latency does not depend on them).

Timing per serve/robots/pusht_state.yaml: each chunk is planned `plan_lead` ahead of its first tick (auto: from
the warm-up inference time) on the newest observation, with the control ticks phase-locked to the joint-state
arrivals (timing.sync_to).

Latency: for each action chunk, the time from the robot publishing the newest observation the chunk was planned
on (the command's header stamp) to the robot receiving the first command of that chunk — sensor → ROS → cache →
inference → scheduler → safety → ROS → robot. Missed ticks: control deadlines the server's loop missed, plus
ticks that had no policy action (inference fell behind) after the first command.

    .venv/bin/python bench/serve.py --seconds 60    # → bench/results/serve.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from diffpilot.atomic import update_json  # noqa: E402
from diffpilot.policies.registry import build_policy  # noqa: E402
from tests.serve_support import FakeRobot, RosMaster, read_records, serve_process, wait_for  # noqa: E402


def pusht_policy(directory: Path) -> Path:
    from hydra import compose, initialize_config_module

    with initialize_config_module("diffpilot.configs", version_base="1.3"):
        policy_cfg = OmegaConf.to_container(compose("train", ["policy=diffusion_unet_small"]).policy, resolve=True)
    features = {
        "observation.state": {"kind": "state", "shape": [2]},
        "observation.environment_state": {"kind": "state", "shape": [16]},
    }
    torch.manual_seed(0)
    policy = build_policy(policy_cfg, input_features=features, action_dim=2).eval()
    span = {"min": np.zeros(2), "max": np.full(2, 512.0)}
    unit = {"min": np.zeros(16), "max": np.ones(16)}
    policy.load_stats({"action": span, "observation.state": span, "observation.environment_state": unit})
    policy.save_pretrained(directory)
    return directory


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--hz", type=float, default=50.0)
    p.add_argument("--output", default=str(ROOT / "bench/results/serve.json"))
    args = p.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"
    work = Path(tempfile.mkdtemp(prefix="diffpilot-bench-serve-"))
    policy = pusht_policy(work / "policy")
    mapping = yaml.safe_load((ROOT / "serve/robots/pusht_state.yaml").read_text())
    mapping["control_hz"] = args.hz
    mapping["observations"]["observation.state"]["max_age"] = 0.1
    mapping["observations"]["observation.environment_state"]["max_age"] = 0.1
    (work / "robot.yaml").write_text(yaml.safe_dump(mapping))
    master = RosMaster(work)
    record = work / "robot.jsonl"
    robot = FakeRobot(
        master.env,
        record,
        *("--joint-topic", "/pusher/joint_states", "--keypoints-topic", "/pusht/keypoints"),
        *("--pose-topic", "", "--image-topic", "", "--command-topic", "/pusher/command"),
        *("--joint-hz", "100", "--keypoints-hz", "100", "--start", "100", "100"),
    )
    metrics = work / "metrics.json"
    log = work / "serve.log"
    serve = serve_process(
        master.env, f"policy={policy}", f"robot={work / 'robot.yaml'}", f"metrics_path={metrics}", log=log
    )
    try:
        if not wait_for(lambda: record.exists() and read_records(record)[0], 120):
            raise RuntimeError(f"no commands arrived; serve log:\n{log.read_text()[-3000:]}")
        t_start = time.time()
        time.sleep(args.seconds)
        t_end = time.time()
    finally:
        serve.send_signal(signal.SIGINT)
        serve.wait(60)
        robot.kill()
        master.stop()
    commands, statuses = read_records(record)
    window = [c for c in commands if t_start <= c["recv"] <= t_end]
    first_by_stamp: dict[float, float] = {}
    for c in window:
        first_by_stamp.setdefault(c["stamp"], c["recv"])
    latency_ms = np.array([recv - stamp for stamp, recv in first_by_stamp.items()]) * 1e3
    per_command_ms = np.array([c["recv"] - c["stamp"] for c in window]) * 1e3
    ticks = [s["status"] for s in statuses if t_start <= s["recv"] <= t_end]
    tick_ids = [s["tick"] for s in ticks]
    missed_deadlines = sum(b - a - 1 for a, b in itertools.pairwise(tick_ids))
    no_action = sum(s["state"] != "ok" for s in ticks)
    gaps = np.diff([c["recv"] for c in window])
    summary = json.loads(metrics.read_text())
    result = {
        "control_hz": args.hz,
        "p50_ms": round(float(np.percentile(latency_ms, 50)), 3),
        "p99_ms": round(float(np.percentile(latency_ms, 99)), 3),
        "missed_ticks": int(missed_deadlines + no_action),
        "seconds": round(t_end - t_start, 3),
        "chunks_measured": len(latency_ms),
        "commands_received": len(window),
        "expected_commands": round((t_end - t_start) * args.hz),
        "missed_deadlines": int(missed_deadlines),
        "non_ok_ticks": int(no_action),
        "receive_gaps_over_1.5_periods": int((gaps > 1.5 / args.hz).sum()),
        "command_age_ms_p50_p99": [round(float(np.percentile(per_command_ms, q)), 3) for q in (50, 99)],
        "server_inference_latency_ms": summary["inference_latency_ms"],
        "server_tick_lateness_ms": summary["tick_lateness_ms"],
        "plan_lead_ms": summary.get("plan_lead_ms"),
        "phase_lock_error_ms_p50_p99": summary.get("phase_lock_error_ms_p50_p99"),
        "policy": "UNet1D down_dims [32, 64, 128], DDIM-10 full sample, RTI per configs/serve.yaml, state 2 + 16",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()}",
        "torch_threads": 1,
    }
    update_json(args.output, **result)  # keeps "websocket" and "faults" (bench/serve_websocket.py, serve_faults.py)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
