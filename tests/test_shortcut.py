"""Shortcut flow models: step-size codes, the self-consistency targets, samplers telling the network its step, and a
shortcut policy that trains, round-trips through safetensors and samples with 1 … 128 steps on the same weights."""

from __future__ import annotations

import pytest
import torch

from diffpilot.policies.diffusion_policy import DiffusionPolicy
from diffpilot.policies.samplers import FlowEulerSampler, FlowMidpointSampler, FlowSchedule, SamplerConfig
from diffpilot.policies.shortcut import ShortcutDenoiser, StepSizeCode, shortcut_batch, step_list_jumps

from .conftest import tiny_config

SHORTCUT = dict(
    objective="flow",
    prediction_type="velocity",
    sampler={"name": "flow_euler", "clip_sample": None, "num_inference_steps": 2},
    shortcut={"steps": 8},
)


def shortcut_config(**fields):
    """The tiny shortcut policy's config with these ShortcutConfig fields."""
    return tiny_config(**{**SHORTCUT, "shortcut": {"steps": 8, **fields}})


def test_step_sizes_map_to_the_trained_codes():
    code = StepSizeCode(128)
    d = torch.tensor([0.0, 1 / 128, 1 / 64, 1 / 8, 0.1, 0.3, 1.0, 2.0])
    # 0 and the finest step are the flow field (code 0); 2^k/128 is code k; others snap in log scale
    assert code.index(d).tolist() == [0, 0, 1, 4, 4, 5, 7, 7]
    assert code(d).shape == (8, code.n_codes) and code.n_codes == 8


def test_shortcut_steps_must_be_a_power_of_two():
    with pytest.raises(ValueError, match=r"shortcut\.steps=96: expected 0 \(off\) or a power of two"):
        shortcut_config(steps=96)
    with pytest.raises(ValueError, match="a shortcut model is a flow model predicting velocity"):
        tiny_config(shortcut={"steps": 8})  # a diffusion policy
    with pytest.raises(ValueError, match=r"shortcut.fraction=1\.0"):
        shortcut_config(fraction=1.0)
    with pytest.raises(ValueError, match=r"shortcut.target_steps=3: expected a power of two"):
        shortcut_config(target_steps=3)


class _LinearNet(torch.nn.Module):
    """velocity = a·x + b·cond (first action columns) + time/1000: simple enough to recompute targets by hand."""

    def forward(self, x, time, cond):
        return 0.5 * x + cond[:, None, : x.shape[-1]] + (time / 1000.0)[:, None, None]


def test_self_consistency_rows_average_two_half_steps():

    code = StepSizeCode(8)
    den = ShortcutDenoiser(_LinearNet(), FlowSchedule(), "velocity", code)
    gen = torch.Generator().manual_seed(0)
    x0, noise, cond = torch.randn(8, 4, 2), torch.randn(8, 4, 2), torch.randn(8, 3)
    t = torch.rand(8) * 0.9
    x_t, t_out, d, target = shortcut_batch(den, x0, noise, t, cond, fraction=0.5, generator=gen)
    fm, sc = slice(0, 4), slice(4, 8)
    assert (d[fm] == 0).all() and torch.equal(t_out[fm], t[fm])
    torch.testing.assert_close(target[fm], (x0 - noise)[fm])
    assert set(d[sc].tolist()) <= {0.25, 0.5, 1.0} and (t_out[sc] + d[sc] <= 1.0 + 1e-6).all()
    torch.testing.assert_close(x_t, t_out[:, None, None] * x0 + (1 - t_out[:, None, None]) * noise)
    for i in range(4, 8):
        half = float(d[i]) / 2
        query = 0.0 if half * 8 < 1.5 else half  # the finest step asks the flow field
        xi, ti, ci = x_t[i : i + 1], t_out[i : i + 1], cond[i : i + 1]
        v1 = den.raw(xi, ti, ci, query)
        v2 = den.raw(xi + half * v1, ti + half, ci, query)
        torch.testing.assert_close(target[i : i + 1], 0.5 * (v1 + v2))


