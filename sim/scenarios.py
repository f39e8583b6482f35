"""Seeded synthetic scenario generator: NAVSIM-style scenes with a map, traffic and an ego.

Families (FAMILIES): ``straight`` and ``curve`` multi-lane roads with traffic, ``lead_braking``, ``cut_in``,
``static_obstacle`` (a stopped car, parked car or cones in the ego's lane), ``pedestrian_crossing``,
``intersection`` (signalised, with left / straight / right turns and light phases) and ``merge`` (an
on-ramp joining a main road). Vehicles follow IDM along their lane paths (leaders found by projecting every
road user onto the follower's path; red/amber lights and pedestrians stop them); a cut-in is a path that
blends from the neighbouring lane into the ego's; cyclists ride the right edge of a road. The ego's own past is
a constant-acceleration history (at a red light it may be standing at the line); for the world's agents the ego
moves at constant velocity after t = 0 (they see it as a leader).

Closer to navtest than a clean simulation: each scene draws its lane width (3.0-4.2 m); agents are in the log
only within 80 m of the ego (they enter and leave it); moving agents' logged velocities carry 0.1 m/s of noise;
green lights turn amber 3 s before red; the driving command takes NAVSIM's four values (unknown in 3 %).

One seed makes one scene (``make_scene(seed)``); splits are disjoint seed ranges (SPLITS). The world is
built in a local frame and finally moved into the ego frame (ego rear axle at the origin, heading 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from diffpilot.sim.geometry import (
    interpolate_polyline,
    offset_polyline,
    polyline_arclength,
    polyline_headings,
    project_on_polyline,
    resample_polyline,
    wrap_angle,
)
from diffpilot.sim.idm import IDMParameters, idm_acceleration
from diffpilot.sim.scene import (
    CURRENT_INDEX,
    DT,
    NUM_TIMES,
    AgentClass,
    Agents,
    AreaKind,
    Command,
    EgoState,
    LightState,
    MapData,
    Scene,
)
from diffpilot.sim.vehicle import PACIFICA

FAMILIES = (
    "straight",
    "curve",
    "lead_braking",
    "cut_in",
    "static_obstacle",
    "pedestrian_crossing",
    "intersection",
    "merge",
)
# navtest-like mix: mostly ordinary driving (following traffic, curves, signalised intersections, merges), with
# the events a forecast from the current state cannot see (hard braking, cut-ins, pedestrians) as a minority
FAMILY_WEIGHTS = {
    "straight": 0.18,
    "curve": 0.18,
    "lead_braking": 0.05,
    "cut_in": 0.05,
    "static_obstacle": 0.08,
    "pedestrian_crossing": 0.07,
    "intersection": 0.29,
    "merge": 0.10,
}
SPLITS = {"train": (0, 1_000_000), "val": (1_000_000, 1_100_000), "test": (2_000_000, 2_100_000)}
TIMES = (np.arange(NUM_TIMES) - CURRENT_INDEX) * DT  # (56,) -1.5 .. 4.0 s
FOLLOW_UP_S = 4.0  # NAVSIM v2's stage-two scenes start where the original scene's horizon ends
LONG_TIMES = (np.arange(NUM_TIMES + round(FOLLOW_UP_S / DT)) - CURRENT_INDEX) * DT  # (96,) -1.5 .. 8.0 s
FOLLOW_UP_EXTENSION_M = 60.0
BRAKE_ONSET_S = 0.4  # forced braking (lead_braking) reaches its deceleration this long after it starts
LANE_WIDTH = 3.5  # the default; every scene draws its own in LANE_WIDTHS
LANE_WIDTHS = (3.0, 4.2)
VIEW_RANGE = 80.0  # agents farther than this from the logged ego are not in the log at that time
VELOCITY_NOISE = 0.1  # m/s per component on the logged velocities of moving agents
AMBER_S = 3.0  # a green light turns amber this long before it turns red
UNKNOWN_COMMAND_P = 0.03
SHARP_CURVE_RADIUS = 90.0
CYCLIST_P = 0.35


@dataclass
class _Lane:
    points: np.ndarray
    speed_limit: float
    width: float = LANE_WIDTH
    connector: bool = False


@dataclass
class _Mover:
    """A road user moving along a path; kind 'idm' (vehicle), 'const' (fixed speed) or 'static'."""

    path: np.ndarray
    s0: float
    speed: float
    cls: int
    size: tuple[float, float]
    kind: str = "idm"
    desired: float = 10.0
    brake_at: float | None = None  # forced braking from this time [s]
    brake_decel: float = 0.0
    start_at: float = -np.inf  # 'const' movers stand still before this time


@dataclass(frozen=True)
class _LightProgram:
    """A signal that is green (or red) until `switch_at` seconds and the other colour after it."""

    green_first: bool
    switch_at: float = np.inf

    def states(self, times: np.ndarray) -> np.ndarray:
        """(T,) LightState over `times`: red where not green, amber over the last AMBER_S of a green spell that
        turns red within `times`."""
        green = np.where(times < self.switch_at, self.green_first, not self.green_first)
        states = np.where(green, LightState.GREEN, LightState.RED).astype(np.int8)
        for k in np.nonzero(green[:-1] & ~green[1:])[0] + 1:  # first red sample after green
            amber = (times[k] - AMBER_S <= times) & (times[k] > times) & green
            states[amber] = LightState.YELLOW
        return states


@dataclass
class _World:
    lanes: list[_Lane] = field(default_factory=list)
    areas: list[tuple[np.ndarray, int]] = field(default_factory=list)
    successors: list[tuple[int, int]] = field(default_factory=list)
    lights: list[tuple[int, np.ndarray, _LightProgram]] = field(default_factory=list)  # lane, stop poly, program
    movers: list[_Mover] = field(default_factory=list)
    route_lanes: list[int] = field(default_factory=list)
    ego_path: np.ndarray | None = None
    ego_s0: float = 0.0
    ego_speed: float = 10.0
    ego_accel: float = 0.0
    command: int = Command.STRAIGHT
    ego_limit: float = 13.9
    lane_width: float = LANE_WIDTH

    def add_lane(self, lane: _Lane) -> int:
        self.lanes.append(lane)
        return len(self.lanes) - 1


# ----------------------------------------------------------------------------------------------- geometry


def _straight(x0: float, x1: float, spacing: float = 10.0) -> np.ndarray:
    n = max(int(np.ceil((x1 - x0) / spacing)), 1) + 1
    return np.stack([np.linspace(x0, x1, n), np.zeros(n)], -1)


def _arc(length_back: float, length_fwd: float, radius: float, spacing: float = 3.0) -> np.ndarray:
    """Polyline straight for `length_back` up to x = 0, then a circular arc (radius > 0 turns left)."""
    back = _straight(-length_back, 0.0)
    s = np.linspace(0.0, length_fwd, max(int(length_fwd / spacing), 2) + 1)[1:]
    th = s / radius
    arc = np.stack([radius * np.sin(th), radius * (1 - np.cos(th))], -1)
    return np.concatenate([back, arc])


def _strip(center: np.ndarray, left: float, right: float) -> np.ndarray:
    """Polygon between offsets `left` and -`right` of a polyline (left boundary, then right reversed)."""
    return np.concatenate([offset_polyline(center, left), offset_polyline(center, -right)[::-1]])


def _bezier(p0, p1, p2, n: int = 16) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * np.asarray(p0) + 2 * (1 - t) * t * np.asarray(p1) + t**2 * np.asarray(p2)


def _add_road(
    w: _World, axis: np.ndarray, n_fwd: int, n_back: int, limit: float, kind: int = AreaKind.ROAD
) -> tuple[list[int], list[int]]:
    """Lanes along `axis` (forward lanes on its right, oncoming on its left) and their road polygon."""
    lw = w.lane_width
    fwd = [w.add_lane(_Lane(offset_polyline(axis, -(i + 0.5) * lw), limit, lw)) for i in range(n_fwd)]
    back = [w.add_lane(_Lane(offset_polyline(axis, (j + 0.5) * lw)[::-1], limit, lw)) for j in range(n_back)]
    w.areas.append((_strip(axis, n_back * lw, n_fwd * lw), kind))
    return fwd, back


def _place_ego(w: _World, rng: np.random.Generator, path: np.ndarray, s0: float, speed: float, accel: float = 0.0):
    w.ego_path, w.ego_s0, w.ego_speed = path, s0, max(speed, 0.0)
    w.ego_accel = float(np.clip(accel, -3.0, min(1.5, w.ego_speed / 1.6)))


def _brake_for(w: _World, gap: float) -> None:
    """A human driver who has seen a stop `gap` metres ahead of the front bumper is already braking: set the
    ego's (history) deceleration to what stopping 2 m short of it needs, when that exceeds 1 m/s^2."""
    need = w.ego_speed**2 / (2.0 * max(gap - 2.0, 0.5))
    if need > 1.0:
        w.ego_accel = -min(need, 3.0)


