"""NAVSIM v2's reactive background traffic: vehicles on the lane graph driven by IDM, reacting to the ego's
simulated motion (traffic_agents_policies/navsim_IDM_traffic_agents.py on nuPlan's IDM agents, configured by
navsim_IDM_traffic_agents.yaml).

- Which vehicles react (navsim_idm_agents_builder ``build_idm_agents_on_map_rails``, nuPlan's
  ``get_starting_segment``): VEHICLE agents in the log now whose centre lies in a lane (or, inside an
  intersection, a lane connector); of the lanes holding it, the one whose centreline heading at the nearest point
  is closest to the agent's (no angle wrapping); at most 3 m from that centreline; snapped onto it, its box must
  not touch the ego's box or an earlier agent's.
- Rejected vehicles that stand (< 0.1 m/s) off the lanes, or lie more than 3 m off their lane, stay parked where
  they are; other rejected vehicles leave the scene after t = 0. Pedestrians, cyclists and static objects replay
  their log.
- An agent drives its lane's centreline only, from the nearest point, with its logged speed. IDM: target = the
  lane's speed limit, s0 = 1 m, T = 1.5 s, a = 1 m/s^2, b = 2 m/s^2, delta = 4; the acceleration is clipped to
  [-2, 1]; progress grows by the old speed, then the speed by the acceleration (>= 0), the position stops at
  the lane's end.
- Leads: the ego (its box centred on the rear axle, as NAVSIM builds it) and the other reacting agents, updated in
  order - once moved, as their projected footprints (the box stretched ahead by v * 1.5 s), which they keep until
  they move again in the next step - that reach into the
  lane ahead (within half the agent's width of the centreline); the gap runs along the lane from the agent's
  front - after its first step from its front plus v * 1.5 s, as NAVSIM measures from its projected footprint -
  to the lead's nearest corner, the lead's speed is its speed along the lane. Without a lead the lane's end is a
  standing obstacle for the front bumper. Red lights do not stop them (the policy gets no light states from
  NAVSIM's metric cache). Vehicles that enter the log after t = 0 never appear.
- Agents farther than 100 m from the ego's centre leave for good.
- Step k (1 .. 40) moves the agents against the ego's simulated state k - 1; state 0 is the log as it is.
Geometry: NAVSIM intersects polygons (the lane's corridor and the footprints); here gaps are measured along the
centreline from projected box corners, which is the same for boxes aligned with the lane.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from diffpilot.sim.geometry import (
    PolygonSet,
    box_corners,
    boxes_overlap,
    interpolate_polyline,
    polyline_arclength,
    project_on_polyline,
)
from diffpilot.sim.scene import AgentClass, Agents, AreaKind, Scene
from diffpilot.sim.simulate import SIM_STEPS
from diffpilot.sim.vehicle import PACIFICA, VehicleParameters, ego_corners


@dataclass(frozen=True)
class ReactiveIDM:
    """navsim_IDM_traffic_agents.yaml's settings."""

    target_velocity: float = 10.0  # when the lane has no speed limit
    min_gap: float = 1.0
    headway: float = 1.5
    accel_max: float = 1.0
    decel_max: float = 2.0
    delta: float = 4.0
    snap_threshold: float = 3.0
    parked_speed: float = 0.1
    radius: float = 100.0


def idm_acceleration(v, v0, gap, v_lead, p: ReactiveIDM) -> np.ndarray:
    """nuPlan's IDMPolicy: a [1 - (v / v0)^delta - (s* / gap)^2], s* = s0 + v T + v (v - v_lead) / (2 sqrt(a b))."""
    s_star = p.min_gap + v * p.headway + v * (v - v_lead) / (2.0 * np.sqrt(p.accel_max * p.decel_max))
    gap = np.maximum(gap, p.min_gap)
    return p.accel_max * (1.0 - (v / np.maximum(v0, 1e-6)) ** p.delta - (s_star / gap) ** 2)


@dataclass
class _Rail:
    agent: int
    path: np.ndarray  # (P, 2) the lane's centreline
    length: float
    s: float
    v: float
    v0: float


def _start_lane(scene: Scene, lanes: PolygonSet, inter: PolygonSet, center: np.ndarray, heading: float):
    """(lane, arc length, distance to its centreline) of the lane an agent drives on, or None."""
    m = scene.map
    inside = lanes.contains(center[None])[0]
    if (inside & ~m.lane_is_connector).any():
        cands = np.nonzero(inside & ~m.lane_is_connector)[0]
    elif inter.num and inter.contains(center[None])[0].any():
        cands = np.nonzero(inside & m.lane_is_connector)[0]
    else:
        return None
    if not len(cands):
        return None
    best, best_diff = None, np.inf
    for lane in cands:
        pts = m.lane_points(lane)
        s, lat = project_on_polyline(center, pts, extend_ends=False)
        _, lane_heading = interpolate_polyline(pts, s)
        diff = abs(float(lane_heading) - heading)
        if diff < best_diff:
            best, best_diff = (int(lane), float(s), abs(float(lat))), diff
    return best


def _footprint(pos: np.ndarray, head: float, rail: _Rail, size: np.ndarray, headway: float) -> np.ndarray:
    """(4, 2) what a moved agent at `pos`, `head` occupies for the others (nuPlan's ``projected_footprint``): its
    box stretched ahead by v * headway, not past the lane's end."""
    ahead = min(rail.v * headway, max(rail.length - rail.s - 0.5 * size[0], 0.0))
    direction = np.array([np.cos(head), np.sin(head)])
    return box_corners(pos + 0.5 * ahead * direction, head, size[0] + ahead, size[1])


def _box_on_rail(rail: _Rail, size: np.ndarray) -> np.ndarray:
    pos, head = interpolate_polyline(rail.path, np.array(rail.s))
    return box_corners(pos, head, size[0], size[1])


