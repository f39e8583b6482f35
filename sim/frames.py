"""The previous frame of a scene (0.5 s earlier), for NAVSIM v2's two-frame extended comfort (EC).

A scene holds the world from -1.5 s to +4.0 s, so the frame 0.5 s earlier is the same world seen from the
ego's pose at -0.5 s: every array moves 5 steps later on the time grid and into that pose's frame. What the
scene does not hold (anything before -1.5 s) is marked invalid for agents, and extrapolated at constant
velocity with zero acceleration for the ego's history.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from diffpilot.sim.geometry import wrap_angle
from diffpilot.sim.scene import Agents, EgoState, Scene

SHIFT_STEPS = 5  # 0.5 s at 0.1 s


def _to_frame(xy: np.ndarray, pose: np.ndarray) -> np.ndarray:
    c, s = np.cos(pose[2]), np.sin(pose[2])
    d = xy - pose[:2]
    return np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]], -1)


def _rotate(v: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([c * v[..., 0] + s * v[..., 1], -s * v[..., 0] + c * v[..., 1]], -1)


def _shift_time(arr: np.ndarray, k: int) -> np.ndarray:
    """Move values k steps later along axis 1, repeating the first value into the gap."""
    out = np.empty_like(arr)
    out[:, k:] = arr[:, :-k]
    out[:, :k] = arr[:, :1]
    return out


def _world_in_frame(scene: Scene, pose: np.ndarray, shift) -> tuple:
    """Map and agents re-expressed in the frame of `pose` (x, y, heading), their time axis moved by `shift`
    (a function on (N, T, …) arrays that returns a new array): (MapData, Agents)."""
    m = scene.map
    mp = replace(
        m,
        lane_centerlines=_to_frame(m.lane_centerlines, pose),
        lane_headings=wrap_angle(m.lane_headings - pose[2]),
        lane_polygons=_to_frame(m.lane_polygons, pose),
        area_polygons=_to_frame(m.area_polygons, pose),
        light_stop_polygons=_to_frame(m.light_stop_polygons, pose),
        light_states=shift(m.light_states),
        route_centerline=_to_frame(m.route_centerline, pose),
    )
    a = scene.agents
    poses = shift(a.poses)
    poses[..., :2] = _to_frame(poses[..., :2], pose)
    poses[..., 2] = wrap_angle(poses[..., 2] - pose[2])
    return mp, Agents(a.ids, a.classes, a.sizes, poses, _rotate(shift(a.velocities), pose[2]), shift(a.valid))


def previous_frame(scene: Scene, steps: int = SHIFT_STEPS) -> Scene:
    """The scene as it looked `steps` x 0.1 s earlier, in the ego frame of that moment."""
    e = scene.ego
    h = scene.num_history
    pose = e.history_poses[h - steps]  # the ego then, in the current frame
    mp, agents = _world_in_frame(scene, pose, lambda arr: _shift_time(arr, steps))
    agents.valid[:, :steps] = False
    # ego history: the last h+1-steps samples are known; the earliest `steps` are extrapolated backwards
    known = e.history_poses[: h + 1 - steps]
    xy = _to_frame(known[:, :2], pose)
    head = wrap_angle(known[:, 2] - pose[2])
    v0 = e.history_velocities[0]
    dt = scene.dt
    back = np.arange(steps, 0, -1)[:, None] * dt
    first_dir = np.array([np.cos(head[0]), np.sin(head[0])])
    ext_xy = xy[0] - back * v0[0] * first_dir
    hist_poses = np.concatenate([np.concatenate([ext_xy, np.full((steps, 1), head[0])], 1), np.c_[xy, head]])
    hist_poses[-1] = 0.0
    vel = np.concatenate([np.repeat(e.history_velocities[:1], steps, 0), e.history_velocities[: h + 1 - steps]])
    acc = np.concatenate(
        [np.zeros((steps, 2)), e.history_accelerations[: h + 1 - steps]]
    )  # nothing known before -1.5 s: no acceleration
    ego = EgoState(hist_poses, vel, acc, e.command)
    return replace(scene, token=f"{scene.token}@-{steps * dt:.1f}s", map=mp, agents=agents, ego=ego).validate()


def _shift_earlier(arr: np.ndarray, k: int) -> np.ndarray:
    """Move values k steps earlier along axis 1, repeating the last value into the gap at the end."""
    if k == 0:
        return arr.copy()
    out = np.empty_like(arr)
    out[:, :-k] = arr[:, k:]
    out[:, -k:] = arr[:, -1:]
    return out


def future_frame(
    scene: Scene,
    steps: int,
    ego_poses: np.ndarray,
    ego_velocities: np.ndarray,
    ego_accelerations: np.ndarray,
) -> Scene:
    """The scene `steps` x 0.1 s later, seen from where the ego actually is then (closed-loop replanning).

    ego_poses (H + 1 + steps, 3): the ego's rear-axle poses in the scene's (current) frame on the scene's time
    grid from its first history sample to the new current time; ego_velocities / ego_accelerations: body-frame
    (vx, vy) / (ax, ay) on the same grid. Agents are replayed from the log (non-reactive) and marked invalid
    where the log ends; light states hold their last value.
    """
    h = scene.num_history
    if not 0 <= steps <= scene.num_future:
        raise ValueError(f"scene {scene.token!r}: field 'steps': expected 0..{scene.num_future}, got {steps}")
    n = h + 1 + steps
    for name, arr in (("ego_poses", ego_poses), ("ego_velocities", ego_velocities)):
        if len(arr) != n:
            raise ValueError(f"scene {scene.token!r}: field {name!r}: expected {n} samples, got {len(arr)}")
    pose = np.asarray(ego_poses[-1], dtype=np.float64)
    mp, agents = _world_in_frame(scene, pose, lambda arr: _shift_earlier(arr, steps))
    if steps:
        agents.valid[:, -steps:] = False
    hist = np.asarray(ego_poses[-(h + 1) :], dtype=np.float64)
    hist_poses = np.concatenate([_to_frame(hist[:, :2], pose), wrap_angle(hist[:, 2:3] - pose[2])], -1)
    hist_poses[-1] = 0.0
    ego = EgoState(
        hist_poses,
        np.asarray(ego_velocities[-(h + 1) :], dtype=np.float64),
        np.asarray(ego_accelerations[-(h + 1) :], dtype=np.float64),
        scene.ego.command,
    )
    return replace(scene, token=f"{scene.token}@+{steps * scene.dt:.1f}s", map=mp, agents=agents, ego=ego).validate()
