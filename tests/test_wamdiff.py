"""WAM-Diff: the trajectory tokeniser, the masked-diffusion sampler's orders and iteration counts, the policy's
loss / decoding / log-probabilities on real driving observations, and its checkpoint round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffpilot.envs.driving import observe_batch
from diffpilot.policies.driving import trajectory_tokens as tt
from diffpilot.policies.driving.wamdiff import WAMDiffConfig, WAMDiffPolicy
from diffpilot.policies.registry import load_policy
from diffpilot.policies.samplers.masked import MaskedSampler
from diffpilot.sim.planners import PDMClosedPlanner
from diffpilot.sim.scenarios import make_split


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small tensors: one thread is faster, and far faster on a shared, busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------------------------- tokeniser


def test_round_trip_error_is_bounded_by_half_the_resolution():
    rng = np.random.default_rng(0)
    traj = rng.uniform(-100.0, 99.995, size=(256, 8, 3))
    back = tt.decode(tt.encode(traj)).numpy()
    assert np.abs(back - traj).max() <= tt.MAX_ROUND_TRIP_ERROR + 1e-9
    assert pytest.approx(0.005) == tt.MAX_ROUND_TRIP_ERROR


def test_layout_coarse_then_fine_digit_per_value():
    traj = np.zeros((1, 8, 3))
    traj[0, 0] = [1.23, -0.5, 0.07]  # pose 0: x, y, heading
    traj[0, 7, 1] = 12.34  # pose 7, y
    tok = tt.encode(traj)[0]
    assert tok.shape == (tt.TOKENS,) == (48,)
    # x = 1.23 -> index (1.23 + 100) / 0.01 = 10123 -> coarse 1012, fine 3
    assert tok[0] == 1012 and tok[1] == tt.FINE_OFFSET + 3
    # y = -0.5 -> 9950 -> coarse 995, fine 0; heading 0.07 -> 10007 -> 1000, 7
    assert tok[2:6].tolist() == [995, tt.FINE_OFFSET + 0, 1000, tt.FINE_OFFSET + 7]
    # pose 7, channel y sits at 7 * 6 + 1 * 2
    assert tok[44] == 1123 and tok[45] == tt.FINE_OFFSET + 4
    assert tt.pose_of_position()[44] == 7 and bool(tt.position_is_fine()[45])


def test_out_of_range_values_clamp_and_bad_input_is_named():
    back = tt.decode(tt.encode(np.full((1, 8, 3), 250.0)))
    assert float(back.max()) == pytest.approx(99.99)
    with pytest.raises(ValueError, match="NaN"):
        tt.encode(np.full((1, 8, 3), np.nan))
    with pytest.raises(ValueError, match=r"expected \(B, 8, 3\)"):
        tt.encode(np.zeros((2, 8, 2)))
    bad = tt.encode(np.zeros((1, 8, 3)))
    bad[0, 1] = 5  # a coarse id where a fine digit belongs
    with pytest.raises(ValueError, match="position 1 is not a valid fine digit"):
        tt.decode(bad)


# ----------------------------------------------------------------------------------------------- sampler


class RecordingDenoiser:
    """A fixed distribution over 4 ids per position; records which positions are still masked per call."""

    def __init__(self, length: int, mask_id: int, confident: list[int]):
        self.mask_id, self.calls = mask_id, []
        logits = torch.zeros(length, 4)
        logits[:, 1] = 1.0
        for rank, pos in enumerate(confident):  # earlier in `confident` = more confident
            logits[pos, 2] = 10.0 - rank
        self.logp = torch.log_softmax(logits, -1)

    def log_probs(self, x_t, cond):
        self.calls.append((x_t == self.mask_id).clone())
        return self.logp.expand(len(x_t), -1, -1)


def commit_order(calls: list[torch.Tensor]) -> list[int]:
    """Position committed at each step (one per step)."""
    order = []
    for before, after in zip(calls, [*calls[1:], torch.zeros_like(calls[0])], strict=True):
        newly = (before & ~after)[0].nonzero().flatten().tolist()
        assert len(newly) == 1
        order += newly
    return order


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("causal", [0, 1, 2, 3, 4, 5]),
        ("reverse_causal", [4, 5, 2, 3, 0, 1]),  # groups (poses) 2, 1, 0; positions in order inside a group
        ("confidence", [3, 0, 5, 1, 4, 2]),
    ],
)
def test_unmasking_orders_one_token_per_iteration(order, expected):
    den = RecordingDenoiser(6, mask_id=9, confident=[3, 0, 5, 1, 4, 2])
    sampler = MaskedSampler(mask_id=9, order=order, group=torch.tensor([0, 0, 1, 1, 2, 2]))
    out = sampler.sample(den, torch.full((2, 6), 9), None, sampler.default_timesteps(6))
    assert len(den.calls) == 6
    assert commit_order(den.calls) == expected
    assert not (out == 9).any()
    assert (out == 2).all()  # the most likely id at every position


def test_random_order_and_iteration_count():
    den = RecordingDenoiser(8, mask_id=9, confident=list(range(8)))
    sampler = MaskedSampler(mask_id=9, order="random", temperature=1.0)
    out = sampler.sample(
        den, torch.full((3, 8), 9), None, sampler.default_timesteps(4), torch.Generator().manual_seed(0)
    )
    assert len(den.calls) == 4  # 8 positions in 4 iterations: 2 per step
    assert [int(c[0].sum()) for c in den.calls] == [8, 6, 4, 2]
    assert out.shape == (3, 8) and ((out >= 0) & (out < 4)).all()
    first = MaskedSampler(mask_id=9, order="random")
    with pytest.raises(ValueError, match="order='sideways'"):
        MaskedSampler(mask_id=9, order="sideways")
    # a warm start: only the masked positions are decoded
    x0 = torch.zeros(1, 8, dtype=torch.long)
    x_init = first.add_noise(x0, torch.linspace(0, 0.99, 8)[None], 0.5)
    assert int((x_init == 9).sum()) == 4
    out = first.sample(den, x_init, None, [0.5, 0.25, 0.0])
    assert (out[0, 4:] == 0).all() and (out[0, :4] == 2).all()


# ----------------------------------------------------------------------------------------------- policy


@pytest.fixture(scope="module")
def driving_batch():
    scenes = make_split("train", 4)
    obs = observe_batch(scenes)
    planner = PDMClosedPlanner()
    obs["trajectory"] = np.stack([planner.plan(s) for s in scenes]).astype(np.float32)
    return obs


def tiny_wamdiff(**kw) -> WAMDiffPolicy:
    torch.manual_seed(0)
    return WAMDiffPolicy(WAMDiffConfig(d_model=32, n_heads=2, layers=1, iterations=4, **kw))


def test_masked_diffusion_loss_trains_and_decodes(driving_batch):
    policy = tiny_wamdiff()
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = policy.compute_loss(driving_batch, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all() and np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    policy.eval()
    obs = {k: v for k, v in driving_batch.items() if k != "trajectory"}
    plans = policy.plan(obs)
    assert plans.shape == (4, 8, 3) and np.isfinite(plans).all()
    tokens = policy.sample_tokens(obs, repeat=3, temperature=1.0, generator=torch.Generator().manual_seed(1))
    assert tokens.shape == (12, tt.TOKENS) and not (tokens == tt.MASK_ID).any()
    for order in ("random", "confidence", "causal", "reverse_causal"):
        assert policy.plan(obs, order=order, iterations=2).shape == (4, 8, 3)
    guided = policy.plan(obs, guidance_scale=3.0)
    assert guided.shape == (4, 8, 3) and np.isfinite(guided).all()


def test_one_step_unmasking_log_probs(driving_batch):
    policy = tiny_wamdiff().eval()
    obs = {k: v for k, v in driving_batch.items() if k != "trajectory"}
    tokens = tt.encode(driving_batch["trajectory"])
    lp = policy.token_log_probs(obs, tokens.repeat(2, 1), repeat=2)
    assert lp.shape == (8, tt.TOKENS) and (lp <= 0).all() and torch.isfinite(lp).all()
    assert torch.allclose(lp[:4], lp[4:])  # row r belongs to scene r % B
    # every position is a normalised distribution over the ids it may hold
    h = policy.backbone(torch.full_like(tokens, tt.MASK_ID), policy.encode_scene(obs))
    probs = policy.head_log_probs(h).exp()
    assert torch.allclose(probs.sum(-1), torch.ones(4, tt.TOKENS), atol=1e-5)
    assert float((probs.detach() * ~tt.valid_class_mask()).sum()) == 0.0
    assert torch.allclose(policy.sequence_log_probs(obs, tokens), lp[:4].sum(-1))
    lp.sum().backward()  # differentiable (what GSPO optimises)
    assert policy.coarse.weight.grad is not None


def test_checkpoint_round_trip(driving_batch, tmp_path):
    policy = tiny_wamdiff(order="confidence").eval()
    obs = {k: v for k, v in driving_batch.items() if k != "trajectory"}
    policy.save_pretrained(tmp_path / "wam")
    again = load_policy(tmp_path / "wam")
    assert isinstance(again, WAMDiffPolicy) and again.config == policy.config
    np.testing.assert_array_equal(again.plan(obs), policy.plan(obs))
    with pytest.raises(ValueError, match="order='diagonal'"):
        WAMDiffConfig(order="diagonal")
    with pytest.raises(ValueError, match="iterations=60"):
        WAMDiffConfig(iterations=60)
    with pytest.raises(ValueError, match=r"unknown keys \['lidar'\]"):
        WAMDiffConfig(scene={"lidar": 1})
