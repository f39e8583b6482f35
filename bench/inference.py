"""Per-chunk inference latency (batch 1, p50/p99) of diffpilot's samplers beside LeRobot's DiffusionPolicy
(default config, run in the compat venv in the same run), and — for the trained PushT state models — each
sampler's success on the same weights. Writes bench/results/inference.json.

  python bench/inference.py --diffusion runs/cpu_diffusion/checkpoints/last/pretrained_model \
      --flow runs/cpu_flow/checkpoints/last/pretrained_model --episodes 200

Without --diffusion/--flow, untrained policies built from the Hydra policy configs are timed (latency does
not depend on the weights). --episodes 0 skips the rollouts; --peer-repeats 0 skips the peer.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from diffpilot.envs.evaluate import evaluate
from diffpilot.envs.pusht import make_pusht_env
from diffpilot.policies.checkpoint import atomic_write_json
from diffpilot.policies.compose import ComposedPolicy, CompositionConfig
from diffpilot.policies.diffusion_config import InputFeature
from diffpilot.policies.diffusion_policy import DiffusionPolicy
from diffpilot.policies.registry import build_policy, load_policy
from diffpilot.policies.samplers import SamplerConfig
from diffpilot.policies.warmstart import RTIWarmStart

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PEER_PYTHON = ROOT / ".venv-compat" / "bin" / "python"
SHAPES = {
    "state": {"observation.state": (2,), "observation.environment_state": (16,)},
    "image": {"observation.state": (2,), "observation.image": (3, 96, 96)},
}


@dataclass
class Variant:
    """One way of producing a chunk: which model, which sampler and steps, optional RTI or accelerator."""

    name: str
    model: str  # "diffusion" | "flow" | "shortcut" | "gpc"
    sampler: str
    steps: int
    spacing: str = "leading"  # DDIM step spacing
    eta: float = 0.0  # DDIM stochasticity (0: deterministic, 1: DDPM's posterior variance)
    time_power: float = 1.0  # flow step times 1 − (1 − i/n)^p (1: uniform)
    rti: tuple[float, int, str] | None = None  # (start, num_steps, pad)
    rti_times: tuple[float, ...] | None = None  # an explicit RTI step list (default: num_steps even ones from start)
    backend: str = "eager"  # eager | compile | onnx
    shapes: tuple[str, ...] = ("state", "image")
    notes: dict = field(default_factory=dict)


def variants(
    rti_start: int,
    flow_rti_start: float,
    pad: str,
    shortcut_rti_start: float = 0.625,
    shortcut_rti_times: list[float] | None = None,
) -> list[Variant]:
    times = tuple(shortcut_rti_times) if shortcut_rti_times else None
    shortcut_rti = f"shortcut rti-{len(times)} (t={','.join(f'{t:g}' for t in times)})" if times else ""
    return [
        Variant("ddpm-100", "diffusion", "ddpm", 100),
        Variant("ddim-10", "diffusion", "ddim", 10),
        Variant("ddim-10 trailing", "diffusion", "ddim", 10, spacing="trailing"),
        Variant("ddim-10 quadratic [90, 71, …, 1, 0]", "diffusion", "ddim", 10, spacing="quadratic"),
        Variant("ddim-10 eta=0.5", "diffusion", "ddim", 10, eta=0.5),
        Variant("ddim-3", "diffusion", "ddim", 3),
        Variant("heun-3", "diffusion", "heun", 3),
        Variant("heun-5", "diffusion", "heun", 5),
        Variant(f"rti-3 (ddim from {rti_start})", "diffusion", "ddim", 10, rti=(rti_start, 3, pad)),
        Variant("flow-100", "flow", "flow_euler", 100),
        Variant("flow-10", "flow", "flow_euler", 10),
        Variant("flow-10 time power 3", "flow", "flow_euler", 10, time_power=3.0),
        Variant("flow-midpoint-5", "flow", "flow_midpoint", 5),
        Variant("flow-heun-5", "flow", "flow_heun", 5),
        Variant("flow-3", "flow", "flow_euler", 3),
        Variant("flow-1", "flow", "flow_euler", 1),
        Variant(f"flow-rti-3 (from t={flow_rti_start})", "flow", "flow_euler", 10, rti=(flow_rti_start, 3, pad)),
        Variant(
            f"flow-rti-3 (from t={flow_rti_start}, time power 3)",
            "flow",
            "flow_euler",
            10,
            rti=(flow_rti_start, 3, pad),
            time_power=3.0,
        ),
        # The shortcut flow model (--shortcut): the same weights with 128 / 100 small steps (the flow field: its full
        # sampler), a few large ones, and warm starts of 3 steps whose size is a trained one (1/8 from t = 0.625).
        Variant("shortcut flow-128", "shortcut", "flow_euler", 128),
        Variant("shortcut flow-100", "shortcut", "flow_euler", 100),
        Variant("shortcut-8", "shortcut", "flow_euler", 8),
        Variant("shortcut-4", "shortcut", "flow_euler", 4),
        Variant("shortcut-2", "shortcut", "flow_euler", 2),
        Variant("shortcut-1", "shortcut", "flow_euler", 1),
        Variant(
            f"shortcut rti-3 (from t={shortcut_rti_start})",
            "shortcut",
            "flow_euler",
            8,
            rti=(shortcut_rti_start, 3, pad),
        ),
        *(
            [Variant(shortcut_rti, "shortcut", "flow_euler", 8, rti=(times[0], len(times), pad), rti_times=times)]
            if times
            else []
        ),
        Variant("gpc ddim-10 (diffusion+flow)", "gpc", "ddim", 10, shapes=("state",)),
        Variant("ddim-10 torch.compile", "diffusion", "ddim", 10, backend="compile", shapes=("state",)),
        Variant("ddim-10 onnxruntime", "diffusion", "ddim", 10, backend="onnx", shapes=("state",)),
    ]


# ----------------------------------------------------------------------------- policies
def untrained(shape: str, policy_name: str) -> DiffusionPolicy:
    """A policy from the Hydra config `policy=<policy_name>` with the PushT feature shapes of `shape`."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module("diffpilot.configs", version_base="1.3"):
        cfg = compose("train", overrides=[f"policy={policy_name}"])
    features = {k: InputFeature("image" if len(s) == 3 else "state", s) for k, s in SHAPES[shape].items()}
    torch.manual_seed(0)
    return build_policy(OmegaConf.to_container(cfg.policy, resolve=True), input_features=features, action_dim=2).eval()


