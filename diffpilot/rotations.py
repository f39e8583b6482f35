"""Rotation representations for absolute end-effector actions (numpy and scipy only, so every folder may use it).

robosuite's absolute OSC_POSE action is (x, y, z, axis-angle (3), gripper): the axis-angle vector jumps where the
angle passes π, and a top-down gripper sits there, so a policy learns (x, y, z, rotation_6d (6), gripper) instead.
`rotation_6d` is the first two rows of the rotation matrix (Zhou et al. 2019, the representation Diffusion Policy's
absolute-action tasks use); it maps back to a rotation by Gram-Schmidt, so any 6 numbers give a valid rotation.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def axis_angle_to_matrix(axis_angle: np.ndarray) -> np.ndarray:
    """(…, 3) rotation vectors (axis × angle, radians) → (…, 3, 3) rotation matrices."""
    v = np.asarray(axis_angle, dtype=np.float64)
    return Rotation.from_rotvec(v.reshape(-1, 3)).as_matrix().reshape(*v.shape[:-1], 3, 3)


def matrix_to_axis_angle(matrix: np.ndarray) -> np.ndarray:
    """(…, 3, 3) rotation matrices → (…, 3) rotation vectors with angles in [0, π]."""
    m = np.asarray(matrix, dtype=np.float64)
    return Rotation.from_matrix(m.reshape(-1, 3, 3)).as_rotvec().reshape(*m.shape[:-2], 3)


def matrix_to_rotation_6d(matrix: np.ndarray) -> np.ndarray:
    """(…, 3, 3) → (…, 6): the first two rows."""
    m = np.asarray(matrix, dtype=np.float64)
    return m[..., :2, :].reshape(*m.shape[:-2], 6)


def rotation_6d_to_matrix(rotation_6d: np.ndarray) -> np.ndarray:
    """(…, 6) → (…, 3, 3) by Gram-Schmidt: row 1 normalised, row 2 made orthogonal to it, row 3 their cross product."""
    d = np.asarray(rotation_6d, dtype=np.float64)
    a1, a2 = d[..., :3], d[..., 3:]
    b1 = a1 / np.linalg.norm(a1, axis=-1, keepdims=True)
    b2 = a2 - (b1 * a2).sum(-1, keepdims=True) * b1
    b2 = b2 / np.linalg.norm(b2, axis=-1, keepdims=True)
    return np.stack([b1, b2, np.cross(b1, b2)], axis=-2)


def axis_angle_to_rotation_6d(axis_angle: np.ndarray) -> np.ndarray:
    """(…, 3) → (…, 6)."""
    return matrix_to_rotation_6d(axis_angle_to_matrix(axis_angle))


def rotation_6d_to_axis_angle(rotation_6d: np.ndarray) -> np.ndarray:
    """(…, 6) → (…, 3)."""
    return matrix_to_axis_angle(rotation_6d_to_matrix(rotation_6d))


def pose_action_to_6d(action: np.ndarray) -> np.ndarray:
    """(…, 7) (position, axis-angle, gripper) → (…, 10) (position, rotation_6d, gripper)."""
    a = np.asarray(action, dtype=np.float64)
    return np.concatenate([a[..., :3], axis_angle_to_rotation_6d(a[..., 3:6]), a[..., 6:]], axis=-1)


def pose_action_from_6d(action: np.ndarray) -> np.ndarray:
    """(…, 10) (position, rotation_6d, gripper) → (…, 7) (position, axis-angle, gripper)."""
    a = np.asarray(action, dtype=np.float64)
    return np.concatenate([a[..., :3], rotation_6d_to_axis_angle(a[..., 3:9]), a[..., 9:]], axis=-1)
