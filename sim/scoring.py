"""PDMS (NAVSIM v1) and EPDMS (v2) of simulated proposals, vectorised over the proposals of one scene.

    PDMS  = NC * DAC * (5 EP + 5 TTC + 2 C) / 12
    EPDMS = NC * DAC * DDC * TLC * (5 EP + 5 TTC + 2 LK + 2 HC + 2 EC) / 16

Sub-scores, as docs/methods.md and NAVSIM's scorer define them (41 states at 0.1 s):
- NC, no at-fault collision: for each agent the *first* contact decides. Not at fault: the ego is stopped
  (<= 0.05 m/s), or the agent is behind the ego (bearing from the rear axle > 150 deg) while both move, or it
  is a lateral contact while the ego is inside a single lane. At fault: the agent is stopped, the ego's
  front bumper touches it, or a lateral contact while the ego straddles lanes or leaves the drivable area.
  At fault with a vehicle/pedestrian/cyclist -> 0, with a static object -> 0.5. Agents overlapping the ego
  at t = 0 are ignored.
- DAC: 0 if any ego corner is outside every drivable-area polygon at any step.
- DDC: metres driven with the box centre outside the route's lanes and outside intersections, summed over
  a sliding 1 s window; max < 2 m -> 1, < 6 m -> 0.5, else 0.
- TLC: 0 if the ego box enters the stop-line region of a red light (regions it overlaps at t = 0 excepted).
- EP: progress of the box centre along the route centreline, clipped at 0, divided by the largest progress
  of the batch (or of the PDM-Closed reference when one is given), each masked by NC * DAC; when that largest
  progress is <= 5 m every proposal gets EP = 1 (rows with NC * DAC = 0 get 0).
- TTC: the ego box projected ahead at constant velocity by 0.3 / 0.6 / 0.9 s (and 0 s), t = 0 .. 3.1 s,
  must not overlap an agent that is ahead (bearing < 30 deg), or - while the ego straddles lanes, is off the
  drivable area or in an intersection - any agent not behind it; ego speed < 5e-3 m/s is exempt; first
  contact per agent decides, as for NC.
- C: the six comfort bounds of :mod:`diffpilot.sim.comfort` on the simulated 4 s.
- LK: 0 if the box centre is more than 0.5 m from the route centreline for 2 s (20 steps) in a row; steps
  inside an intersection neither count nor break a run.
- HC: the comfort bounds on the ego's 1.5 s history followed by the simulated 4 s.
- EC: two-frame extended comfort against the previous frame's simulated plan when one is given; 1.0 when
  there is no previous frame (NAVSIM, too, gives a missing frame no penalty).
A proposal with non-finite values scores 0 on everything and never stops the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from diffpilot.sim.comfort import extended_comfort, is_comfortable
from diffpilot.sim.geometry import (
    FRONT_LEFT,
    FRONT_RIGHT,
    PolygonSet,
    box_corners,
    boxes_overlap,
    project_on_polyline,
    segment_overlaps_box,
)
from diffpilot.sim.scene import AgentClass, AreaKind, LightState, Scene
from diffpilot.sim.simulate import SIM_STEPS, SimulatedStates
from diffpilot.sim.vehicle import PACIFICA, VehicleParameters, ego_centers, ego_corners

STOPPED_SPEED = 5e-2  # ego / agent "stopped" for the collision type
TTC_STOPPED_SPEED = 5e-3
TTC_STEPS = (0, 3, 6, 9)
AHEAD_DEG, BEHIND_DEG = 30.0, 150.0
COS_AHEAD, COS_BEHIND = np.cos(np.radians(AHEAD_DEG)), np.cos(np.radians(BEHIND_DEG))
DDC_WINDOW = 10
DDC_OK, DDC_BAD = 2.0, 6.0
PROGRESS_THRESHOLD = 5.0
LK_DEVIATION, LK_STEPS = 0.5, 20
METRICS = ("nc", "dac", "ddc", "tlc", "ep", "ttc", "c", "lk", "hc", "ec")


@dataclass
class ScoreBreakdown:
    """Per-proposal sub-scores, each (B,), plus raw progress (metres) and the two aggregate scores."""

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
    progress: np.ndarray
    pdms: np.ndarray
    epdms: np.ndarray

    def row(self, i: int) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)[i]) for f in fields(self)}


class ScoringContext:
    """Everything about one scene the scorer needs, precomputed once and reused for any number of proposals."""

    def __init__(self, scene: Scene, vehicle: VehicleParameters = PACIFICA):
        self.scene = scene
        self.vehicle = vehicle
        m, ag = scene.map, scene.agents
        c = scene.current_index
        t = slice(c, c + SIM_STEPS + 1)
        self.dt = scene.dt
        self.agent_corners = box_corners(
            ag.poses[:, t, :2], ag.poses[:, t, 2], ag.sizes[:, None, 0], ag.sizes[:, None, 1]
        )
        self.agent_valid = ag.valid[:, t]
        self.agent_centers = ag.poses[:, t, :2]
        self.agent_speed = np.hypot(ag.velocities[:, t, 0], ag.velocities[:, t, 1])
        self.agent_speed = np.where(self.agent_valid, self.agent_speed, 0.0)
        self.agent_static_cost = np.where(ag.classes == AgentClass.STATIC, 0.5, 0.0)  # NC value when at fault
        start = ego_corners(np.zeros(3), vehicle)
        overlap0 = boxes_overlap(start[None], self.agent_corners[:, 0]) & self.agent_valid[:, 0]
        self.agent_ignored = overlap0  # (N,) touching the ego already at t = 0
        self.lanes = PolygonSet(m.lane_polygons, m.lane_polygon_num)
        route = np.zeros(m.num_lanes, bool)
        route[m.route_lanes] = True
        self.route_lanes = PolygonSet(m.lane_polygons[route], m.lane_polygon_num[route])
        self.areas = PolygonSet(m.area_polygons, m.area_polygon_num)
        inter = m.area_kinds == AreaKind.INTERSECTION
        self.intersections = PolygonSet(m.area_polygons[inter], m.area_polygon_num[inter])
        # the part of the route the ego can reach in 4 s (shorter polyline, cheaper projections)
        s_route, _ = project_on_polyline(np.zeros((1, 2)), m.route_centerline)
        cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(m.route_centerline, axis=0), axis=-1))])
        keep = (cum > s_route[0] - 30.0) & (cum < s_route[0] + 150.0)
        first, last = max(int(np.argmax(keep)) - 1, 0), min(len(cum) - int(np.argmax(keep[::-1])), len(cum))
        self.route = m.route_centerline[first:last] if last - first >= 2 else m.route_centerline
        red = m.light_states[:, t] == LightState.RED  # (K, 41)
        stop0 = boxes_overlap(start[None], m.light_stop_polygons) if len(red) else np.zeros(0, bool)
        self.red = red & ~stop0[:, None]
        self.stop_polygons = m.light_stop_polygons
        hist = scene.ego
        self.hist_accel = hist.history_accelerations[:-1]  # (H, 2) before t = 0
        self.hist_heading = hist.history_poses[:-1, 2]


def _first_true(mask: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """(any, index of first True) along `axis`."""
    return mask.any(axis=axis), np.argmax(mask, axis=axis)


def _first_contact_at_fault(contact: np.ndarray, fault: np.ndarray) -> np.ndarray:
    """contact, fault: (B, S, N) over an ordered step axis S. Returns (B, N): the first contact is at fault."""
    has, first = _first_true(contact, axis=1)
    fault_first = np.take_along_axis(fault, first[:, None, :], axis=1)[:, 0]
    return has & fault_first


def _bearing_cos(poses: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Cosine of the bearing of targets (..., N, 2) seen from rear-axle poses (..., 3) (broadcast on N);
    bearing < 30 deg <=> cos > cos 30 deg, bearing > 150 deg <=> cos < -cos 30 deg (no angle wrapping)."""
    d = targets - poses[..., None, :2]
    h = poses[..., None, 2]
    along = d[..., 0] * np.cos(h) + d[..., 1] * np.sin(h)
    return along / np.maximum(np.hypot(d[..., 0], d[..., 1]), 1e-9)


