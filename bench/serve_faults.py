"""The serving faults, rerun from outside over a real rosmaster, in hold and in stop mode: `diffpilot serve` at
50 Hz (a small untrained state policy; limits [50, 450], 6 units per tick, `position_from` the joint states) drives
the fake robot (`python -m diffpilot.serve.fake_robot`, which starts at [60, 440] — near the limits — and is told
over stdin what to break). For each fault, the commands the robot received from the fault until a second after it
ended are checked: an unsafe command is non-finite, outside the limits, or more than one tick's step from the one
before it on the same robot connection. Shutdown (SIGTERM) must end with the final command — the last one held, or
the stop command reached at the rate limit.

    .venv/bin/python bench/serve_faults.py    # → bench/results/serve.json "faults" (one entry per mode and fault)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from diffpilot.atomic import update_json  # noqa: E402
from tests.serve_support import (  # noqa: E402
    HIGH,
    LOW,
    MAX_VELOCITY,
    FakeRobot,
    RosMaster,
    read_records,
    robot_mapping,
    robot_policy,
    serve_process,
    wait_for,
)

HZ = 50.0
STEP = np.array(MAX_VELOCITY) / HZ
STOP_COMMAND = [100.0, 400.0]


def unsafe(commands: list[dict], t0: float, t1: float) -> int:
    """Commands received in [t0, t1] that are non-finite, outside the limits or over the rate limit."""
    count, previous = 0, None
    for c in commands:
        position = np.array(c["position"], np.float64)
        inside = t0 <= c["recv"] <= t1
        bad = not np.all(np.isfinite(position)) or np.any(position < LOW) or np.any(position > HIGH)
        if previous is not None and np.any(np.abs(position - previous) > STEP + 1e-6):
            bad = True
        count += int(inside and bad)
        previous = position
    return count


def run_mode(mode: str, work: Path, master: RosMaster) -> dict:
    policy = robot_policy(work / "policy", image=False)
    safety = {"on_fault": mode, "estop_topic": "/diffpilot/estop"}
    if mode == "stop":
        safety["stop_command"] = STOP_COMMAND
    robot = robot_mapping(work / "robot.yaml", HZ, image=False, position_from="observation.state", safety=safety)
    records = [work / f"robot{i}.jsonl" for i in range(3)]
    robots = [FakeRobot(master.env, records[0], "--image-topic", "", "--start", "60", "440")]
    serve = serve_process(master.env, f"policy={policy}", f"robot={robot}", log=work / "serve.log")
    windows: dict[str, tuple[float, float]] = {}

    def fault(name: str, *lines: str, hold: float = 0.5, robot: FakeRobot | None = None) -> None:
        start = (robot or robots[-1]).send(lines[0])
        for line in lines[1:]:
            (robot or robots[-1]).send(line)
        time.sleep(hold)
        windows[name] = (start, time.time() + 1.0)
        time.sleep(1.0)

    def ok(record: Path) -> int:
        return sum(s["status"]["state"] == "ok" for s in read_records(record)[1]) if record.exists() else 0

    try:
        if not wait_for(lambda: ok(records[0]) >= 25, 120):
            raise RuntimeError((work / "serve.log").read_text()[-3000:])
        fault("stale_topic", "stop /robot/pose", hold=0.5)
        robots[-1].send("start /robot/pose")
        fault("malformed", "malformed /robot/joint_states 10")
        fault("alternating_malformed", "alternate /robot/joint_states 150", hold=1.5)
        fault("float32_overflow", "overflow 5")
        fault("clock_jump", "clock -500")
        fault("estop", "estop true", hold=0.5)
        robots[-1].send("estop false")
        fault("freeze_2s", "freeze 2", hold=2.0)
        start = time.time()
        robots[-1].kill()
        robots.append(FakeRobot(master.env, records[1], "--image-topic", ""))
        wait_for(lambda: ok(records[1]) >= 10, 30)
        windows["robot_restart"] = (start, time.time() + 1.0)
        time.sleep(1.0)
        start = time.time()
        master.restart()
        time.sleep(1.5)
        robots[-1].kill()
        robots.append(FakeRobot(master.env, records[2], "--image-topic", ""))
        wait_for(lambda: ok(records[2]) >= 10, 30)
        windows["rosmaster_restart"] = (start, time.time() + 1.0)
        time.sleep(1.0)
        windows["shutdown"] = (time.time(), time.time() + 60)
        serve.send_signal(signal.SIGTERM)
        rc = serve.wait(60)
        time.sleep(0.5)
    finally:
        if serve.poll() is None:
            serve.kill()
        for r in robots:
            r.kill()
    result: dict[str, dict] = {}
    per_record = [read_records(r) if r.exists() else ([], []) for r in records]
    for name, (t0, t1) in windows.items():
        result[name] = {"unsafe_commands": sum(unsafe(commands, t0, t1) for commands, _ in per_record)}
        result[name]["commands"] = sum(t0 <= c["recv"] <= t1 for commands, _ in per_record for c in commands)
    commands, statuses = per_record[-1]
    final = [s["status"] for s in statuses if s["status"]["reason"] == "shutdown"]
    target = STOP_COMMAND if mode == "stop" else (final[0]["command"] if final else None)
    result["shutdown"] |= {
        "exit_code": rc,
        "final_command_sent": bool(final) and commands[-1]["position"] == final[-1]["command"],
        "final_command": final[-1]["command"] if final else None,
        "ends_at": "stop_command" if final and final[-1]["command"] == target and mode == "stop" else "last command",
        "final_ticks": len(final),
    }
    log = (work / "serve.log").read_text()
    result["alternating_malformed"]["log_lines"] = log.count("dropping malformed message on /robot/joint_states")
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default=str(ROOT / "bench/results/serve.json"))
    args = p.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"
    work = Path(tempfile.mkdtemp(prefix="diffpilot-bench-faults-"))
    master = RosMaster(work)
    try:
        faults = {}
        for mode in ("hold", "stop"):
            (work / mode).mkdir()
            for name, row in run_mode(mode, work / mode, master).items():
                faults[f"{mode}/{name}"] = row
    finally:
        master.stop()
    update_json(args.output, faults=faults)
    print(json.dumps(faults, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