def _traffic(
    w: _World,
    rng: np.random.Generator,
    lanes: list[int],
    s_range: tuple[float, float],
    limit: float,
    density: float,
    avoid: tuple[np.ndarray, float, float] | None = None,
) -> None:
    """Vehicles spaced along lanes, moving near the limit; `avoid` = (path, s_lo, s_hi) keeps a window free."""
    for lane in lanes:
        pts = w.lanes[lane].points
        total = polyline_arclength(pts)[-1]
        s = s_range[0] + rng.uniform(0, 15)
        while s < min(s_range[1], total - 5):
            pos, _ = interpolate_polyline(pts, np.array(s))
            ok = True
            if avoid is not None:
                sa, la = project_on_polyline(pos, avoid[0])
                ok = not (avoid[1] < sa < avoid[2] and abs(la) < 2.5)
            if ok and rng.uniform() < density:
                speed = limit * rng.uniform(0.6, 1.0)
                w.movers.append(
                    _Mover(
                        pts,
                        s,
                        speed,
                        AgentClass.VEHICLE,
                        (rng.uniform(4.2, 5.2), rng.uniform(1.8, 2.1)),
                        desired=limit * rng.uniform(0.85, 1.05),
                    )
                )
            s += rng.uniform(18, 40)


def _ego_speed(limit: float, rng: np.random.Generator) -> float:
    return limit * rng.uniform(0.55, 0.95)


# ----------------------------------------------------------------------------------------------- families


def _road_family(rng: np.random.Generator, w: _World, curved: bool) -> tuple[list[int], list[int], np.ndarray]:
    limit = float(rng.choice([11.1, 13.9, 16.7, 22.2]))
    n_fwd, n_back = int(rng.integers(2, 4)), int(rng.integers(0, 3))
    if curved:
        radius = float(rng.uniform(45, 160)) * rng.choice([-1.0, 1.0])
        limit = min(limit, float(np.sqrt(2.0 * abs(radius))))  # keep lateral acceleration near 2 m/s^2
        axis = _arc(80.0, 170.0, radius, spacing=3.0)
        if abs(radius) < SHARP_CURVE_RADIUS:  # NAVSIM's left / right commands cover sharp curves
            w.command = Command.LEFT if radius > 0 else Command.RIGHT
    else:
        axis = _straight(-80.0, 170.0)
    fwd, back = _add_road(w, axis, n_fwd, n_back, limit)
    w.ego_limit = limit
    w.route_lanes = list(fwd)
    return fwd, back, axis


def _family_road(rng, w: _World, curved: bool) -> None:
    fwd, back, _ = _road_family(rng, w, curved)
    ego_lane = int(rng.choice(fwd))
    path = w.lanes[ego_lane].points
    s0 = 80.0 if not curved else float(rng.uniform(70.0, 95.0))
    v = _ego_speed(w.ego_limit, rng)
    _place_ego(w, rng, path, s0, v, rng.uniform(-0.5, 0.5))
    _traffic(w, rng, fwd + back, (0.0, 250.0), w.ego_limit, 0.55, avoid=(path, s0 - 12, s0 + 12))
    if rng.uniform() < CYCLIST_P:
        _cyclist(w, rng, fwd[-1], s0 + float(rng.uniform(15.0, 60.0)))


def _cyclist(w: _World, rng: np.random.Generator, lane: int, s: float) -> None:
    """A cyclist riding at 3-6 m/s along the right edge of `lane`, starting at arc length `s`."""
    path = offset_polyline(w.lanes[lane].points, -(0.5 * w.lane_width - 0.7))
    speed = float(rng.uniform(3.0, 6.0))
    w.movers.append(_Mover(path, s, speed, AgentClass.CYCLIST, (1.8, 0.7), kind="const"))


def _family_lead_braking(rng, w: _World) -> None:
    fwd, back, _ = _road_family(rng, w, curved=rng.uniform() < 0.3)
    ego_lane = int(rng.choice(fwd))
    path = w.lanes[ego_lane].points
    s0 = 80.0
    v = _ego_speed(w.ego_limit, rng)
    _place_ego(w, rng, path, s0, v)
    gap = max(v * rng.uniform(1.2, 2.2), 10.0) + 5.0
    w.movers.append(
        _Mover(
            path,
            s0 + gap,
            v * rng.uniform(0.9, 1.05),
            AgentClass.VEHICLE,
            (4.8, 2.0),
            desired=w.ego_limit,
            brake_at=float(rng.uniform(-1.0, 1.0)),
            brake_decel=float(rng.uniform(2.5, 5.0)),
        )
    )
    others = [lane for lane in fwd + back if lane != ego_lane]
    _traffic(w, rng, others, (0.0, 250.0), w.ego_limit, 0.5, avoid=(path, s0 - 12, s0 + 12))


