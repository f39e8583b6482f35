"""GPC: test-time composition of K trained policies (diffusion and flow mixed) by a convex combination of
their denoising predictions, on one noise sample and one time grid (docs/methods.md, GPC).

Every schedule here writes x_t = α·x0 + σ·ε, so one driver sampler walks its own grid and, at each of its
levels, each parent is asked at the level of equal signal-to-noise ratio α/σ, with x_t rescaled to that
parent's process (x_i = x_t·(α_i + σ_i)/(α + σ)). Each parent's answer is turned into a clean-sample
estimate; the weighted x0 is returned in whatever kind the driver asks for. At one (x_t, α, σ) a convex
mix of x0, of ε or of velocity is the same mix, so this is GPC's ε = Σ w_i ε_i on one scale.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from diffpilot.atomic import fsync_path

from .checkpoint import CheckpointError, atomic_write_json, read_json
from .chunk_policy import ChunkPolicy
from .registry import register_policy
from .samplers.base import PredictionKind, SamplerConfig, make_sampler, sampler_class
from .samplers.parameterization import convert_prediction, to_sample_and_noise
from .samplers.schedules import DiffusionSchedule, FlowSchedule
from .typed_config import config_to_dict

CONFIG_FILE = "config.json"


def matched_level(schedule, alpha: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The level of `schedule` whose α/σ equals the given one: (t, α_t, σ_t), each (B,).

    Flow: t = α / (α + σ). Discrete diffusion: a fractional level, interpolating log-SNR between the
    integer levels and clamped to [0, K−1] (the UNet's sinusoidal time embedding takes fractions).
    """
    alpha, sigma = alpha.double(), sigma.double()
    if isinstance(schedule, FlowSchedule):
        t = alpha / (alpha + sigma)
        return t.float(), t.float(), (1.0 - t).float()
    if not isinstance(schedule, DiffusionSchedule):
        raise TypeError(f"cannot match noise levels on a {type(schedule).__name__}")
    table = schedule.alphas_cumprod.double().to(alpha.device)
    log_snr_table = torch.log(table / (1.0 - table))  # decreasing with the level
    log_snr = 2.0 * (torch.log(alpha.clamp(min=1e-20)) - torch.log(sigma.clamp(min=1e-20)))
    log_snr = log_snr.clamp(min=float(log_snr_table[-1]), max=float(log_snr_table[0]))
    descending = -log_snr_table  # increasing, for searchsorted
    hi = torch.searchsorted(descending, -log_snr).clamp(1, len(table) - 1)
    lo = hi - 1
    frac = (-log_snr - descending[lo]) / (descending[hi] - descending[lo])
    level = lo.double() + frac.clamp(0.0, 1.0)
    ab = torch.sigmoid(log_snr)
    return level.float(), ab.sqrt().float(), (1.0 - ab).sqrt().float()


@dataclass
class ComposedDenoiser:
    """Convex mix of K parents' predictions at the driver schedule's levels (each parent's estimate of x0
    is the same whichever kind is mixed, since the conversions are affine in it)."""

    parents: list  # DiffusionPolicy objects (their denoiser, schedule and conditioning are used)
    weights: list[float]
    schedule: Any  # the driver's schedule

    def predict(self, x_t: torch.Tensor, t: torch.Tensor, cond: list, kind: PredictionKind) -> torch.Tensor:
        """Σ w_i · (parent i's prediction re-expressed as `kind` at the driver's (x_t, t)), (B, T, A)."""
        alpha, sigma = self.schedule.alpha_sigma(t.to(x_t.device))
        mixed = torch.zeros_like(x_t)
        for parent, weight, c in zip(self.parents, self.weights, cond):
            if weight == 0.0:
                continue
            if parent.schedule == self.schedule:  # same process: ask at the very same level
                mixed = mixed + weight * parent.denoiser.predict(x_t, t, c, kind)
                continue
            t_i, a_i, s_i = matched_level(parent.schedule, alpha, sigma)
            x_i = x_t * ((a_i + s_i) / (alpha + sigma)).reshape(-1, 1, 1)
            raw = parent.denoiser.raw(x_i, t_i, c)
            x0_i, _ = to_sample_and_noise(raw, parent.denoiser.prediction_type, x_i, a_i, s_i)
            mixed = mixed + weight * convert_prediction(x0_i, "sample", kind, x_t, alpha, sigma)
        return mixed


