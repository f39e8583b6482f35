"""NAVSIM v2's two-stage aggregation on hand-computed cases (scene_aggregator.py, run_pdm_score.py)."""

from __future__ import annotations

import numpy as np
import pytest

from diffpilot.sim.aggregation import FollowUp, StageOneFrame, pseudo_closed_loop_weights, two_stage_group


def test_weights_are_a_gaussian_of_the_distance_to_the_endpoint():
    # d^2 = 0 and 0.2 m^2 with sigma^2 = 0.1: exp(0) and exp(-1), normalised
    w = pseudo_closed_loop_weights(np.zeros(2), np.array([[0.0, 0.0], [0.0, np.sqrt(0.2)]]))
    e = np.exp(-1.0)
    assert w == pytest.approx([1 / (1 + e), e / (1 + e)])


def test_weights_fall_back_to_uniform_when_every_start_is_far():
    # exp(-4 / 0.2) = 2e-9 and smaller: np.isclose(sum, 0) holds, so NAVSIM weighs them equally
    w = pseudo_closed_loop_weights(np.zeros(2), np.array([[2.0, 0.0], [3.0, 0.0], [0.0, 5.0]]))
    assert w == pytest.approx([1 / 3] * 3)


def test_two_stage_group_by_hand():
    e = np.exp(-1.0)
    now = StageOneFrame({"epdms": 0.8}, np.zeros(2))
    prev = StageOneFrame({"epdms": 1.0}, np.array([10.0, 0.0]))
    follow_now = [FollowUp({"epdms": 1.0}, np.zeros(2)), FollowUp({"epdms": 0.5}, np.array([0.0, np.sqrt(0.2)]))]
    # both previous-frame follow-ups lie sqrt(0.1) m from its endpoint: equal weights
    follow_prev = [
        FollowUp({"epdms": 0.0}, np.array([10.0, np.sqrt(0.1)])),
        FollowUp({"epdms": 1.0}, np.array([10.0, -np.sqrt(0.1)])),
    ]
    got = two_stage_group(now, prev, follow_now, follow_prev, ["epdms"])
    stage_two_now = (1.0 * 1.0 + e * 0.5) / (1.0 + e)
    assert got.group["epdms"] == pytest.approx(0.5 * (0.8 * stage_two_now + 1.0 * 0.5))
    assert got.stage_one["epdms"] == pytest.approx(0.9)
    assert got.stage_two["epdms"] == pytest.approx(0.5 * (stage_two_now + 0.5))
