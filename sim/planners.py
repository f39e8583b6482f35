"""Reference planners: constant velocity and PDM-Closed (it sees the map, route, lights and agents).

Every planner maps a scene to one proposal (8, 3): rear-axle x, y, heading at 0.5 .. 4.0 s in the ego frame.
Learned planners (the ego-status MLP, DiffusionDrive, WAM-Diff) need torch and live in policies/driving/.

PDM-Closed (Dauner et al., as docs/methods.md describes it): the route centreline shifted by {0, -1, +1} m,
each followed with IDM at [1.0, 0.8, 0.6, 0.4, 0.2] x the speed limit, leading objects found along each path
(agents forecast at constant velocity from their current state, as NAVSIM's PDM-Closed does - the default and
EP's reference - or, privileged, from the scene's logged future; red lights as stopped objects at their stop
line); the
15 proposals are simulated (LQR + bicycle) and scored with the PDM score against the same forecast, and
the best is returned (scores within 0.01 of the best are ties: centre path, faster first).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from diffpilot.sim.geometry import box_corners, interpolate_polyline, offset_polyline, project_on_polyline
from diffpilot.sim.idm import IDMParameters, idm_acceleration
from diffpilot.sim.scene import Agents, LightState, Scene
from diffpilot.sim.scoring import ScoringContext, score_states
from diffpilot.sim.simulate import (
    SIM_DT,
    SIM_STEPS,
    SimulatedStates,
    simulate_proposals,
    to_proposal,
)
from diffpilot.sim.vehicle import PACIFICA


def ego_initial_state(scene: Scene) -> tuple[float, float, float]:
    """(speed, longitudinal acceleration, steering angle) of the ego now, as NAVSIM builds the simulation's
    first state from ego status (navsim_scenario_utils.py ``ego_status_to_ego_state``): the steering angle is 0."""
    e = scene.ego
    return float(np.hypot(*e.velocity)), float(e.acceleration[0]), 0.0


def simulate_in_scene(scene: Scene, proposals: np.ndarray) -> SimulatedStates:
    """Simulate proposals (B, 8, 3) of one scene from the ego's current state. Raises ValueError naming the
    scene token when the proposals have the wrong shape."""
    proposals = np.asarray(proposals, dtype=np.float64)
    if proposals.ndim != 3 or proposals.shape[1:] != (8, 3):
        raise ValueError(f"scene {scene.token!r}: field 'proposals': expected shape (B, 8, 3), got {proposals.shape}")
    speed, accel, steer = ego_initial_state(scene)
    return simulate_proposals(proposals, speed, accel, steer)


class ConstantVelocityPlanner:
    """Keeps the current speed and heading for 4 s (NAVSIM's constant-velocity baseline)."""

    name = "constant_velocity"

    def plan(self, scene: Scene) -> np.ndarray:
        v = scene.ego.speed
        t = np.arange(1, 9) * 0.5
        return np.stack([v * t, np.zeros(8), np.zeros(8)], -1)


def constant_velocity_forecast(scene: Scene) -> Scene:
    """A copy of the scene whose agents keep their current velocity over the future (what PDM-Closed knows)."""
    a, c = scene.agents, scene.current_index
    t = (np.arange(scene.num_times) - c) * scene.dt
    fut = t > 0
    poses, vel, valid = a.poses.copy(), a.velocities.copy(), a.valid.copy()
    poses[:, fut, :2] = a.poses[:, c, None, :2] + a.velocities[:, c, None, :] * t[None, fut, None]
    poses[:, fut, 2] = a.poses[:, c, None, 2]
    vel[:, fut] = a.velocities[:, c, None, :]
    valid[:, fut] = a.valid[:, c, None]
    return replace(scene, agents=Agents(a.ids, a.classes, a.sizes, poses, vel, valid))


@dataclass
class PDMClosedConfig:
    speed_fractions: tuple[float, ...] = (1.0, 0.8, 0.6, 0.4, 0.2)
    lateral_offsets: tuple[float, ...] = (0.0, -1.0, 1.0)
    idm: IDMParameters = field(
        default_factory=lambda: IDMParameters(min_gap=1.0, headway=1.5, accel_max=1.5, decel_comfort=3.0)
    )
    tie: float = 0.01  # PDM scores this close to the best count as equal (earlier proposal wins)
    corridor_margin: float = 0.3  # added to half the ego width when deciding what is in the path
    # "constant_velocity": NAVSIM's PDM-Closed, forecasting agents from their current states - EP's reference;
    # "oracle": the scene's own future (log replay) - privileged: the demonstrator and the scenes' human driver
    # (v2's human filter), since several families hold events no forecast from the current state can see (a
    # lead that starts braking inside the 4 s, a pedestrian stepping off the kerb, a cut-in not yet begun)
    forecast: str = "constant_velocity"


PRIVILEGED_PDM_CLOSED = PDMClosedConfig(forecast="oracle")


class PDMClosedPlanner:
    """PDM-Closed: IDM speed fractions x lateral centreline offsets, simulated and scored, best returned."""

    name = "pdm_closed"

    def __init__(self, config: PDMClosedConfig | None = None):
        self.config = config or PDMClosedConfig()
        self.last: dict = {}

    def proposals(self, scene: Scene, world: Scene) -> np.ndarray:
        """The 15 IDM proposals (P, 41, 3) at 0.1 s (t = 0 .. 4 s) in the ego frame."""
        cfg = self.config
        route = scene.map.route_centerline
        paths = [offset_polyline(route, o) for o in cfg.lateral_offsets]
        n_paths = len(paths)
        c = world.current_index
        a = world.agents
        steps = SIM_STEPS + 1
        corners = box_corners(
            a.poses[:, c : c + steps, :2], a.poses[:, c : c + steps, 2], a.sizes[:, None, 0], a.sizes[:, None, 1]
        )  # (N, 41, 4, 2)
        speeds = np.hypot(a.velocities[:, c : c + steps, 0], a.velocities[:, c : c + steps, 1])
        valid = a.valid[:, c : c + steps]
        half_w = 0.5 * PACIFICA.width + cfg.corridor_margin
        front = PACIFICA.rear_axle_to_front
        s_min = np.full((n_paths, steps, len(corners) + 8), np.inf)
        s_max = np.full_like(s_min, -np.inf)
        spd = np.zeros_like(s_min)
        s_start = np.zeros(n_paths)
        red = scene.map.light_states[:, c] == LightState.RED
        stops = scene.map.light_stop_polygons[red]
        for p, path in enumerate(paths):
            s_start[p] = project_on_polyline(np.zeros(2), path)[0]
            if len(corners):
                s, lat = project_on_polyline(corners, path)  # (N, 41, 4)
                inside = (lat.max(-1) > -half_w) & (lat.min(-1) < half_w) & valid
                s_min[p, :, : len(corners)] = np.where(inside, s.min(-1), np.inf).T
                s_max[p, :, : len(corners)] = np.where(inside, s.max(-1), -np.inf).T
                spd[p, :, : len(corners)] = speeds.T
            if len(stops):
                ss, sl = project_on_polyline(stops.mean(1), path)
                ahead = (np.abs(sl) < 2.5) & (ss - 1.0 > s_start[p] + front)
                for j in np.nonzero(ahead)[0][:8]:
                    s_min[p, :, len(corners) + j] = ss[j] - 1.0
                    s_max[p, :, len(corners) + j] = ss[j] + 1.0
        limit = float(np.interp(0.0, np.arange(len(route)), scene.map.route_speed_limits))
        fr = np.array(cfg.speed_fractions)
        path_idx = np.repeat(np.arange(n_paths), len(fr))
        desired = np.tile(fr, n_paths) * limit
        n_prop = len(path_idx)
        s = s_start[path_idx].copy()
        v = np.full(n_prop, scene.ego.speed)
        traj_s = np.zeros((n_prop, steps))
        for k in range(steps):
            traj_s[:, k] = s
            if k == steps - 1:
                break
            s_front = s + front
            lo, hi, vs = s_min[path_idx, k], s_max[path_idx, k], spd[path_idx, k]
            ahead = hi > s_front[:, None]
            gaps = np.where(ahead, lo - s_front[:, None], np.inf)
            j = np.argmin(gaps, axis=1)
            rows = np.arange(n_prop)
            acc = idm_acceleration(v, desired, gaps[rows, j], vs[rows, j], cfg.idm)
            s = s + np.maximum(v * SIM_DT + 0.5 * acc * SIM_DT**2, 0.0)
            v = np.maximum(v + acc * SIM_DT, 0.0)
        out = np.zeros((n_prop, steps, 3))
        for p, path in enumerate(paths):
            rows = path_idx == p
            pos, head = interpolate_polyline(path, traj_s[rows])
            out[rows, :, :2], out[rows, :, 2] = pos, head
        return out

    def plan(self, scene: Scene) -> np.ndarray:
        world = scene if self.config.forecast == "oracle" else constant_velocity_forecast(scene)
        dense = self.proposals(scene, world)
        props = to_proposal(dense)
        states = simulate_in_scene(scene, props)
        scores = score_states(ScoringContext(world), states)
        # scores within `tie` of the best go to the earlier proposal (centre path, faster): a sideways offset
        # must buy a real gain, not the ~1 % of progress an inside offset gains on a curve
        best = int(np.argmax(scores.pdms >= scores.pdms.max() - self.config.tie))
        self.last = {"proposals": props, "scores": scores, "best": best}
        return props[best]
