"""Simulating a trajectory proposal the NAVSIM way: an LQR tracker drives a kinematic bicycle model.

A proposal is 8 rear-axle poses (x, y, heading) at 0.5 s .. 4.0 s in the ego frame. With the current pose
(the origin) prepended it is interpolated to a 0.1 s reference; an LQR tracker computes acceleration and
steering-rate commands, and a kinematic bicycle with first-order actuator lags integrates them for 40 steps
of 0.1 s (41 states including t = 0). Velocities and accelerations in a proposal are ignored, as in NAVSIM.

Constants (docs/methods.md, which matches nuPlan/NAVSIM's defaults): longitudinal LQR q = 10, r = 1;
lateral LQR q = [1, 10, 0] on (lateral error, heading error, steering angle), r = 1 on steering rate;
horizon 10 steps; max steering angle pi/3; acceleration lag 0.2 s, steering lag 0.05 s. Not in docs/methods.md,
taken from nuPlan's tracker defaults: the stopping controller (below 0.2 m/s reference and current speed,
accelerate with -0.5 * speed). The LQR holds one input over the horizon and penalises the terminal error
(nuPlan's one-step formulation); the lateral model is linearised around the reference curvature. Each step
first lags the actuators, then integrates the speed with the lagged acceleration and the pose with the
previous speed and steering angle (batch_kinematic_bicycle.py ``propagate_state``). Unlike NAVSIM the speed is
held at 0 rather than allowed to turn slightly negative after a stop.

Everything is vectorised over a flat batch B (proposals of one or many scenes); the only Python loops run
over the 40 time steps and the 10 horizon steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diffpilot.sim.geometry import wrap_angle
from diffpilot.sim.vehicle import PACIFICA, VehicleParameters

PROPOSAL_POSES = 8
PROPOSAL_DT = 0.5
SIM_DT = 0.1
SIM_STEPS = 40


@dataclass(frozen=True)
class TrackerConfig:
    q_longitudinal: float = 10.0
    r_longitudinal: float = 1.0
    q_lateral: tuple[float, float, float] = (1.0, 10.0, 0.0)
    r_lateral: float = 1.0
    horizon: int = 10
    max_steering: float = np.pi / 3
    accel_time_constant: float = 0.2
    steering_time_constant: float = 0.05
    stopping_velocity: float = 0.2
    stopping_gain: float = 0.5


@dataclass
class SimulatedStates:
    """Simulated ego states, B rows of 41 states at 0.1 s (t = 0 .. 4 s).

    poses: (B, 41, 3) rear-axle x, y, heading; speed: (B, 41) m/s (>= 0); accel_lon: (B, 41) m/s^2;
    accel_lat: (B, 41) m/s^2; yaw_rate: (B, 41) rad/s; steering: (B, 41) rad;
    finite: (B,) False where the proposal had non-finite values (those rows hold a standing ego and must
    score 0).
    """

    poses: np.ndarray
    speed: np.ndarray
    accel_lon: np.ndarray
    accel_lat: np.ndarray
    yaw_rate: np.ndarray
    steering: np.ndarray
    finite: np.ndarray

    def __len__(self) -> int:
        return len(self.poses)

    def take(self, idx) -> SimulatedStates:
        """Rows `idx` (an index array or slice) as a new SimulatedStates."""
        return SimulatedStates(**{k: getattr(self, k)[idx] for k in self.__dataclass_fields__})


def _interp_matrix(query: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """(Q, K) matrix W with W @ values = piecewise-linear interpolation at `query`, flat beyond the ends."""
    w = np.zeros((len(query), len(knots)))
    for qi, t in enumerate(query):
        if t <= knots[0]:
            w[qi, 0] = 1.0
        elif t >= knots[-1]:
            w[qi, -1] = 1.0
        else:
            k = np.searchsorted(knots, t, side="right") - 1
            a = (t - knots[k]) / (knots[k + 1] - knots[k])
            w[qi, k], w[qi, k + 1] = 1.0 - a, a
    return w


_KNOT_T = np.arange(PROPOSAL_POSES + 1) * PROPOSAL_DT  # 0 .. 4.0
_MID_T = _KNOT_T[:-1] + 0.5 * PROPOSAL_DT
_SIM_T = np.arange(SIM_STEPS + 1) * SIM_DT
_POSE_W = _interp_matrix(_SIM_T, _KNOT_T)  # (41, 9)


def reference_from_proposals(proposals: np.ndarray) -> dict[str, np.ndarray]:
    """Interpolated 0.1 s reference of proposals (B, 8, 3) (current pose prepended as the origin).

    Returns poses (B, 41, 3) and the 0.5 s segment speeds (B, 8) and curvatures (B, 8) at segment mid-times.
    """
    b = len(proposals)
    knots = np.concatenate([np.zeros((b, 1, 3)), proposals], axis=1)  # (B, 9, 3)
    heading = np.unwrap(knots[..., 2], axis=1)
    xy = np.einsum("qk,bkd->bqd", _POSE_W, knots[..., :2])
    h = _POSE_W @ heading.T
    poses = np.concatenate([xy, h.T[..., None]], axis=-1)
    dxy = np.diff(knots[..., :2], axis=1)
    mid_heading = 0.5 * (heading[:, 1:] + heading[:, :-1])
    along = dxy[..., 0] * np.cos(mid_heading) + dxy[..., 1] * np.sin(mid_heading)
    seg_speed = along / PROPOSAL_DT
    ds = np.linalg.norm(dxy, axis=-1)
    dpsi = np.diff(heading, axis=1)
    curvature = np.where(ds > 0.5, dpsi / np.maximum(ds, 1e-6), 0.0)
    return {"poses": poses, "segment_speed": seg_speed, "segment_curvature": curvature}


def _profile(values: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Values at segment mid-times (B, 8) interpolated at `times` (Q,) -> (B, Q)."""
    return values @ _interp_matrix(times, _MID_T).T


