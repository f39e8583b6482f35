"""PDMS / EPDMS sub-scores on hand-built scenes and hand-made ego motions, each case computed by hand."""

from __future__ import annotations

import numpy as np

from diffpilot.sim.comfort import extended_comfort, is_comfortable
from diffpilot.sim.scene import (
    NUM_TIMES,
    AgentClass,
    Agents,
    AreaKind,
    EgoState,
    LightState,
    MapData,
    Scene,
)
from diffpilot.sim.scoring import ScoringContext, score_states
from diffpilot.sim.simulate import SimulatedStates

T_GRID = (np.arange(NUM_TIMES) - 15) * 0.1
T_SIM = np.arange(41) * 0.1
HALF_W = 2.297 / 2


def road_scene(
    agents: list[dict] | None = None,
    lights: list[dict] | None = None,
    oncoming_left: bool = False,
    history_accel: float = 0.0,
    speed: float = 10.0,
) -> Scene:
    """Straight road along +x: lane 0 at y = 0 (the ego's), lane 1 at y = 3.5 (same direction unless
    oncoming_left); drivable area y in [-1.75, 5.25]."""
    x = np.array([-60.0, 200.0])

    def lane(y):
        return np.stack([x, [y, y]], -1)

    def strip(y):
        return np.array([[-60, y + 1.75], [-60, y - 1.75], [200, y - 1.75], [200, y + 1.75]], float)

    c1 = lane(3.5)[::-1] if oncoming_left else lane(3.5)
    k = len(lights or [])
    mp = MapData(
        lane_centerlines=np.stack([lane(0.0), c1]),
        lane_num_points=np.array([2, 2]),
        lane_headings=np.array([[0.0, 0.0], [np.pi, np.pi] if oncoming_left else [0.0, 0.0]]),
        lane_speed_limits=np.array([15.0, 15.0]),
        lane_widths=np.array([3.5, 3.5]),
        lane_polygons=np.stack([strip(0.0), strip(3.5)]),
        lane_polygon_num=np.array([4, 4]),
        lane_is_connector=np.array([False, False]),
        lane_successors=np.zeros((0, 2), np.int64),
        area_polygons=np.array([[[-60, 5.25], [-60, -1.75], [200, -1.75], [200, 5.25]]], float),
        area_polygon_num=np.array([4]),
        area_kinds=np.array([AreaKind.ROAD], np.int8),
        light_lanes=np.zeros(k, np.int64),
        light_stop_polygons=np.array([lt["polygon"] for lt in lights or []], float).reshape(k, 4, 2),
        light_states=np.array([np.full(NUM_TIMES, lt["state"]) for lt in lights or []], np.int8).reshape(k, NUM_TIMES),
        route_lanes=np.array([0] if oncoming_left else [0, 1]),
        route_centerline=np.stack([np.linspace(-60, 200, 131), np.zeros(131)], -1),
        route_speed_limits=np.full(131, 15.0),
    )
    ags = agents or []
    if ags:
        poses = np.zeros((len(ags), NUM_TIMES, 3))
        vel = np.zeros((len(ags), NUM_TIMES, 2))
        for i, a in enumerate(ags):
            h = a.get("heading", 0.0)
            v = a.get("speed", 0.0)
            poses[i, :, 0] = a["x"] + v * np.cos(h) * T_GRID
            poses[i, :, 1] = a["y"] + v * np.sin(h) * T_GRID
            poses[i, :, 2] = h
            vel[i] = v * np.array([np.cos(h), np.sin(h)])
        agent_rec = Agents(
            ids=np.arange(len(ags)),
            classes=np.array([a.get("cls", AgentClass.VEHICLE) for a in ags], np.int8),
            sizes=np.array([a.get("size", (4.8, 2.0)) for a in ags], float),
            poses=poses,
            velocities=vel,
            valid=np.ones((len(ags), NUM_TIMES), bool),
        )
    else:
        agent_rec = Agents.empty()
    th = T_GRID[:16]
    ego = EgoState(
        history_poses=np.stack([speed * th, 0 * th, 0 * th], -1),
        history_velocities=np.stack([np.full(16, speed), np.zeros(16)], -1),
        history_accelerations=np.stack([np.r_[np.full(15, history_accel), 0.0], np.zeros(16)], -1),
        command=1,
    )
    return Scene("hand-road", mp, agent_rec, ego).validate()


def states(x: np.ndarray, y: np.ndarray | float = 0.0, heading: np.ndarray | float = 0.0) -> SimulatedStates:
    """SimulatedStates from hand-made rear-axle tracks x(t), y(t) (each (B, 41) or (41,))."""
    x = np.atleast_2d(x)
    y = np.broadcast_to(y, x.shape)
    h = np.broadcast_to(heading, x.shape)
    speed = np.gradient(x, 0.1, axis=1)
    acc = np.gradient(speed, 0.1, axis=1)
    return SimulatedStates(
        poses=np.stack([x, y, h], -1),
        speed=speed,
        accel_lon=acc,
        accel_lat=np.zeros_like(x),
        yaw_rate=np.zeros_like(x),
        steering=np.zeros_like(x),
        finite=np.ones(len(x), bool),
    )