def ttc_hits(
    ctx: ScoringContext, corners: np.ndarray, poses: np.ndarray, speed: np.ndarray, usable: np.ndarray
) -> np.ndarray:
    """(B, n_t, F, N) bool: the ego box at step t projected ahead by TTC_STEPS at constant velocity overlaps
    agent n at step t + f (t = 0 .. 31; a standing ego, speed < 5e-3 m/s, never counts)."""
    n_t = corners.shape[1] - max(TTC_STEPS)
    heading = poses[:, :n_t, 2]
    vel = np.stack([np.cos(heading), np.sin(heading)], -1) * speed[:, :n_t, None]  # (B, n_t, 2)
    offsets = np.array(TTC_STEPS) * ctx.dt
    proj = corners[:, :n_t, None] + (vel[:, :, None, None, :] * offsets[None, None, :, None, None])
    t_idx = np.arange(n_t)[:, None] + np.array(TTC_STEPS)[None]  # (n_t, F)
    ag_future = ctx.agent_corners[:, t_idx].transpose(1, 2, 0, 3, 4)  # (n_t, F, N, 4, 2)
    hit = boxes_overlap(proj[:, :, :, None], ag_future[None])
    hit &= usable[:, t_idx].transpose(1, 2, 0)[None]
    hit &= (speed[:, :n_t] >= TTC_STOPPED_SPEED)[:, :, None, None]
    return hit