def _family_cut_in(rng, w: _World) -> None:
    fwd, back, _axis = _road_family(rng, w, curved=rng.uniform() < 0.3)
    i = int(rng.integers(0, len(fwd) - 1))
    ego_lane, adj = (fwd[i], fwd[i + 1]) if rng.uniform() < 0.5 else (fwd[i + 1], fwd[i])
    path = w.lanes[ego_lane].points
    s0 = 80.0
    v = _ego_speed(w.ego_limit, rng)
    _place_ego(w, rng, path, s0, v)
    a_pts, e_pts = w.lanes[adj].points, path
    n = min(len(a_pts), len(e_pts))
    cum = polyline_arclength(e_pts[:n])
    lead = rng.uniform(8.0, 20.0)
    speed = v * rng.uniform(0.6, 0.95)
    # the moment the cutter starts moving sideways, relative to t = 0: a logged frame catches a manoeuvre at
    # any phase, so most cut-ins show lateral motion in the history (a cut-in that always starts after the
    # current frame, with zero lateral velocity in every past frame, is unforeseeable by construction)
    t_start = rng.uniform(-1.5, 0.5)
    s_start = s0 + lead + speed * t_start + 1.5
    dur = speed * rng.uniform(2.0, 3.5)
    alpha = np.clip((cum - s_start) / max(dur, 1.0), 0.0, 1.0)
    alpha = alpha * alpha * (3 - 2 * alpha)
    blend = a_pts[:n] + alpha[:, None] * (e_pts[:n] - a_pts[:n])
    w.movers.append(_Mover(blend, s0 + lead, speed, AgentClass.VEHICLE, (4.7, 2.0), kind="const"))
    others = [lane for lane in fwd + back if lane not in (ego_lane, adj)]
    _traffic(w, rng, others, (0.0, 250.0), w.ego_limit, 0.5)
    _traffic(w, rng, [adj], (0.0, s0 + lead - 14.0), w.ego_limit, 0.5, avoid=(path, s0 - 12, s0 + 12))


def _family_static(rng, w: _World) -> None:
    fwd, back, _ = _road_family(rng, w, curved=rng.uniform() < 0.25)
    ego_lane = int(rng.choice(fwd))
    path = w.lanes[ego_lane].points
    s0 = 80.0
    v = _ego_speed(w.ego_limit, rng)
    _place_ego(w, rng, path, s0, v)
    dist = float(rng.uniform(max(v * 2.2, 18.0), max(v * 4.0, 35.0)))
    _brake_for(w, dist - 2.5 - PACIFICA.rear_axle_to_front)
    pos, head = interpolate_polyline(path, np.array(s0 + dist))
    what = rng.choice(["stopped_car", "cones", "parked"])
    if what == "cones":
        for k in range(3):
            p, h = interpolate_polyline(path, np.array(s0 + dist + 2.0 * k))
            p = p + float(rng.uniform(-0.8, 0.8)) * np.array([-np.sin(h), np.cos(h)])
            w.movers.append(
                _Mover(
                    np.stack([p, p + np.array([np.cos(h), np.sin(h)])]),
                    0.0,
                    0.0,
                    AgentClass.STATIC,
                    (0.5, 0.5),
                    kind="static",
                )
            )
    else:
        lateral = 0.0 if what == "stopped_car" else float(rng.uniform(-1.2, -0.6))
        p = pos + lateral * np.array([-np.sin(head), np.cos(head)])
        w.movers.append(
            _Mover(
                np.stack([p, p + np.array([np.cos(head), np.sin(head)])]),
                0.0,
                0.0,
                AgentClass.VEHICLE,
                (4.6, 1.9),
                kind="static",
            )
        )
    others = [lane for lane in fwd + back if lane != ego_lane]
    _traffic(w, rng, others, (0.0, 250.0), w.ego_limit, 0.45, avoid=(path, s0 - 12, s0 + 12))


def _family_pedestrian(rng, w: _World) -> None:
    limit = float(rng.choice([8.3, 11.1, 13.9]))
    n_fwd, n_back = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    axis = _straight(-80.0, 170.0)
    fwd, back = _add_road(w, axis, n_fwd, n_back, limit)
    w.ego_limit, w.route_lanes = limit, list(fwd)
    ego_lane = int(rng.choice(fwd))
    path = w.lanes[ego_lane].points
    s0 = 80.0
    v = _ego_speed(limit, rng)
    _place_ego(w, rng, path, s0, v)
    x_cross = float(rng.uniform(max(v * 1.8, 14.0), max(v * 3.5, 30.0)))
    ego_y = w.lanes[ego_lane].points[0, 1]
    ped_speed = float(rng.uniform(1.0, 1.6))
    # walk from the right kerb (y < 0) to the left so it reaches the ego lane within the horizon
    y_start = -n_fwd * w.lane_width - 1.0
    arrive = float(rng.uniform(0.5, 3.0))
    start_at = arrive - (ego_y - y_start) / ped_speed
    ped_path = np.array([[x_cross, y_start], [x_cross, n_back * w.lane_width + 2.0]])
    w.movers.append(
        _Mover(ped_path, 0.0, ped_speed, AgentClass.PEDESTRIAN, (0.6, 0.6), kind="const", start_at=start_at)
    )
    _traffic(
        w,
        rng,
        [lane for lane in fwd + back if lane != ego_lane],
        (0.0, 250.0),
        limit,
        0.4,
        avoid=(path, s0 - 12, s0 + 12),
    )