def cruise(speed: float = 10.0) -> np.ndarray:
    return speed * T_SIM


def score(scene: Scene, st: SimulatedStates, **kw):
    return score_states(ScoringContext(scene), st, **kw)


def test_free_road_scores_full_marks():
    s = score(road_scene(), states(cruise()))
    for name in ("nc", "dac", "ddc", "tlc", "ep", "ttc", "c", "lk", "hc", "ec", "pdms", "epdms"):
        assert getattr(s, name)[0] == 1.0, name
    assert abs(s.progress[0] - 40.0) < 1e-6


def test_rear_end_by_faster_agent_is_not_at_fault_but_ego_hitting_slower_agent_is():
    # an agent 8 m behind closing at 10 m/s runs into the ego's rear: not the ego's fault
    hit_from_behind = road_scene([{"x": -8.0, "y": 0.0, "speed": 20.0}])
    s = score(hit_from_behind, states(cruise()))
    assert s.nc[0] == 1.0
    # the ego at 10 m/s drives into a 2 m/s agent ahead with its front bumper: at fault, vehicle -> 0
    rear_ending = road_scene([{"x": 12.0, "y": 0.0, "speed": 2.0}])
    s = score(rear_ending, states(cruise()))
    assert s.nc[0] == 0.0 and s.pdms[0] == 0.0


def test_collision_with_static_object_costs_half_and_with_stopped_car_all():
    cone = road_scene([{"x": 20.0, "y": 0.0, "cls": AgentClass.STATIC, "size": (0.5, 0.5)}])
    s = score(cone, states(cruise()))
    assert s.nc[0] == 0.5
    # PDMS = 0.5 * (5 EP + 5 TTC + 2 C) / 12 with TTC = 0 (the cone is ahead), EP = 1, C = 1
    assert abs(s.pdms[0] - 0.5 * 7 / 12) < 1e-9
    parked = road_scene([{"x": 20.0, "y": 0.0}])
    assert score(parked, states(cruise())).nc[0] == 0.0


def test_stopped_ego_is_never_at_fault():
    agent = road_scene([{"x": -10.0, "y": 0.0, "speed": 5.0}], speed=0.0)
    s = score(agent, states(np.zeros(41)))
    assert s.nc[0] == 1.0


def test_leaving_drivable_area_by_a_tenth_of_a_metre_zeroes_dac():
    edge = -1.75 + HALF_W  # rear-axle y where the right corners touch the road edge
    out = score(road_scene(), states(cruise(), y=edge - 0.1))
    inside = score(road_scene(), states(cruise(), y=edge + 0.1))
    assert out.dac[0] == 0.0 and out.pdms[0] == 0.0
    assert inside.dac[0] == 1.0


def test_ego_progress_is_a_ratio_to_the_reference_and_one_below_five_metres():
    sc = road_scene()
    s = score(sc, states(cruise(5.0)), reference_progress=40.0)  # 20 m of 40 m
    assert abs(s.ep[0] - 0.5) < 1e-6
    s = score(sc, states(cruise(5.0)), reference_progress=10.0)  # beyond the reference: clipped to 1
    assert s.ep[0] == 1.0
    s = score(sc, states(cruise(1.0)), reference_progress=3.0)  # best progress 4 m <= 5 m: EP = 1
    assert s.ep[0] == 1.0
    # in a batch without reference, the best proposal is the yardstick
    s = score(sc, states(np.stack([cruise(10.0), cruise(7.5)])))
    assert np.allclose(s.ep, [1.0, 0.75])


def test_time_to_collision_violation_without_collision():
    # stop from 10 m/s at 6 m/s^2: 8.33 m; a stopped car whose rear is 8.8 m ahead of the ego's front
    t = T_SIM
    x = np.where(t < 10 / 6, 10 * t - 3 * t**2, 100 / 12)
    front = 1.461 + 5.176 / 2
    car = road_scene([{"x": front + 8.8 + 2.4, "y": 0.0}])
    s = score(car, states(x))
    assert s.nc[0] == 1.0  # never touches it
    assert s.ttc[0] == 0.0  # but at t = 0 the 0.9 s projection (9 m) reaches it
    far = road_scene([{"x": front + 30.0, "y": 0.0}])
    assert score(far, states(x)).ttc[0] == 1.0