def test_self_consistency_target_from_k_small_steps():
    """target_steps=4: a jump of 2d is trained towards four steps of 2d/4 (their mean velocity)."""

    code = StepSizeCode(16)
    den = ShortcutDenoiser(_LinearNet(), FlowSchedule(), "velocity", code)
    gen = torch.Generator().manual_seed(1)
    x0, noise, cond = torch.randn(6, 4, 2), torch.randn(6, 4, 2), torch.randn(6, 3)
    x_t, t_out, d, target = shortcut_batch(den, x0, noise, torch.rand(6), cond, 1 / 3, gen, target_steps=4)
    two = shortcut_batch(den, x0, noise, torch.rand(6), cond, 1 / 3, torch.Generator().manual_seed(1))[3]
    for i in (4, 5):
        quarter = float(d[i]) / 4
        query = 0.0 if quarter * 16 < 1.5 else quarter
        x, ti, ci = x_t[i : i + 1], t_out[i : i + 1], cond[i : i + 1]
        for _ in range(4):
            x, ti = x + quarter * den.raw(x, ti, ci, query), ti + quarter
        torch.testing.assert_close(target[i : i + 1], (x - x_t[i : i + 1]) / d[i])
        assert not torch.allclose(target[i], two[i])  # not the two-half-step target
    torch.testing.assert_close(target[:4], (x0 - noise)[:4])


def test_self_consistency_rows_on_a_restricted_grid_target_the_flow_field():
    """sizes/times: every self-consistency row is a jump of 1/8 from t ∈ {0.625, 0.75, 0.875} (RTI's grid), and with
    K = 2d·M steps its target is the flow field's own path (d = 0 at every small step)."""

    code = StepSizeCode(16)
    den = ShortcutDenoiser(_LinearNet(), FlowSchedule(), "velocity", code)
    x0, noise, cond = torch.randn(40, 4, 2), torch.randn(40, 4, 2), torch.randn(40, 3)
    times = (0.625, 0.75, 0.875)
    gen = torch.Generator().manual_seed(2)
    x_t, t_out, d, target = shortcut_batch(
        den, x0, noise, torch.rand(40), cond, 0.5, gen, target_steps=2, sizes=(0.125,), times=times
    )
    assert d[:20].eq(0).all() and d[20:].eq(0.125).all()
    assert {round(v, 6) for v in t_out[20:].tolist()} == set(times)  # 20 draws hit all three starts
    for i in (20, 33):
        x, ti, ci = x_t[i : i + 1], t_out[i : i + 1], cond[i : i + 1]
        for _ in range(2):  # 2 steps of 1/16 = the finest step: the flow field
            x, ti = x + (1 / 16) * den.raw(x, ti, ci, 0.0), ti + 1 / 16
        torch.testing.assert_close(target[i : i + 1], (x - x_t[i : i + 1]) / 0.125)


def test_restricted_grid_must_fit_the_trained_sizes():
    with pytest.raises(ValueError, match=r"shortcut.sizes entry 0\.1: expected one of the trained jumps"):
        shortcut_config(sizes=[0.1])
    with pytest.raises(ValueError, match=r"shortcut.times entry 0\.9: expected a start in \[0, 0\.75\]"):
        shortcut_config(sizes=[0.25], times=[0.5, 0.9])
    with pytest.raises(ValueError, match=r"shortcut.times=\[0\.5\] without shortcut.sizes"):
        shortcut_config(times=[0.5])
    cfg = shortcut_config(sizes=[0.25], times=[0.5, 0.75])
    assert cfg.shortcut.sizes == (0.25,) and cfg.shortcut.times == (0.5, 0.75)
    assert type(cfg).from_dict(cfg.to_dict()) == cfg  # survives config.json


def test_step_list_rows_train_exactly_the_jumps_of_an_uneven_step_list():
    """shortcut.step_list [0.125, 0.625, 0.875]: rows (t, 2d) are (0.125, 1/2), (0.625, 1/4), (0.875, 1/8) only."""

    jumps = step_list_jumps(16, (0.125, 0.625, 0.875))
    assert jumps == ((0.125, 0.5), (0.625, 0.25), (0.875, 0.125))
    den = ShortcutDenoiser(_LinearNet(), FlowSchedule(), "velocity", StepSizeCode(16))
    x0, noise, cond = torch.randn(60, 4, 2), torch.randn(60, 4, 2), torch.randn(60, 3)
    gen = torch.Generator().manual_seed(3)
    _, t_out, d, _ = shortcut_batch(den, x0, noise, torch.rand(60), cond, 0.5, gen, target_steps=4, jumps=jumps)
    assert d[:30].eq(0).all()
    assert {(round(a, 6), round(b, 6)) for a, b in zip(t_out[30:].tolist(), d[30:].tolist())} == set(jumps)


