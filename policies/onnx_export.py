"""ONNX export of the whole chunk planner, and `OnnxPolicy`, which runs it with onnxruntime behind the policy API.

One graph per step list: the observation window (B, n_obs, …) per feature and the sampler's initial point (B,
horizon, A) in, the chunk out — normalisation, the observation encoder, the sampler unrolled over its fixed step
list and unnormalisation inside. `full.onnx` is the full sample from pure noise (the sampler's own step list);
with RTI, `warm.onnx` is the warm-started step list from RTI's re-noising level. The initial point is an input, so a
chunk is reproducible: the same noise gives the torch policy's chunk (parity measured at export, `export.json`).
Samplers that draw fresh noise at every step (DDPM, DDIM with eta > 0) are refused: their graph would hold random
ops."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .checkpoint import atomic_write_json, read_json
from .chunk_policy import ChunkPolicy
from .diffusion_policy import feature_input
from .warmstart import RTIWarmStart

OUTPUTS = ("actions", "actions_normalized")
EXPORT_FILE = "export.json"


class ExportError(ValueError):
    """A policy or sampler that cannot become a reproducible ONNX graph; the message says why."""


class ChunkGraph(nn.Module):
    """`policy.predict_chunk` over one fixed step list as a module: (*features, noise) → (actions, normalised)."""

    def __init__(self, policy, timesteps: list | None):
        super().__init__()
        self.policy, self.timesteps = policy, timesteps
        self.keys = list(policy.config.input_features)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        window = dict(zip(self.keys, inputs[:-1], strict=True))
        x = self.policy.predict_chunk(window, noise=inputs[-1], timesteps=self.timesteps, normalized=True)
        return self.policy.normalizer.unnormalize(self.policy.config.action_key, x), x


def example_inputs(policy, batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Inputs of the graph: each feature's window (B, n_obs, *shape) — states spread over their normalisation
    range, images float in [0, 1] as (3, H, W) — and the noise (B, horizon, A), all float32."""
    g = torch.Generator().manual_seed(seed)
    c = policy.config
    inputs = {}
    for key, feature in c.input_features.items():
        shape = (batch, c.n_obs_steps, *feature.shape)
        if feature.kind == "image":
            inputs[key] = torch.rand(shape, generator=g)
        else:
            unit = torch.rand(shape, generator=g) * 2 - 1
            inputs[key] = policy.normalizer.unnormalize(key, unit).float()
    inputs["noise"] = torch.randn((batch, c.horizon, c.action_dim), generator=g)
    return inputs


def _export_graph(graph: ChunkGraph, inputs: dict[str, torch.Tensor], path: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=1024)
    dynamic = tuple({0: batch} for _ in inputs)
    with torch.no_grad():
        torch.onnx.export(
            graph,
            tuple(inputs.values()),
            str(path),
            input_names=list(inputs),
            output_names=list(OUTPUTS),
            dynamic_shapes=(dynamic,),  # forward(*inputs): one varargs entry
            dynamo=True,
            verbose=False,
        )


def _require_deterministic(policy, inputs: dict[str, torch.Tensor]) -> None:
    """The same noise must give the same chunk: a sampler that draws fresh noise at every step cannot be a graph
    whose only randomness is its input."""
    window = {k: v for k, v in inputs.items() if k != "noise"}
    with torch.no_grad():
        a, b = (policy.predict_chunk(window, noise=inputs["noise"], normalized=True) for _ in range(2))
    if not torch.equal(a, b):
        raise ExportError(
            f"sampler {policy.config.sampler.name!r} draws noise at every step; export a deterministic sampler: "
            "ddim with eta=0, dpmpp_2m, heun or a flow sampler"
        )


