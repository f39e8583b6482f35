"""Intelligent Driver Model acceleration (Treiber et al.), vectorised."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class IDMParameters:
    min_gap: float = 2.0  # s0 [m]
    headway: float = 1.5  # T [s]
    accel_max: float = 1.5  # a [m/s^2]
    decel_comfort: float = 3.0  # b [m/s^2]
    exponent: float = 4.0  # delta
    decel_limit: float = 6.0  # hard braking bound [m/s^2]


def idm_acceleration(
    speed: np.ndarray,
    desired_speed: np.ndarray,
    gap: np.ndarray,
    lead_speed: np.ndarray,
    p: IDMParameters = IDMParameters(),
) -> np.ndarray:
    """IDM acceleration for followers (arrays broadcast); gap = inf means a free road. Clipped to
    [-decel_limit, accel_max]."""
    speed = np.maximum(np.asarray(speed, dtype=np.float64), 0.0)
    desired = np.maximum(np.asarray(desired_speed, dtype=np.float64), 0.1)
    free = 1.0 - (speed / desired) ** p.exponent
    dv = speed - lead_speed
    s_star = p.min_gap + np.maximum(
        0.0, speed * p.headway + speed * dv / (2.0 * np.sqrt(p.accel_max * p.decel_comfort))
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        interaction = np.where(np.isfinite(gap), (s_star / np.maximum(gap, 0.1)) ** 2, 0.0)
    return np.clip(p.accel_max * (free - interaction), -p.decel_limit, p.accel_max)