def test_running_a_red_light_fails_tlc_only_in_epdms():
    stop = np.array([[25.0, 1.75], [25.0, -1.75], [23.0, -1.75], [23.0, 1.75]])
    red = road_scene(lights=[{"polygon": stop, "state": LightState.RED}])
    green = road_scene(lights=[{"polygon": stop, "state": LightState.GREEN}])
    s = score(red, states(cruise()))
    assert s.tlc[0] == 0.0 and s.epdms[0] == 0.0 and s.pdms[0] == 1.0
    assert score(green, states(cruise())).tlc[0] == 1.0
    # stopping 5 m before the stop line on red is compliant
    t = T_SIM
    x = np.where(t < 2.0, 10 * t - 2.5 * t**2, 10.0)
    assert score(red, states(x)).tlc[0] == 1.0


def test_lane_keeping_needs_two_seconds_off_centre():
    sc = road_scene()
    assert score(sc, states(cruise(), y=0.6)).lk[0] == 0.0  # 0.6 m off for 4 s
    assert score(sc, states(cruise(), y=0.4)).lk[0] == 1.0  # within 0.5 m
    y = np.where(T_SIM < 1.5, 0.6, 0.0)  # off for 1.5 s only
    assert score(sc, states(cruise(), y=y)).lk[0] == 1.0


def test_driving_against_the_traffic_direction_fails_ddc():
    sc = road_scene(oncoming_left=True)
    s = score(sc, states(cruise(), y=3.5))  # 40 m in the oncoming lane: 10 m per 1 s window > 6 m
    assert s.ddc[0] == 0.0 and s.epdms[0] == 0.0
    s = score(sc, states(cruise(3.0), y=3.5))  # 3 m per window: between 2 and 6 m -> 0.5
    assert s.ddc[0] == 0.5
    assert score(road_scene(), states(cruise(), y=3.5)).ddc[0] == 1.0  # same-direction lane is fine


def test_comfort_bounds_on_jerk_and_yaw_rate():
    t = np.arange(10) * 0.1
    zeros = np.zeros((1, 10))
    steep = (-2.0 + 4.5 * t)[None]  # longitudinal jerk 4.5 > 4.13
    gentle = (-1.5 + 3.3 * t)[None]  # 3.3 < 4.13
    assert is_comfortable(steep, zeros, zeros, 0.1)[0] == 0.0
    assert is_comfortable(gentle, zeros, zeros, 0.1)[0] == 1.0
    assert is_comfortable(zeros, zeros, (1.0 * t)[None], 0.1)[0] == 0.0  # yaw rate 1.0 > 0.95
    assert is_comfortable(zeros, zeros, (0.9 * t)[None], 0.1)[0] == 1.0
    assert is_comfortable(np.full((1, 10), 2.5), zeros, zeros, 0.1)[0] == 0.0  # 2.5 > 2.4 m/s^2


def test_history_comfort_sees_the_past():
    sc = road_scene(history_accel=3.0)  # the last 1.5 s accelerated at 3 m/s^2 (> 2.4), then cruise
    s = score(sc, states(cruise()))
    assert s.c[0] == 1.0 and s.hc[0] == 0.0


def test_extended_comfort_compares_consecutive_plans():
    a = np.zeros((1, 41))
    h_now = (0.05 * T_SIM)[None]
    h_prev_same = (0.05 * (T_SIM - 0.5))[None]  # same yaw rate, started 0.5 s earlier
    h_prev_other = (-0.3 * (T_SIM - 0.5))[None]
    assert extended_comfort((a, a, h_now), (a, a, h_prev_same), 5, 0.1)[0] == 1.0
    assert extended_comfort((a, a, h_now), (a, a, h_prev_other), 5, 0.1)[0] == 0.0


def test_nan_proposal_scores_zero_without_touching_the_batch():
    st = states(np.stack([cruise(), cruise()]))
    st.finite[1] = False
    st.poses[1] = np.nan
    s = score(road_scene(), st)
    assert s.pdms[0] == 1.0 and s.pdms[1] == 0.0 and s.epdms[1] == 0.0


def test_vectorised_scores_match_one_at_a_time():
    sc = road_scene([{"x": 12.0, "y": 0.0, "speed": 2.0}, {"x": 30.0, "y": 3.5, "speed": 8.0}])
    xs = np.stack([cruise(v) for v in (0.0, 2.0, 5.0, 10.0)])
    ys = np.array([0.0, 0.3, 2.0, 0.0])[:, None] * np.ones((1, 41))
    ctx = ScoringContext(sc)
    batch = score_states(ctx, states(xs, ys))
    for i in range(4):
        one = score_states(ctx, states(xs[i], ys[i]))
        for name in ("nc", "dac", "ddc", "tlc", "ttc", "c", "lk", "hc"):
            assert getattr(batch, name)[i] == getattr(one, name)[0], (name, i)