@dataclass(frozen=True)
class CompositionConfig:
    """What a saved composition holds besides its parents; the control-loop fields are the parents'."""

    weights: tuple[float, ...]
    """Convex weights, one per parent."""
    sampler: SamplerConfig = field(default_factory=lambda: SamplerConfig("ddim", 10))
    """The driver sampler, walking one step list for every parent."""
    parents: tuple[str, ...] = ()
    """The parents' directories inside a saved composition (parent_0, …)."""

    def __post_init__(self) -> None:
        w = tuple(float(x) for x in self.weights)
        if len(w) < 2 or any(x < 0 or not math.isfinite(x) for x in w) or abs(sum(w) - 1.0) > 1e-6:
            raise ValueError(f"weights={list(self.weights)}: expected ≥ 2 non-negative weights summing to 1 (convex)")
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "parents", tuple(self.parents))
        if isinstance(self.sampler, dict):
            object.__setattr__(self, "sampler", SamplerConfig(**self.sampler))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CompositionConfig:
        """From a saved config.json; the earlier flat sampler keys (sampler name, num_inference_steps, …) are read."""
        values = dict(values)
        if isinstance(values.get("sampler"), str):
            flat = {k: values.pop(k) for k in FLAT_SAMPLER_KEYS if k in values}
            values["sampler"] = {"name": values.pop("sampler"), **flat}
        return cls(**values)


FLAT_SAMPLER_KEYS = ("num_inference_steps", "eta", "clip_sample", "timestep_spacing")


@dataclass(frozen=True)
class ComposedChunking:
    """The control-loop fields a composition shares with its parents, and its driver sampler."""

    input_features: dict[str, Any]
    action_dim: int
    action_key: str
    n_obs_steps: int
    horizon: int
    n_action_steps: int
    sampler: SamplerConfig

    def replace(self, **changes: Any) -> ComposedChunking:
        new = dataclasses.replace(self, **changes)
        if new.n_action_steps > new.horizon - new.n_obs_steps + 1 or new.n_action_steps < 1:
            raise ValueError(
                f"n_action_steps={new.n_action_steps}: expected 1 … horizon − n_obs_steps + 1 = "
                f"{new.horizon - new.n_obs_steps + 1}"
            )
        return new


