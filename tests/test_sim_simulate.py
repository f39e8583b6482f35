"""LQR tracker + kinematic bicycle: tracking, lags and limits, vectorisation, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from diffpilot.sim.simulate import simulate_proposals

T = np.arange(1, 9) * 0.5


def test_tracks_a_straight_constant_speed_proposal_exactly():
    st = simulate_proposals(np.stack([10 * T, 0 * T, 0 * T], -1)[None], speed=10.0)
    assert st.poses.shape == (1, 41, 3)
    assert np.allclose(st.poses[0, ::5, 0], np.r_[0.0, 10 * T], atol=1e-6)
    assert np.allclose(st.poses[0, :, 1], 0.0) and np.allclose(st.speed, 10.0)


def test_tracks_a_curve_within_a_few_decimetres():
    r = 50.0
    th = 10 * T / r
    prop = np.stack([r * np.sin(th), r * (1 - np.cos(th)), th], -1)
    st = simulate_proposals(prop[None], speed=10.0, steering=np.arctan(3.089 / r))  # already steering into it
    err = np.linalg.norm(st.poses[0, 5::5, :2] - prop[:, :2], axis=-1)
    assert err.max() < 0.3
    cold = simulate_proposals(prop[None], speed=10.0)  # starting with straight wheels lags behind
    assert np.linalg.norm(cold.poses[0, 5::5, :2] - prop[:, :2], axis=-1).max() > err.max()
    assert np.all(np.abs(st.steering) <= np.pi / 3 + 1e-12)


def test_acceleration_lag_and_braking_response():
    stop = np.where(T < 2, 10 * T - 2.5 * T**2, 10.0)
    st = simulate_proposals(np.stack([stop, 0 * T, 0 * T], -1)[None], speed=10.0)
    # first-order lag (0.2 s): the first step's acceleration is only dt / (dt + 0.2) of the command
    assert st.accel_lon[0, 0] == 0.0 and -5.0 < st.accel_lon[0, 1] < -1.0
    assert st.speed[0, -1] < 0.3 and np.all(st.speed >= 0.0)


def test_batch_equals_rows_and_nan_rows_are_flagged():
    props = np.stack([np.stack([v * T, 0.1 * v * T, 0.01 * v * T], -1) for v in (0.0, 5.0, 12.0)])
    props = np.concatenate([props, np.full((1, 8, 3), np.nan)])
    batch = simulate_proposals(props, speed=[0.0, 5.0, 12.0, 3.0])
    assert list(batch.finite) == [True, True, True, False]
    for i, v in enumerate((0.0, 5.0, 12.0)):
        one = simulate_proposals(props[i : i + 1], speed=v)
        assert np.allclose(one.poses, batch.poses[i : i + 1])
    assert np.isfinite(batch.poses).all()


def test_wrong_shape_is_an_error():
    with pytest.raises(ValueError, match=r"\(B, 8, 3\)"):
        simulate_proposals(np.zeros((2, 6, 3)), speed=1.0)
