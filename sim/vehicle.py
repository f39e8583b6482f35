"""Ego vehicle dimensions (nuPlan's Chrysler Pacifica, as NAVSIM uses) and rear-axle <-> box conversions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diffpilot.sim.geometry import box_corners


@dataclass(frozen=True)
class VehicleParameters:
    """Box and wheelbase of the ego. Poses of the ego are rear-axle poses, as in NAVSIM."""

    length: float = 5.176
    width: float = 2.297
    rear_axle_to_center: float = 1.461
    wheel_base: float = 3.089

    @property
    def rear_axle_to_front(self) -> float:
        return self.rear_axle_to_center + 0.5 * self.length


PACIFICA = VehicleParameters()


def ego_centers(poses: np.ndarray, vehicle: VehicleParameters = PACIFICA) -> np.ndarray:
    """Box centres (..., 2) of rear-axle poses (..., 3) = (x, y, heading)."""
    h = poses[..., 2]
    off = vehicle.rear_axle_to_center
    return np.stack([poses[..., 0] + off * np.cos(h), poses[..., 1] + off * np.sin(h)], axis=-1)


def ego_corners(poses: np.ndarray, vehicle: VehicleParameters = PACIFICA) -> np.ndarray:
    """Box corners (..., 4, 2) (front-left, front-right, rear-right, rear-left) of rear-axle poses (..., 3)."""
    return box_corners(ego_centers(poses, vehicle), poses[..., 2], vehicle.length, vehicle.width)