@register_policy
class ComposedPolicy(ChunkPolicy):
    """A loadable policy made of K parents with one sampler; `select_action`, RTI and evaluation treat it
    like any `DiffusionPolicy`. Parents must share horizon, n_obs_steps, n_action_steps and action stats."""

    type_name = "composed"

    def __init__(self, parents: list, composition: CompositionConfig):
        super().__init__()
        if len(parents) != len(composition.weights):
            raise ValueError(f"{len(parents)} parents but {len(composition.weights)} weights: expected one weight each")
        first = parents[0]
        for i, p in enumerate(parents[1:], start=1):
            if getattr(p, "type_name", None) != "diffusion":
                raise ValueError(f"parent {i} is a {type(p).__name__}; expected a diffusion/flow DiffusionPolicy")
            for name in ("horizon", "n_obs_steps", "n_action_steps", "action_dim", "action_key"):
                a, b = getattr(first.config, name), getattr(p.config, name)
                if a != b:
                    raise ValueError(f"parent {i} has {name}={b!r} but parent 0 has {a!r}: they must agree")
            _check_same_action_stats(first, p, i)
        self.parents = torch.nn.ModuleList(parents)
        self.composition = composition
        fc = first.config
        self.config = ComposedChunking(
            {k: f for p in parents for k, f in p.config.input_features.items()},
            fc.action_dim, fc.action_key, fc.n_obs_steps, fc.horizon, fc.n_action_steps, composition.sampler,
        )  # fmt: skip
        self.normalizer = first.normalizer
        family = sampler_class(composition.sampler.name).family
        diffusion = [p.schedule for p in parents if isinstance(p.schedule, DiffusionSchedule)]
        if family == "diffusion":
            self.schedule = diffusion[0] if diffusion else DiffusionSchedule()
        else:
            self.schedule = FlowSchedule()
        self.sampler = make_sampler(composition.sampler, self.schedule)
        self.denoiser = ComposedDenoiser(list(self.parents), list(composition.weights), self.schedule)
        self.reset()

    def with_sampler(self, sampler: SamplerConfig) -> ComposedPolicy:
        """The same parents driven by `sampler`; this composition is unchanged."""
        return self._recomposed(sampler=sampler)

    def with_weights(self, weights: list[float]) -> ComposedPolicy:
        """The same parents mixed with `weights`; this composition is unchanged."""
        return self._recomposed(weights=tuple(weights))

    def _recomposed(self, **changes: Any) -> ComposedPolicy:
        """The same parents under a changed composition, executing as many actions per chunk as this one."""
        view = ComposedPolicy(list(self.parents), dataclasses.replace(self.composition, **changes))
        return view.with_n_action_steps(self.config.n_action_steps)

    def _prepare_obs(self, obs: dict[str, Any], window: bool) -> dict[str, torch.Tensor]:
        """Every parent's normalised observations (the RTI jump check reads them)."""
        out = {}
        for p in self.parents:
            out.update(p._prepare_obs(obs, window))
        return out

    def nfe(self, timesteps: list | None = None) -> int:
        steps = timesteps or self.sampler.default_timesteps()
        return self.sampler.nfe(steps) * sum(w > 0 for w in self.composition.weights)

    def condition(self, obs_window: dict[str, Any]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Each parent's own condition (B, C_i) — one shared noise sample and step list serve them all."""
        conds = [p.encode(obs_window) for p in self.parents]
        return conds, conds[0]

    # ----------------------------------------------------------------- checkpoints
    def save_pretrained(self, directory: str | Path) -> None:
        """config.json plus each parent's own checkpoint in parent_<i>/ (written to a temp dir, then renamed)."""
        directory = Path(directory)
        tmp = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        names = tuple(f"parent_{i}" for i in range(len(self.parents)))
        for name, parent in zip(names, self.parents):
            parent.save_pretrained(tmp / name)
        config = config_to_dict(dataclasses.replace(self.composition, parents=names))
        atomic_write_json(tmp / CONFIG_FILE, {"type": self.type_name, "config": config})
        if directory.exists():
            shutil.rmtree(directory)
        tmp.rename(directory)
        fsync_path(directory.parent)

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str = "cpu") -> ComposedPolicy:
        from .diffusion_policy import DiffusionPolicy

        directory = Path(directory)
        meta = read_json(directory / CONFIG_FILE, "composed policy")
        if not isinstance(meta, dict) or meta.get("type") != cls.type_name:
            found = meta.get("type") if isinstance(meta, dict) else None
            raise CheckpointError(f"{directory / CONFIG_FILE}: type is {found!r}; expected {cls.type_name!r}")
        try:
            composition = CompositionConfig.from_dict(meta["config"])
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{directory / CONFIG_FILE}: bad composition config: {err}") from err
        parents = [DiffusionPolicy.from_pretrained(directory / name, map_location) for name in composition.parents]
        return cls(parents, composition).to(map_location).eval()


def _check_same_action_stats(a, b, index: int) -> None:
    """Parents are mixed in normalised action space, so their action normalisation must be the same."""
    key = a.config.action_key
    prefix = key.replace(".", "_") + "__"  # the Normalizer's buffer names
    sa = {n: t for n, t in a.normalizer.state_dict().items() if n.startswith(prefix)}
    sb = {n: t for n, t in b.normalizer.state_dict().items() if n.startswith(prefix)}
    for name, tensor in sa.items():
        other = sb.get(name)
        if other is None or other.shape != tensor.shape or not torch.allclose(tensor, other, rtol=1e-4, atol=1e-5):
            raise ValueError(
                f"parent {index} normalises {key!r} differently from parent 0 ({name}): composition mixes "
                "predictions in normalised action space, so train the parents on the same action statistics"
            )
