"""Comfort terms of NAVSIM's scorer: C (v1.1), history comfort HC and two-frame extended comfort EC (v2).

Every signal is a Savitzky-Golay estimate exactly as scipy's ``savgol_filter`` computes it (mode "interp":
at the edges the polynomial of the first / last full window is evaluated; an even window is centred half a
sample off). The filters are linear, so each is built once as an (n, n) matrix by filtering the identity
with scipy, and a whole batch is one matmul. Values are rounded to 8 decimals, as NAVSIM rounds them.

Windows (navsim/planning/simulation/planner/pdm_planner/scoring/pdm_comfort_metrics.py):
- v1.1 (C): accelerations over the whole horizon; jerk = derivative over the whole horizon of the
  acceleration smoothed over 8 samples.
- v2 (HC): accelerations over 8 samples; jerk = derivative over 15 samples of that acceleration.
- both: yaw rate and yaw acceleration from the unwrapped heading over 5 samples (orders 2 and 3).
In v2 the longitudinal and lateral accelerations are those of the box centre
(``state_array_to_center_state_array``: a_x + d (omega^2 + alpha), a_y, with d the rear-axle-to-centre
distance, as NAVSIM's ``get_acceleration_shifted`` writes it); the magnitude for jerk is the rear axle's.

Bounds (``ego_is_comfortable``): longitudinal acceleration in (-4.05, 2.40) m/s^2, |lateral acceleration|
< 4.89 m/s^2, |jerk| < 8.37 m/s^3, |longitudinal jerk| < 4.13 m/s^3, |yaw acceleration| < 1.93 rad/s^2,
|yaw rate| < 0.95 rad/s. Extended comfort (``ego_is_two_frame_extended_comfort``): RMS difference between two
consecutive frames' plans over their overlap of acceleration <= 0.7 m/s^2, jerk <= 0.5 m/s^3, yaw rate
<= 0.1 rad/s, yaw acceleration <= 0.1 rad/s^2 (its yaw acceleration uses order 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.signal import savgol_filter

MIN_LON_ACCEL, MAX_LON_ACCEL = -4.05, 2.40
MAX_LAT_ACCEL = 4.89
MAX_JERK = 8.37
MAX_LON_JERK = 4.13
MAX_YAW_ACCEL = 1.93
MAX_YAW_RATE = 0.95
EC_MAX_ACCEL, EC_MAX_JERK, EC_MAX_YAW_RATE, EC_MAX_YAW_ACCEL = 0.7, 0.5, 0.1, 0.1
COMFORT_NAMES = ("lon_accel", "lat_accel", "jerk", "lon_jerk", "yaw_accel", "yaw_rate")
DECIMALS = 8
ACCEL_SMOOTHING = 8  # the acceleration window inside every jerk estimate
YAW_WINDOW = 5


@dataclass(frozen=True)
class ComfortWindows:
    """Savitzky-Golay windows of one NAVSIM version; None = the whole horizon."""

    accel: int | None
    jerk: int | None


V1_WINDOWS = ComfortWindows(accel=None, jerk=None)
V2_WINDOWS = ComfortWindows(accel=8, jerk=15)


@lru_cache(maxsize=128)
def savgol_operator(n: int, window: int | None, order: int, deriv: int = 0, delta: float = 1.0) -> np.ndarray:
    """(n, n) matrix M with y @ M.T == scipy.signal.savgol_filter(y, min(window, n), order, deriv, delta)."""
    window = n if window is None else min(window, n)
    if order >= window:
        raise ValueError(f"polynomial order {order} needs a window longer than {window}")
    m = savgol_filter(np.eye(n), window, order, deriv=deriv, delta=delta, axis=0)
    m = np.ascontiguousarray(m)
    m.setflags(write=False)
    return m


def _sg(y: np.ndarray, window: int | None, order: int, deriv: int, dt: float) -> np.ndarray:
    return np.round(y @ savgol_operator(y.shape[-1], window, order, deriv, dt).T, DECIMALS)


def unwrap_heading(heading: np.ndarray) -> np.ndarray:
    """Headings (..., n) with jumps of 2 pi removed (NAVSIM's ``_phase_unwrap``)."""
    return np.unwrap(heading, axis=-1)


def comfort_signals(
    lon_accel: np.ndarray,
    lat_accel: np.ndarray,
    accel_mag: np.ndarray,
    heading: np.ndarray,
    dt: float,
    windows: ComfortWindows,
) -> dict[str, np.ndarray]:
    """The six filtered comfort signals, each (B, n), from accelerations (B, n) and headings (B, n)."""
    psi = unwrap_heading(heading)
    return {
        "lon_accel": _sg(lon_accel, windows.accel, 2, 0, dt),
        "lat_accel": _sg(lat_accel, windows.accel, 2, 0, dt),
        "jerk": _sg(_sg(accel_mag, ACCEL_SMOOTHING, 2, 0, dt), windows.jerk, 2, 1, dt),
        "lon_jerk": _sg(_sg(lon_accel, ACCEL_SMOOTHING, 2, 0, dt), windows.jerk, 2, 1, dt),
        "yaw_accel": _sg(psi, YAW_WINDOW, 3, 2, dt),
        "yaw_rate": _sg(psi, YAW_WINDOW, 2, 1, dt),
    }


def comfort_checks(signals: dict[str, np.ndarray]) -> np.ndarray:
    """(B, 6) bool: each comfort bound (COMFORT_NAMES order) holds at every sample (strict, as NAVSIM)."""
    s = signals
    checks = [
        ((s["lon_accel"] > MIN_LON_ACCEL) & (s["lon_accel"] < MAX_LON_ACCEL)).all(-1),
        (np.abs(s["lat_accel"]) < MAX_LAT_ACCEL).all(-1),
        (np.abs(s["jerk"]) < MAX_JERK).all(-1),
        (np.abs(s["lon_jerk"]) < MAX_LON_JERK).all(-1),
        (np.abs(s["yaw_accel"]) < MAX_YAW_ACCEL).all(-1),
        (np.abs(s["yaw_rate"]) < MAX_YAW_RATE).all(-1),
    ]
    return np.stack(checks, axis=-1)


def is_comfortable(
    lon_accel: np.ndarray,
    lat_accel: np.ndarray,
    heading: np.ndarray,
    dt: float,
    windows: ComfortWindows = V1_WINDOWS,
    accel_mag: np.ndarray | None = None,
) -> np.ndarray:
    """(B,) 1.0 when all six bounds hold. `accel_mag` defaults to |(lon_accel, lat_accel)|."""
    mag = np.hypot(lon_accel, lat_accel) if accel_mag is None else accel_mag
    return comfort_checks(comfort_signals(lon_accel, lat_accel, mag, heading, dt, windows)).all(-1).astype(np.float64)


def centre_lon_accel(accel_x: np.ndarray, yaw_rate: np.ndarray, yaw_accel: np.ndarray, offset: float) -> np.ndarray:
    """Longitudinal acceleration moved from the rear axle to the box centre `offset` metres ahead, as NAVSIM's
    ``get_acceleration_shifted`` computes it: a_x + offset * (yaw_rate^2 + yaw_accel)."""
    return accel_x + offset * (yaw_rate**2 + yaw_accel)


def extended_comfort_features(accel_mag: np.ndarray, heading: np.ndarray, dt: float) -> dict[str, np.ndarray]:
    """The four EC signals (NAVSIM's ``extract_features``), each (B, n)."""
    psi = unwrap_heading(heading)
    acc = _sg(accel_mag, ACCEL_SMOOTHING, 2, 0, dt)
    return {
        "acceleration": acc,
        "jerk": _sg(acc, V2_WINDOWS.jerk, 2, 1, dt),
        "yaw_rate": _sg(psi, YAW_WINDOW, 2, 1, dt),
        "yaw_accel": _sg(psi, YAW_WINDOW, 2, 2, dt),
    }


def two_frame_extended_comfort(
    now: tuple[np.ndarray, np.ndarray],
    previous: tuple[np.ndarray, np.ndarray],
    shift_steps: int,
    dt: float,
) -> np.ndarray:
    """(B,) EC: 1.0 when two consecutive frames' plans agree over their overlap.

    now / previous: (acceleration magnitude, heading), each (B, n); `previous` started `shift_steps` earlier.
    As NAVSIM's ``SceneAggregator._compute_two_frame_comfort``, the overlap is cut first (now[:-k] against
    previous[k:]) and the signals are then filtered on those n - k samples.
    """
    k = shift_steps
    a = extended_comfort_features(now[0][:, :-k], now[1][:, :-k], dt)
    b = extended_comfort_features(previous[0][:, k:], previous[1][:, k:], dt)

    def rms(key: str) -> np.ndarray:
        return np.sqrt(((a[key] - b[key]) ** 2).mean(-1))

    ok = (
        (rms("acceleration") <= EC_MAX_ACCEL)
        & (rms("jerk") <= EC_MAX_JERK)
        & (rms("yaw_rate") <= EC_MAX_YAW_RATE)
        & (rms("yaw_accel") <= EC_MAX_YAW_ACCEL)
    )
    return ok.astype(np.float64)