def score_states(
    ctx: ScoringContext,
    states: SimulatedStates,
    reference_progress: float | None = None,
    previous: SimulatedStates | None = None,
) -> ScoreBreakdown:
    """Score B simulated proposals of one scene. `reference_progress`: the PDM-Closed reference's masked
    progress (metres) for EP; None normalises by the batch. `previous`: the previous frame's (0.5 s earlier)
    simulated plans, row-aligned, for EC."""
    veh = ctx.vehicle
    poses = np.where(states.finite[:, None, None], states.poses, 0.0)  # (B, T, 3)
    speed = np.where(states.finite[:, None], states.speed, 0.0)
    b, nt = poses.shape[:2]
    corners = ego_corners(poses, veh)  # (B, T, 4, 2)
    centers = ego_centers(poses, veh)  # (B, T, 2)

    # --- where the ego is: drivable area (corners), route lanes and intersections (centre)
    off_road = ~ctx.areas.contains(corners.reshape(-1, 2)).any(-1).reshape(b, nt, 4).all(-1)  # a corner outside
    flat_centers = centers.reshape(-1, 2)
    in_intersection = ctx.intersections.contains(flat_centers).any(-1).reshape(b, nt)
    on_route = ctx.route_lanes.contains(flat_centers).any(-1).reshape(b, nt)

    def straddling(mask: np.ndarray) -> np.ndarray:
        """(B, T) bool: the ego straddles lanes (corners in several lanes, none holding all four), evaluated
        only where `mask` (B, T) asks - the lane test is the costly one and only contacts need it."""
        out = np.zeros((b, nt), bool)
        bi, ti = np.nonzero(mask)
        if len(bi):
            inside = ctx.lanes.contains(corners[bi, ti].reshape(-1, 2)).reshape(len(bi), 4, -1)
            out[bi, ti] = (inside.any(1).sum(-1) > 1) & ~inside.all(1).any(-1)
        return out

    n_agents = len(ctx.agent_corners)
    nc = np.ones(b)
    ttc = np.ones(b)
    if n_agents:
        # --- NC
        ag = ctx.agent_corners  # (N, T, 4, 2)
        usable = ctx.agent_valid & ~ctx.agent_ignored[:, None]  # (N, T)
        contact = boxes_overlap(corners[:, :, None], ag.transpose(1, 0, 2, 3)[None]) & usable.T[None]  # (B,T,N)
        ego_stopped = speed <= STOPPED_SPEED
        agent_stopped = (ctx.agent_speed <= STOPPED_SPEED).T[None]  # (1, T, N)
        bearing = _bearing_cos(poses, ctx.agent_centers.transpose(1, 0, 2)[None])  # (B, T, N)
        behind = bearing < COS_BEHIND
        front = np.zeros_like(contact)
        bi, ti, ni = np.nonzero(contact)  # the bumper test only matters where there is contact
        if len(bi):
            front[bi, ti, ni] = segment_overlaps_box(
                corners[bi, ti, FRONT_LEFT], corners[bi, ti, FRONT_RIGHT], ag[ni, ti]
            )
        hit = ttc_hits(ctx, corners, poses, speed, usable)  # (B, n_t, F, N)
        n_t = hit.shape[1]
        touched = contact.any(-1)
        touched[:, :n_t] |= hit.any((2, 3))
        risky = straddling(touched) | off_road
        fault = ~ego_stopped[..., None] & (agent_stopped | (~behind & (front | risky[..., None])))
        at_fault = _first_contact_at_fault(contact, fault)  # (B, N)
        nc = np.where(at_fault, ctx.agent_static_cost[None], 1.0).min(-1)

        # --- TTC: boxes projected ahead at constant velocity
        heading = poses[:, :n_t, 2]
        t_idx = np.arange(n_t)[:, None] + np.array(TTC_STEPS)[None]  # (n_t, F)
        fut_centers = ctx.agent_centers[:, t_idx].transpose(1, 2, 0, 3)  # (n_t, F, N, 2)
        d = fut_centers[None] - poses[:, :n_t, None, None, :2]
        along = d[..., 0] * np.cos(heading)[:, :, None, None] + d[..., 1] * np.sin(heading)[:, :, None, None]
        cos_b = along / np.maximum(np.hypot(d[..., 0], d[..., 1]), 1e-9)
        ahead, behind_f = cos_b > COS_AHEAD, cos_b < COS_BEHIND
        exposed = (risky[:, :n_t] | in_intersection[:, :n_t])[:, :, None, None]
        ttc_fault = ahead | (exposed & ~behind_f)
        n_f = len(TTC_STEPS)
        ttc_bad = _first_contact_at_fault(
            hit.reshape(b, n_t * n_f, n_agents), ttc_fault.reshape(b, n_t * n_f, n_agents)
        ).any(-1)
        ttc = np.where(ttc_bad, 0.0, 1.0)

    dac = np.where(off_road.any(-1), 0.0, 1.0)

    # --- DDC
    step = np.zeros((b, nt))
    step[:, 1:] = np.linalg.norm(np.diff(centers, axis=1), axis=-1)
    wrong_way = ~on_route & ~in_intersection
    oncoming = np.where(wrong_way, step, 0.0)
    csum = np.concatenate([np.zeros((b, 1)), np.cumsum(oncoming, axis=1)], axis=1)
    lo = np.maximum(np.arange(nt) - DDC_WINDOW, 0)
    window = csum[:, 1:] - csum[:, lo]
    worst = window.max(-1)
    ddc = np.where(worst < DDC_OK, 1.0, np.where(worst < DDC_BAD, 0.5, 0.0))

    # --- TLC
    if len(ctx.red):
        enter = boxes_overlap(corners[:, :, None], ctx.stop_polygons[None, None])  # (B, T, K)
        tlc = np.where((enter & ctx.red.T[None]).any((1, 2)), 0.0, 1.0)
    else:
        tlc = np.ones(b)

    # --- EP
    s, _ = project_on_polyline(centers[:, [0, -1]], ctx.route)
    progress = np.maximum(s[:, 1] - s[:, 0], 0.0)
    mult = nc * dac
    masked = progress * mult
    denom = masked.max() if reference_progress is None else np.maximum(masked, reference_progress)
    denom = np.broadcast_to(np.asarray(denom, dtype=np.float64), (b,))
    ep = np.where(denom > PROGRESS_THRESHOLD, np.clip(masked / np.maximum(denom, 1e-9), 0.0, 1.0), 1.0)
    ep = np.where(mult == 0.0, 0.0, ep)

    # --- C and HC
    c = is_comfortable(states.accel_lon, states.accel_lat, poses[..., 2], ctx.dt)
    h = len(ctx.hist_heading)
    hc = is_comfortable(
        np.concatenate([np.broadcast_to(ctx.hist_accel[:, 0], (b, h)), states.accel_lon], 1),
        np.concatenate([np.broadcast_to(ctx.hist_accel[:, 1], (b, h)), states.accel_lat], 1),
        np.concatenate([np.broadcast_to(ctx.hist_heading, (b, h)), poses[..., 2]], 1),
        ctx.dt,
    )

    # --- LK
    _, lat_all = project_on_polyline(centers, ctx.route)
    over = np.abs(lat_all) > LK_DEVIATION
    run = np.zeros(b, np.int64)
    worst_run = np.zeros(b, np.int64)
    for k in range(nt):
        run = np.where(in_intersection[:, k], run, np.where(over[:, k], run + 1, 0))
        worst_run = np.maximum(worst_run, run)
    lk = np.where(worst_run >= LK_STEPS, 0.0, 1.0)

    # --- EC
    if previous is None:
        ec = np.ones(b)
    else:
        shift = round(0.5 / ctx.dt)
        ec = extended_comfort(
            (states.accel_lon, states.accel_lat, poses[..., 2]),
            (previous.accel_lon, previous.accel_lat, previous.poses[..., 2]),
            shift,
            ctx.dt,
        )

    subs = {"nc": nc, "dac": dac, "ddc": ddc, "tlc": tlc, "ep": ep, "ttc": ttc, "c": c, "lk": lk, "hc": hc, "ec": ec}
    bad = ~states.finite
    for k in subs:
        subs[k] = np.where(bad, 0.0, subs[k]).astype(np.float64)
    progress = np.where(bad, 0.0, progress)
    pdms = subs["nc"] * subs["dac"] * (5 * subs["ep"] + 5 * subs["ttc"] + 2 * subs["c"]) / 12.0
    epdms = (
        subs["nc"]
        * subs["dac"]
        * subs["ddc"]
        * subs["tlc"]
        * (5 * subs["ep"] + 5 * subs["ttc"] + 2 * subs["lk"] + 2 * subs["hc"] + 2 * subs["ec"])
        / 16.0
    )
    return ScoreBreakdown(**subs, progress=progress, pdms=pdms, epdms=epdms)


def masked_progress(breakdown: ScoreBreakdown) -> np.ndarray:
    """Progress (metres) masked by NC * DAC: what a reference contributes to another proposal's EP."""
    return breakdown.progress * breakdown.nc * breakdown.dac


def aggregate(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean of every sub-score and score over scenes (scores in percent, as NAVSIM reports them)."""
    if not rows:
        return {}
    keys = [*METRICS, "pdms", "epdms"]
    out = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    out["pdms"] *= 100.0
    out["epdms"] *= 100.0
    return out
