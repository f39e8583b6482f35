"""PDMS / EPDMS sub-scores on hand-built scenes and hand-made ego motions, each case computed by hand from
NAVSIM's definitions (pdm_scorer.py, pdm_scorer_utils.py, pdm_comfort_metrics.py, scene_aggregator.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import savgol_filter

from diffpilot.sim.comfort import (
    V2_WINDOWS,
    extended_comfort_features,
    is_comfortable,
    savgol_operator,
    two_frame_extended_comfort,
)
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
from diffpilot.sim.scoring import (
    ReferenceProgress,
    ScorerConfig,
    ScoringContext,
    apply_human_filter,
    score_states,
)
from diffpilot.sim.simulate import SimulatedStates

T_GRID = (np.arange(NUM_TIMES) - 15) * 0.1
FRONT = 1.461 + 5.176 / 2  # rear axle to front bumper
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
            start = a.get("start_at", -np.inf)  # standing still until then
            moved = np.maximum(T_GRID - start, 0.0) if np.isfinite(start) else T_GRID
            poses[i, :, 0] = a["x"] + v * np.cos(h) * moved
            poses[i, :, 1] = a["y"] + v * np.sin(h) * moved
            poses[i, :, 2] = h
            vel[i] = np.where(T_GRID[:, None] >= start, v * np.array([np.cos(h), np.sin(h)]), 0.0)
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


def ref(v1: float, v2: float | None = None) -> ReferenceProgress:
    return ReferenceProgress(v1, v1 if v2 is None else v2)


def test_ego_progress_is_a_ratio_to_the_reference_and_one_below_five_metres():
    sc = road_scene()
    s = score(sc, states(cruise(5.0)), reference=ref(40.0))  # 20 m of 40 m
    assert abs(s.ep[0] - 0.5) < 1e-6 and abs(s.ep_v1[0] - 0.5) < 1e-6
    s = score(sc, states(cruise(5.0)), reference=ref(10.0))  # beyond the reference: clipped to 1
    assert s.ep[0] == 1.0 and s.ep_v1[0] == 1.0
    s = score(sc, states(cruise(1.0)), reference=ref(3.0))  # best progress 4 m <= 5 m: EP = 1
    assert s.ep[0] == 1.0 and s.ep_v1[0] == 1.0
    # in a batch without reference, the best proposal is the yardstick
    s = score(sc, states(np.stack([cruise(10.0), cruise(7.5)])))
    assert np.allclose(s.ep, [1.0, 0.75]) and np.allclose(s.ep_v1, [1.0, 0.75])


def test_empty_batch_scores_to_empty_arrays():
    s = score(road_scene(), states(np.zeros((0, 41))))
    assert len(s) == 0 and s.epdms.shape == (0,)


def test_non_finite_reference_is_refused_by_name():
    st = states(np.stack([cruise()]))
    st.finite[0] = False
    with pytest.raises(ValueError, match="reference plan: field 'trajectory'"):
        ReferenceProgress.of(score(road_scene(), st))


# --- NC: nuPlan's collision types as NAVSIM applies them


def test_rear_ended_while_stopped_is_not_at_fault():
    sc = road_scene([{"x": -9.0, "y": 0.0, "speed": 6.0}], speed=0.0)
    assert score(sc, states(np.zeros(41))).nc[0] == 1.0


def test_pedestrian_standing_at_start_who_walks_into_the_side_is_the_egos_fault():
    # standing at t = 0 (first observed speed 0: a stopped track), walks towards the road from t = 0.5 s at
    # 1.5 m/s and touches the ego's right side at about t = 1.6 s while the ego (single lane) passes at 10 m/s
    walker = {"x": 17.0, "y": -3.0, "heading": np.pi / 2, "speed": 1.5, "start_at": 0.5, "size": (0.5, 0.5)}
    sc = road_scene([{**walker, "cls": AgentClass.PEDESTRIAN}])
    assert score(sc, states(cruise())).nc[0] == 0.0
    # the same walker already moving at t = 0 makes it a lateral contact of an ego inside one lane: not at fault
    moving = road_scene([{**walker, "start_at": -np.inf, "y": -3.0 - 1.5 * 0.5, "cls": AgentClass.PEDESTRIAN}])
    assert score(moving, states(cruise())).nc[0] == 1.0


def test_log_replay_drops_an_agent_overlapping_the_ego_at_start():
    # LogReplayTrafficAgents.simulate_environment removes agents touching the ego's box at t = 0 from every state
    overlapping = road_scene([{"x": 3.0, "y": 0.0}])  # its rear overlaps the ego's front at t = 0
    s = score(overlapping, states(cruise()))
    assert s.nc[0] == 1.0 and s.ttc[0] == 1.0
    just_clear = road_scene([{"x": FRONT + 2.4 + 0.05, "y": 0.0}])  # 5 cm ahead of the bumper: stays, is hit
    assert score(just_clear, states(cruise())).nc[0] == 0.0


# --- TLC: on-route lane connectors closed by a red light


def junction_scene(line_x: float, state: int = LightState.RED) -> Scene:
    """Two parallel lanes along +x (y = 0 on the route, y = 3.5 off it), each cut at x = line_x by a stop line:
    approach lane, a 20 m lane connector, exit lane. One light per approach lane, both in `state`."""
    xs = [(-60.0, line_x), (line_x, line_x + 20.0), (line_x + 20.0, 200.0)]
    lanes, polys, connector = [], [], []
    for y in (0.0, 3.5):
        for k, (x0, x1) in enumerate(xs):
            lanes.append(np.array([[x0, y], [x1, y]]))
            polys.append(np.array([[x0, y + 1.75], [x1, y + 1.75], [x1, y - 1.75], [x0, y - 1.75]]))
            connector.append(k == 1)
    stop = [
        np.array([[line_x, y + 1.75], [line_x, y - 1.75], [line_x - 2, y - 1.75], [line_x - 2, y + 1.75]])
        for y in (0.0, 3.5)
    ]
    mp = MapData(
        lane_centerlines=np.stack(lanes),
        lane_num_points=np.full(6, 2),
        lane_headings=np.zeros((6, 2)),
        lane_speed_limits=np.full(6, 15.0),
        lane_widths=np.full(6, 3.5),
        lane_polygons=np.stack(polys),
        lane_polygon_num=np.full(6, 4),
        lane_is_connector=np.array(connector),
        lane_successors=np.array([[0, 1], [1, 2], [3, 4], [4, 5]]),
        area_polygons=np.array([[[-60, 5.25], [-60, -1.75], [200, -1.75], [200, 5.25]]], float),
        area_polygon_num=np.array([4]),
        area_kinds=np.array([AreaKind.ROAD], np.int8),
        light_lanes=np.array([0, 3]),
        light_stop_polygons=np.stack(stop),
        light_states=np.full((2, NUM_TIMES), state, np.int8),
        route_lanes=np.array([0, 1, 2]),
        route_centerline=np.stack([np.linspace(-60, 200, 131), np.zeros(131)], -1),
        route_speed_limits=np.full(131, 15.0),
    )
    base = road_scene()
    return Scene("hand-junction", mp, base.agents, base.ego).validate()


def stop_at(x_end: float) -> np.ndarray:
    """Rear-axle x(t) braking evenly from 2 x_end / 4 m/s to a stop at x_end at t = 4 s."""
    return x_end * (1.0 - (1.0 - T_SIM / 4.0) ** 2)


def test_stopping_one_metre_before_the_line_on_red_complies():
    sc = junction_scene(line_x=30.0)
    assert score(sc, states(stop_at(30.0 - 1.0 - FRONT))).tlc[0] == 1.0
    running = score(sc, states(cruise()))
    assert running.tlc[0] == 0.0 and running.epdms[0] == 0.0 and running.pdms[0] == 1.0
    assert score(junction_scene(30.0, LightState.GREEN), states(cruise())).tlc[0] == 1.0


def test_one_metre_past_the_line_at_start_on_red_fails_without_exemption():
    sc = junction_scene(line_x=FRONT - 1.0)
    assert score(sc, states(np.zeros(41))).tlc[0] == 0.0


def test_red_region_of_a_lane_off_the_route_does_not_count():
    sc = junction_scene(line_x=30.0)
    s = score(sc, states(cruise(), y=3.5))  # through the red connector of the lane beside the route
    assert s.tlc[0] == 1.0


def test_epdms_progress_ignores_a_reference_that_ran_a_red_light():
    sc = junction_scene(line_x=30.0)
    ctx = ScoringContext(sc)
    reference = ReferenceProgress.of(score_states(ctx, states(cruise())))  # 40 m, through the red
    assert reference.v1 == pytest.approx(40.0) and reference.v2 == 0.0
    agent = score_states(ctx, states(stop_at(20.0)), reference=reference)  # 20 m, stops before the line
    assert agent.tlc[0] == 1.0
    assert agent.ep[0] == 1.0  # v2: the normaliser is its own 20 m
    assert agent.ep_v1[0] == pytest.approx(0.5)  # v1.1: 20 m of the reference's 40 m


# --- DDC and LK


@pytest.mark.parametrize(("speed", "expected"), [(10.0, 0.0), (3.0, 0.5), (1.9, 0.5), (1.5, 1.0)])
def test_driving_direction_over_one_second_windows(speed, expected):
    # 11 states per window: 10 m/s -> 11 m; 3 -> 3.3 m; 1.9 -> 2.09 m (>= 2); 1.5 -> 1.65 m (< 2)
    sc = road_scene(oncoming_left=True)
    assert score(sc, states(cruise(speed), y=3.5)).ddc[0] == expected


def test_same_direction_lane_is_not_oncoming():
    assert score(road_scene(), states(cruise(), y=3.5)).ddc[0] == 1.0


@pytest.mark.parametrize(("steps", "expected"), [(19, 1.0), (20, 0.0)])
def test_lane_keeping_fails_after_twenty_states_off_centre(steps, expected):
    y = np.where(np.arange(41) < steps, 0.6, 0.0)
    assert score(road_scene(), states(cruise(), y=y)).lk[0] == expected


# --- comfort


def test_savgol_operators_are_scipys_filters():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(3, 41))
    for window, order, deriv in ((8, 2, 0), (15, 2, 1), (5, 3, 2), (5, 2, 1), (None, 2, 0)):
        w = 41 if window is None else window
        want = savgol_filter(y, w, order, deriv=deriv, delta=0.1, axis=-1)
        assert np.allclose(y @ savgol_operator(41, window, order, deriv, 0.1).T, want, atol=1e-9)


def test_even_window_is_centred_half_a_sample_late():
    ramp = (np.arange(41) * 0.1)[None]
    out = ramp @ savgol_operator(41, 8, 2, 0, 0.1).T
    assert np.allclose(out[0, 10:30], ramp[0, 10:30] + 0.05)  # inside: the fit is read 0.05 s later
    assert np.allclose(out[0, [0, -1]], ramp[0, [0, -1]])  # edges: the end windows' polynomials


def curve_states(speed: float, yaw_rate: float) -> SimulatedStates:
    heading = yaw_rate * T_SIM
    r = speed / yaw_rate
    x, y = r * np.sin(heading), r * (1 - np.cos(heading))
    one = np.ones((1, 41))
    return SimulatedStates(
        poses=np.stack([x, y, heading], -1)[None],
        speed=speed * one,
        accel_lon=0 * one,
        accel_lat=speed * yaw_rate * one,
        yaw_rate=yaw_rate * one,
        steering=np.arctan(3.089 * yaw_rate / speed) * one,
        finite=np.ones(1, bool),
    )


def test_steady_curve_at_five_and_a_half_metres_per_second_squared_lateral_is_comfortable():
    st = curve_states(10.0, 0.55)  # v * yaw rate = 5.5 m/s^2 > 4.89, yaw rate 0.55 < 0.95
    assert score(road_scene(), st).c[0] == 1.0  # NAVSIM's bicycle model writes a lateral acceleration of 0
    physical = score(road_scene(), st, config=ScorerConfig(physical_lateral_acceleration=True))
    assert physical.c[0] == 0.0 and physical.hc[0] == 0.0


def test_history_speed_alternating_fails_history_comfort_only():
    sc = road_scene()
    v = np.where(np.arange(16) % 2 == 0, 14.0, 4.0)
    acc = np.gradient(v, 0.1)
    sc.ego.history_velocities[:, 0] = v
    sc.ego.history_accelerations[:, 0] = acc
    s = score(sc, states(cruise()))
    assert s.c[0] == 1.0 and s.hc[0] == 0.0


def test_history_comfort_reads_the_past_up_to_two_tenths_before_now():
    # a jolt only in the last 0.1 s of history is not in the sequence NAVSIM builds (-1.5 .. -0.2 s)
    sc = road_scene()
    sc.ego.history_accelerations[-2, 0] = 50.0
    assert score(sc, states(cruise())).hc[0] == 1.0
    sc.ego.history_accelerations[-3, 0] = 50.0
    assert score(sc, states(cruise())).hc[0] == 0.0


def test_extended_comfort_cuts_the_overlap_before_filtering():
    rng = np.random.default_rng(1)
    acc_now, acc_prev = rng.normal(0, 0.3, (2, 1, 41))
    h_now = (0.05 * T_SIM)[None]
    h_prev = (0.05 * (T_SIM - 0.5))[None]
    got = two_frame_extended_comfort((acc_now, h_now), (acc_prev, h_prev), 5, 0.1)
    a = extended_comfort_features(acc_now[:, :36], h_now[:, :36], 0.1)
    b = extended_comfort_features(acc_prev[:, 5:], h_prev[:, 5:], 0.1)
    acc_ok = np.sqrt(((a["acceleration"] - b["acceleration"]) ** 2).mean()) <= 0.7
    jerk_ok = np.sqrt(((a["jerk"] - b["jerk"]) ** 2).mean()) <= 0.5
    assert got[0] == float(acc_ok and jerk_ok)  # same yaw rate: only the accelerations can differ
    # the acceleration filter sees only the 36 overlapping samples: 8-sample windows, scipy's edges
    direct = np.round(savgol_filter(acc_now[0, :36], 8, 2), 8)
    assert np.allclose(a["acceleration"][0], direct)
    other = two_frame_extended_comfort((0 * acc_now, h_now), (0 * acc_now, (-0.3 * (T_SIM - 0.5))[None]), 5, 0.1)
    assert other[0] == 0.0  # yaw rates 0.05 vs -0.3 rad/s
    assert V2_WINDOWS.jerk == 15


# --- v2's human penalty filter


def test_a_metric_the_human_fails_is_not_held_against_the_agent():
    sc = road_scene(oncoming_left=True)
    ctx = ScoringContext(sc)
    human = score_states(ctx, states(cruise(), y=3.5))  # the driver used the oncoming lane: DDC 0
    agent = score_states(ctx, states(cruise(), y=3.5))
    assert human.ddc[0] == 0.0 and agent.epdms[0] == 0.0
    filtered = apply_human_filter(agent, human)
    assert filtered.ddc[0] == 1.0 and filtered.lk[0] == 1.0  # LK too: the human was 3.5 m off the centreline
    # EPDMS = NC DAC DDC TLC (5 EP + 5 TTC + 2 LK + 2 HC + 2 EC) / 16 with every term 1
    assert filtered.epdms[0] == pytest.approx(1.0)
    assert filtered.pdms[0] == agent.pdms[0]  # v1.1 has no human filter
    clean = score_states(ctx, states(cruise()))
    assert apply_human_filter(clean, clean).epdms[0] == clean.epdms[0]


def test_first_state_keeps_the_logged_lateral_acceleration():
    # NAVSIM's simulation starts from the logged ego state; its bicycle model writes a_y = 0 afterwards. In EC
    # the current plan's first state is compared with the previous plan's state at the same time
    now, previous = states(cruise()), states(cruise())
    calm = road_scene()
    assert score(calm, now, previous=previous).ec[0] == 1.0
    turning = road_scene()
    turning.ego.history_accelerations[-1, 1] = 3.0  # 3 m/s^2 sideways now, 0 in the simulated states
    assert score(turning, now, previous=previous).ec[0] == 0.0
