"""NAVSIM v2's two-stage evaluation: follow-up scenes cut from the same world 4 s later (sim/scenarios.py
``make_follow_up_scenes``) and the group score (sim/two_stage.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from diffpilot.sim.aggregation import pseudo_closed_loop_weights
from diffpilot.sim.evaluate import SceneScorer
from diffpilot.sim.planners import PRIVILEGED_PDM_CLOSED, ConstantVelocityPlanner, PDMClosedPlanner, simulate_in_scene
from diffpilot.sim.scenarios import EgoPerturbation, make_follow_up_scenes, make_scene
from diffpilot.sim.scene import AgentClass, LightState
from diffpilot.sim.scoring import ScoringContext
from diffpilot.sim.two_stage import TwoStageCase, TwoStageConfig, clear_start, compose

HUMAN = PDMClosedPlanner(PRIVILEGED_PDM_CLOSED)


def _static_scene():
    return next(s for s in (make_scene(seed, "static_obstacle") for seed in range(40)) if s.agents.classes[0] == 0)


def _driver(scene):
    return simulate_in_scene(scene, HUMAN.plan(scene)[None])


def test_a_follow_up_is_the_same_world_seen_from_the_drivers_4_s_state():
    scene = _static_scene()
    d = _driver(scene)
    follow = make_follow_up_scenes(scene, d.poses[0], d.speed[0], d.accel_lon[0], [EgoPerturbation()])[0]
    origin = d.poses[0, -1]
    assert follow.ego.speed == pytest.approx(d.speed[0, -1])
    # the ego's past is the driver's 2.5 .. 4.0 s, in the follow-up's own frame
    past = compose(origin, follow.ego.history_poses)
    np.testing.assert_allclose(past[:, :2], d.poses[0, -16:, :2], atol=1e-9)
    # the stopped car stands where it stood: its pose, moved back into the first scene's frame
    h = scene.num_history
    car = compose(origin, follow.agents.poses[0, h])
    np.testing.assert_allclose(car[:2], scene.agents.poses[0, h, :2], atol=1e-9)
    assert follow.token == f"{scene.token}@+4.0s#0" and follow.map.light_states.shape[1] == 56


def test_a_perturbation_moves_the_start_and_scales_the_speed():
    scene = make_scene(2_000_002)
    d = _driver(scene)
    p = EgoPerturbation(longitudinal=2.0, lateral=-0.5, speed_factor=1.2)
    plain, moved = make_follow_up_scenes(scene, d.poses[0], d.speed[0], d.accel_lon[0], [EgoPerturbation(), p])
    assert moved.ego.speed == pytest.approx(1.2 * plain.ego.speed)
    # the same world: every agent now sits 2 m behind and 0.5 m to the left of where the unmoved ego sees it
    h = scene.num_history
    np.testing.assert_allclose(moved.agents.poses[:, h, :2], plain.agents.poses[:, h, :2] - [2.0, -0.5], atol=1e-9)
    # the past keeps its shape, stretched by the speed factor about the start
    np.testing.assert_allclose(moved.ego.history_poses[:, :2], 1.2 * plain.ego.history_poses[:, :2], atol=1e-9)


def test_a_follow_up_keeps_the_road_beyond_the_first_scenes_map():
    # the fastest of a few straight roads: 8 s of driving runs near the end of the first scene's lanes, which
    # the follow-up continues straight on, so keeping the speed stays on the road
    scene = max((make_scene(seed, "straight") for seed in range(12)), key=lambda s: s.ego.speed)
    d = _driver(scene)
    follow = make_follow_up_scenes(scene, d.poses[0], d.speed[0], d.accel_lon[0], [EgoPerturbation()])[0]
    plan = ConstantVelocityPlanner().plan(follow)
    s = SceneScorer.of(follow, plan).score(simulate_in_scene(follow, plan[None]))
    assert scene.ego.speed > 12.0 and s.dac[0] == 1.0
    reach = compose(d.poses[0, -1], np.c_[follow.map.route_centerline, np.zeros(len(follow.map.route_centerline))])
    assert reach[:, 0].max() > scene.map.route_centerline[:, 0].max() + 50.0


def test_clear_start_rejects_an_ego_inside_another_car_or_off_the_road():
    scene = make_scene(2_000_002)
    assert clear_start(scene)
    a = scene.agents
    h = scene.num_history
    poses = a.poses.copy()
    poses[0, h] = [1.5, 0.3, 0.0]
    crashed = replace(scene, agents=replace(a, poses=poses, valid=np.ones_like(a.valid)))
    assert crashed.agents.classes[0] in (AgentClass.VEHICLE, AgentClass.CYCLIST, AgentClass.PEDESTRIAN)
    assert not clear_start(crashed)
    empty_area = replace(scene.map, area_polygon_num=np.full_like(scene.map.area_polygon_num, 3))
    far = replace(empty_area, area_polygons=scene.map.area_polygons + 500.0)
    assert not clear_start(replace(scene, map=far))


def test_the_group_score_by_hand_from_its_frames():
    scene = make_scene(2_000_004)
    case = TwoStageCase.of(scene, PDMClosedPlanner(), HUMAN, TwoStageConfig(follow_ups=3))
    m = case.follow_ups
    assert 1 <= m <= 3 and len(case.frames) == 2 + 2 * m and case.frames[1].token.endswith("@-0.5s")
    assert case.frames[2].token.endswith("@+4.0s#0") and case.frames[2 + m].token.endswith("@+3.5s#0")
    planner = PDMClosedPlanner()
    plans = np.stack([planner.plan(f) for f in case.frames])
    got = case.score(plans)
    # the same frames scored one by one: each pair shares one EC, and the group follows run_pdm_score.py
    rows = {}
    states = [simulate_in_scene(f, plans[i : i + 1]) for i, f in enumerate(case.frames)]
    for now, prev in [(0, 1), *[(2 + j, 2 + m + j) for j in range(m)]]:
        s_now = case.scorers[now].score(states[now], states[prev])
        s_prev = case.scorers[prev].score(states[prev])
        rows[now] = s_now.row(0)
        rows[prev] = {**s_prev.row(0), "ec": s_now.ec[0]}
    w_now = pseudo_closed_loop_weights(plans[0, -1, :2], case.origins[2 : 2 + m, :2])
    w_prev = pseudo_closed_loop_weights(compose(case.origins[1], plans[1, -1])[:2], case.origins[2 + m :, :2])
    for key in ("nc", "ttc", "ec"):
        second_now = sum(w * rows[2 + j][key] for j, w in enumerate(w_now))
        second_prev = sum(w * rows[2 + m + j][key] for j, w in enumerate(w_prev))
        expected = 0.5 * (rows[0][key] * second_now + rows[1][key] * second_prev)
        assert got.group[key] == pytest.approx(expected)
        assert got.stage_two[key] == pytest.approx(0.5 * (second_now + second_prev))
    assert 0.0 <= got.group["epdms"] <= 1.0
    # a follow-up's previous frame is the same perturbed start 0.5 s earlier, with its true past
    h = scene.num_history
    for j in range(m):
        a, b = case.frames[2 + j], case.frames[2 + m + j]
        np.testing.assert_allclose(case.origins[2 + m + j], compose(case.origins[2 + j], a.ego.history_poses[h - 5]))
        np.testing.assert_allclose(
            compose(case.origins[2 + m + j], b.ego.history_poses[5:])[:, :2],
            compose(case.origins[2 + j], a.ego.history_poses[:-5])[:, :2],
            atol=1e-9,
        )
        assert b.agents.valid[:, :5].any()  # agents are known before the follow-up's past began


def test_clear_start_rejects_an_ego_standing_in_a_red_lights_connector():
    scene = next(
        s for s in (make_scene(seed, "intersection") for seed in range(60)) if ScoringContext(s).red_quad_red[0].any()
    )
    ctx = ScoringContext(scene)
    centre = ctx.red_quads[ctx.red_quad_red[0]][0].mean(0)  # a piece of a red connector on the route
    # move the world so that the ego's box centre stands on it, with no other road user around
    m = scene.map
    shift = centre - [1.461, 0.0]
    moved = replace(
        m,
        lane_centerlines=m.lane_centerlines - shift,
        lane_polygons=m.lane_polygons - shift,
        area_polygons=m.area_polygons - shift,
        light_stop_polygons=m.light_stop_polygons - shift,
        route_centerline=m.route_centerline - shift,
    )
    alone = replace(scene.agents, valid=np.zeros_like(scene.agents.valid))
    assert not clear_start(replace(scene, map=moved, agents=alone))
    green = replace(moved, light_states=np.full_like(m.light_states, LightState.GREEN))
    assert clear_start(replace(scene, map=green, agents=alone))