def with_reactive_traffic(
    scene: Scene,
    ego_poses: np.ndarray,
    ego_speed: np.ndarray,
    params: ReactiveIDM = ReactiveIDM(),
    vehicle: VehicleParameters = PACIFICA,
) -> Scene:
    """The scene with its vehicles replaced by reactive IDM agents over the simulated 4 s.

    ego_poses (41, 3) rear-axle poses, ego_speed (41,): the ego's simulated states (t = 0 .. 4 s)."""
    m, ag = scene.map, scene.agents
    c = scene.current_index
    lanes = PolygonSet(m.lane_polygons, m.lane_polygon_num)
    inter_k = m.area_kinds == AreaKind.INTERSECTION
    inter = PolygonSet(m.area_polygons[inter_k], m.area_polygon_num[inter_k])
    ego_box0 = ego_corners(np.zeros(3), vehicle)
    poses, vel, valid = ag.poses.copy(), ag.velocities.copy(), ag.valid.copy()
    fut = slice(c + 1, c + SIM_STEPS + 1)
    rails: list[_Rail] = []
    taken: list[np.ndarray] = []
    for n in range(ag.num):
        if ag.classes[n] != AgentClass.VEHICLE:
            continue
        if not ag.valid[n, c]:  # only vehicles of the current frame are simulated; later ones never appear
            valid[n, fut] = False
            continue
        center, heading = ag.poses[n, c, :2], float(ag.poses[n, c, 2])
        speed = float(np.hypot(*ag.velocities[n, c]))
        start = _start_lane(scene, lanes, inter, center, heading)
        rail = None
        if start is not None and start[2] <= params.snap_threshold:
            lane, s, _ = start
            pts = m.lane_points(lane)
            limit = float(m.lane_speed_limits[lane])
            v0 = limit if limit > 0 else params.target_velocity
            rail = _Rail(n, pts, float(polyline_arclength(pts)[-1]), s, speed, v0)
            box = _box_on_rail(rail, ag.sizes[n])
            if boxes_overlap(box, ego_box0) or any(boxes_overlap(box, b) for b in taken):
                rail = None
            else:
                taken.append(box)
        if rail is not None:
            rails.append(rail)
            continue
        off_lane = start is None or start[2] > params.snap_threshold
        if off_lane and (speed < params.parked_speed or start is not None):
            poses[n, fut] = ag.poses[n, c]  # parked where it is
            vel[n, fut] = 0.0
            valid[n, fut] = True
        else:
            valid[n, fut] = False  # leaves the scene
    for r in rails:
        valid[r.agent, fut] = False
    ego_boxes = box_corners(ego_poses[:, :2], ego_poses[:, 2], vehicle.length, vehicle.width)  # rear axle as centre
    active = list(rails)
    # what each reacting agent occupies for the others: its box at first, then its projected footprint from its
    # last move (kept across steps until it moves again, as nuPlan's occupancy map keeps it)
    occupancy = {r.agent: _box_on_rail(r, ag.sizes[r.agent]) for r in rails}
    for k in range(1, SIM_STEPS + 1):
        ego_h = float(ego_poses[k - 1, 2])
        ego_centre = ego_poses[k - 1, :2] + vehicle.rear_axle_to_center * np.array([np.cos(ego_h), np.sin(ego_h)])
        placed = [(r, *interpolate_polyline(r.path, np.array(r.s))) for r in active]
        placed = [(r, pos, head) for r, pos, head in placed if np.linalg.norm(pos - ego_centre) <= params.radius]
        active = [r for r, _, _ in placed]
        boxes = np.stack([ego_boxes[k - 1], *(occupancy[r.agent] for r in active)])
        speeds = np.array([float(ego_speed[k - 1]), *(r.v for r in active)])
        heads = np.array([ego_h, *(float(head) for _, _, head in placed)])
        for i, r in enumerate(active, start=1):
            size = ag.sizes[r.agent]
            front = r.s + 0.5 * size[0] + (r.v * params.headway if k > 1 else 0.0)
            gap, lead_v = r.length - r.s - 0.5 * size[0], 0.0  # the lane's end, from the front bumper
            s_c, lat_c = project_on_polyline(boxes, r.path, extend_ends=False)  # (M, 4)
            # in the corridor (the lane buffered by half the agent's width) and reaching ahead of the agent
            ahead = (lat_c.min(1) <= 0.5 * size[1]) & (lat_c.max(1) >= -0.5 * size[1]) & (s_c.max(1) > r.s)
            ahead[i] = False
            rows = np.nonzero(ahead)[0]
            if len(rows):
                nearest = s_c[rows].min(1)
                j = int(np.argmin(nearest))
                d = max(float(nearest[j]) - front, 0.0)
                if d < gap:
                    gap, lead_v = d, float(speeds[rows[j]] * np.cos(heads[rows[j]] - heads[i]))
            acc = float(np.clip(idm_acceleration(r.v, r.v0, gap, lead_v, params), -params.decel_max, params.accel_max))
            r.s = min(r.s + r.v * scene.dt, r.length)
            r.v = max(r.v + acc * scene.dt, 0.0)
            pos, head = interpolate_polyline(r.path, np.array(r.s))
            poses[r.agent, c + k] = [pos[0], pos[1], float(head)]
            vel[r.agent, c + k] = r.v * np.array([np.cos(head), np.sin(head)])
            valid[r.agent, c + k] = True
            occupancy[r.agent] = _footprint(pos, float(head), r, size, params.headway)
            boxes[i], speeds[i], heads[i] = occupancy[r.agent], r.v, float(head)
    return replace(scene, agents=Agents(ag.ids, ag.classes, ag.sizes, poses, vel, valid))