def _family_intersection(rng, w: _World) -> None:
    limit = float(rng.choice([11.1, 13.9]))
    half = 2 * w.lane_width  # two lanes each way on both roads
    arm = 90.0
    ew = _straight(-arm - half, -half)
    w.ego_limit = limit
    # four arms: a road polygon and lanes per arm; arm k is rotated by k*90 deg around the box centre
    arms = []
    for k in range(4):
        rot = np.array(
            [[np.cos(k * np.pi / 2), -np.sin(k * np.pi / 2)], [np.sin(k * np.pi / 2), np.cos(k * np.pi / 2)]]
        )
        axis = ew @ rot.T  # inbound axis pointing to the centre
        fwd, back = _add_road(w, axis, 2, 2, limit)
        arms.append((rot, fwd, back))
    w.areas.append((np.array([[-half, -half], [half, -half], [half, half], [-half, half]]), AreaKind.INTERSECTION))
    # phases: arms 0/2 (E-W) and 1/3 (N-S); ego arrives on arm 0
    ego_green = rng.uniform() < 0.55
    t_switch = float(rng.uniform(-1.5, 6.0))
    turn = rng.choice(["left", "straight", "right"], p=[0.3, 0.4, 0.3])
    w.command = {"left": Command.LEFT, "straight": Command.STRAIGHT, "right": Command.RIGHT}[str(turn)]

    switching = rng.uniform() < 0.4
    switch_at = t_switch if switching else np.inf
    program_ew, program_ns = _LightProgram(bool(ego_green), switch_at), _LightProgram(not ego_green, switch_at)
    states_ew = program_ew.states(TIMES)
    exits = {}
    for k, (_rot, _fwd, back) in enumerate(arms):
        exits[k] = back  # lanes leaving the centre on arm k
    connectors = []
    for k, (_rot, fwd, _back) in enumerate(arms):
        program = program_ew if k % 2 == 0 else program_ns
        for li, lane in enumerate(fwd):
            end = w.lanes[lane].points[-1]
            moves = {"straight": (k + 2) % 4}
            if li == 1:  # inner lane turns left
                moves["left"] = (k + 3) % 4
            else:
                moves["right"] = (k + 1) % 4
            for move, target in moves.items():
                out = exits[target][1 - li] if move == "straight" else exits[target][0 if move == "right" else 1]
                start = w.lanes[out].points[0]
                d_in = w.lanes[lane].points[-1] - w.lanes[lane].points[-2]
                d_out = w.lanes[out].points[1] - w.lanes[out].points[0]
                if move == "straight":
                    curve = np.stack([end, start])
                    curve = resample_polyline(curve, 3.0)
                else:
                    a = np.array([d_in, -d_out]).T
                    tt = np.linalg.solve(a, start - end)
                    ctrl = end + tt[0] * d_in
                    curve = _bezier(end, ctrl, start)
                c = w.add_lane(_Lane(curve, limit, w.lane_width, connector=True))
                w.successors += [(lane, c), (c, out)]
                connectors.append((k, li, move, lane, c, out))
            dir_in = d_in / np.linalg.norm(d_in)
            nrm = np.array([-dir_in[1], dir_in[0]])
            stop = np.array(
                [
                    end + 0.5 * w.lane_width * nrm,
                    end - 0.5 * w.lane_width * nrm,
                    end - 0.5 * w.lane_width * nrm - 2.0 * dir_in,
                    end + 0.5 * w.lane_width * nrm - 2.0 * dir_in,
                ]
            )
            w.lights.append((lane, stop, program))
    # ego on arm 0: lane 1 (inner) for left, lane 0 for right, either for straight
    ego_li = 1 if turn == "left" else 0 if turn == "right" else int(rng.integers(0, 2))
    conn = next(c for c in connectors if c[0] == 0 and c[1] == ego_li and c[2] == turn)
    ego_path = np.concatenate([w.lanes[conn[3]].points, w.lanes[conn[4]].points[1:], w.lanes[conn[5]].points[1:]])
    exit_arm = {"straight": 2, "left": 3, "right": 1}[str(turn)]
    # the route holds every lane connector from the ego's arm to its exit arm (nuPlan routes by roadblock)
    route_connectors = [c[4] for c in connectors if c[0] == 0 and c[2] == turn]
    w.route_lanes = [*arms[0][1], *route_connectors, *exits[exit_arm]]
    red_now = states_ew[CURRENT_INDEX] != LightState.GREEN
    waiting = red_now and rng.uniform() < 0.35  # standing at the line, waiting for green
    dist_to_stop = float(rng.uniform(1.0, 3.0) if waiting else rng.uniform(8.0, 45.0))
    s_stop = polyline_arclength(w.lanes[conn[3]].points)[-1]
    s0 = s_stop - dist_to_stop - PACIFICA.rear_axle_to_front
    v_max = np.sqrt(2 * 2.0 * max(dist_to_stop - 3.0, 0.5)) if red_now or not ego_green else limit
    turn_limit = 7.0 if turn != "straight" else limit
    v = min(_ego_speed(limit, rng), v_max, max(turn_limit, np.sqrt(2 * 1.5 * dist_to_stop) + turn_limit * 0.5))
    _place_ego(w, rng, ego_path, s0, 0.0 if waiting else v)
    if (red_now or not ego_green) and not waiting:
        _brake_for(w, dist_to_stop)
    # traffic on every approach, following their connectors when they reach the box
    for k, li, move, lane, c, out in connectors:
        if move != "straight" and rng.uniform() < 0.5:
            continue
        path = np.concatenate([w.lanes[lane].points, w.lanes[c].points[1:], w.lanes[out].points[1:]])
        s = float(rng.uniform(5.0, 40.0))
        while s < s_stop - 3.0:
            in_ego_lane = k == 0 and li == ego_li
            too_close = in_ego_lane and -14.0 < s - s0 < 2.5 * v + 15.0
            if not too_close and rng.uniform() < 0.6:
                w.movers.append(
                    _Mover(
                        path,
                        s,
                        limit * rng.uniform(0.5, 0.9),
                        AgentClass.VEHICLE,
                        (4.6, 1.95),
                        desired=(7.0 if move != "straight" else limit) * rng.uniform(0.9, 1.05),
                    )
                )
            s += rng.uniform(15.0, 35.0)
    # protected phase: oncoming traffic of the ego's arm (arm 2) does not conflict with a left turn
    if turn == "left":
        w.movers = [
            m for m in w.movers if not (m.kind == "idm" and np.allclose(m.path[0], w.lanes[arms[2][1][1]].points[0]))
        ]


