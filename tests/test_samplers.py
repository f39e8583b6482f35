"""Samplers against an exact denoiser: when the data is one point x*, the optimal prediction is known in
closed form, so every sampler must land on x* from any noise, start step and step list."""

from __future__ import annotations

import inspect

import pytest
import torch

from diffpilot.policies.samplers import (
    SAMPLERS,
    DDIMSampler,
    DDPMSampler,
    DiffusionSchedule,
    FlowEulerSampler,
    FlowHeunSampler,
    FlowSchedule,
    HeunSampler,
    SamplerConfig,
    convert_prediction,
    make_sampler,
    sampler_names,
)
from diffpilot.policies.samplers.diffusion import quadratic_levels
from diffpilot.policies.samplers.parameterization import to_sample_and_noise

from .conftest import tiny_config


class PointDenoiser:
    """The exact denoiser for a data distribution concentrated on `target` (B, T, A)."""

    def __init__(self, schedule, target: torch.Tensor, native: str = "sample"):
        self.schedule, self.target, self.native, self.calls = schedule, target, native, 0

    def predict(self, x_t, t, cond, kind):
        self.calls += 1
        alpha, sigma = self.schedule.alpha_sigma(t)
        x0 = self.target.expand_as(x_t)
        eps = (x_t - alpha[:, None, None] * x0) / sigma[:, None, None].clamp(min=1e-12)
        native = {"sample": x0, "epsilon": eps, "velocity": x0 - eps}[self.native]
        return convert_prediction(native, self.native, kind, x_t, alpha, sigma)


@pytest.fixture
def target():
    return torch.rand(3, 16, 2) * 1.6 - 0.8  # inside the clip range [-1, 1]


@pytest.mark.parametrize("native", ["sample", "epsilon", "velocity"])
def test_ddim_lands_on_the_data_point(target, native):
    schedule = DiffusionSchedule(100)
    den = PointDenoiser(schedule, target, native)
    out = DDIMSampler(schedule, num_inference_steps=10).sample(den, torch.randn_like(target), None)
    assert torch.allclose(out, target, atol=1e-4)
    assert den.calls == 10


def test_ddpm_uses_every_level_and_is_stochastic_but_exact_here(target):
    schedule = DiffusionSchedule(100)
    den = PointDenoiser(schedule, target)
    out = DDPMSampler(schedule).sample(den, torch.randn_like(target), None, generator=torch.Generator().manual_seed(0))
    assert den.calls == 100
    assert torch.allclose(out, target, atol=1e-4)


def test_ddim_eta0_is_a_deterministic_noise_to_sample_map():
    schedule = DiffusionSchedule(100)
    # A denoiser that is not exact, so the output depends on the noise.
    den = PointDenoiser(schedule, torch.zeros(1, 16, 2))
    den.predict = lambda x_t, t, cond, kind: 0.5 * x_t
    sampler = DDIMSampler(schedule, num_inference_steps=10, eta=0.0, clip_sample=None)
    noise = torch.randn(2, 16, 2)
    a, b = sampler.sample(den, noise, None), sampler.sample(den, noise.clone(), None)
    c = sampler.sample(den, torch.randn(2, 16, 2), None)
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_warm_start_from_an_intermediate_level(target):
    """RTI's use: re-noise a chunk to level 2 and run [2, 1, 0] — 3 evaluations instead of 100."""
    schedule = DiffusionSchedule(100)
    sampler = DDIMSampler(schedule)
    den = PointDenoiser(schedule, target)
    x_k = sampler.add_noise(target + 0.05, torch.randn_like(target), 2)
    out = sampler.sample(den, x_k, None, timesteps=[2, 1, 0])
    assert den.calls == 3 and torch.allclose(out, target, atol=1e-4)
    assert sampler.default_timesteps(3, start=2) == [2, 1, 0]
    assert sampler.default_timesteps(10) == [90, 80, 70, 60, 50, 40, 30, 20, 10, 0]


@pytest.mark.parametrize("name,calls", [("flow_euler", 4), ("flow_midpoint", 8)])
@pytest.mark.parametrize("native", ["velocity", "sample"])
def test_flow_integrates_to_the_data_point(target, name, calls, native):
    schedule = FlowSchedule()
    den = PointDenoiser(schedule, target, native)
    sampler = make_sampler(SamplerConfig(name, 4), schedule)
    out = sampler.sample(den, torch.randn_like(target), None)
    assert den.calls == calls == sampler.nfe(sampler.default_timesteps()) and torch.allclose(out, target, atol=1e-4)


