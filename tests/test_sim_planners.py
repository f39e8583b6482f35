"""Constant velocity and PDM-Closed on generated scenes, and the evaluator around them."""

from __future__ import annotations

import numpy as np
import pytest

from diffpilot.sim.evaluate import evaluate_planners, score_scene_proposals
from diffpilot.sim.frames import previous_frame
from diffpilot.sim.planners import PRIVILEGED_PDM_CLOSED, ConstantVelocityPlanner, PDMClosedPlanner, simulate_in_scene
from diffpilot.sim.scenarios import make_scene
from diffpilot.sim.scoring import ScoringContext, score_states


def test_pdm_closed_stops_for_a_static_obstacle_where_constant_velocity_crashes():
    scene = next(s for s in (make_scene(seed, "static_obstacle") for seed in range(40)) if s.agents.classes[0] == 0)
    pdm = PDMClosedPlanner().plan(scene)
    cv = ConstantVelocityPlanner().plan(scene)
    s = score_states(ScoringContext(scene), simulate_in_scene(scene, np.stack([pdm, cv])))
    assert s.nc[0] == 1.0 and s.pdms[0] > 0.8
    assert s.pdms[1] < s.pdms[0]


def test_pdm_closed_beats_constant_velocity_on_a_small_mixed_set():
    scenes = [make_scene(seed) for seed in range(3_000_000, 3_000_012)]
    pdm, privileged = PDMClosedPlanner(), PDMClosedPlanner(PRIVILEGED_PDM_CLOSED)
    planners = {"cv": ConstantVelocityPlanner().plan, "pdm": pdm.plan, "privileged": privileged.plan}
    res = evaluate_planners(scenes, planners, reference=pdm, human=privileged)
    table = res["table"]
    assert table["pdm"]["pdms"] > table["cv"]["pdms"] + 15.0  # NAVSIM's: constant-velocity forecasts
    assert table["privileged"]["pdms"] >= 80.0 and table["privileged"]["pdms"] > table["pdm"]["pdms"]
    assert len(res["rows"]["cv"]) == 12 and table["pdm"]["latency_ms"] > 0


def test_bad_proposal_shape_names_the_scene():
    scene = make_scene(1, "straight")
    with pytest.raises(ValueError, match=r"straight-00000001.*proposals"):
        score_scene_proposals(scene, np.zeros((1, 5, 3)), ConstantVelocityPlanner().plan(scene))


def test_previous_frame_is_the_same_world_half_a_second_earlier():
    scene = make_scene(2_000_001)
    prev = previous_frame(scene)
    assert np.allclose(prev.ego.history_poses[-1], 0.0)
    ego_then = scene.ego.history_poses[10]  # -0.5 s in the current frame
    for n in range(scene.agents.num):
        if scene.agents.valid[n, 15]:
            now = np.linalg.norm(scene.agents.poses[n, 15, :2] - ego_then[:2])
            assert abs(np.linalg.norm(prev.agents.poses[n, 20, :2]) - now) < 1e-9
    assert not prev.agents.valid[:, :5].any()  # before -1.5 s nothing is known


def test_two_frame_evaluation_scores_extended_comfort():
    scenes = [make_scene(seed) for seed in range(3_000_000, 3_000_006)]
    pdm = PDMClosedPlanner()
    one = evaluate_planners(scenes, {"pdm": pdm.plan}, reference=pdm, two_frame=False)
    two = evaluate_planners(scenes, {"pdm": pdm.plan}, reference=pdm)
    assert all(r["ec"] == 1.0 for r in one["rows"]["pdm"])
    assert all(r["ec"] in (0.0, 1.0) for r in two["rows"]["pdm"])
    assert [r["pdms"] for r in one["rows"]["pdm"]] == [r["pdms"] for r in two["rows"]["pdm"]]  # PDMS has no EC
