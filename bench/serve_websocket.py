"""The websocket policy server at 50 Hz on loopback, measured from the client side by openpi's own client.

`diffpilot serve adapter=websocket` serves the shipped PushT state policy (checkpoints/pusht_diffusion_cpu: UNet
down_dims [32, 64, 128], DDIM-10 full samples, RTI 3 steps between chunks, one torch thread) with the shipped
mapping at `--hz`; `openpi_client.WebsocketClientPolicy` sends the observation of a real gym-pusht env every
control period and steps the env with the command it gets back. Latency: the client's `infer` call, observation
frame out → command frame in. Missed ticks: replies that came later than one control period, plus replies after
the first command that were not "ok" (no chunk for the tick). Client loop overruns (reported apart): deadlines that
passed while the client was still waiting or stepping its env.

    .venv/bin/python bench/serve_websocket.py --seconds 60    # → bench/results/serve.json "websocket"
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from diffpilot.atomic import update_json  # noqa: E402
from diffpilot.envs.pusht import make_pusht_env  # noqa: E402

POLICY = ROOT / "checkpoints/pusht_diffusion_cpu"


def start_server(robot: Path, metrics: Path, log: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    args = [f"policy={POLICY}", f"robot={robot}", "adapter=websocket", "port=0", f"metrics_path={metrics}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "diffpilot.cli", "serve", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
    )
    line = proc.stdout.readline()
    if "serving on ws://" not in line:
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}\n{log.read_text()[-3000:]}")
    return proc, line.split("serving on ")[1].split()[0]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--hz", type=float, default=50.0)
    p.add_argument("--output", default=str(ROOT / "bench/results/serve.json"))
    args = p.parse_args()
    from openpi_client.websocket_client_policy import WebsocketClientPolicy

    work = Path(tempfile.mkdtemp(prefix="diffpilot-bench-ws-"))
    mapping = yaml.safe_load((ROOT / "serve/robots/pusht_state.yaml").read_text())
    mapping["control_hz"] = args.hz
    (work / "robot.yaml").write_text(yaml.safe_dump(mapping))
    metrics = work / "metrics.json"
    server, url = start_server(work / "robot.yaml", metrics, work / "serve.log")
    env = make_pusht_env("state", max_episode_steps=10**9)
    latency, states, missed = [], [], 0
    try:
        client = WebsocketClientPolicy(host=url)
        obs, _ = env.reset(seed=0)
        period = 1.0 / args.hz
        start = deadline = time.monotonic()
        while deadline - start < args.seconds:
            sent = time.perf_counter()
            reply = client.infer(obs)
            latency.append(time.perf_counter() - sent)
            states.append(reply["state"])
            if len(reply["actions"]):
                obs, *_ = env.step(reply["actions"][0])
            deadline += period
            now = time.monotonic()
            if now > deadline:  # still busy at the next deadline: those ticks are missed
                skipped = int((now - deadline) // period) + 1
                missed += skipped
                deadline += skipped * period
            time.sleep(max(0.0, deadline - time.monotonic()))
        seconds = time.monotonic() - start
        client._ws.close()
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(60)
    first_ok = states.index("ok")
    not_ok = sum(s != "ok" for s in states[first_ok:])
    ms = np.array(latency[first_ok:]) * 1e3
    summary = json.loads(metrics.read_text())
    result = {
        "control_hz": args.hz,
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "max_ms": round(float(ms.max()), 3),
        "missed_ticks": int((ms > 1e3 / args.hz).sum() + not_ok),  # replies later than a period, or without a chunk
        "seconds": round(seconds, 3),
        "ticks": len(states),
        "client_loop_overruns": int(missed),  # deadlines the client's own loop (infer + env step) overran
        "non_ok_replies_after_the_first_command": int(not_ok),
        "server_inference_latency_ms": summary["inference_latency_ms"],
        "client": "openpi-client 0.1.2 WebsocketClientPolicy",
        "policy": "checkpoints/pusht_diffusion_cpu (DDIM-10 full sample, RTI 3 steps per configs/serve.yaml), 1 thread",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()}",
    }
    update_json(args.output, websocket=result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