def configure(base: dict, v: Variant, n_action_steps: int | None = None) -> tuple:
    """The policy object a variant runs, and the step list one chunk visits (for the NFE count)."""
    if v.model == "gpc":
        driver = SamplerConfig(v.sampler, v.steps)
        policy = ComposedPolicy([base["diffusion"], base["flow"]], CompositionConfig([0.5, 0.5], driver))
    else:
        sampler = dataclasses.replace(
            base[v.model].config.sampler, name=v.sampler, num_inference_steps=v.steps, eta=v.eta,
            timestep_spacing=v.spacing, flow_time_power=v.time_power,
        )  # fmt: skip
        policy = base[v.model].with_sampler(sampler)
    if n_action_steps:
        policy = policy.with_n_action_steps(n_action_steps)
    timesteps = policy.sampler.default_timesteps()
    if v.rti:
        policy.chunk_planner = RTIWarmStart(policy, v.rti[0], v.rti[1], pad=v.rti[2], timesteps=v.rti_times)
        timesteps = policy.chunk_planner.timesteps
    nfe = policy.sampler.nfe(timesteps) * (2 if v.model == "gpc" else 1)
    return policy, nfe


class OnnxNet(torch.nn.Module):
    """The denoiser network exported to ONNX and run by onnxruntime, called like the torch net."""

    def __init__(self, net, example: tuple, threads: int):
        super().__init__()
        import onnxruntime as ort

        path = RESULTS / ".denoiser.onnx"
        torch.onnx.export(net, example, str(path), input_names=["x", "t", "cond"], dynamo=False)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        path.unlink()

    def forward(self, x, t, cond):
        feeds = {"x": x.numpy(), "t": t.float().numpy(), "cond": cond.numpy()}
        return torch.from_numpy(self.session.run(None, feeds)[0])


def with_backend(policy: DiffusionPolicy, backend: str, threads: int):
    """Swap the denoiser's network for a compiled / ONNX one; returns a function that restores it."""
    original = policy.denoiser.net
    if backend == "compile":
        policy.denoiser.net = torch.compile(original, dynamic=False)
    elif backend == "onnx":
        cond_dim = policy.obs_encoder.output_dim
        example = (torch.randn(1, policy.config.horizon, 2), torch.tensor([10.0]), torch.randn(1, cond_dim))
        policy.denoiser.net = OnnxNet(original, example, threads)

    def restore() -> None:
        policy.denoiser.net = original

    return restore