def test_flow_warm_start(target):
    sampler = FlowEulerSampler(FlowSchedule(), num_inference_steps=10)
    den = PointDenoiser(sampler.schedule, target)
    times = sampler.default_timesteps(2, start=0.8)
    assert times == pytest.approx([0.8, 0.9])
    x = sampler.add_noise(target, torch.randn_like(target), 0.8)
    assert torch.allclose(sampler.sample(den, x, None, timesteps=times), target, atol=1e-4)


def test_prediction_conversions_round_trip():
    x0, eps = torch.randn(4, 8, 2), torch.randn(4, 8, 2)
    for schedule, t in [
        (DiffusionSchedule(100), torch.tensor([0, 10, 50, 99])),
        (FlowSchedule(), torch.tensor([0.1, 0.3, 0.6, 0.9])),
    ]:
        alpha, sigma = schedule.alpha_sigma(t)
        x_t = alpha[:, None, None] * x0 + sigma[:, None, None] * eps
        for kind, value in [("sample", x0), ("epsilon", eps), ("velocity", x0 - eps)]:
            got_x0, got_eps = to_sample_and_noise(value, kind, x_t, alpha, sigma)
            assert torch.allclose(got_x0, x0, atol=1e-3) and torch.allclose(got_eps, eps, atol=1e-3), (schedule, kind)


def test_bad_step_lists_are_rejected():
    schedule = DiffusionSchedule(100)
    den = PointDenoiser(schedule, torch.zeros(1, 4, 2))
    with pytest.raises(ValueError, match="strictly decreasing"):
        DDIMSampler(schedule).sample(den, torch.randn(1, 4, 2), None, timesteps=[1, 2])
    with pytest.raises(ValueError, match="0 … 99"):
        DDIMSampler(schedule).sample(den, torch.randn(1, 4, 2), None, timesteps=[100, 0])
    with pytest.raises(ValueError, match="strictly increasing"):
        FlowEulerSampler(FlowSchedule()).sample(den, torch.randn(1, 4, 2), None, timesteps=[0.5, 0.2])


def test_integral_float_levels_are_accepted_and_fractions_refused(target):
    schedule = DiffusionSchedule(100)
    den = PointDenoiser(schedule, target)
    out = DDIMSampler(schedule).sample(den, torch.randn_like(target), None, timesteps=[2.0, 1.0, 0.0])
    assert torch.allclose(out, target, atol=1e-3)
    with pytest.raises(ValueError, match="expected integer diffusion levels"):
        DDIMSampler(schedule).sample(den, torch.randn_like(target), None, timesteps=[1.5, 0])


