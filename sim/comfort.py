"""Comfort metrics of NAVSIM (C and history comfort HC in v1/v2, two-frame extended comfort EC in v2).

Derivatives use Savitzky-Golay filters (least-squares polynomial fits over a sliding window; at the edges the
first/last full window is used), built here as (n, n) linear operators so a whole batch is one matmul.
Window sizes and polynomial orders follow NAVSIM's comfort metrics: accelerations smoothed with a
quadratic over the whole horizon; jerk = derivative (quadratic, whole horizon) of the acceleration smoothed
over 8 samples; yaw rate and yaw acceleration from the unwrapped heading over 5 samples (orders 2 and 3).

Bounds (docs/methods.md): longitudinal acceleration in (-4.05, 2.40) m/s^2, |lateral acceleration| < 4.89 m/s^2,
|jerk| < 8.37 m/s^3, |longitudinal jerk| < 4.13 m/s^3, |yaw acceleration| < 1.93 rad/s^2,
|yaw rate| < 0.95 rad/s. Extended comfort (NAVSIM v2 defaults): RMS difference between two consecutive
frames' plans over their overlap of acceleration <= 0.7 m/s^2, jerk <= 0.5 m/s^3, yaw rate <= 0.1 rad/s,
yaw acceleration <= 0.1 rad/s^2.
"""

from __future__ import annotations

from functools import lru_cache
from math import factorial

import numpy as np

MIN_LON_ACCEL, MAX_LON_ACCEL = -4.05, 2.40
MAX_LAT_ACCEL = 4.89
MAX_JERK = 8.37
MAX_LON_JERK = 4.13
MAX_YAW_ACCEL = 1.93
MAX_YAW_RATE = 0.95
EC_MAX_ACCEL, EC_MAX_JERK, EC_MAX_YAW_RATE, EC_MAX_YAW_ACCEL = 0.7, 0.5, 0.1, 0.1
COMFORT_NAMES = ("lon_accel", "lat_accel", "jerk", "lon_jerk", "yaw_accel", "yaw_rate")


@lru_cache(maxsize=64)
def savgol_operator(n: int, window: int, order: int, deriv: int = 0, delta: float = 1.0) -> np.ndarray:
    """(n, n) matrix M such that y @ M.T is the Savitzky-Golay estimate of the deriv-th derivative of y."""
    window = min(window, n)
    if order >= window:
        raise ValueError(f"polynomial order {order} needs a window longer than {window}")
    m = np.zeros((n, n))
    for i in range(n):
        start = min(max(i - window // 2, 0), n - window)
        x = (np.arange(start, start + window) - i) * delta
        vander = np.vander(x, order + 1, increasing=True)
        m[i, start : start + window] = factorial(deriv) * np.linalg.pinv(vander)[deriv]
    m.setflags(write=False)
    return m


def _sg(y: np.ndarray, window: int, order: int, deriv: int, dt: float) -> np.ndarray:
    return y @ savgol_operator(y.shape[-1], window, order, deriv, dt).T


def unwrap_heading(heading: np.ndarray) -> np.ndarray:
    return np.unwrap(heading, axis=-1)


def comfort_signals(
    accel_lon: np.ndarray, accel_lat: np.ndarray, heading: np.ndarray, dt: float
) -> dict[str, np.ndarray]:
    """Filtered comfort signals, each (B, n), from body-frame accelerations (B, n) and headings (B, n)."""
    n = accel_lon.shape[-1]
    mag = np.hypot(accel_lon, accel_lat)
    psi = unwrap_heading(heading)
    return {
        "lon_accel": _sg(accel_lon, n, 2, 0, dt),
        "lat_accel": _sg(accel_lat, n, 2, 0, dt),
        "jerk": _sg(_sg(mag, 8, 2, 0, dt), n, 2, 1, dt),
        "lon_jerk": _sg(_sg(accel_lon, 8, 2, 0, dt), n, 2, 1, dt),
        "yaw_accel": _sg(psi, 5, 3, 2, dt),
        "yaw_rate": _sg(psi, 5, 2, 1, dt),
        "accel_mag": _sg(mag, n, 2, 0, dt),
    }


def comfort_checks(accel_lon: np.ndarray, accel_lat: np.ndarray, heading: np.ndarray, dt: float) -> np.ndarray:
    """(B, 6) bool: each of the six comfort criteria (COMFORT_NAMES order) holds over the whole horizon."""
    s = comfort_signals(accel_lon, accel_lat, heading, dt)
    checks = [
        ((s["lon_accel"] > MIN_LON_ACCEL) & (s["lon_accel"] < MAX_LON_ACCEL)).all(-1),
        (np.abs(s["lat_accel"]) < MAX_LAT_ACCEL).all(-1),
        (np.abs(s["jerk"]) < MAX_JERK).all(-1),
        (np.abs(s["lon_jerk"]) < MAX_LON_JERK).all(-1),
        (np.abs(s["yaw_accel"]) < MAX_YAW_ACCEL).all(-1),
        (np.abs(s["yaw_rate"]) < MAX_YAW_RATE).all(-1),
    ]
    return np.stack(checks, axis=-1)


def is_comfortable(accel_lon: np.ndarray, accel_lat: np.ndarray, heading: np.ndarray, dt: float) -> np.ndarray:
    """(B,) float: 1.0 when all six comfort criteria hold, else 0.0."""
    return comfort_checks(accel_lon, accel_lat, heading, dt).all(-1).astype(np.float64)


def extended_comfort(
    now: tuple[np.ndarray, np.ndarray, np.ndarray],
    previous: tuple[np.ndarray, np.ndarray, np.ndarray],
    shift_steps: int,
    dt: float,
) -> np.ndarray:
    """(B,) EC: 1.0 when two consecutive frames' plans agree (RMS differences within bounds) over their overlap.

    now / previous: (accel_lon, accel_lat, heading), each (B, n); `previous` started `shift_steps` earlier,
    so previous[shift_steps:] overlaps now[:n - shift_steps].
    """
    a = comfort_signals(*now, dt)
    b = comfort_signals(*previous, dt)
    n = now[0].shape[-1]
    overlap = n - shift_steps

    def rms(key: str) -> np.ndarray:
        d = a[key][:, :overlap] - b[key][:, shift_steps:]
        return np.sqrt((d**2).mean(-1))

    ok = (
        (rms("accel_mag") <= EC_MAX_ACCEL)
        & (rms("jerk") <= EC_MAX_JERK)
        & (rms("yaw_rate") <= EC_MAX_YAW_RATE)
        & (rms("yaw_accel") <= EC_MAX_YAW_ACCEL)
    )
    return ok.astype(np.float64)
