"""NAVSIM v2's reactive traffic (sim/reactive.py) on hand-built road scenes."""

from __future__ import annotations

import numpy as np

from diffpilot.sim.evaluate import SceneScorer
from diffpilot.sim.geometry import box_corners, boxes_overlap
from diffpilot.sim.reactive import ReactiveIDM, idm_acceleration, with_reactive_traffic
from diffpilot.sim.scene import AgentClass
from diffpilot.sim.scoring import ScoringContext, score_states
from tests.test_sim_scoring import FRONT, T_SIM, cruise, road_scene, states


def test_idm_acceleration_by_hand():
    p = ReactiveIDM()
    # free road at the target speed: 0; s* = 1 + 10 * 1.5 + 0 = 16 m at a 16 m gap behind an equally fast lead: -1
    assert np.isclose(idm_acceleration(10.0, 10.0, 1e9, 10.0, p), 0.0)
    assert np.isclose(idm_acceleration(5.0, 10.0, 1e9, 5.0, p), 1.0 * (1 - 0.5**4))
    assert np.isclose(idm_acceleration(10.0, 20.0, 16.0, 10.0, p), 1.0 * (1 - 0.5**4 - 1.0))


def test_a_follower_brakes_for_a_stopping_ego_instead_of_replaying_its_log():
    # the log: a car 14 m behind at 10 m/s; the plan: the ego brakes from 10 m/s to a stop at 2.5 m/s^2
    scene = road_scene([{"x": -14.0, "y": 0.0, "speed": 10.0}])
    x = np.where(T_SIM < 4.0, 10 * T_SIM - 1.25 * T_SIM**2, 20.0)
    plan = states(x)
    world = with_reactive_traffic(scene, plan.poses[0], plan.speed[0])
    c = scene.current_index
    follower = world.agents.poses[0, c : c + 41]
    ego = box_corners(plan.poses[0, :, :2], plan.poses[0, :, 2], 5.176, 2.297)  # rear axle as centre (NAVSIM)
    car = box_corners(follower[:, :2], follower[:, 2], 4.8, 2.0)
    assert not boxes_overlap(ego, car).any()  # it kept its distance
    assert world.agents.velocities[0, c + 40, 0] < 6.0  # and slowed down
    logged = scene.agents.poses[0, c : c + 41, :2]
    assert boxes_overlap(ego, box_corners(logged, 0 * logged[:, 0], 4.8, 2.0)).any()  # its log runs into the ego


def test_who_reacts_who_replays_and_who_is_gone():
    scene = road_scene(
        [
            {"x": 40.0, "y": 0.0, "speed": 8.0},  # a vehicle in the ego's lane: reacts
            {"x": 30.0, "y": -4.0, "speed": 0.0, "cls": AgentClass.VEHICLE},  # parked off the road: stays
            {"x": 20.0, "y": -4.5, "speed": 1.0, "heading": np.pi / 2, "cls": AgentClass.PEDESTRIAN},  # replays
            {"x": 3.0, "y": 0.0, "speed": 0.0},  # touches the ego at t = 0: gone afterwards
        ]
    )
    plan = states(cruise())
    world = with_reactive_traffic(scene, plan.poses[0], plan.speed[0])
    c, a, b = scene.current_index, scene.agents, world.agents
    assert np.allclose(b.poses[2], a.poses[2]) and b.valid[2].all()  # the pedestrian's log
    assert np.allclose(b.poses[1, c:], a.poses[1, c]) and b.valid[1, c:].all()  # parked
    assert b.valid[3, c] and not b.valid[3, c + 1 :].any()  # only in the logged first state
    assert b.valid[0, c:].all() and b.poses[0, c + 40, 0] > a.poses[0, c, 0]  # drives on its lane


def test_reactive_scoring_counts_a_vehicle_touching_the_ego_at_start():
    # log replay drops it (NAVSIM's non-reactive policy); the reactive world keeps the logged first state
    scene = road_scene([{"x": 3.0, "y": 0.0}])
    plan = states(cruise())
    assert score_states(ScoringContext(scene), plan).nc[0] == 1.0
    world = with_reactive_traffic(scene, plan.poses[0], plan.speed[0])
    assert score_states(ScoringContext(world, traffic="reactive"), plan).nc[0] == 0.0
    ref = np.stack([10.0 * np.arange(1, 9) * 0.5, np.zeros(8), np.zeros(8)], -1)
    reactive = SceneScorer.of(scene, ref, traffic="reactive").score(plan)
    assert reactive.nc[0] == 0.0 and FRONT > 3.0 - 2.4


def test_a_vehicle_entering_the_log_later_never_appears():
    scene = road_scene([{"x": 60.0, "y": 0.0, "speed": 5.0}])
    scene.agents.valid[0, : scene.current_index + 1] = False  # first logged 0.1 s after now
    plan = states(cruise())
    world = with_reactive_traffic(scene, plan.poses[0], plan.speed[0])
    assert not world.agents.valid[0].any()