# ----------------------------------------------------------------------------- timing
def observation(shape: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    obs = {k: rng.uniform(-1, 1, (1, *s)).astype(np.float32) for k, s in SHAPES[shape].items()}
    if "observation.image" in obs:
        obs["observation.image"] = rng.integers(0, 255, (1, 96, 96, 3), dtype=np.uint8)
    return obs


def time_chunks(policy, obs: dict, repeats: int, warm: bool) -> list[float]:
    """Milliseconds per chunk through select_action at batch 1; `warm`: RTI's steady state (kept plan)."""
    policy.reset()
    policy.select_action(obs)  # warm-up, and RTI's first (full) chunk
    times = []
    for _ in range(repeats):
        if warm:
            policy._action_queue.clear()  # the next call plans a warm-started chunk
        else:
            policy.reset()
        start = time.perf_counter()
        policy.select_action(obs)
        times.append((time.perf_counter() - start) * 1000)
    return sorted(times)


def net_only_ms(policy, repeats: int = 50) -> float:
    """One network evaluation alone at batch 1: the floor a sampler's per-step Python overhead adds to."""
    x = torch.randn(1, policy.config.horizon, policy.config.action_dim)
    cond = torch.randn(1, policy.obs_encoder.output_dim)
    t = torch.tensor([0.01])
    with torch.inference_mode():
        policy.denoiser.raw(x, t, cond)  # the network plus its time scaling (and a shortcut model's step code)
        start = time.perf_counter()
        for _ in range(repeats):
            policy.denoiser.raw(x, t, cond)
    return (time.perf_counter() - start) * 1000 / repeats


def percentile(sorted_ms: list[float], q: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, round(q * (len(sorted_ms) - 1)))]