def _family_merge(rng, w: _World) -> None:
    w.command = Command.LEFT  # joining the main road is a lane change to the left
    limit = float(rng.choice([13.9, 16.7, 22.2]))
    main = _straight(-100.0, 170.0)
    fwd, back = _add_road(w, main, 2, int(rng.integers(0, 2)), limit)
    w.ego_limit = limit
    right = fwd[1]
    merge_x = float(rng.uniform(25.0, 60.0))
    lw = w.lane_width
    y_right = -1.5 * lw
    # ramp: parallel lane to the right that tapers into the right lane between merge_x and merge_x + 40
    xs = np.linspace(-100.0, merge_x + 40.0, 80)
    taper = np.clip((xs - merge_x) / 40.0, 0.0, 1.0)
    taper = taper * taper * (3 - 2 * taper)
    ramp = np.stack([xs, y_right - lw * (1.0 - taper)], -1)
    r = w.add_lane(_Lane(ramp, limit, lw))
    w.successors.append((r, right))
    ramp_area = _strip(ramp[ramp[:, 0] <= merge_x + 40.0], 0.5 * lw, 0.5 * lw)
    w.areas.append((ramp_area, AreaKind.ROAD))
    rs = polyline_arclength(ramp)[-1]
    r_pts = w.lanes[right].points
    s_join, _ = project_on_polyline(ramp[-1], r_pts)
    tail = r_pts[polyline_arclength(r_pts) > s_join + 1.0]
    ego_path = np.concatenate([ramp, tail])
    w.route_lanes = [r, *fwd]
    s0 = float(rng.uniform(rs - 80.0, rs - 45.0))
    v = limit * rng.uniform(0.55, 0.85)
    _place_ego(w, rng, ego_path, s0, v)
    _traffic(w, rng, fwd + back, (0.0, 260.0), limit, 0.5)
    # a main-lane vehicle near the merge point
    s_ego_main, _ = project_on_polyline(interpolate_polyline(ego_path, np.array(s0))[0], r_pts)
    w.movers.append(
        _Mover(
            r_pts,
            float(s_ego_main + rng.uniform(-25.0, 25.0)),
            v * rng.uniform(0.8, 1.1),
            AgentClass.VEHICLE,
            (4.7, 2.0),
            desired=limit,
        )
    )


# ---------------------------------------------------------------------------------------------- dynamics


class _PathBank:
    """Paths of many movers resampled at 2 m and padded, for vectorised lookups and projections."""

    def __init__(self, paths: list[np.ndarray], spacing: float = 2.0):
        dense = [resample_polyline(p, spacing) for p in paths]
        self.num = np.array([len(d) for d in dense])
        size = int(self.num.max())
        self.pts = np.zeros((len(dense), size, 2))
        self.cum = np.zeros((len(dense), size))
        for i, d in enumerate(dense):
            cum = polyline_arclength(d)
            self.pts[i, : len(d)], self.pts[i, len(d) :] = d, d[-1]
            self.cum[i, : len(d)] = cum
            self.cum[i, len(d) :] = cum[-1] + 1e6 * np.arange(1, size - len(d) + 1)  # never selected
        seg = np.diff(self.pts, axis=1)
        seg_len = np.maximum(np.diff(self.cum, axis=1), 1e-9)
        self.tangent = seg / seg_len[..., None]
        self.tangent = np.where(np.isfinite(self.tangent), self.tangent, 0.0)
        last = self.num - 2
        rows = np.arange(len(dense))
        for i in rows:  # padded segments reuse the last real tangent (for extrapolation)
            self.tangent[i, last[i] + 1 :] = self.tangent[i, last[i]]

    def at(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions (N, 2) and headings (N,) of each path i at arc length s[i] (extrapolated past the ends)."""
        rows = np.arange(len(s))
        k = np.clip((self.cum <= s[:, None]).sum(1) - 1, 0, self.num - 2)
        t = self.tangent[rows, k]
        pos = self.pts[rows, k] + (s - self.cum[rows, k])[:, None] * t
        return pos, np.arctan2(t[:, 1], t[:, 0])

    def project(self, which: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Arc length and lateral offset (each (len(which), M)) of points (M, 2) on paths `which`: nearest
        vertex first, then the exact foot point on the better of its two segments."""
        pts, cum = self.pts[which], self.cum[which]  # (W, P, 2)
        d2 = (points**2).sum(-1)[None, :, None] - 2.0 * np.einsum("md,wpd->wmp", points, pts)
        d2 += (pts**2).sum(-1)[:, None, :]
        k = np.argmin(d2, axis=-1)  # (W, M)
        last = (self.num[which] - 2)[:, None]
        w_idx = np.arange(len(which))[:, None]
        best_s = best_l = best_d = None
        for seg in (np.clip(k - 1, 0, last), np.minimum(k, last)):
            t = self.tangent[which][w_idx, seg]
            rel = points[None] - pts[w_idx, seg]
            seg_len = cum[w_idx, seg + 1] - cum[w_idx, seg]
            along = (rel * t).sum(-1)
            lo = np.where(seg == 0, -np.inf, 0.0)
            hi = np.where(seg == last, np.inf, seg_len)
            along_c = np.clip(along, lo, hi)
            lateral = t[..., 0] * rel[..., 1] - t[..., 1] * rel[..., 0]
            dist = (along - along_c) ** 2 + lateral**2
            if best_d is None:
                best_s, best_l, best_d = cum[w_idx, seg] + along_c, lateral, dist
            else:
                better = dist < best_d
                best_s = np.where(better, cum[w_idx, seg] + along_c, best_s)
                best_l = np.where(better, lateral, best_l)
                best_d = np.minimum(dist, best_d)
        return best_s, best_l


def _ghost_constant_velocity(w: _World, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ego as the world's agents see it: box centres (T, 2) and speeds (T,) over `times`, its history and
    then constant velocity along its path."""
    s = w.ego_s0 + np.where(times < 0, w.ego_speed * times + 0.5 * w.ego_accel * times**2, w.ego_speed * times)
    v = np.where(times < 0, w.ego_speed + w.ego_accel * times, w.ego_speed)
    pos, _ = interpolate_polyline(w.ego_path, s + PACIFICA.rear_axle_to_center)
    return pos, v


def _simulate_movers(
    w: _World, times: np.ndarray, ghost: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poses (N, T, 3) box centres, velocities (N, T, 2) and validity (N, T) of all movers over `times` (0.1 s
    apart, from -1.5 s), reacting to the ego's `ghost` (centres (T, 2), speeds (T,))."""
    ms = w.movers
    n, num_times = len(ms), len(times)
    poses = np.zeros((n, num_times, 3))
    vels = np.zeros((n, num_times, 2))
    valid = np.ones((n, num_times), bool)
    if n == 0:
        return poses, vels, valid
    bank = _PathBank([m.path for m in ms])
    s = np.array([m.s0 for m in ms], dtype=np.float64)
    v = np.array([m.speed for m in ms], dtype=np.float64)
    lengths = np.array([m.size[0] for m in ms])
    widths = np.array([m.size[1] for m in ms])
    idm = np.array([m.kind == "idm" for m in ms])
    const = np.array([m.kind == "const" for m in ms])
    desired = np.array([m.desired for m in ms])
    brake_at = np.array([np.inf if m.brake_at is None else m.brake_at for m in ms])
    brake_decel = np.array([m.brake_decel for m in ms])
    start_at = np.array([m.start_at for m in ms])
    # IDM vehicles start 1.5 s before t = 0 where their current speed would have put them
    s = np.where(idm, s + v * times[0], s)
    # constant-speed movers are analytic (standing still before start_at)
    moved = np.where(np.isfinite(start_at)[:, None], np.maximum(times[None] - start_at[:, None], 0.0), times[None])
    s_const = s[:, None] + v[:, None] * moved  # (N, T)
    ego_pos, ego_v = ghost
    followers = np.nonzero(idm)[0]
    # traffic lights on each follower's path: (follower, light) arc length of the stop line, inf if not on it
    light_states = np.array([program.states(times) for _, _, program in w.lights]).reshape(len(w.lights), num_times)
    if len(w.lights) and len(followers):
        centres = np.array([stop.mean(0) for _, stop, _ in w.lights])
        ls, ll = bank.project(followers, centres)
        light_s = np.where((np.abs(ll) < 1.0) & (ls > 0.0), ls + 1.0, np.inf)
    else:
        light_s = np.full((len(followers), len(w.lights)), np.inf)
    stopping = np.isin(light_states, (LightState.RED, LightState.YELLOW))  # (K, T)
    params = IDMParameters(min_gap=2.0, headway=1.2)
    others_len = np.concatenate([lengths, [PACIFICA.length]])
    others_w = np.concatenate([widths, [PACIFICA.width]])
    for k, t in enumerate(times):
        s_now = np.where(const, s_const[:, k], s)
        pos, head = bank.at(s_now)
        poses[:, k, :2], poses[:, k, 2] = pos, head
        speed_now = np.where(const, np.where(t >= start_at, v, 0.0), v)
        vels[:, k] = speed_now[:, None] * np.stack([np.cos(head), np.sin(head)], -1)
        if k == num_times - 1 or len(followers) == 0:
            continue
        others_pos = np.concatenate([pos, ego_pos[k][None]])
        others_v = np.concatenate([speed_now, [ego_v[k]]])
        so, lo = bank.project(followers, others_pos)  # (F, N + 1)
        me = s[followers][:, None]
        ahead = (so > me) & (np.abs(lo) < 0.5 * (widths[followers][:, None] + others_w[None]) + 0.3)
        ahead[np.arange(len(followers)), followers] = False
        gaps = np.where(ahead, so - me - 0.5 * (lengths[followers][:, None] + others_len[None]), np.inf)
        j = np.argmin(gaps, axis=1)
        rows = np.arange(len(followers))
        gap, lead_v = gaps[rows, j], others_v[j]
        if light_s.shape[1]:
            front = s[followers] + 0.5 * lengths[followers]
            stop_gap = np.where(
                stopping[None, :, k] & (front[:, None] < light_s - 0.5), light_s - 2.0 - front[:, None], np.inf
            )
            g = stop_gap.min(1)
            lead_v = np.where(g < gap, 0.0, lead_v)
            gap = np.minimum(g, gap)
        acc = idm_acceleration(v[followers], desired[followers], gap, lead_v, params)
        # forced braking builds up over BRAKE_ONSET_S (brake-pressure build-up; no instant 6 m/s^2 step)
        ramp = np.clip((t - brake_at[followers]) / BRAKE_ONSET_S, 0.0, 1.0)
        acc = np.where(t >= brake_at[followers], np.minimum(acc, -brake_decel[followers] * ramp), acc)
        vf = v[followers]
        s[followers] = s[followers] + np.maximum(vf * DT + 0.5 * acc * DT**2, 0.0)
        v[followers] = np.maximum(vf + acc * DT, 0.0)
    # the log holds an agent only while it is within VIEW_RANGE of the logged ego
    valid = np.linalg.norm(poses[..., :2] - ego_pos[None], axis=-1) < VIEW_RANGE
    return poses, vels, valid


# ------------------------------------------------------------------------------------------------ assembly


def _pad(arrays: list[np.ndarray], width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    n = max(len(a) for a in arrays) if width is None else width
    out = np.zeros((len(arrays), n, *arrays[0].shape[1:]))
    for i, a in enumerate(arrays):
        out[i, : len(a)] = a
        out[i, len(a) :] = a[-1]
    return out, np.array([len(a) for a in arrays], dtype=np.int64)


def _to_ego_frame(xy: np.ndarray, origin: np.ndarray, heading: float) -> np.ndarray:
    c, s = np.cos(heading), np.sin(heading)
    d = xy - origin
    return np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]], -1)


