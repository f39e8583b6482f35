"""NAVSIM's PDM score (v1.1) and extended PDM score (v2) of simulated proposals, vectorised over the
proposals of one scene, one function per metric as NAVSIM's ``PDMScorer`` keeps them.

    PDMS  = NC * DAC * (5 EP_v1 + 5 TTC + 2 C) / 12                              (NAVSIM v1.1)
    EPDMS = NC * DAC * DDC * TLC * (5 EP + 5 TTC + 2 LK + 2 HC + 2 EC) / 16      (NAVSIM v2)

Each metric cites the function of navsim/planning/simulation/planner/pdm_planner/scoring/pdm_scorer.py
(``PDMScorer``; v2 head, or tag v1.1 where the versions differ) that defines it. States are 41 samples at
0.1 s; "box" is the ego's footprint, "centre" its centre, "rear axle" its pose.

Where this scorer can deviate from NAVSIM on purpose, ``ScorerConfig`` names the deviation; every one is off
by default. Known remaining difference: NAVSIM v1.1 checks TTC from all 41 states (its observation runs 1 s
past the horizon); scenes here end at 4 s, so v1.1's TTC uses v2's states 0 .. 31 as well.

A proposal with non-finite values scores 0 on everything and never stops the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from diffpilot.sim.comfort import (
    V1_WINDOWS,
    V2_WINDOWS,
    centre_lon_accel,
    is_comfortable,
    two_frame_extended_comfort,
)
from diffpilot.sim.geometry import (
    FRONT_LEFT,
    FRONT_RIGHT,
    PolygonSet,
    box_corners,
    boxes_overlap,
    convex_polygons_overlap,
    polyline_arclength,
    project_on_polyline,
    segment_overlaps_box,
)
from diffpilot.sim.scene import AgentClass, AreaKind, LightState, Scene
from diffpilot.sim.simulate import SIM_STEPS, SimulatedStates
from diffpilot.sim.vehicle import PACIFICA, VehicleParameters, ego_centers, ego_corners

STOPPED_SPEED = 5e-2  # nuPlan's is_track_stopped / get_collision_type threshold
TTC_STOPPED_SPEED = 5e-3  # PDMScorerConfig.stopped_speed_threshold
TTC_STEPS = (0, 3, 6, 9)  # np.arange(0, 10, 3): projections 0 .. 0.9 s ahead
TTC_LAST_STATE = SIM_STEPS - max(TTC_STEPS)  # v2 checks states 0 .. 31
COS_AHEAD, COS_BEHIND = np.cos(np.radians(30.0)), np.cos(np.radians(150.0))  # is_agent_ahead / is_agent_behind
DDC_WINDOW = 10  # int(driving_direction_horizon 1.0 s / 0.1 s): sums over 11 states
DDC_OK, DDC_BAD = 2.0, 6.0
PROGRESS_THRESHOLD = 5.0
LK_DEVIATION, LK_STEPS = 0.5, 20
EC_SHIFT_STEPS = 5  # the previous frame is 0.5 s earlier
V2_WEIGHTS = {"ep": 5.0, "ttc": 5.0, "lk": 2.0, "hc": 2.0, "ec": 2.0}
HUMAN_FILTERED = ("nc", "dac", "ddc", "tlc", "ep", "ttc", "lk")  # PDMResults columns a human can fail
METRICS = ("nc", "dac", "ddc", "tlc", "ep", "ttc", "c", "lk", "hc", "ec")
EPDMS_TERMS = ("nc", "dac", "ddc", "tlc", "ep", "ttc", "lk", "hc", "ec")  # extended_pdm_score's arguments
TRAFFIC = ("log_replay", "reactive")


@dataclass(frozen=True)
class ScorerConfig:
    """Deliberate deviations from NAVSIM, each named for what it does; all off by default.

    physical_lateral_acceleration: comfort uses the simulated lateral acceleration v * yaw rate (NAVSIM's
        bicycle model writes 0 after the first state).
    """

    physical_lateral_acceleration: bool = False


NAVSIM_SCORER = ScorerConfig()  # no deviation


@dataclass
class ScoreBreakdown:
    """Per-proposal scores, each (B,).

    nc, dac, ddc, tlc, ep, ttc, lk, hc, ec: NAVSIM v2's sub-scores (after the human filter when one was
    applied); epdms: v2's score. ep_v1, c, pdms: NAVSIM v1.1's progress, comfort and score (v1.1 has no
    human filter: pdms uses the unfiltered NC, DAC, TTC). progress: raw progress of the centre (metres).
    finite: 1.0 where the proposal was finite (the others score 0 everywhere).
    """

    nc: np.ndarray
    dac: np.ndarray
    ddc: np.ndarray
    tlc: np.ndarray
    ep: np.ndarray
    ttc: np.ndarray
    c: np.ndarray
    lk: np.ndarray
    hc: np.ndarray
    ec: np.ndarray
    ep_v1: np.ndarray
    progress: np.ndarray
    pdms: np.ndarray
    epdms: np.ndarray
    finite: np.ndarray

    def row(self, i: int) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)[i]) for f in fields(self)}

    @staticmethod
    def concat(parts: list[ScoreBreakdown]) -> ScoreBreakdown:
        """The rows of several breakdowns, in order."""
        names = [f.name for f in fields(ScoreBreakdown)]
        return ScoreBreakdown(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in names})

    def __len__(self) -> int:
        return len(self.pdms)


@dataclass(frozen=True)
class ReferenceProgress:
    """A reference plan's progress masked by v1.1's (NC * DAC) and v2's (NC * DAC * DDC * TLC) metrics:
    what it contributes to another proposal's EP normaliser, as the reference shares NAVSIM's batch."""

    v1: float
    v2: float

    @staticmethod
    def of(breakdown: ScoreBreakdown, i: int = 0) -> ReferenceProgress:
        b = breakdown
        if not b.finite[i]:
            raise ValueError("reference plan: field 'trajectory': expected finite values, got NaN or inf")
        v1 = b.progress[i] * b.nc[i] * b.dac[i]
        return ReferenceProgress(float(v1), float(v1 * b.ddc[i] * b.tlc[i]))


def _lane_quads(polygon: np.ndarray, count: int) -> np.ndarray:
    """(P-1, 4, 2) convex pieces of a lane outline (left boundary then right boundary reversed, P points
    each): their union is the lane polygon."""
    v = polygon[:count]
    p = count // 2
    left, right = v[:p], v[p:][::-1]
    return np.stack([left[:-1], left[1:], right[1:], right[:-1]], axis=1)


class ScoringContext:
    """Everything about one scene the scorer needs, precomputed once and reused for any number of proposals.

    traffic="log_replay": the scene's agents replay their log as NAVSIM's non-reactive policy does
    (traffic_agents_policies/log_replay_traffic_agents.py ``LogReplayTrafficAgents.simulate_environment``):
    agents whose box touches the ego's at t = 0 are removed from every state. traffic="reactive": the agents
    already react to the plan (sim/reactive.py) and state 0 is the log as it is, overlaps included.
    """

    def __init__(self, scene: Scene, vehicle: VehicleParameters = PACIFICA, traffic: str = "log_replay"):
        if traffic not in TRAFFIC:
            raise ValueError(f"traffic={traffic!r}: expected one of {TRAFFIC}")
        self.scene = scene
        self.vehicle = vehicle
        m, ag = scene.map, scene.agents
        c = scene.current_index
        t = slice(c, c + SIM_STEPS + 1)
        self.dt = scene.dt
        self.agent_corners = box_corners(
            ag.poses[:, t, :2], ag.poses[:, t, 2], ag.sizes[:, None, 0], ag.sizes[:, None, 1]
        )  # (N, 41, 4, 2)
        start = ego_corners(np.zeros(3), vehicle)
        overlaps_start = boxes_overlap(start[None], self.agent_corners[:, 0]) & ag.valid[:, c]
        self.agent_valid = ag.valid[:, t] & ~(overlaps_start[:, None] & (traffic == "log_replay"))
        self.agent_centers = ag.poses[:, t, :2]
        speed = np.hypot(ag.velocities[:, t, 0], ag.velocities[:, t, 1])
        # nuPlan's is_track_stopped reads the track as first observed (PDMObservation.unique_objects keeps the
        # first state of each token); anything that is not an agent (static objects) counts as stopped
        first = np.argmax(self.agent_valid, axis=1) if len(ag.ids) else np.zeros(0, np.int64)
        first_speed = speed[np.arange(len(first)), first] if len(first) else np.zeros(0)
        self.agent_stopped = (ag.classes == AgentClass.STATIC) | (first_speed <= STOPPED_SPEED)
        self.agent_static_cost = np.where(ag.classes == AgentClass.STATIC, 0.5, 0.0)  # NC when at fault
        self.lanes = PolygonSet(m.lane_polygons, m.lane_polygon_num)
        route = np.zeros(m.num_lanes, bool)
        route[m.route_lanes] = True
        self.route_lanes = PolygonSet(m.lane_polygons[route], m.lane_polygon_num[route])
        self.areas = PolygonSet(m.area_polygons, m.area_polygon_num)
        inter = m.area_kinds == AreaKind.INTERSECTION
        self.intersections = PolygonSet(m.area_polygons[inter], m.area_polygon_num[inter])
        # the part of the route the ego can reach in 4 s (shorter polyline, cheaper projections)
        s_route, _ = project_on_polyline(np.zeros((1, 2)), m.route_centerline)
        cum = polyline_arclength(m.route_centerline)
        keep = (cum > s_route[0] - 30.0) & (cum < s_route[0] + 150.0)
        first_k, last_k = max(int(np.argmax(keep)) - 1, 0), min(len(cum) - int(np.argmax(keep[::-1])), len(cum))
        self.route = m.route_centerline[first_k:last_k] if last_k - first_k >= 2 else m.route_centerline
        # red lights close the lane connectors that follow the lane they control; NAVSIM's observation holds
        # the polygons of red connectors on the route (PDMObservation._get_traffic_light_geometries)
        quads, owner = [], []
        for k, lane in enumerate(m.light_lanes):
            nxt = m.lane_successors[m.lane_successors[:, 0] == lane, 1] if len(m.lane_successors) else []
            for conn in nxt:
                if m.lane_is_connector[conn] and route[conn]:
                    q = _lane_quads(m.lane_polygons[conn], int(m.lane_polygon_num[conn]))
                    quads.append(q)
                    owner.append(np.full(len(q), k))
        self.red_quads = np.concatenate(quads) if quads else np.zeros((0, 4, 2))
        quad_light = np.concatenate(owner) if owner else np.zeros(0, np.int64)
        self.red_quad_red = (m.light_states[quad_light][:, t] == LightState.RED).T  # (41, Q)
        # the ego's past for HC and its logged lateral acceleration now (the first simulated state keeps it)
        self.hist_accel = scene.ego.history_accelerations
        self.hist_heading = scene.ego.history_poses[:, 2]
        self.lateral_accel_now = float(scene.ego.acceleration[1])


@dataclass
class EgoTrack:
    """Geometry of B simulated proposals shared by the metrics (PDMScorer._calculate_ego_area).

    poses (B, T, 3) rear axle; speed (B, T); corners (B, T, 4, 2); centers (B, T, 2); off_road (B, T): a
    corner outside every drivable polygon; on_route (B, T): the centre in an on-route lane;
    in_intersection (B, T): the centre in an intersection; rear_in_intersection (B, T): the rear axle in one.
    """

    ctx: ScoringContext
    poses: np.ndarray
    speed: np.ndarray
    corners: np.ndarray
    centers: np.ndarray
    off_road: np.ndarray
    on_route: np.ndarray
    in_intersection: np.ndarray
    rear_in_intersection: np.ndarray

    @staticmethod
    def of(ctx: ScoringContext, states: SimulatedStates) -> EgoTrack:
        poses = np.where(states.finite[:, None, None], states.poses, 0.0)
        speed = np.where(states.finite[:, None], states.speed, 0.0)
        b, nt = poses.shape[:2]
        corners = ego_corners(poses, ctx.vehicle)
        centers = ego_centers(poses, ctx.vehicle)
        off_road = ~ctx.areas.contains(corners.reshape(-1, 2)).any(-1).reshape(b, nt, 4).all(-1)
        flat_c = centers.reshape(-1, 2)
        return EgoTrack(
            ctx,
            poses,
            speed,
            corners,
            centers,
            off_road,
            ctx.route_lanes.contains(flat_c).any(-1).reshape(b, nt),
            ctx.intersections.contains(flat_c).any(-1).reshape(b, nt),
            ctx.intersections.contains(poses[..., :2].reshape(-1, 2)).any(-1).reshape(b, nt),
        )

    def multiple_lanes(self, mask: np.ndarray) -> np.ndarray:
        """(B, T) bool: corners in more than one lane and no lane holds all four - evaluated only where `mask`
        (B, T) asks, as only contacts need it and the lane test is the costly one."""
        out = np.zeros(mask.shape, bool)
        bi, ti = np.nonzero(mask)
        if len(bi):
            inside = self.ctx.lanes.contains(self.corners[bi, ti].reshape(-1, 2)).reshape(len(bi), 4, -1)
            out[bi, ti] = (inside.any(1).sum(-1) > 1) & ~inside.all(1).any(-1)
        return out


def _first_contact_at_fault(contact: np.ndarray, fault: np.ndarray) -> np.ndarray:
    """contact, fault: (B, S, N) over an ordered step axis S. Returns (B, N): the agent's first contact is at
    fault (a contact that is not ends the agent's part: NAVSIM adds its token to the collided ids)."""
    has, first = contact.any(axis=1), np.argmax(contact, axis=1)
    return has & np.take_along_axis(fault, first[:, None, :], axis=1)[:, 0]


def _bearing_cos(poses: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Cosine of the bearing of targets (..., N, 2) seen from rear-axle poses (..., 3) (broadcast on N)."""
    d = targets - poses[..., None, :2]
    h = poses[..., None, 2]
    along = d[..., 0] * np.cos(h) + d[..., 1] * np.sin(h)
    return along / np.maximum(np.hypot(d[..., 0], d[..., 1]), 1e-9)


def no_at_fault_collision(track: EgoTrack) -> tuple[np.ndarray, np.ndarray]:
    """(NC (B,), contact (B, T) with any agent). ``_calculate_no_at_fault_collision`` with nuPlan's collision
    types (pdm_scorer_utils.get_collision_type): the ego stopped (<= 0.05 m/s) is never at fault; a stopped
    track (as first observed) is always the ego's fault; an agent behind (bearing > 150 deg) is not; the
    front bumper touching it is; a lateral contact is when the ego is in several lanes or off the drivable
    area. At fault with a vehicle, pedestrian or cyclist 0, with a static object 0.5."""
    ctx = track.ctx
    b, nt = track.speed.shape
    if not len(ctx.agent_corners):
        return np.ones(b), np.zeros((b, nt), bool)
    ag = ctx.agent_corners
    contact = boxes_overlap(track.corners[:, :, None], ag.transpose(1, 0, 2, 3)[None]) & ctx.agent_valid.T[None]
    front = np.zeros_like(contact)
    bi, ti, ni = np.nonzero(contact)
    if len(bi):
        front[bi, ti, ni] = segment_overlaps_box(
            track.corners[bi, ti, FRONT_LEFT], track.corners[bi, ti, FRONT_RIGHT], ag[ni, ti]
        )
    behind = _bearing_cos(track.poses, ctx.agent_centers.transpose(1, 0, 2)[None]) < COS_BEHIND
    risky = track.multiple_lanes(contact.any(-1)) | track.off_road
    ego_stopped = track.speed <= STOPPED_SPEED
    fault = ~ego_stopped[..., None] & (ctx.agent_stopped[None, None] | (~behind & (front | risky[..., None])))
    at_fault = _first_contact_at_fault(contact, fault)  # (B, N)
    return np.where(at_fault, ctx.agent_static_cost[None], 1.0).min(-1), contact.any(-1)


def time_to_collision(track: EgoTrack) -> np.ndarray:
    """(B,) TTC (``_calculate_ttc``): for states 0 .. 31, the box projected ahead at constant velocity by
    0 / 0.3 / 0.6 / 0.9 s must not touch an agent (at that later state) that is ahead (bearing < 30 deg) or -
    while the ego is in several lanes, off the drivable area or with its rear axle in an intersection - not
    behind; an ego slower than 5e-3 m/s is exempt; the first touch per agent decides, as for NC."""
    ctx = track.ctx
    b = len(track.speed)
    if not len(ctx.agent_corners):
        return np.ones(b)
    n_t, n_f = TTC_LAST_STATE + 1, len(TTC_STEPS)
    heading = track.poses[:, :n_t, 2]
    speed = track.speed[:, :n_t]
    vel = np.stack([np.cos(heading), np.sin(heading)], -1) * speed[..., None]  # (B, n_t, 2)
    offsets = np.array(TTC_STEPS) * ctx.dt
    proj = track.corners[:, :n_t, None] + vel[:, :, None, None, :] * offsets[None, None, :, None, None]
    t_idx = np.arange(n_t)[:, None] + np.array(TTC_STEPS)[None]  # (n_t, F)
    ag_future = ctx.agent_corners[:, t_idx].transpose(1, 2, 0, 3, 4)  # (n_t, F, N, 4, 2)
    hit = boxes_overlap(proj[:, :, :, None], ag_future[None])  # (B, n_t, F, N)
    hit &= ctx.agent_valid[:, t_idx].transpose(1, 2, 0)[None]
    hit &= (speed >= TTC_STOPPED_SPEED)[:, :, None, None]
    risky = track.multiple_lanes(hit.any((2, 3))) | track.off_road[:, :n_t] | track.rear_in_intersection[:, :n_t]
    fut_centers = ctx.agent_centers[:, t_idx].transpose(1, 2, 0, 3)  # (n_t, F, N, 2)
    cos_b = _bearing_cos(track.poses[:, :n_t, None, :], fut_centers[None])  # (B, n_t, F, N)
    fault = (cos_b > COS_AHEAD) | (risky[:, :, None, None] & (cos_b >= COS_BEHIND))
    n_agents = len(ctx.agent_corners)
    bad = _first_contact_at_fault(hit.reshape(b, n_t * n_f, n_agents), fault.reshape(b, n_t * n_f, n_agents))
    return np.where(bad.any(-1), 0.0, 1.0)


def drivable_area_compliance(track: EgoTrack) -> np.ndarray:
    """(B,) DAC (``_calculate_drivable_area_compliance``): 0 if a corner is off the drivable area at any state."""
    return np.where(track.off_road.any(-1), 0.0, 1.0)


def driving_direction_compliance(track: EgoTrack) -> np.ndarray:
    """(B,) DDC (``_calculate_driving_direction_compliance``): metres driven by the centre outside on-route lanes
    and outside intersections, summed over 1 s (11 states); worst window < 2 m -> 1, < 6 m -> 0.5, else 0."""
    b, nt = track.speed.shape
    step = np.zeros((b, nt))
    step[:, 1:] = np.linalg.norm(np.diff(track.centers, axis=1), axis=-1)
    oncoming = np.where(~track.on_route & ~track.in_intersection, step, 0.0)
    csum = np.concatenate([np.zeros((b, 1)), np.cumsum(oncoming, axis=1)], axis=1)
    lo = np.maximum(np.arange(nt) - DDC_WINDOW, 0)
    worst = (csum[:, 1:] - csum[:, lo]).max(-1)
    return np.where(worst < DDC_OK, 1.0, np.where(worst < DDC_BAD, 0.5, 0.0))


def traffic_light_compliance(track: EgoTrack) -> np.ndarray:
    """(B,) TLC (``_calculate_traffic_light_compliance``): 0 if the box touches an on-route lane connector
    closed by a red light at any state, t = 0 included."""
    ctx = track.ctx
    if not len(ctx.red_quads):
        return np.ones(len(track.speed))
    touch = convex_polygons_overlap(track.corners[:, :, None], ctx.red_quads[None, None])  # (B, T, Q)
    return np.where((touch & ctx.red_quad_red[None]).any((1, 2)), 0.0, 1.0)


def ego_progress_raw(track: EgoTrack) -> np.ndarray:
    """(B,) metres (``_calculate_progress``): the centre's arc length along the route (projections clamped to
    the route, as shapely's ``project``), end minus start, >= 0."""
    s, _ = project_on_polyline(track.centers[:, [0, -1]], track.ctx.route, extend_ends=False)
    return np.maximum(s[:, 1] - s[:, 0], 0.0)


def lane_keeping(track: EgoTrack) -> np.ndarray:
    """(B,) LK (``_calculate_lane_keeping``): 0 once the centre is more than 0.5 m from the route centreline for
    20 states in a row (distance to the polyline, as shapely's ``distance``); states in an intersection neither
    count nor break a run."""
    _, lat = project_on_polyline(track.centers, track.ctx.route, extend_ends=False)
    over = np.abs(lat) > LK_DEVIATION
    b, nt = over.shape
    run = np.zeros(b, np.int64)
    worst = np.zeros(b, np.int64)
    for k in range(nt):
        run = np.where(track.in_intersection[:, k], run, np.where(over[:, k], run + 1, 0))
        worst = np.maximum(worst, run)
    return np.where(worst >= LK_STEPS, 0.0, 1.0)


def _lateral_accel(states: SimulatedStates, config: ScorerConfig, now: float) -> np.ndarray:
    """(B, T) lateral acceleration of the states as NAVSIM's simulator writes it: the logged value `now` in the
    first state (pdm_simulator.py starts from the ego state), 0 after it (batch_kinematic_bicycle.py)."""
    if config.physical_lateral_acceleration:
        return states.accel_lat
    out = np.zeros_like(states.accel_lat)
    out[:, 0] = now
    return out


def _yaw_accel(states: SimulatedStates, dt: float) -> np.ndarray:
    """(B, T) the bicycle model's angular acceleration: the yaw-rate change per step, 0 in the first state (an
    ego state built from ego status has no angular velocity or acceleration)."""
    out = np.zeros_like(states.yaw_rate)
    out[:, 1:] = np.diff(states.yaw_rate, axis=1) / dt
    return out


def comfort_v1(ctx: ScoringContext, states: SimulatedStates, config: ScorerConfig) -> np.ndarray:
    """(B,) C of NAVSIM v1.1 (tag v1.1 ``_calculate_is_comfortable``): the six bounds on the simulated 4 s,
    rear-axle accelerations, whole-horizon windows."""
    lat = _lateral_accel(states, config, ctx.lateral_accel_now)
    return is_comfortable(states.accel_lon, lat, states.poses[..., 2], ctx.dt, V1_WINDOWS)


def history_comfort(ctx: ScoringContext, states: SimulatedStates, config: ScorerConfig) -> np.ndarray:
    """(B,) HC (``_calculate_history_comfort``): the six bounds with v2's windows over the ego's past followed by
    the simulated 4 s, accelerations at the box centre. NAVSIM samples the past from -1.5 s every 0.1 s up to
    but excluding 0 s and then drops the last sample: -1.5 .. -0.2 s (14 states), and treats the sequence as
    evenly spaced. Past states carry no angular velocity or acceleration (NAVSIM builds them from ego status),
    so only the simulated ones are shifted to the centre."""
    b = len(states)
    h = len(ctx.hist_heading) - 2  # -1.5 .. -0.2 s
    off = ctx.vehicle.rear_axle_to_center

    def cat(hist: np.ndarray, sim: np.ndarray) -> np.ndarray:
        return np.concatenate([np.broadcast_to(hist[:h], (b, h)), sim], axis=1)

    ax = cat(ctx.hist_accel[:, 0], states.accel_lon)
    ay = cat(ctx.hist_accel[:, 1], _lateral_accel(states, config, ctx.lateral_accel_now))
    still = np.zeros(h)
    yaw_rate = cat(still, states.yaw_rate)
    yaw_accel = cat(still, _yaw_accel(states, ctx.dt))
    heading = cat(ctx.hist_heading, states.poses[..., 2])
    lon = centre_lon_accel(ax, yaw_rate, yaw_accel, off)
    return is_comfortable(lon, ay, heading, ctx.dt, V2_WINDOWS, accel_mag=np.hypot(ax, ay))


def extended_comfort(
    ctx: ScoringContext, states: SimulatedStates, previous: SimulatedStates | None, config: ScorerConfig
) -> np.ndarray:
    """(B,) EC (scene_aggregator.py ``SceneAggregator._compute_two_frame_comfort``) against the previous frame's
    simulated plans, row-aligned; 1.0 without a previous frame."""
    if previous is None:
        return np.ones(len(states))

    def mag(st: SimulatedStates) -> np.ndarray:  # the previous frame's first state falls outside the overlap
        return np.hypot(st.accel_lon, _lateral_accel(st, config, ctx.lateral_accel_now))

    return two_frame_extended_comfort(
        (mag(states), states.poses[..., 2]), (mag(previous), previous.poses[..., 2]), EC_SHIFT_STEPS, ctx.dt
    )


def progress_v1(raw: np.ndarray, multiplier: np.ndarray, reference: float | None) -> np.ndarray:
    """(B,) EP of v1.1 (tag v1.1 ``_aggregate_scores``): progress masked by NC * DAC over the largest masked
    progress of the batch (and the reference); 1 when that is <= 5 m, except rows whose mask is 0."""
    masked = raw * multiplier
    norm = _normaliser(masked, reference)
    ep = np.where(norm > PROGRESS_THRESHOLD, masked / np.maximum(norm, 1e-12), 1.0)
    return np.where((norm <= PROGRESS_THRESHOLD) & (multiplier == 0.0), 0.0, ep)


def progress_v2(raw: np.ndarray, multiplier: np.ndarray, reference: float | None) -> np.ndarray:
    """(B,) EP of v2 (``_aggregate_pdm_scores``): the normaliser is the largest progress masked by
    NC * DAC * DDC * TLC; EP = clip(raw progress / normaliser, 0, 1), or 1 when the normaliser is <= 5 m."""
    norm = _normaliser(raw * multiplier, reference)
    return np.where(norm > PROGRESS_THRESHOLD, np.clip(raw / np.maximum(norm, 1e-12), 0.0, 1.0), 1.0)


def _normaliser(masked: np.ndarray, reference: float | None) -> np.ndarray:
    if reference is None:
        if not len(masked):
            return np.zeros(0)
        return np.full(len(masked), masked.max())
    return np.maximum(masked, reference)


def pdm_score_v1(nc, dac, ep, ttc, c) -> np.ndarray:
    """NAVSIM v1.1's PDMS."""
    return nc * dac * (5 * ep + 5 * ttc + 2 * c) / 12.0


def extended_pdm_score(nc, dac, ddc, tlc, ep, ttc, lk, hc, ec) -> np.ndarray:
    """NAVSIM v2's EPDMS (run_pdm_score.py ``compute_final_scores``)."""
    w = V2_WEIGHTS
    weighted = w["ep"] * ep + w["ttc"] * ttc + w["lk"] * lk + w["hc"] * hc + w["ec"] * ec
    return nc * dac * ddc * tlc * weighted / sum(w.values())


def score_states(
    ctx: ScoringContext,
    states: SimulatedStates,
    reference: ReferenceProgress | None = None,
    previous: SimulatedStates | None = None,
    config: ScorerConfig = NAVSIM_SCORER,
) -> ScoreBreakdown:
    """Score B simulated proposals of one scene. `reference`: the PDM-Closed reference's masked progress (EP's
    yardstick, as NAVSIM scores it in the same batch); None normalises by the batch. `previous`: the previous
    frame's (0.5 s earlier) simulated plans, row-aligned, for EC."""
    track = EgoTrack.of(ctx, states)
    nc, _ = no_at_fault_collision(track)
    dac = drivable_area_compliance(track)
    ddc = driving_direction_compliance(track)
    tlc = traffic_light_compliance(track)
    ttc = time_to_collision(track)
    raw = ego_progress_raw(track)
    subs = {
        "nc": nc,
        "dac": dac,
        "ddc": ddc,
        "tlc": tlc,
        "ep": progress_v2(raw, nc * dac * ddc * tlc, None if reference is None else reference.v2),
        "ttc": ttc,
        "c": comfort_v1(ctx, states, config),
        "lk": lane_keeping(track),
        "hc": history_comfort(ctx, states, config),
        "ec": extended_comfort(ctx, states, previous, config),
        "ep_v1": progress_v1(raw, nc * dac, None if reference is None else reference.v1),
    }
    bad = ~states.finite
    subs = {k: np.where(bad, 0.0, v).astype(np.float64) for k, v in subs.items()}
    return ScoreBreakdown(
        **subs,
        progress=np.where(bad, 0.0, raw),
        pdms=pdm_score_v1(subs["nc"], subs["dac"], subs["ep_v1"], subs["ttc"], subs["c"]),
        epdms=extended_pdm_score(*(subs[k] for k in EPDMS_TERMS)),
        finite=states.finite.astype(np.float64),
    )


def apply_human_filter(agent: ScoreBreakdown, human: ScoreBreakdown) -> ScoreBreakdown:
    """NAVSIM v2's human penalty filter (evaluate/pdm_score.py ``pdm_score_from_interpolated_trajectory``):
    every v2 sub-score the scene's human trajectory fails (scores 0) is set to 1 for the agent, and EPDMS is
    recomputed. `human`: one row, the human plan scored alone (its own EP normaliser). NAVSIM scores the
    human without its past, so its HC is always 1 and HC is never filtered. Non-finite proposals keep 0."""
    changes = {}
    for name in HUMAN_FILTERED:
        value = getattr(agent, name)
        if getattr(human, name)[0] == 0.0:
            value = np.where(agent.finite > 0, 1.0, value)
        changes[name] = value
    return _with_terms(agent, changes)


def with_extended_comfort(scores: ScoreBreakdown, ec: np.ndarray) -> ScoreBreakdown:
    """`scores` with EC replaced and EPDMS recomputed: NAVSIM gives a frame pair's two-frame EC to both frames
    (scene_aggregator.py ``SceneAggregator.aggregate_scores``) after the human filter (``compute_final_scores``)."""
    return _with_terms(scores, {"ec": np.where(scores.finite > 0, np.asarray(ec, dtype=np.float64), 0.0)})


def _with_terms(scores: ScoreBreakdown, changes: dict[str, np.ndarray]) -> ScoreBreakdown:
    """`scores` with some v2 sub-scores replaced and EPDMS recomputed from them."""
    epdms = extended_pdm_score(*(changes.get(k, getattr(scores, k)) for k in EPDMS_TERMS))
    return replace(scores, **changes, epdms=epdms)


def aggregate(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean of every sub-score and score over scenes (scores in percent, as NAVSIM reports them)."""
    if not rows:
        return {}
    keys = [*METRICS, "ep_v1", "pdms", "epdms"]
    out = {k: float(np.mean([r[k] for r in rows])) for k in keys if k in rows[0]}
    out["pdms"] *= 100.0
    out["epdms"] *= 100.0
    return out