def run_peer(shape: str, threads: int, repeats: int) -> dict | None:
    if repeats <= 0:
        return None
    if not PEER_PYTHON.exists():
        print(f"peer skipped: {PEER_PYTHON} missing (make compat builds it)", file=sys.stderr)
        return None
    cmd = [str(PEER_PYTHON), str(ROOT / "bench" / "lerobot_peer.py"), "--shape", shape]
    cmd += ["--threads", str(threads), "--repeats", str(repeats)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- success
def rollouts(base: dict, todo: list[Variant], args) -> dict:
    """Every eager variant's PushT success on the same seeds and noise stream (torch reseeded per variant)."""
    success = {}
    for v in todo:
        if v.backend != "eager":
            continue
        policy, _ = configure(base, v, args.n_action_steps)
        torch.manual_seed(args.seed)
        make_env = lambda: make_pusht_env("state")  # noqa: E731
        s = evaluate(policy, make_env, args.episodes, args.seed, args.n_envs, progress=True).summary()
        success[v.name] = s
        lo, hi = s["success_ci95"]
        print(
            f"[success] {v.name:<34} {s['success_rate']:.1%} (95% CI {lo:.1%}–{hi:.1%}), "
            f"coverage {s['mean_max_coverage']:.3f}"
        )
    return {
        "episodes": args.episodes,
        "seed": args.seed,
        "n_action_steps": args.n_action_steps,
        "policies": [args.diffusion, args.flow, args.shortcut],
        "by_variant": success,
    }


def attach_success(report: dict) -> None:
    """Copy each variant's success onto its state-shape latency rows (compiled/ONNX rows share the eager one's)."""
    by_variant = report.get("success", {}).get("by_variant", {})
    for entry in report["shapes"]:
        if entry["shape"] != "state":
            continue
        for name, row in entry["ours"].items():
            key = name.replace(" torch.compile", "").replace(" onnxruntime", "")
            if key in by_variant:
                row["success"] = by_variant[key]["success_rate"]
                row["success_ci95"] = by_variant[key]["success_ci95"]


# ----------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--diffusion", help="trained diffusion policy directory (state shape)")
    parser.add_argument("--flow", help="trained flow policy directory (state shape)")
    parser.add_argument(
        "--shortcut", help="trained shortcut flow policy directory (state shape; policy=flow_shortcut_small)"
    )
    parser.add_argument("--episodes", type=int, default=0, help="PushT rollouts per variant (state shape)")
    parser.add_argument("--seed", type=int, default=100_000)
    parser.add_argument("--n-envs", type=int, default=50)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--shapes", nargs="+", default=["state", "image"])
    parser.add_argument("--budget-ms", type=float, default=4000, help="timing budget per variant and thread count")
    parser.add_argument("--peer-repeats", type=int, default=3)
    parser.add_argument("--rti-start", type=int, default=50)
    parser.add_argument("--flow-rti-start", type=float, default=0.5)
    parser.add_argument("--shortcut-rti-start", type=float, default=0.625, help="flow time of the shortcut warm start")
    parser.add_argument(
        "--shortcut-rti-times",
        type=float,
        nargs="+",
        metavar="T",
        help="an explicit shortcut RTI step list, e.g. 0.125 0.625 0.875 (jumps 1/2, 1/4, 1/8): adds the variant "
        "'shortcut rti-3 (t=0.125,0.625,0.875)'",
    )
    parser.add_argument("--rti-pad", choices=("hold", "extrapolate"), default="extrapolate")
    parser.add_argument("--n-action-steps", type=int, help="actions executed per chunk (default: the checkpoint's)")
    parser.add_argument("--only", nargs="*", help="variant names to run (default: all)")
    parser.add_argument("--no-latency", action="store_true", help="only the rollouts (e.g. beside other work)")
    parser.add_argument("--success-from", help="take the rollouts' results from an earlier report instead")
    parser.add_argument("--output", default=str(RESULTS / "inference.json"))
    args = parser.parse_args()

    report = {
        "command": shlex.join(["python", "bench/inference.py", *sys.argv[1:]]),
        "machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__},
        "shapes": [],
    }
    todo = [
        v
        for v in variants(
            args.rti_start, args.flow_rti_start, args.rti_pad, args.shortcut_rti_start, args.shortcut_rti_times
        )
        if not args.only or v.name in args.only
    ]
    for shape in args.shapes:
        if shape == "state" and (args.diffusion or args.shortcut):
            needed = {m for v in todo for m in (("diffusion", "flow") if v.model == "gpc" else (v.model,))}
            paths = {"diffusion": args.diffusion, "flow": args.flow, "shortcut": args.shortcut}
            missing = sorted(m for m in needed if not paths[m])
            if missing:
                raise SystemExit(f"--{missing[0]} is required by the variants chosen (--only {args.only})")
            base = {m: load_policy(paths[m]) for m in needed}
        else:
            base = {
                "diffusion": untrained(shape, "diffusion_unet_small"),
                "flow": untrained(shape, "flow_unet_small"),
                "shortcut": untrained(shape, "flow_shortcut_small"),
            }
        obs = observation(shape)
        for threads in [] if args.no_latency else args.threads:
            torch.set_num_threads(threads)
            peer = run_peer(shape, threads, args.peer_repeats)
            entry = {"shape": shape, "threads": threads, "peer": peer, "ours": {}}
            if peer:
                print(f"[{shape}, {threads} thread(s)] peer {peer['name']}: p50 {peer['p50_ms']:.0f} ms")
            for v in todo:
                if shape not in v.shapes:
                    continue
                policy, nfe = configure(base, v, args.n_action_steps)
                restore = with_backend(policy, v.backend, threads) if v.backend != "eager" else (lambda: None)
                try:
                    with torch.inference_mode():
                        first = time_chunks(policy, obs, 3, warm=bool(v.rti))
                        repeats = int(max(10, min(300, args.budget_ms / max(first[len(first) // 2], 0.05))))
                        ms = time_chunks(policy, obs, repeats, warm=bool(v.rti))
                    net_ms = (
                        net_only_ms(base["diffusion" if v.model == "gpc" else v.model])
                        if v.backend == "eager"
                        else None
                    )
                finally:
                    restore()
                p50 = statistics.median(ms)
                row = {
                    "p50_ms": p50,
                    "p99_ms": percentile(ms, 0.99),
                    "repeats": len(ms),
                    "nfe": nfe,
                    # actions per second one core can supply: executed actions per chunk / chunk latency
                    "control_rate_hz": policy.config.n_action_steps * 1000.0 / p50,
                    "net_ms_per_eval": net_ms,
                }
                if peer:
                    row["speedup_vs_peer"] = peer["p50_ms"] / p50
                entry["ours"][v.name] = row
                extra = f", {row['speedup_vs_peer']:.0f}× faster than the peer" if peer else ""
                print(
                    f"[{shape}, {threads}t] {v.name:<34} p50 {p50:8.2f} ms  p99 {row['p99_ms']:8.2f} ms"
                    f"  nfe {nfe}{extra}"
                )
            report["shapes"].append(entry)
        if shape == "state" and args.episodes > 0 and (args.diffusion or args.shortcut) and not args.success_from:
            report["success"] = rollouts(base, todo, args)
    if args.success_from:
        report["success"] = json.loads(Path(args.success_from).read_text())["success"]
    attach_success(report)
    atomic_write_json(args.output, report)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