def _session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def export_onnx(policy, directory: str | Path, rti: dict | None = None, threads: int = 1) -> dict[str, Any]:
    """Write `policy` (a DiffusionPolicy, sampled as its config says) to `directory`: config.json and weights as
    saved (so the folder still loads as a policy), full.onnx, warm.onnx when `rti` is enabled, and export.json with
    the step lists and each graph's largest difference from torch on fixed noise (batch 2)."""
    if getattr(policy, "task_conditioner", None) is not None:
        raise ExportError("a task-conditioned policy: its instruction input is not part of the ONNX graph yet")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    policy = policy.eval()
    step_lists = {"full": None}
    planner = None
    if rti and rti.get("enabled"):
        planner = RTIWarmStart.from_config(policy, rti)
        step_lists["warm"] = list(planner.timesteps)
    check = example_inputs(policy, batch=2, seed=1)
    _require_deterministic(policy, check)
    graphs = {}
    for name, timesteps in step_lists.items():
        path = directory / f"{name}.onnx"
        graph = ChunkGraph(policy, timesteps).eval()
        _export_graph(graph, example_inputs(policy, batch=1), path)
        with torch.no_grad():
            expected = graph(*check.values())
        got = _session(path, threads).run(None, {k: v.numpy() for k, v in check.items()})
        diffs = [float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected, strict=True)]
        resolved = timesteps if timesteps is not None else policy.sampler.default_timesteps()
        graphs[name] = {
            "file": path.name,
            "timesteps": [float(t) for t in resolved],
            "max_abs_diff": diffs[0],  # action units
            "max_abs_diff_normalized": diffs[1],  # the sampler's space, [-1, 1] for min-max actions
        }
    policy.save_pretrained(directory)
    info = {
        "format": "onnx",
        "sampler": policy.config.sampler.name,
        "graphs": graphs,
        "inputs": [*policy.config.input_features, "noise"],
        "outputs": list(OUTPUTS),
        "rti": None if planner is None else {k: v for k, v in rti.items() if k != "enabled"},
        "torch": torch.__version__,
    }
    atomic_write_json(directory / EXPORT_FILE, info)
    return info


class OnnxPolicy(ChunkPolicy):
    """An exported planner run by onnxruntime with the policy API (`select_action`, `predict_chunk`, `reset`,
    `chunk_planner` for RTI). The torch network is not used; the config, normaliser and sampler (for RTI's
    re-noising) come from the export folder."""

    def __init__(self, directory: str | Path, threads: int = 1):
        super().__init__()
        from .registry import load_policy

        directory = Path(directory)
        self.info = read_json(directory / EXPORT_FILE, "ONNX export")
        torch_policy = load_policy(directory)
        self.config, self.normalizer = torch_policy.config, torch_policy.normalizer
        self.sampler, self.schedule = torch_policy.sampler, torch_policy.schedule
        self.sessions = {name: _session(directory / g["file"], threads) for name, g in self.info["graphs"].items()}
        self.step_lists = {name: g["timesteps"] for name, g in self.info["graphs"].items()}
        self.reset()

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def warm_start(self) -> RTIWarmStart:
        """The RTI planner over the exported warm step list (set it as `chunk_planner`)."""
        if "warm" not in self.sessions:
            raise ExportError("this export has no warm-start graph; export with rti.enabled=true")
        rti = {**(self.info["rti"] or {}), "timesteps": self.step_lists["warm"]}
        rti["start"], rti["num_steps"] = rti["timesteps"][0], len(rti["timesteps"])
        return RTIWarmStart.from_config(self, rti)

    def _graph_for(self, timesteps: list | None) -> str:
        if timesteps is None:
            return "full"
        for name, steps in self.step_lists.items():
            if len(steps) == len(timesteps) and np.allclose(steps, [float(t) for t in timesteps]):
                return name
        raise ExportError(f"timesteps={list(timesteps)}: this export has the step lists {self.step_lists}")

    def _prepare_obs(self, obs: dict[str, Any], window: bool) -> dict[str, torch.Tensor]:
        """Normalised features, as the torch policy computes them (RTI's observation-jump check reads them)."""
        return {
            key: self.normalizer.normalize(key, self._graph_input(obs, key, window))
            for key in self.config.input_features
        }

    def _graph_input(self, obs: dict[str, Any], key: str, window: bool) -> torch.Tensor:
        feature = self.config.input_features[key]
        return feature_input(self._feature(obs, key).cpu(), key, feature, window).contiguous()

    def predict_chunk(
        self,
        obs_window: dict[str, Any],
        noise: torch.Tensor | None = None,
        timesteps: list | None = None,
        generator: torch.Generator | None = None,
        normalized: bool = False,
    ) -> torch.Tensor:
        """As DiffusionPolicy.predict_chunk: (B, horizon, A) from a window (B, n_obs, …), on the graph whose step
        list is `timesteps` (None: the full sample)."""
        feed = {key: self._graph_input(obs_window, key, window=True).numpy() for key in self.config.input_features}
        noise = self.initial_noise(next(iter(feed.values())).shape[0], noise, generator)
        feed["noise"] = np.ascontiguousarray(noise.detach().cpu().float().numpy())
        actions, normalised = self.sessions[self._graph_for(timesteps)].run(list(OUTPUTS), feed)
        return torch.from_numpy(normalised if normalized else actions)
