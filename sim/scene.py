"""Typed records of one NAVSIM-style driving scene: map, agents, ego history and status.

Conventions (all scenes):
- Coordinates are metres in the **ego frame at the current time**: the ego's rear axle is at the origin,
  heading 0 points along +x, +y is left. Headings are radians.
- Time runs on a 0.1 s grid from -1.5 s (history) to +4.0 s (future): T = 56 samples, index
  ``CURRENT_INDEX = 15`` is t = 0. Agent trajectories cover the whole grid (log replay of the world);
  the ego's history covers indices 0..15.
- Padded arrays carry a count array (``*_num``); entries beyond the count are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

DT = 0.1
NUM_HISTORY = 15  # steps before the current one (1.5 s)
NUM_FUTURE = 40  # steps after it (4.0 s)
NUM_TIMES = NUM_HISTORY + 1 + NUM_FUTURE
CURRENT_INDEX = NUM_HISTORY


class AgentClass(IntEnum):
    VEHICLE = 0
    PEDESTRIAN = 1
    CYCLIST = 2
    STATIC = 3  # cones, barriers, debris: a collision with one costs NC 0.5, not 0


class LightState(IntEnum):
    UNKNOWN = 0
    GREEN = 1
    YELLOW = 2
    RED = 3


class Command(IntEnum):
    """NAVSIM's driving command: the route's direction (left / right cover turns, lane changes and sharp curves)."""

    LEFT = 0
    STRAIGHT = 1
    RIGHT = 2
    UNKNOWN = 3


class AreaKind(IntEnum):
    ROAD = 0
    INTERSECTION = 1


class SceneError(ValueError):
    """A scene (or a file holding one) is malformed; the message names the scene token and the field."""

    def __init__(self, token: str, field_name: str, problem: str):
        super().__init__(f"scene {token!r}: field {field_name!r}: {problem}")
        self.token, self.field, self.problem = token, field_name, problem


@dataclass
class MapData:
    """Lanes, drivable area, traffic lights and route.

    lane_centerlines: (L, P, 2) padded centreline points; lane_num_points: (L,)
    lane_headings: (L, P) heading of the centreline at each point
    lane_speed_limits: (L,) m/s; lane_widths: (L,) m
    lane_polygons: (L, V, 2) padded lane outlines (left boundary then right boundary reversed);
    lane_polygon_num: (L,)
    lane_is_connector: (L,) True for lanes inside an intersection (nuPlan's lane connectors)
    lane_successors: (E, 2) int edges (from_lane, to_lane) of the lane graph
    area_polygons: (A, V, 2) padded drivable-area polygons; area_polygon_num: (A,); area_kinds: (A,)
    (AreaKind: road surface or intersection; the drivable area is their union)
    light_lanes: (K,) lane index each traffic light controls
    light_stop_polygons: (K, 4, 2) stop-line region at the lane's entry; entering it on red is a violation
    light_states: (K, T) LightState over the scene's time grid
    route_lanes: (R,) indices of the lanes on the route's roadblocks (every lane driving the route's way)
    route_centerline: (C, 2) the centreline the ego is meant to follow; route_speed_limits: (C,)
    """

    lane_centerlines: np.ndarray
    lane_num_points: np.ndarray
    lane_headings: np.ndarray
    lane_speed_limits: np.ndarray
    lane_widths: np.ndarray
    lane_polygons: np.ndarray
    lane_polygon_num: np.ndarray
    lane_is_connector: np.ndarray
    lane_successors: np.ndarray
    area_polygons: np.ndarray
    area_polygon_num: np.ndarray
    area_kinds: np.ndarray
    light_lanes: np.ndarray
    light_stop_polygons: np.ndarray
    light_states: np.ndarray
    route_lanes: np.ndarray
    route_centerline: np.ndarray
    route_speed_limits: np.ndarray

    @property
    def num_lanes(self) -> int:
        return len(self.lane_centerlines)

    def lane_points(self, lane: int) -> np.ndarray:
        """Unpadded centreline (P_i, 2) of one lane."""
        return self.lane_centerlines[lane, : self.lane_num_points[lane]]


@dataclass
class Agents:
    """Other road users over the scene's time grid (log replay).

    ids: (N,) int; classes: (N,) AgentClass; sizes: (N, 2) box length and width
    poses: (N, T, 3) box-centre x, y, heading; velocities: (N, T, 2) world-frame vx, vy
    valid: (N, T) whether the agent exists at that time
    """

    ids: np.ndarray
    classes: np.ndarray
    sizes: np.ndarray
    poses: np.ndarray
    velocities: np.ndarray
    valid: np.ndarray

    @property
    def num(self) -> int:
        return len(self.ids)

    @staticmethod
    def empty(num_times: int = NUM_TIMES) -> Agents:
        return Agents(
            ids=np.zeros(0, np.int64),
            classes=np.zeros(0, np.int8),
            sizes=np.zeros((0, 2)),
            poses=np.zeros((0, num_times, 3)),
            velocities=np.zeros((0, num_times, 2)),
            valid=np.zeros((0, num_times), bool),
        )


@dataclass
class EgoState:
    """Ego history and status at the current time.

    history_poses: (H+1, 3) rear-axle x, y, heading at t = -1.5 .. 0 s (0.1 s apart; the last is the
    current pose, the origin); history_velocities: (H+1, 2) body-frame vx, vy;
    history_accelerations: (H+1, 2) body-frame ax, ay.
    command: the driving command (Command: left / straight / right / unknown) for the route ahead.
    """

    history_poses: np.ndarray
    history_velocities: np.ndarray
    history_accelerations: np.ndarray
    command: int

    @property
    def velocity(self) -> np.ndarray:
        """(2,) body-frame velocity now."""
        return self.history_velocities[-1]

    @property
    def acceleration(self) -> np.ndarray:
        """(2,) body-frame acceleration now."""
        return self.history_accelerations[-1]

    @property
    def speed(self) -> float:
        return float(np.hypot(*self.velocity))


@dataclass
class Scene:
    """One scene: a token, the family and seed that made it, the map, agents and the ego."""

    token: str
    map: MapData
    agents: Agents
    ego: EgoState
    family: str = ""
    seed: int = -1
    dt: float = DT
    num_history: int = NUM_HISTORY
    num_future: int = NUM_FUTURE
    info: dict = field(default_factory=dict)

    @property
    def num_times(self) -> int:
        return self.num_history + 1 + self.num_future

    @property
    def current_index(self) -> int:
        return self.num_history

    def validate(self) -> Scene:
        """Raise SceneError (naming token and field) on wrong shapes, non-finite values or an empty map."""
        validate_scene(self)
        return self


def _check(cond: bool, token: str, name: str, problem: str) -> None:
    if not cond:
        raise SceneError(token, name, problem)


def _check_array(token: str, name: str, arr, shape: tuple, finite: bool = True) -> None:
    """shape: tuple of ints or None (any size) per dimension."""
    _check(isinstance(arr, np.ndarray), token, name, f"expected a numpy array, got {type(arr).__name__}")
    ok = arr.ndim == len(shape) and all(s is None or s == d for s, d in zip(shape, arr.shape))
    want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
    _check(ok, token, name, f"expected shape {want}, got {arr.shape}")
    if finite and arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        _check(not bad.any(), token, name, f"{int(bad.sum())} non-finite values (NaN/inf)")


def validate_scene(scene: Scene) -> None:
    """Check every field of a scene; raise SceneError naming the token and the first bad field."""
    tok = scene.token
    _check(isinstance(tok, str) and len(tok) > 0, str(tok), "token", "must be a non-empty string")
    t = scene.num_times
    m = scene.map
    lanes = len(m.lane_centerlines) if isinstance(m.lane_centerlines, np.ndarray) else 0
    _check(lanes > 0, tok, "map.lane_centerlines", "empty map: no lanes")
    _check_array(tok, "map.lane_centerlines", m.lane_centerlines, (lanes, None, 2))
    p = m.lane_centerlines.shape[1]
    _check_array(tok, "map.lane_num_points", m.lane_num_points, (lanes,))
    _check(
        bool(np.all((m.lane_num_points >= 2) & (m.lane_num_points <= p))),
        tok,
        "map.lane_num_points",
        f"each lane needs 2..{p} points",
    )
    _check_array(tok, "map.lane_headings", m.lane_headings, (lanes, p))
    _check_array(tok, "map.lane_speed_limits", m.lane_speed_limits, (lanes,))
    _check(bool(np.all(m.lane_speed_limits > 0)), tok, "map.lane_speed_limits", "must be positive")
    _check_array(tok, "map.lane_widths", m.lane_widths, (lanes,))
    _check(bool(np.all(m.lane_widths > 0)), tok, "map.lane_widths", "must be positive")
    _check_array(tok, "map.lane_polygons", m.lane_polygons, (lanes, None, 2))
    _check_array(tok, "map.lane_polygon_num", m.lane_polygon_num, (lanes,))
    _check(bool(np.all(m.lane_polygon_num >= 3)), tok, "map.lane_polygon_num", "a polygon needs >= 3 vertices")
    _check_array(tok, "map.lane_is_connector", m.lane_is_connector, (lanes,))
    _check_array(tok, "map.lane_successors", m.lane_successors, (None, 2))
    _check(
        bool(np.all((m.lane_successors >= 0) & (m.lane_successors < lanes))),
        tok,
        "map.lane_successors",
        "lane index out of range",
    )
    areas = len(m.area_polygons) if isinstance(m.area_polygons, np.ndarray) else 0
    _check(areas > 0, tok, "map.area_polygons", "empty map: no drivable area")
    _check_array(tok, "map.area_polygons", m.area_polygons, (areas, None, 2))
    _check_array(tok, "map.area_polygon_num", m.area_polygon_num, (areas,))
    _check(bool(np.all(m.area_polygon_num >= 3)), tok, "map.area_polygon_num", "a polygon needs >= 3 vertices")
    _check_array(tok, "map.area_kinds", m.area_kinds, (areas,))
    k = len(m.light_lanes) if isinstance(m.light_lanes, np.ndarray) else -1
    _check_array(tok, "map.light_lanes", m.light_lanes, (k,))
    _check(bool(np.all((m.light_lanes >= 0) & (m.light_lanes < lanes))), tok, "map.light_lanes", "lane out of range")
    _check_array(tok, "map.light_stop_polygons", m.light_stop_polygons, (k, 4, 2))
    _check_array(tok, "map.light_states", m.light_states, (k, t))
    _check(bool(np.all((m.light_states >= 0) & (m.light_states <= 3))), tok, "map.light_states", "unknown state")
    _check_array(tok, "map.route_lanes", m.route_lanes, (None,))
    _check(len(m.route_lanes) > 0, tok, "map.route_lanes", "empty route")
    _check(bool(np.all((m.route_lanes >= 0) & (m.route_lanes < lanes))), tok, "map.route_lanes", "lane out of range")
    _check_array(tok, "map.route_centerline", m.route_centerline, (None, 2))
    _check(len(m.route_centerline) >= 2, tok, "map.route_centerline", "needs >= 2 points")
    _check_array(tok, "map.route_speed_limits", m.route_speed_limits, (len(m.route_centerline),))

    a = scene.agents
    n = len(a.ids) if isinstance(a.ids, np.ndarray) else -1
    _check_array(tok, "agents.ids", a.ids, (n,))
    _check_array(tok, "agents.classes", a.classes, (n,))
    _check(bool(np.all((a.classes >= 0) & (a.classes <= 3))), tok, "agents.classes", "unknown agent class")
    _check_array(tok, "agents.sizes", a.sizes, (n, 2))
    _check(bool(np.all(a.sizes > 0)), tok, "agents.sizes", "box sizes must be positive")
    _check_array(tok, "agents.valid", a.valid, (n, t))
    _check_array(tok, "agents.poses", a.poses, (n, t, 3), finite=False)
    _check_array(tok, "agents.velocities", a.velocities, (n, t, 2), finite=False)
    for name, arr in (("agents.poses", a.poses), ("agents.velocities", a.velocities)):
        bad = ~np.isfinite(arr).all(axis=-1) & a.valid
        _check(not bad.any(), tok, name, f"{int(bad.sum())} non-finite values where the agent is valid")

    e = scene.ego
    h = scene.num_history + 1
    _check_array(tok, "ego.history_poses", e.history_poses, (h, 3))
    _check_array(tok, "ego.history_velocities", e.history_velocities, (h, 2))
    _check_array(tok, "ego.history_accelerations", e.history_accelerations, (h, 2))
    _check(
        bool(np.allclose(e.history_poses[-1], 0.0, atol=1e-6)),
        tok,
        "ego.history_poses",
        "the current pose must be the origin of the ego frame",
    )
    commands = "0-3 (left/straight/right/unknown)"
    _check(int(e.command) in tuple(Command), tok, "ego.command", f"must be {commands}, got {e.command}")