class GaussianDenoiser(PointDenoiser):
    """The exact denoiser for data ~ N(mu, s²) per coordinate: x0̂ = mu + α s² (x_t − α mu) / (α² s² + σ²)."""

    def __init__(self, schedule, mu: float, s: float):
        super().__init__(schedule, torch.zeros(1), "sample")
        self.mu, self.s = mu, s

    def predict(self, x_t, t, cond, kind):
        self.calls += 1
        alpha, sigma = self.schedule.alpha_sigma(t)
        a, sg = alpha[:, None, None].double(), sigma[:, None, None].double()
        x0 = self.mu + a * self.s**2 * (x_t.double() - a * self.mu) / (a**2 * self.s**2 + sg**2)
        return convert_prediction(x0.float(), "sample", kind, x_t, alpha, sigma)

    def exact(self, x_init: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        """Where the probability-flow ODE takes x_init at (alpha, sigma) at clean data (σ̃ = σ/α → 0)."""
        sigma_ve = sigma / alpha
        return self.mu + (x_init / alpha - self.mu) * self.s / (self.s**2 + sigma_ve**2) ** 0.5


@pytest.mark.parametrize("native", ["sample", "epsilon", "velocity"])
def test_heun_lands_on_the_data_point_with_2n_minus_2_evaluations(target, native):
    schedule = DiffusionSchedule(100)
    den = PointDenoiser(schedule, target, native)
    sampler = HeunSampler(schedule, num_inference_steps=4)
    levels = sampler.default_timesteps()
    assert levels[0] == 98 and levels[-1] == 0 and len(levels) == 4  # σ̃(98) ≈ 64 ≤ 80 < σ̃(99) ≈ 2029
    out = sampler.sample(den, torch.randn_like(target), None)
    assert den.calls == 6 == sampler.nfe(levels)  # no corrector into level 0
    assert sampler.nfe([98, 60, 20]) == 5
    assert torch.allclose(out, target, atol=1e-4)


def test_heun_follows_the_ode_more_closely_than_ddim_at_equal_evaluations():
    """Gaussian data: the ODE's end point is known in closed form; 2nd order beats 1st at 15 evaluations
    (at 5 or fewer the first big Karras step dominates and DDIM is as good: few-step use is measured, not assumed)."""
    schedule = DiffusionSchedule(100)
    den = GaussianDenoiser(schedule, mu=0.3, s=0.5)
    x_init = torch.randn(64, 16, 2)
    start = 60
    ab = float(schedule.alphas_cumprod[start])
    exact = den.exact(x_init, ab**0.5, (1 - ab) ** 0.5)
    heun = HeunSampler(schedule, num_inference_steps=8, clip_sample=None)
    ddim = DDIMSampler(schedule, num_inference_steps=15, clip_sample=None)
    err_heun = (heun.sample(den, x_init, None, heun.default_timesteps(8, start=start)) - exact).abs().max()
    err_ddim = (ddim.sample(den, x_init, None, ddim.default_timesteps(15, start=start)) - exact).abs().max()
    assert err_heun < 0.5 * err_ddim, (err_heun, err_ddim)


def test_flow_heun_beats_euler_on_gaussian_data():
    schedule = FlowSchedule()
    den = GaussianDenoiser(schedule, mu=-0.2, s=0.4)
    x_init = torch.randn(64, 16, 2)
    t0 = 0.2
    exact = den.exact(x_init, t0, 1 - t0)
    # 15 evaluations each; Heun's last step (ending at t = 1) is Euler, so it needs a few steps to show its order
    heun = FlowHeunSampler(schedule, num_inference_steps=8)
    euler = FlowEulerSampler(schedule, num_inference_steps=15)
    assert heun.nfe(heun.default_timesteps()) == 15
    err_heun = (heun.sample(den, x_init, None, heun.default_timesteps(start=t0)) - exact).abs().max()
    err_euler = (euler.sample(den, x_init, None, euler.default_timesteps(start=t0)) - exact).abs().max()
    assert err_heun < 0.5 * err_euler, (err_heun, err_euler)


def test_flow_heun_lands_on_a_data_point_without_asking_the_field_at_t_1(target):
    """Point data (a thin support, like expert chunks): the field at t = 1 is not the path's limit, so the
    last step must be Euler; the exact denoiser is then never asked at t = 1 and lands on the point."""
    schedule = FlowSchedule()
    den = PointDenoiser(schedule, target, "velocity")
    asked = []
    predict = den.predict
    den.predict = lambda x_t, t, cond, kind: asked.append(float(t[0])) or predict(x_t, t, cond, kind)
    sampler = FlowHeunSampler(schedule, num_inference_steps=4)
    out = sampler.sample(den, torch.randn_like(target), None)
    assert max(asked) < 1.0 and len(asked) == 7 == sampler.nfe(sampler.default_timesteps())
    assert torch.allclose(out, target, atol=1e-4)


def test_flow_time_power_shortens_the_steps_near_the_data_end(target):
    flow = FlowSchedule()
    uniform = FlowEulerSampler(flow, num_inference_steps=4)
    late = FlowEulerSampler(flow, num_inference_steps=4, flow_time_power=2.0)
    assert uniform.default_timesteps() == [0.0, 0.25, 0.5, 0.75]
    assert late.default_timesteps() == [0.0, 0.4375, 0.75, 0.9375]  # 1 − (1 − i/4)²
    assert late.default_timesteps(2, start=0.5) == [0.5, 0.875]  # a warm start keeps the shape on [t0, 1]
    den = PointDenoiser(FlowSchedule(), target, "velocity")
    assert torch.allclose(late.sample(den, torch.randn_like(target), None), target, atol=1e-4)
    assert make_sampler(SamplerConfig("flow_euler", 10, flow_time_power=3.0), flow).config.flow_time_power == 3.0
    with pytest.raises(ValueError, match=r"sampler.flow_time_power=0\.0: expected > 0"):
        FlowEulerSampler(flow, flow_time_power=0.0)
    with pytest.raises(ValueError, match=r"sampler.flow_time_power=-1\.0: expected > 0"):
        tiny_config(sampler=SamplerConfig("ddim", flow_time_power=-1.0))


def test_a_policy_config_picks_the_spaced_samplers():
    ddim = make_sampler(tiny_config(sampler=SamplerConfig("ddim", 10, timestep_spacing="quadratic")).sampler,
                        DiffusionSchedule(100))  # fmt: skip
    assert ddim.default_timesteps() == [90, 71, 54, 40, 28, 18, 10, 4, 1, 0]
    flow = SamplerConfig("flow_euler", 2, clip_sample=None, flow_time_power=2.0)
    flow_cfg = tiny_config(objective="flow", prediction_type="velocity", sampler=flow)
    assert make_sampler(flow_cfg.sampler, FlowSchedule()).default_timesteps() == [0.0, 0.75]
    with pytest.raises(ValueError, match="timestep_spacing='cubic'"):
        make_sampler(SamplerConfig("ddim", timestep_spacing="cubic"), DiffusionSchedule(100))
    with pytest.raises(ValueError, match=r"sampler\.name='flow_euler': expected a diffusion sampler"):
        tiny_config(sampler=SamplerConfig("flow_euler"))


def test_samplers_by_name():
    diffusion, flow = DiffusionSchedule(100), FlowSchedule()
    assert isinstance(make_sampler(SamplerConfig("heun", 5), diffusion), HeunSampler)
    assert make_sampler(SamplerConfig("flow_heun", 5), flow).method == "heun"
    with pytest.raises(ValueError, match="expected a diffusion sampler"):
        make_sampler(SamplerConfig("flow_euler", 5), diffusion)
    with pytest.raises(ValueError, match=r"sampler\.name='dpm'"):
        make_sampler(SamplerConfig("dpm", 5), diffusion)
    assert set(sampler_names("diffusion")) >= {"ddpm", "ddim", "heun", "dpmpp_2m"}
    assert set(sampler_names("flow")) == {"flow_euler", "flow_midpoint", "flow_heun"}
    assert sampler_names("masked") == ("masked",)


def test_every_registered_sampler_declares_its_seam():
    """name, family, nfe, query_times and a public step: what GPC, RTI, DPPO and MoDE's cache rely on."""
    for name, cls in SAMPLERS.items():
        assert cls.name == name and cls.family in ("diffusion", "flow", "masked")
        for method in ("default_timesteps", "add_noise", "step", "nfe", "query_times", "sample"):
            assert callable(getattr(cls, method)), (name, method)
        assert not inspect.isabstract(cls), (name, sorted(cls.__abstractmethods__))  # every method implemented


@pytest.mark.parametrize(
    "name,steps,nfe,times",
    [
        ("ddim", [90, 45, 0], 3, [90, 45, 0]),
        ("dpmpp_2m", [90, 45, 0], 3, [90, 45, 0]),
        ("heun", [90, 45, 0], 4, [90, 45, 0]),
        ("flow_euler", [0.0, 0.5], 2, [0.0, 0.5]),
        ("flow_midpoint", [0.0, 0.5], 4, [0.0, 0.5, 0.25, 0.75]),
        ("flow_heun", [0.0, 0.5], 3, [0.0, 0.5, 1.0]),
    ],
)
def test_network_evaluations_and_query_times(name, steps, nfe, times):
    schedule = FlowSchedule() if name.startswith("flow") else DiffusionSchedule(100)
    sampler = make_sampler(SamplerConfig(name, len(steps), clip_sample=None), schedule)
    assert sampler.nfe(steps) == nfe and sampler.query_times(steps) == times
    asked = []
    den = PointDenoiser(schedule, torch.zeros(1, 16, 2), "velocity")
    predict = den.predict
    den.predict = lambda x_t, t, cond, kind, **kw: asked.append(float(t[0])) or predict(x_t, t, cond, kind)
    sampler.sample(den, torch.randn(1, 16, 2), None, steps)
    assert len(asked) == nfe and sorted(set(asked)) == sorted(set(times) - {1.0})


def test_trailing_spacing_starts_at_the_noisiest_level(target):
    schedule = DiffusionSchedule(100)
    sampler = DDIMSampler(schedule, num_inference_steps=10, timestep_spacing="trailing")
    assert sampler.default_timesteps() == [99, 88, 77, 66, 55, 44, 33, 22, 11, 0]
    assert sampler.default_timesteps(3, start=20) == [20, 10, 0]  # warm starts are unchanged
    den = PointDenoiser(schedule, target)
    assert torch.allclose(sampler.sample(den, torch.randn_like(target), None), target, atol=1e-4)


def test_quadratic_spacing_shortens_the_steps_near_clean_data(target):
    schedule = DiffusionSchedule(100)
    sampler = make_sampler(SamplerConfig("ddim", 10, timestep_spacing="quadratic"), schedule)
    assert isinstance(sampler, DDIMSampler) and sampler.config.timestep_spacing == "quadratic"
    assert sampler.default_timesteps() == [90, 71, 54, 40, 28, 18, 10, 4, 1, 0]  # round(90·(1 − i/9)²)
    assert sampler.default_timesteps(3) == [67, 17, 0]
    assert sampler.default_timesteps(3, start=20) == [20, 10, 0]  # warm starts are unchanged
    assert len(quadratic_levels(90, 50)) < 50  # rounding merges levels near 0: fewer evaluations, never repeats
    den = PointDenoiser(schedule, target, "epsilon")
    assert torch.allclose(sampler.sample(den, torch.randn_like(target), None), target, atol=1e-4)
    assert den.calls == 10


def test_ddim_asks_a_denoiser_for_its_native_kind():
    """A denoiser that declares native_kind = "sample" is asked for samples (no round trip through epsilon) and
    DDIM takes the same path as through epsilon, within float tolerance; others are asked for epsilon."""
    schedule = DiffusionSchedule(100)
    gauss = GaussianDenoiser(schedule, mu=0.3, s=0.5)
    asked = []

    class Native(GaussianDenoiser):
        native_kind = "sample"

        def predict(self, x_t, t, cond, kind):
            asked.append(kind)
            return super().predict(x_t, t, cond, kind)

    x = torch.randn(2, 16, 2, generator=torch.Generator().manual_seed(0))
    sampler = DDIMSampler(schedule, num_inference_steps=5, clip_sample=None)
    via_eps = sampler.sample(gauss, x, None)
    via_sample = sampler.sample(Native(schedule, mu=0.3, s=0.5), x, None)
    assert asked == ["sample"] * 5
    assert torch.allclose(via_sample, via_eps, atol=1e-4)


@pytest.mark.parametrize("native", ["sample", "epsilon"])
def test_dpm_solver_lands_on_the_data_point_with_one_evaluation_per_level(target, native):
    schedule = DiffusionSchedule(100)
    den = PointDenoiser(schedule, target, native)
    sampler = make_sampler(SamplerConfig("dpmpp_2m", 5), schedule)
    out = sampler.sample(den, torch.randn_like(target), None)
    assert den.calls == 5 == sampler.nfe(sampler.default_timesteps())
    assert torch.allclose(out, target, atol=1e-4)


def test_dpm_solver_first_step_is_ddim_and_later_steps_use_the_previous_estimate():
    """The first step has no history: exactly DDIM's update. The second extrapolates the last two x0 estimates."""
    schedule = DiffusionSchedule(100)
    den = GaussianDenoiser(schedule, mu=0.3, s=0.5)
    x = torch.randn(4, 16, 2)
    dpm = make_sampler(SamplerConfig("dpmpp_2m", 3, clip_sample=None), schedule)
    ddim = make_sampler(SamplerConfig("ddim", 3, clip_sample=None), schedule)
    first, carry = dpm.step(den, x, 90, 60, None)
    torch.testing.assert_close(first, ddim.step(den, x, 90, 60, None)[0], atol=1e-5, rtol=1e-5)
    second = dpm.step(den, first, 60, 30, None, carry=carry)[0]
    assert not torch.allclose(second, ddim.step(den, first, 60, 30, None)[0], atol=1e-4)


@pytest.mark.parametrize("nfe", [5, 10])
def test_dpm_solver_follows_the_ode_more_closely_than_ddim_at_equal_evaluations(nfe):
    """Gaussian data (the ODE's end point in closed form), from the schedule's level 66 as DDIM-leading starts."""
    schedule = DiffusionSchedule(100)
    den = GaussianDenoiser(schedule, mu=0.0, s=0.1)
    x_init = torch.randn(128, 16, 2, generator=torch.Generator().manual_seed(0))
    ab = float(schedule.alphas_cumprod[66])
    exact = den.exact(x_init, ab**0.5, (1 - ab) ** 0.5)
    errors = {}
    for name in ("ddim", "dpmpp_2m"):
        sampler = make_sampler(SamplerConfig(name, nfe, clip_sample=None), schedule)
        steps = sampler.default_timesteps(nfe, start=66)
        assert sampler.nfe(steps) == nfe
        errors[name] = float((sampler.sample(den, x_init, None, steps) - exact).pow(2).mean().sqrt())
    assert errors["dpmpp_2m"] < 0.6 * errors["ddim"], errors


def test_heun_levels_are_karras_sigmas_on_the_schedules_own_levels():
    """EDM's ρ = 7 levels in σ̃ = σ/α map onto the DDPM schedule's integer levels: the top is the noisiest level with
    σ̃ ≤ 80, each next level the one nearest Karras' target, and 30 of them integrate the exact ODE of Gaussian data
    from that top level to its closed-form end point (so a few-level failure is the steps, not the mapping)."""
    schedule = DiffusionSchedule(100)
    heun = HeunSampler(schedule, clip_sample=None)
    sigma = heun.sigmas()
    levels = heun.default_timesteps(3)
    assert levels == [98, 82, 0] and 60 < float(sigma[98]) < 80
    middle = ((float(sigma[98]) ** (1 / 7) + float(sigma[0]) ** (1 / 7)) / 2) ** 7  # Karras' middle σ̃ ≈ 4.4
    assert int((sigma - middle).abs().argmin()) == 82
    den = GaussianDenoiser(schedule, mu=0.3, s=0.5)
    x_init = torch.randn(256, 16, 2, generator=torch.Generator().manual_seed(0))
    ab = float(schedule.alphas_cumprod[98])
    exact = den.exact(x_init, ab**0.5, (1 - ab) ** 0.5)
    out = heun.sample(den, x_init, None, heun.default_timesteps(30))
    assert float((out - exact).pow(2).mean().sqrt()) < 0.01


class LevelDenoiser(PointDenoiser):
    """A denoiser whose clean-sample estimate depends on the level it is asked at: `targets[level]` (B, T, A)."""

    def __init__(self, schedule, targets: dict[int, torch.Tensor]):
        super().__init__(schedule, next(iter(targets.values())))
        self.targets = targets

    def predict(self, x_t, t, cond, kind):
        self.target = self.targets[int(t[0])]
        return super().predict(x_t, t, cond, kind)


def test_heun_over_a_long_step_extrapolates_the_change_of_the_clean_estimate():
    """Why EDM-Heun fails at 3 levels on PushT while DDIM on the same levels does not: from level 98 (σ̃ ≈ 64) to 82
    (σ̃ ≈ 3.7) Heun's trapezoid lands ½(σ̃₉₈/σ̃₈₂ − 1) ≈ 8.2 times the change of the clean-sample estimate between the
    two levels away from DDIM's point (DDIM is the Euler step in x / √ᾱ). A multimodal policy commits to a mode in
    that interval, so its estimate changes much and the corrected point is far outside the data."""
    schedule = DiffusionSchedule(100)
    heun = HeunSampler(schedule, clip_sample=None)
    ddim = DDIMSampler(schedule, clip_sample=None)
    before, after = torch.zeros(2, 16, 2), torch.full((2, 16, 2), 0.1)
    den = LevelDenoiser(schedule, {98: before, 82: after})
    x = torch.randn(2, 16, 2, generator=torch.Generator().manual_seed(0))
    x_heun, x_ddim = heun.step(den, x, 98, 82, None)[0], ddim.step(den, x, 98, 82, None)[0]
    sigma = heun.sigmas()
    factor = 0.5 * (float(sigma[98] / sigma[82]) - 1.0)
    assert 8.0 < factor < 8.5
    root_ab = heun.alpha_bar(82) ** 0.5
    torch.testing.assert_close((x_heun - x_ddim) / root_ab, factor * (after - before), atol=1e-5, rtol=1e-4)
    den_same = LevelDenoiser(schedule, {98: before, 82: before})  # an estimate that does not change: no correction
    same_heun, same_ddim = heun.step(den_same, x, 98, 82, None)[0], ddim.step(den_same, x, 98, 82, None)[0]
    torch.testing.assert_close(same_heun, same_ddim, atol=1e-4, rtol=1e-4)