def test_step_list_must_be_increasing_trained_jumps_and_exclusive_with_the_grid():
    with pytest.raises(ValueError, match=r"the step from t=0\.5 is 0\.375; expected every step to be a trained jump"):
        shortcut_config(step_list=[0.25, 0.5, 0.875])
    with pytest.raises(ValueError, match=r"shortcut.step_list=\[0\.5, 0\.5\]: expected strictly increasing"):
        shortcut_config(step_list=[0.5, 0.5])
    with pytest.raises(ValueError, match=r"expected one way of choosing the trained jumps"):
        shortcut_config(step_list=[0.5, 0.75], sizes=[0.25])
    cfg = shortcut_config(step_list=[0.5, 0.75])
    assert cfg.shortcut.step_list == (0.5, 0.75)
    assert type(cfg).from_dict(cfg.to_dict()) == cfg  # survives config.json


class _StepRecorder:
    step_aware = True

    def __init__(self):
        self.steps = []

    def predict(self, x_t, t, cond, kind, step=0.0):
        self.steps.append(round(step, 6))
        return torch.zeros_like(x_t)


class _PlainDenoiser:
    def predict(self, x_t, t, cond, kind):  # no `step` argument: must never be passed one
        return torch.zeros_like(x_t)


def test_flow_sampler_tells_a_step_aware_denoiser_its_euler_step():
    x = torch.randn(2, 4, 2)
    rec = _StepRecorder()
    FlowEulerSampler(FlowSchedule(), num_inference_steps=4).sample(rec, x, None)
    assert rec.steps == [0.25] * 4
    rec = _StepRecorder()
    FlowEulerSampler(FlowSchedule()).sample(
        rec, x, None, timesteps=[0.625, 0.75, 0.875]
    )  # a warm start: 3 steps of 1/8
    assert rec.steps == [0.125] * 3
    rec = _StepRecorder()
    FlowMidpointSampler(FlowSchedule(), num_inference_steps=2).sample(rec, x, None)
    assert rec.steps == [0.0] * 4  # midpoint combines instantaneous velocities
    FlowEulerSampler(FlowSchedule(), num_inference_steps=3).sample(_PlainDenoiser(), x, None)


def test_shortcut_policy_trains_round_trips_and_samples_with_any_step_count(tmp_path):
    torch.manual_seed(0)
    policy = DiffusionPolicy(tiny_config(**SHORTCUT))
    assert isinstance(policy.denoiser, ShortcutDenoiser)
    batch = {k: torch.randn(8, 2, v.shape[0]) for k, v in policy.config.input_features.items()}
    batch["action"] = torch.rand(8, 16, 2) * 2 - 1
    loss = policy.compute_loss(batch, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in policy.net.parameters() if p.requires_grad)
    policy.save_pretrained(tmp_path / "sc")
    loaded = DiffusionPolicy.from_pretrained(tmp_path / "sc").eval()
    window = {k: v for k, v in batch.items() if k != "action"}
    noise = torch.randn(8, 16, 2)
    asked = []
    original = loaded.denoiser.code.index
    loaded.denoiser.code.index = lambda d: asked.append(d[0].item()) or original(d)
    for steps, code in ((1, 3), (2, 2), (8, 0)):
        asked.clear()
        view = loaded.with_sampler(loaded.config.sampler.replace(num_inference_steps=steps))
        out = view.predict_chunk(window, noise=noise)
        assert out.shape == (8, 16, 2) and torch.isfinite(out).all()
        assert [original(torch.tensor([a])).item() for a in asked] == [code] * steps
    eight = SamplerConfig("flow_euler", 8, clip_sample=None)
    torch.testing.assert_close(
        policy.eval().with_sampler(eight).predict_chunk(window, noise=noise),
        loaded.with_sampler(eight).predict_chunk(window, noise=noise),
    )