@dataclass(frozen=True)
class _EgoPast:
    """The ego's past in the world frame, oldest first, the last sample now: rear-axle poses (H + 1, 3) with
    unwrapped headings, body-frame velocities and accelerations (H + 1, 2)."""

    poses: np.ndarray
    velocities: np.ndarray
    accelerations: np.ndarray


def _ego_history(w: _World) -> _EgoPast:
    """The constant-acceleration past of the scene's ego, its rear axle on the ego path."""
    th = TIMES[: CURRENT_INDEX + 1]
    s_hist = w.ego_s0 + w.ego_speed * th + 0.5 * w.ego_accel * th**2
    v_hist = np.maximum(w.ego_speed + w.ego_accel * th, 0.0)
    pos, head = interpolate_polyline(w.ego_path, s_hist)
    path_heading = np.unwrap(polyline_headings(resample_polyline(w.ego_path, 1.0)))
    s_res = polyline_arclength(resample_polyline(w.ego_path, 1.0))
    kappa = np.interp(s_hist, s_res, np.gradient(path_heading, s_res))
    vel = np.stack([v_hist, np.zeros_like(v_hist)], -1)
    acc = np.stack([np.full_like(v_hist, w.ego_accel), v_hist**2 * kappa], -1)
    return _EgoPast(np.concatenate([pos, np.unwrap(head)[:, None]], -1), vel, acc)