def initial_steering(yaw_rate: np.ndarray, speed: np.ndarray, vehicle: VehicleParameters = PACIFICA) -> np.ndarray:
    """Steering angle consistent with a yaw rate at a speed (0 below 1 m/s)."""
    yaw_rate, speed = np.asarray(yaw_rate, float), np.asarray(speed, float)
    return np.where(speed > 1.0, np.arctan(vehicle.wheel_base * yaw_rate / np.maximum(speed, 1e-6)), 0.0)


def simulate_proposals(
    proposals: np.ndarray,
    speed: np.ndarray | float,
    accel: np.ndarray | float = 0.0,
    steering: np.ndarray | float = 0.0,
    vehicle: VehicleParameters = PACIFICA,
    config: TrackerConfig = TrackerConfig(),
) -> SimulatedStates:
    """Track proposals (B, 8, 3) from the origin with initial speed/accel/steering (scalars or (B,)).

    Rows with non-finite values are simulated as a zero proposal from standstill and flagged finite=False.
    """
    proposals = np.asarray(proposals, dtype=np.float64)
    if proposals.ndim != 3 or proposals.shape[1:] != (PROPOSAL_POSES, 3):
        raise ValueError(f"proposals: expected shape (B, {PROPOSAL_POSES}, 3), got {proposals.shape}")
    b = len(proposals)
    finite = np.isfinite(proposals).all(axis=(1, 2))
    proposals = np.where(finite[:, None, None], proposals, 0.0)
    v = np.broadcast_to(np.asarray(speed, dtype=np.float64), (b,)).copy()
    a = np.broadcast_to(np.asarray(accel, dtype=np.float64), (b,)).copy()
    delta = np.broadcast_to(np.asarray(steering, dtype=np.float64), (b,)).copy()
    for arr in (v, a, delta):
        arr[~finite | ~np.isfinite(arr)] = 0.0
    v = np.maximum(v, 0.0)

    ref = reference_from_proposals(proposals)
    ref_poses = ref["poses"]
    n, dt, wb = config.horizon, SIM_DT, vehicle.wheel_base
    q_lon, r_lon = config.q_longitudinal, config.r_longitudinal
    q1, q2, q3 = config.q_lateral
    r_lat = config.r_lateral
    max_curv = np.tan(config.max_steering) / wb
    # reference speed at t + horizon, reference curvature over each horizon window
    t_all = np.arange(SIM_STEPS + n + 1) * dt
    v_ref_all = _profile(ref["segment_speed"], t_all)  # (B, 41 + n)
    k_ref_all = np.clip(_profile(ref["segment_curvature"], t_all), -max_curv, max_curv)

    x = np.zeros((b, SIM_STEPS + 1, 3))
    spd = np.zeros((b, SIM_STEPS + 1))
    acc = np.zeros((b, SIM_STEPS + 1))
    ste = np.zeros((b, SIM_STEPS + 1))
    px, py, psi = np.zeros(b), np.zeros(b), np.zeros(b)
    alpha_a = dt / (dt + config.accel_time_constant)
    alpha_d = dt / (dt + config.steering_time_constant)
    for k in range(SIM_STEPS + 1):
        x[:, k] = np.stack([px, py, psi], -1)
        spd[:, k], acc[:, k], ste[:, k] = v, a, delta
        if k == SIM_STEPS:
            break
        # longitudinal LQR: one acceleration held over the horizon, terminal speed error penalised
        v_target = v_ref_all[:, k + n]
        horizon_t = n * dt
        a_cmd = q_lon * horizon_t * (v_target - v) / (q_lon * horizon_t**2 + r_lon)
        stopping = (v_target < config.stopping_velocity) & (v < config.stopping_velocity)
        a_cmd = np.where(stopping, -config.stopping_gain * v, a_cmd)
        # lateral LQR around the time-indexed reference pose
        rp = ref_poses[:, k]
        ex, ey = px - rp[:, 0], py - rp[:, 1]
        e_lat = -np.sin(rp[:, 2]) * ex + np.cos(rp[:, 2]) * ey
        e_head = wrap_angle(psi - rp[:, 2])
        free = [e_lat, e_head, delta]  # rollout with u = 0 (includes the affine curvature term)
        unit = [np.zeros(b), np.zeros(b), np.zeros(b)]  # rollout of x0 = 0, u = 1 without affine term
        for j in range(n):
            vj = np.maximum(v + a_cmd * j * dt, 0.0)
            kj = k_ref_all[:, k + j]
            d_ref = np.arctan(wb * kj)
            gain = vj * dt * (1.0 + np.tan(d_ref) ** 2) / wb
            free = [free[0] + vj * dt * free[1], free[1] + gain * (free[2] - d_ref), free[2]]
            unit = [unit[0] + vj * dt * unit[1], unit[1] + gain * unit[2], unit[2] + dt]
        num = q1 * unit[0] * free[0] + q2 * unit[1] * free[1] + q3 * unit[2] * free[2]
        den = q1 * unit[0] ** 2 + q2 * unit[1] ** 2 + q3 * unit[2] ** 2 + r_lat
        steer_rate = np.where(stopping, 0.0, -num / den)
        # kinematic bicycle, propagated with the current actuator states
        px = px + v * np.cos(psi) * dt
        py = py + v * np.sin(psi) * dt
        psi = psi + v * np.tan(delta) / wb * dt
        # first-order actuator lags; the speed integrates the lagged acceleration (NAVSIM's propagate_state)
        a = a + alpha_a * (a_cmd - a)
        v_next = v + a * dt
        delta_ideal = delta + steer_rate * dt
        delta = np.clip(delta + alpha_d * (delta_ideal - delta), -config.max_steering, config.max_steering)
        a = np.where((v_next <= 0.0) & (a < 0.0), 0.0, a)
        v = np.maximum(v_next, 0.0)
    yaw_rate = spd * np.tan(ste) / wb
    return SimulatedStates(
        poses=x,
        speed=spd,
        accel_lon=acc,
        accel_lat=spd * yaw_rate,
        yaw_rate=yaw_rate,
        steering=ste,
        finite=finite,
    )


def to_proposal(poses_10hz: np.ndarray) -> np.ndarray:
    """Subsample 0.1 s poses (B, 41, 3) (t = 0 .. 4 s) to proposals (B, 8, 3) at 0.5 s .. 4.0 s."""
    return poses_10hz[:, 5::5]