def test_chunk_error_bench_is_zero_on_the_fine_path_and_positive_for_few_steps(tmp_path, lerobot_dataset):
    """bench/chunk_error.py: the same step list as the reference lands exactly on it; one big step does not."""
    import importlib.util
    from pathlib import Path

    from diffpilot.policies.datasets.loading import load_episodes

    spec = importlib.util.spec_from_file_location("chunk_error", Path(__file__).parents[1] / "bench" / "chunk_error.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    torch.manual_seed(0)
    policy = DiffusionPolicy(tiny_config(**SHORTCUT))
    policy.load_stats(load_episodes(lerobot_dataset, "lerobot_v3", [*policy.observation_keys, "action"])[1])
    policy.save_pretrained(tmp_path / "sc")
    errors = bench.chunk_errors(tmp_path / "sc", lerobot_dataset, [(0.0, 8), (0.5, 4), (0.0, 1)], 16, 8, 0)
    assert errors["0:8"] == 0.0 and errors["0.5:4"] == 0.0  # steps of 1/8: the reference's own
    assert errors["0:1"] > 0.0
    with pytest.raises(SystemExit, match="expected <start time in"):
        bench.parse_pair("1.2:3")


def test_warm_shift_rows_start_from_what_rti_would_renoise():
    """warm_shift=k: a self-consistency row's x_t is built from the chunk RTI's warm start would hold — the previous
    window's chunk shifted by k with an extrapolated tail (RTIWarmStart._shift) — the flow-matching rows from data."""
    from types import SimpleNamespace

    from diffpilot.policies.samplers import FlowSchedule
    from diffpilot.policies.shortcut import warm_start_chunk
    from diffpilot.policies.warmstart import RTIWarmStart

    previous = torch.randn(6, 20, 2)  # a trajectory; window i+4's chunk overlaps window i's by 12 steps
    prev_chunk, chunk = previous[:, :16], previous[:, 4:]
    shifted = RTIWarmStart._shift(SimpleNamespace(pad="extrapolate"), prev_chunk, 4)
    torch.testing.assert_close(warm_start_chunk(chunk, 4), shifted)
    den = ShortcutDenoiser(_LinearNet(), FlowSchedule(), "velocity", StepSizeCode(16))
    noise, cond = torch.randn(6, 16, 2), torch.randn(6, 3)
    args = (den, chunk, noise, torch.rand(6), cond, 0.5, torch.Generator().manual_seed(0))
    x_t, t, d, _ = shortcut_batch(*args, sizes=(0.125,), times=(0.625,), warm_shift=4)
    rows = slice(3, 6)
    assert d[rows].eq(0.125).all() and t[rows].eq(0.625).all()
    torch.testing.assert_close(x_t[rows], 0.625 * shifted[rows] + 0.375 * noise[rows])
    torch.testing.assert_close(x_t[:3], t[:3, None, None] * chunk[:3] + (1 - t[:3, None, None]) * noise[:3])
    with pytest.raises(ValueError, match=r"shortcut.warm_shift=15: expected 0 \(off\) … horizon − 2 = 14"):
        shortcut_config(warm_shift=15)


def test_rti_fine_tune_experiment_trains_from_the_shortcut_experiment(tmp_path, lerobot_dataset):
    """experiment=pusht_shortcut_cpu, then experiment=pusht_shortcut_rti_cpu from its weights (one step each): the
    fine-tune's grid reaches the saved config and the loaded policy still samples RTI's three jumps."""
    from hydra import compose, initialize_config_module

    from diffpilot.commands.train import run_training

    common = [f"dataset.root={lerobot_dataset}", "train.steps=1", "train.batch_size=8", "train.warmup_steps=1",
              "train.save_every=0", "eval.episodes=0", "train.num_threads=1"]  # fmt: skip
    with initialize_config_module("diffpilot.configs", version_base="1.3"):
        base_cfg = compose("train", ["experiment=pusht_shortcut_cpu", f"output_dir={tmp_path / 'base'}", *common])
        base = run_training(base_cfg)
        rti_cfg = compose(
            "train",
            ["experiment=pusht_shortcut_rti_cpu", f"init_from={base['checkpoint']}/pretrained_model",
             "policy.shortcut.warm_shift=4", f"output_dir={tmp_path / 'rti'}", *common],
        )  # fmt: skip
    result = run_training(rti_cfg)
    policy = DiffusionPolicy.from_pretrained(f"{result['checkpoint']}/pretrained_model").eval()
    c = policy.config
    assert (c.shortcut.sizes, c.shortcut.times) == ((0.125,), (0.625, 0.75, 0.875))
    assert (c.shortcut.target_steps, c.shortcut.warm_shift) == (16, 4)
    window = {k: torch.randn(2, c.n_obs_steps, *v.shape) for k, v in c.input_features.items()}
    chunk = policy.predict_chunk(window, noise=torch.randn(2, c.horizon, c.action_dim), timesteps=[0.625, 0.75, 0.875])
    assert chunk.shape == (2, c.horizon, c.action_dim) and torch.isfinite(chunk).all()