def _frame(
    w: _World,
    past: _EgoPast,
    movers: tuple[np.ndarray, np.ndarray, np.ndarray],
    light_states: np.ndarray,
    rng: np.random.Generator,
    token: str,
    family: str,
    seed: int,
) -> Scene:
    """The scene seen from the ego's last past pose: `movers` = world-frame poses (N, T, 3), velocities (N, T, 2)
    and validity (N, T) on the scene's time grid, `light_states` (K, T); `rng` draws the velocity noise."""
    o, h0 = past.poses[-1, :2], float(past.poses[-1, 2])
    hist_xy = _to_ego_frame(past.poses[:, :2], o, h0)
    hist_heading = wrap_angle(past.poses[:, 2] - h0)

    lanes = [_to_ego_frame(ln.points, o, h0) for ln in w.lanes]
    lane_pts, lane_num = _pad(lanes)
    lane_head = np.zeros(lane_pts.shape[:2])
    for i, pts in enumerate(lanes):
        lane_head[i, : len(pts)] = polyline_headings(pts)
        lane_head[i, len(pts) :] = lane_head[i, len(pts) - 1]
    lane_polys, lane_poly_num = _pad([_strip(p, 0.5 * ln.width, 0.5 * ln.width) for p, ln in zip(lanes, w.lanes)])
    area_polys, area_num = _pad([_to_ego_frame(a, o, h0) for a, _ in w.areas])
    k = len(w.lights)
    route = _to_ego_frame(resample_polyline(w.ego_path, 2.0), o, h0)
    speed_of_lane = np.array([ln.speed_limit for ln in w.lanes])
    mp = MapData(
        lane_centerlines=lane_pts,
        lane_num_points=lane_num,
        lane_headings=lane_head,
        lane_speed_limits=speed_of_lane.astype(np.float64),
        lane_widths=np.array([ln.width for ln in w.lanes], dtype=np.float64),
        lane_polygons=lane_polys,
        lane_polygon_num=lane_poly_num,
        lane_is_connector=np.array([ln.connector for ln in w.lanes], dtype=bool),
        lane_successors=np.array(w.successors, dtype=np.int64).reshape(-1, 2),
        area_polygons=area_polys,
        area_polygon_num=area_num,
        area_kinds=np.array([kind for _, kind in w.areas], dtype=np.int8),
        light_lanes=np.array([ln for ln, _, _ in w.lights], dtype=np.int64),
        light_stop_polygons=np.array([_to_ego_frame(p, o, h0) for _, p, _ in w.lights]).reshape(k, 4, 2),
        light_states=np.asarray(light_states, dtype=np.int8).reshape(k, NUM_TIMES),
        route_lanes=np.array(sorted(set(w.route_lanes)), dtype=np.int64),
        route_centerline=route,
        route_speed_limits=np.full(len(route), w.ego_limit),
    )
    poses, vels, valid = (a.copy() for a in movers)
    if len(w.movers):
        poses[..., :2] = _to_ego_frame(poses[..., :2], o, h0)
        poses[..., 2] = wrap_angle(poses[..., 2] - h0)
        c, s = np.cos(h0), np.sin(h0)
        vels = np.stack([c * vels[..., 0] + s * vels[..., 1], -s * vels[..., 0] + c * vels[..., 1]], -1)
        moving = np.hypot(vels[..., 0], vels[..., 1]) > 0.5  # a tracker's velocity estimates are noisy
        vels = vels + np.where(moving[..., None], rng.normal(0.0, VELOCITY_NOISE, vels.shape), 0.0)
        agents = Agents(
            ids=np.arange(len(w.movers), dtype=np.int64),
            classes=np.array([m.cls for m in w.movers], dtype=np.int8),
            sizes=np.array([m.size for m in w.movers], dtype=np.float64),
            poses=poses,
            velocities=vels,
            valid=valid,
        )
    else:
        agents = Agents.empty()
    ego = EgoState(
        history_poses=np.concatenate([hist_xy, hist_heading[:, None]], -1),
        history_velocities=past.velocities,
        history_accelerations=past.accelerations,
        command=int(w.command),
    )
    return Scene(token=token, map=mp, agents=agents, ego=ego, family=family, seed=seed).validate()


def _build_world(seed: int, family: str | None) -> tuple[_World, str, np.random.Generator]:
    """The world of one seed, its family, and the generator's random state after building it."""
    rng = np.random.default_rng(seed)
    if family is None:
        names = list(FAMILY_WEIGHTS)
        p = np.array([FAMILY_WEIGHTS[k] for k in names])
        family = str(rng.choice(names, p=p / p.sum()))
    if family not in FAMILIES:
        raise ValueError(f"unknown scenario family {family!r}; known: {', '.join(FAMILIES)}")
    w = _World(lane_width=float(rng.uniform(*LANE_WIDTHS)))
    if family in ("straight", "curve"):
        _family_road(rng, w, curved=family == "curve")
    elif family == "lead_braking":
        _family_lead_braking(rng, w)
    elif family == "cut_in":
        _family_cut_in(rng, w)
    elif family == "static_obstacle":
        _family_static(rng, w)
    elif family == "pedestrian_crossing":
        _family_pedestrian(rng, w)
    elif family == "intersection":
        _family_intersection(rng, w)
    else:
        _family_merge(rng, w)
    if rng.uniform() < UNKNOWN_COMMAND_P:
        w.command = Command.UNKNOWN
    return w, family, rng


def make_scene(seed: int, family: str | None = None) -> Scene:
    """The scene for one seed; the family is drawn from FAMILY_WEIGHTS unless given."""
    w, family, rng = _build_world(seed, family)
    movers = _simulate_movers(w, TIMES, _ghost_constant_velocity(w, TIMES))
    lights = np.array([program.states(TIMES) for _, _, program in w.lights])
    return _frame(w, _ego_history(w), movers, lights, rng, f"{family}-{seed:08d}", family, seed)


# ------------------------------------------------------------------------------------------ follow-up scenes


@dataclass(frozen=True)
class EgoPerturbation:
    """Where a follow-up scene's ego starts, relative to the driver's state FOLLOW_UP_S later: metres along and
    to the left of its heading, and a factor on its speed."""

    longitudinal: float = 0.0
    lateral: float = 0.0
    speed_factor: float = 1.0


def _extend_dead_ends(w: _World, metres: float) -> None:
    """Continue every lane without a successor, and the ego's path, straight on for `metres` (with road surface
    under the new lane pieces): a follow-up scene's 4 s may drive past where the original scene's map ended."""
    has_next = {a for a, _ in w.successors}
    for i, lane in enumerate(w.lanes):
        if i in has_next or lane.connector:
            continue
        end, before = lane.points[-1], lane.points[-2]
        direction = (end - before) / np.linalg.norm(end - before)
        piece = end + np.linspace(0.0, metres, 7)[:, None] * direction
        lane.points = np.concatenate([lane.points, piece[1:]])
        w.areas.append((_strip(piece, 0.5 * lane.width, 0.5 * lane.width), AreaKind.ROAD))
    end, before = w.ego_path[-1], w.ego_path[-2]
    direction = (end - before) / np.linalg.norm(end - before)
    w.ego_path = np.concatenate([w.ego_path, end + np.linspace(0.0, metres, 7)[1:, None] * direction])


