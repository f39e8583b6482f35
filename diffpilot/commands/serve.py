"""`diffpilot serve`: serve a saved policy on a robot over ROS 1 or ROS 2, or replay a bag through it offline.
The robot mapping is validated against the policy before anything connects."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from diffpilot.atomic import atomic_write_json
from diffpilot.errors import ConfigError

from .common import require, user_errors

log = logging.getLogger("diffpilot.serve")


def warm_up(runner, mapping, n_obs_steps: int, runs: int) -> list[float]:
    """A few inferences on zeros, so the first real chunk is not the slow first call. Returns the seconds each
    warm-started (contiguous) inference took — what a chunk costs while serving."""
    from diffpilot.serve.inference import Request

    window = {}
    for key, source in mapping.observations.items():
        dtype = np.uint8 if source.type == "sensor_msgs/Image" else np.float32
        window[key] = np.zeros((n_obs_steps, *source.shape), dtype)
    seconds = []
    for i in range(runs):
        start = time.perf_counter()
        runner(Request(i, window, contiguous=i > 0, stamp=None, generation=0))
        if i > 0:
            seconds.append(time.perf_counter() - start)
    runner.reset()
    return seconds


def resolve_plan_lead(lead: float | str, warmup_seconds: list[float], period: float) -> float:
    """'auto' → 1.5 × the slowest warm-started warm-up inference + 1 ms, at most 3/4 of a control period (the
    chunk must be ready by its tick; a slower one simply starts a tick later)."""
    if lead != "auto":
        return float(lead)
    if not warmup_seconds:
        return 0.0
    return min(1.5 * max(warmup_seconds) + 0.001, 0.75 * period)


def run_serve(cfg: dict) -> dict:
    import torch

    from diffpilot.serve.inference import PolicyRunner
    from diffpilot.serve.mapping import load_mapping

    from .common import load_policy

    require(cfg, "policy_path", "policy=runs/<run> (docs/serving.md)")
    require(cfg, "robot", "robot=pusht_state (docs/serving.md)")
    if cfg["num_threads"]:
        torch.set_num_threads(int(cfg["num_threads"]))
    engine = cfg.get("engine", "torch")
    if engine == "onnx":
        policy, planner = onnx_policy(cfg)
        runner = PolicyRunner(policy, None, "cpu", planner)
    elif engine == "torch":
        policy = load_policy(cfg["policy_path"], cfg.get("sampler"), device=cfg["device"])
        runner = PolicyRunner(policy, cfg["rti"], cfg["device"])
    else:
        raise ConfigError(f"engine={engine!r}: expected 'torch' or 'onnx'")
    mapping = load_mapping(cfg["robot"], policy.config)
    pc = policy.config
    warmup_seconds = warm_up(runner, mapping, pc.n_obs_steps, int(cfg["warmup"]))
    plan_lead = resolve_plan_lead(mapping.timing.plan_lead, warmup_seconds, mapping.period)
    if cfg.get("bag"):
        from diffpilot.serve.replay import replay_bag

        if not cfg.get("output"):
            raise ConfigError("bag replay needs output=<commands.jsonl | bag directory>")
        summary = replay_bag(cfg["bag"], mapping, runner, pc.n_obs_steps, pc.n_action_steps, cfg["output"])
        print(
            f"replayed {summary['messages']} messages: {summary['ticks']} ticks, {summary['commands_sent']} commands "
            f"→ {cfg['output']}"
        )
    else:
        summary = serve_live(cfg, mapping, runner, pc.n_obs_steps, pc.n_action_steps, plan_lead)
    if cfg.get("metrics_path"):
        atomic_write_json(cfg["metrics_path"], summary)
    return summary


def onnx_policy(cfg: dict):
    """engine=onnx: the OnnxPolicy in the export folder `policy_path`, and its RTI planner when rti.enabled."""
    from diffpilot.policies.onnx_export import EXPORT_FILE, OnnxPolicy

    if not (Path(cfg["policy_path"]) / EXPORT_FILE).is_file():
        raise ConfigError(
            f"engine=onnx: {cfg['policy_path']} has no {EXPORT_FILE}; expected a folder written by "
            f"`diffpilot export policy_path=<policy> format=onnx`"
        )
    if any(v is not None for v in (cfg.get("sampler") or {}).values()):
        raise ConfigError("engine=onnx: the sampler is fixed at export; export again to change it")
    policy = OnnxPolicy(cfg["policy_path"], threads=int(cfg.get("num_threads") or 1))
    return policy, (policy.warm_start() if cfg["rti"].get("enabled") else None)


def serve_live(cfg: dict, mapping, runner, n_obs_steps: int, n_action_steps: int, plan_lead: float = 0.0) -> dict:
    from diffpilot.serve.server import ControlLoop, PolicyServer

    if cfg["adapter"] == "websocket":
        return serve_websocket(cfg, mapping, runner, n_obs_steps, n_action_steps)
    if cfg["adapter"] == "ros1":
        from diffpilot.serve.ros1 import Ros1Bridge as Bridge
    elif cfg["adapter"] == "ros2":
        from diffpilot.serve.ros2 import Ros2Bridge as Bridge
    else:
        raise ConfigError(f"adapter={cfg['adapter']!r}: expected 'ros1', 'ros2' or 'websocket'")
    listen_on(cfg["adapter"], str(cfg.get("host") or "127.0.0.1"))
    bridge = Bridge(mapping, cfg["node_name"], bool(cfg["dry_run"]))
    server = PolicyServer(runner, mapping, n_obs_steps, n_action_steps, send=bridge.send)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    bridge.start(server)
    log.info(
        "serving at %.1f Hz (%s); chunks planned %.1f ms ahead of their first tick%s",
        mapping.control_hz,
        "dry run" if cfg["dry_run"] else "commands live",
        plan_lead * 1e3,
        f", ticks phase-locked to {mapping.timing.sync_to}" if mapping.timing.sync_to else "",
    )
    started = time.monotonic()
    loop = ControlLoop(server, mapping.control_hz, plan_lead=plan_lead, sync_to=mapping.timing.sync_to)
    try:
        loop.run(stop, cfg.get("duration"))
    finally:
        server.close()
        bridge.shutdown()
    summary = server.metrics.summary() | {"seconds": round(time.monotonic() - started, 3)}
    summary["plan_lead_ms"] = round(plan_lead * 1e3, 3)
    if loop.phase_errors:
        errors = np.abs(loop.phase_errors[len(loop.phase_errors) // 2 :]) * 1e3  # after locking
        summary["phase_lock_error_ms_p50_p99"] = [round(float(np.percentile(errors, q)), 3) for q in (50, 99)]
    print(
        f"served {summary['ticks']} ticks in {summary['seconds']} s: {summary['commands_sent']} commands, "
        f"{summary['missed_ticks']} missed ticks, states {summary['states']}"
    )
    return summary


def listen_on(adapter: str, host: str) -> None:
    """Keep a ROS node on `host` unless the user's environment already chose: ROS 1 binds to ROS_IP (every
    interface without it); ROS 2 stays on the machine with ROS_LOCALHOST_ONLY=1 when `host` is loopback."""
    import os

    loopback = host in ("localhost", "::1") or host.startswith("127.")
    if adapter == "ros1" and not ({"ROS_IP", "ROS_HOSTNAME"} & set(os.environ)):
        os.environ["ROS_IP"] = host
    elif adapter == "ros2" and loopback:
        os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")  # Humble; Jazzy and later read the discovery range
        os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    if not loopback:
        log.warning("listening on %s: ROS topics (the e-stop included) are unauthenticated", host)


def serve_websocket(cfg: dict, mapping, runner, n_obs_steps: int, n_action_steps: int) -> dict:
    from diffpilot.serve.websocket import WebsocketPolicyServer

    server = WebsocketPolicyServer(runner, mapping, n_obs_steps, n_action_steps, cfg.get("host") or "127.0.0.1")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    port = server.start(int(cfg.get("port") or 0))
    print(f"serving on ws://{server.host}:{port} at {mapping.control_hz:g} Hz per client tick", flush=True)
    started = time.monotonic()
    try:
        stop.wait(cfg.get("duration"))
    finally:
        server.close()
    summary = server.summary() | {"seconds": round(time.monotonic() - started, 3)}
    print(f"served {summary['ticks']} ticks to {summary['connections']} client(s): states {summary['states']}")
    return summary


def translate_argv(argv: list[str]) -> list[str]:
    """`policy=<dir>` → `policy_path=<dir>` (`policy` is the policy config group in configs/, so Hydra would take
    it as a group choice) and `--dry-run` → `dry_run=true`."""
    out = []
    for arg in argv:
        if arg.startswith("policy="):
            arg = "policy_path=" + arg[len("policy=") :]
        elif arg == "--dry-run":
            arg = "dry_run=true"
        out.append(arg)
    return out


def app() -> None:
    sys.argv = [sys.argv[0], *translate_argv(sys.argv[1:])]
    _app()


@hydra.main(config_path="pkg://diffpilot.configs", config_name="serve", version_base="1.3")
@user_errors
def _app(cfg: DictConfig) -> None:
    from diffpilot.serve.mapping import MappingError
    from diffpilot.serve.ros1 import AdapterUnavailable

    try:
        run_serve(OmegaConf.to_container(cfg, resolve=True))
    except (MappingError, AdapterUnavailable, ConfigError, FileNotFoundError) as err:
        print(f"diffpilot serve: {err}", file=sys.stderr)
        sys.exit(2)
