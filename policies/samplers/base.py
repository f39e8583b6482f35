"""The sampler seam. A `Denoiser` answers with its prediction in any parameterisation; a `Sampler` turns an explicit
initial noise into a sample by visiting an explicit step list, one `step()` at a time. Samplers register themselves
by name where they are defined (`@register_sampler`), so adding one is one file.

A step list holds the levels a sample starts each step at, noisiest first; the sample ends at clean data (diffusion:
after level 0; flow: at t = 1; masked: with nothing masked). `timesteps[0]` is where the initial noise sits: pure
noise for a full sample, a re-noised previous chunk for an RTI warm start.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import torch

PredictionKind = Literal["epsilon", "sample", "velocity"]
"""`epsilon`: the noise; `sample`: the clean data x0; `velocity`: data minus noise (the flow field)."""
FAMILIES = ("diffusion", "flow", "masked")


@runtime_checkable
class Denoiser(Protocol):
    """Anything that predicts, at noise level `t` (shape (B,)), the clean sample / noise / velocity of `x_t` (B, T, A)
    given a condition; `kind` picks which of the three it returns. A denoiser may also have a `native_kind` attribute
    (the kind its network outputs), which samplers ask for to skip a conversion."""

    def predict(self, x_t: torch.Tensor, t: torch.Tensor, cond: Any, kind: PredictionKind) -> torch.Tensor: ...


@dataclass(frozen=True)
class SamplerConfig:
    """How a policy turns noise into an action chunk at inference."""

    name: str = "ddpm"
    """A registered sampler (`sampler_names()`): ddpm, ddim, heun, dpmpp_2m (diffusion); flow_euler, … (flow)."""
    num_inference_steps: int = 100
    """Steps of the default step list."""
    eta: float = 0.0
    """DDIM's stochasticity: 0 deterministic (the noise → action map DSRL and RTI use), 1 DDPM-like."""
    clip_sample: float | None = 1.0
    """Clamp every clean-sample estimate to ±clip_sample (normalised units); None: no clamp."""
    eps_from_clipped_sample: bool = True
    """After clamping a clean-sample estimate, re-derive ε from it (true: the DDPM posterior's view); false keeps
    the model's ε in DDIM's direction term, as diffusers' DDIMScheduler does by default (LeRobot's DDIM)."""
    timestep_spacing: str = "leading"
    """Diffusion step lists: leading [90, 80, …, 0], trailing [99, 88, …, 0] or quadratic [90, 71, …, 1, 0]."""
    flow_time_power: float = 1.0
    """Flow step starts t_i = 1 − (1 − i/n)^p: 1 uniform, 2–3 short steps near the data."""

    def __post_init__(self) -> None:
        if int(self.num_inference_steps) < 1:
            raise ValueError(f"sampler.num_inference_steps={self.num_inference_steps}: expected an integer ≥ 1")
        if self.eta < 0:
            raise ValueError(f"sampler.eta={self.eta}: expected ≥ 0 (0 is deterministic DDIM, 1 is DDPM-like)")
        if not self.flow_time_power > 0:
            raise ValueError(f"sampler.flow_time_power={self.flow_time_power}: expected > 0 (1 is uniform flow steps)")
        if self.clip_sample is not None and not self.clip_sample > 0:
            raise ValueError(f"sampler.clip_sample={self.clip_sample}: expected > 0 or null (no clamp)")

    def replace(self, **changes: Any) -> SamplerConfig:
        """A copy with `changes` (None values keep the current one), validated."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


class Sampler(ABC):
    """One sampling method. Subclasses set `name` and `family` and implement `default_timesteps`, `add_noise`,
    `step` (and `nfe` / `query_times` when a step evaluates the denoiser more than once)."""

    name: ClassVar[str]
    family: ClassVar[str]

    def __init__(self, schedule: Any, config: SamplerConfig | None = None, **settings: Any) -> None:
        """Over `schedule`, with `config`'s settings (those this sampler reads), `settings` replacing fields of it."""
        self.schedule = schedule
        self.config = dataclasses.replace(config or SamplerConfig(), name=self.name, **settings)

    @property
    def num_inference_steps(self) -> int:
        return self.config.num_inference_steps

    @abstractmethod
    def default_timesteps(self, num_steps: int | None = None, start: float | None = None) -> list:
        """The step list of `num_steps` steps (default: the configured count) from `start` (default: pure noise)."""

    @abstractmethod
    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: float) -> torch.Tensor:
        """The point at level `t` between clean `x0` and `noise` (a warm start's initial point)."""

    def check_timesteps(self, timesteps: list) -> list:
        """The step list as the sampler reads it, or a ValueError saying what was expected."""
        return list(timesteps)

    clean_level: ClassVar[Any] = None
    """Where the last step of a list ends: clean data (diffusion −1, flow 1.0)."""

    def step_pairs(self, timesteps: list) -> list[tuple[Any, Any]]:
        """(start, end) of every step: each listed level to the next one, the last to `clean_level`."""
        return list(zip(timesteps, [*timesteps[1:], self.clean_level]))

    @abstractmethod
    def step(
        self,
        denoiser: Denoiser,
        x: torch.Tensor,
        t: Any,
        t_next: Any,
        cond: Any,
        generator: torch.Generator | None = None,
        carry: Any = None,
    ) -> tuple[torch.Tensor, Any]:
        """One update of x (B, T, A) from level t to t_next; `carry` is what a multistep method keeps between steps
        (None at the first step). Returns (x at t_next, carry for the next step)."""

    def nfe(self, timesteps: list) -> int:
        """Denoiser evaluations one `sample(…, timesteps)` makes."""
        return len(timesteps)

    def query_times(self, timesteps: list) -> list[float]:
        """Every level the denoiser is asked at during `sample(…, timesteps)`, in order of first use."""
        return list(dict.fromkeys(float(t) for t in timesteps))

    @torch.no_grad()
    def sample(
        self,
        denoiser: Denoiser,
        x_init: torch.Tensor,
        cond: Any,
        timesteps: list | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Walk the step list (default: `default_timesteps()`) from `x_init` to clean data."""
        steps = self.check_timesteps(timesteps if timesteps is not None else self.default_timesteps())
        x, carry = x_init, None
        for t, t_next in self.step_pairs(steps):
            x, carry = self.step(denoiser, x, t, t_next, cond, generator, carry)
        return x


SAMPLERS: dict[str, type[Sampler]] = {}


def register_sampler(cls: type[Sampler]) -> type[Sampler]:
    """Class decorator: make `cls` available under `cls.name`."""
    if cls.family not in FAMILIES:
        raise ValueError(f"{cls.__name__}.family={cls.family!r}: expected one of {FAMILIES}")
    if cls.name in SAMPLERS:
        raise ValueError(f"sampler {cls.name!r} is registered twice")
    SAMPLERS[cls.name] = cls
    return cls


def sampler_names(family: str | None = None) -> tuple[str, ...]:
    """Registered sampler names, of one family when given."""
    return tuple(n for n, c in SAMPLERS.items() if family is None or c.family == family)


def sampler_class(name: str, family: str | None = None) -> type[Sampler]:
    """The registered sampler `name` (of `family` when given), or a ValueError listing the choices."""
    if name not in SAMPLERS or (family is not None and SAMPLERS[name].family != family):
        what = f"a {family} sampler" if family else "a sampler"
        raise ValueError(f"sampler.name={name!r}: expected {what}, one of {sampler_names(family)}")
    return SAMPLERS[name]


def make_sampler(config: SamplerConfig, schedule: Any) -> Sampler:
    """The sampler `config.name` over `schedule`, whose family must be the sampler's."""
    return sampler_class(config.name, getattr(schedule, "family", None))(schedule, config)