def _world_of(scene: Scene) -> tuple[_World, str, _EgoPast]:
    """The world a generated scene was cut from (its family drawn from the seed, or given), and its ego's past."""
    for family in (None, scene.family):
        w, drawn, _ = _build_world(scene.seed, family)
        past = _ego_history(w)
        same = (
            drawn == scene.family
            and len(w.movers) == len(scene.agents.ids)
            and len(w.lanes) == len(scene.map.lane_num_points)
            and np.allclose(past.velocities, scene.ego.history_velocities)
        )
        if same:
            return w, drawn, past
    raise ValueError(f"scene {scene.token!r}: field 'seed': expected a scene made by make_scene, got another world")


def _to_world(xy: np.ndarray, origin: np.ndarray, heading: float) -> np.ndarray:
    c, s = np.cos(heading), np.sin(heading)
    return origin + np.stack([c * xy[..., 0] - s * xy[..., 1], s * xy[..., 0] + c * xy[..., 1]], -1)


@dataclass(frozen=True)
class FollowUpWorld:
    """A scene's world simulated on to 8 s with its human driver in the ego's place (`follow_up_world`), ready to
    be cut into follow-up scenes any number of times."""

    scene: Scene
    world: _World
    family: str
    movers: tuple[np.ndarray, np.ndarray, np.ndarray]  # poses, velocities, validity over LONG_TIMES
    light_states: np.ndarray  # (K, len(LONG_TIMES))
    driver: _EgoPast  # the driver's 41 states (0 .. 4 s) in the world frame; accelerations = (lon, yaw rate)
    driver_speed: np.ndarray

    def frames(self, perturbations: list[EgoPerturbation], steps_back: int = 0) -> list[Scene]:
        """One follow-up scene per perturbation, FOLLOW_UP_S after the scene, or `steps_back` x 0.1 s earlier
        (its previous frame, with its true past). The ego starts at the driver's 4 s pose moved by the
        perturbation, its 1.5 s past moved with it (and stretched about that pose by the speed factor), its speeds
        scaled. Tokens: ``<token>@+<time>s#<j>``."""
        n_past = CURRENT_INDEX + 1
        n = len(self.driver_speed)
        if not 0 <= steps_back <= n - n_past:
            raise ValueError(f"scene {self.scene.token!r}: field 'steps_back': expected 0..{n - n_past}")
        end = len(LONG_TIMES) - steps_back
        window = slice(end - NUM_TIMES, end)
        movers = tuple(a[:, window] for a in self.movers)
        lights = self.light_states[:, window]
        past = slice(n - n_past - steps_back, n - steps_back)
        xy, head = self.driver.poses[:, :2], self.driver.poses[:, 2]
        hist_xy, hist_head = xy[past], head[past]
        speed, accel = self.driver_speed[past], self.driver.accelerations[past, 0]
        yaw_rate = self.driver.accelerations[past, 1]
        rng = np.random.default_rng([self.scene.seed, 1, steps_back])
        scenes = []
        for j, p in enumerate(perturbations):
            f = p.speed_factor
            shift = _to_world(np.array([p.longitudinal, p.lateral]), np.zeros(2), float(head[-1]))
            moved = xy[-1] + shift + f * (hist_xy - xy[-1])
            ego_past = _EgoPast(
                np.concatenate([moved, hist_head[:, None]], -1),
                np.stack([f * speed, np.zeros_like(speed)], -1),
                np.stack([f * accel, f**2 * speed * yaw_rate], -1),
            )
            token = f"{self.scene.token}@+{FOLLOW_UP_S - steps_back * DT:.1f}s#{j}"
            scenes.append(_frame(self.world, ego_past, movers, lights, rng, token, self.family, self.scene.seed))
        return scenes


def follow_up_world(
    scene: Scene, driver_poses: np.ndarray, driver_speed: np.ndarray, driver_accel: np.ndarray
) -> FollowUpWorld:
    """NAVSIM v2's stage-two world for `scene`. driver_poses (41, 3), driver_speed (41,), driver_accel (41,): the
    scene's human driver simulated over its 4 s (rear axle, scene frame, 0.1 s apart). The world is simulated on
    with the driver in the ego's place (the agents react to it, as logged agents reacted to the human) and then at
    constant velocity; dead-end lanes run on straight (`_extend_dead_ends`)."""
    w, family, now = _world_of(scene)
    o, h0 = now.poses[-1, :2], float(now.poses[-1, 2])
    _extend_dead_ends(w, FOLLOW_UP_EXTENSION_M)
    # the driver in the world frame; the agents see its box centre
    xy = _to_world(np.asarray(driver_poses)[:, :2], o, h0)
    head = np.unwrap(np.asarray(driver_poses)[:, 2] + h0)
    driver_speed = np.asarray(driver_speed)
    centre = xy + PACIFICA.rear_axle_to_center * np.stack([np.cos(head), np.sin(head)], -1)
    past_pos, past_v = _ghost_constant_velocity(w, LONG_TIMES[:CURRENT_INDEX])
    after = LONG_TIMES[CURRENT_INDEX + len(xy) :] - FOLLOW_UP_S
    heading_end = np.array([np.cos(head[-1]), np.sin(head[-1])])
    ghost_pos = np.concatenate([past_pos, centre, centre[-1] + driver_speed[-1] * after[:, None] * heading_end])
    ghost_v = np.concatenate([past_v, driver_speed, np.full(len(after), driver_speed[-1])])
    movers = _simulate_movers(w, LONG_TIMES, (ghost_pos, ghost_v))
    lights = np.array([program.states(LONG_TIMES) for _, _, program in w.lights]).reshape(
        len(w.lights), len(LONG_TIMES)
    )
    driver = _EgoPast(
        np.concatenate([xy, head[:, None]], -1),
        np.stack([driver_speed, np.zeros_like(driver_speed)], -1),
        np.stack([np.asarray(driver_accel), np.gradient(head, DT)], -1),
    )
    return FollowUpWorld(scene, w, family, movers, lights, driver, driver_speed)


def make_follow_up_scenes(
    scene: Scene,
    driver_poses: np.ndarray,
    driver_speed: np.ndarray,
    driver_accel: np.ndarray,
    perturbations: list[EgoPerturbation],
    steps_back: int = 0,
) -> list[Scene]:
    """NAVSIM v2's stage-two scenes for `scene`, one per perturbation: `follow_up_world(...).frames(...)`."""
    return follow_up_world(scene, driver_poses, driver_speed, driver_accel).frames(perturbations, steps_back)


def split_seeds(split: str, num: int) -> range:
    """The first `num` seeds of a split (train / val / test are disjoint seed ranges)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    lo, hi = SPLITS[split]
    if num > hi - lo:
        raise ValueError(f"split {split!r} has only {hi - lo} seeds")
    return range(lo, lo + num)


def make_split(split: str, num: int) -> list[Scene]:
    """`num` scenes of a split, deterministic."""
    return [make_scene(seed) for seed in split_seeds(split, num)]
