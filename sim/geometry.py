"""Planar geometry on numpy arrays: oriented boxes, separating-axis overlap tests, point-in-polygon and
projection onto polylines. Everything broadcasts over leading dimensions; nothing loops in Python over
boxes or points."""

from __future__ import annotations

import numpy as np

# Corner order of every box in this package: front-left, front-right, rear-right, rear-left.
FRONT_LEFT, FRONT_RIGHT, REAR_RIGHT, REAR_LEFT = 0, 1, 2, 3


def wrap_angle(angle: np.ndarray) -> np.ndarray:
    """Map angles to [-pi, pi)."""
    return (np.asarray(angle) + np.pi) % (2.0 * np.pi) - np.pi


def box_corners(center: np.ndarray, heading: np.ndarray, length, width) -> np.ndarray:
    """Corners of oriented boxes.

    center: (..., 2); heading: (...); length, width: scalars or arrays broadcastable to (...).
    Returns (..., 4, 2) in the order front-left, front-right, rear-right, rear-left.
    """
    center = np.asarray(center, dtype=np.float64)
    heading = np.asarray(heading, dtype=np.float64)
    c, s = np.cos(heading), np.sin(heading)
    half_l = 0.5 * np.asarray(length, dtype=np.float64)
    half_w = 0.5 * np.asarray(width, dtype=np.float64)
    # local corner offsets (forward, left)
    fwd = np.stack([half_l, half_l, -half_l, -half_l], axis=-1) * np.ones_like(heading)[..., None]
    left = np.stack([half_w, -half_w, -half_w, half_w], axis=-1) * np.ones_like(heading)[..., None]
    x = center[..., 0:1] + fwd * c[..., None] - left * s[..., None]
    y = center[..., 1:2] + fwd * s[..., None] + left * c[..., None]
    return np.stack([x, y], axis=-1)


def _project(poly: np.ndarray, axes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Min/max of polygon vertices (..., V, 2) projected on axes (..., K, 2) -> two (..., K) arrays."""
    dots = np.einsum("...vd,...kd->...kv", poly, axes)
    return dots.min(axis=-1), dots.max(axis=-1)


def _edge_normals(quad: np.ndarray) -> np.ndarray:
    """The two edge normals of rectangles (..., 4, 2) -> (..., 2, 2) (not normalised: SAT does not need it)."""
    e0 = quad[..., 1, :] - quad[..., 0, :]
    e1 = quad[..., 2, :] - quad[..., 1, :]
    edges = np.stack([e0, e1], axis=-2)
    return np.stack([-edges[..., 1], edges[..., 0]], axis=-1)


def _sat_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Separating-axis test for rectangles (..., 4, 2) in centre / half-axis form: along each of the four
    edge directions u the boxes are apart when |(c_b - c_a) . u| exceeds the sum of their half-extents."""
    ca, cb = 0.5 * (a[..., 0, :] + a[..., 2, :]), 0.5 * (b[..., 0, :] + b[..., 2, :])
    # half-axis vectors (not unit): half of two adjacent edges
    a1, a2 = 0.5 * (a[..., 1, :] - a[..., 0, :]), 0.5 * (a[..., 2, :] - a[..., 1, :])
    b1, b2 = 0.5 * (b[..., 1, :] - b[..., 0, :]), 0.5 * (b[..., 2, :] - b[..., 1, :])
    d = cb - ca

    def dot(x, y):
        return x[..., 0] * y[..., 0] + x[..., 1] * y[..., 1]

    apart = np.zeros(d.shape[:-1], dtype=bool)
    for u, self_sq, other1, other2 in ((a1, a1, b1, b2), (a2, a2, b1, b2), (b1, b1, a1, a2), (b2, b2, a1, a2)):
        # with u = a half-axis, its own extent along u is |u|^2 and the other own axis is orthogonal to it
        reach = dot(u, self_sq) + np.abs(dot(other1, u)) + np.abs(dot(other2, u))
        apart |= np.abs(dot(d, u)) > reach
    return ~apart


def boxes_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether rectangles a (..., 4, 2) and b (..., 4, 2) overlap or touch (separating-axis test).

    Shapes broadcast over the leading dimensions; returns a bool array of the broadcast shape. Pairs whose
    bounding circles are apart are rejected first, so the exact test only runs on near pairs.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ca, cb = a.mean(axis=-2), b.mean(axis=-2)
    ra = np.linalg.norm(a - ca[..., None, :], axis=-1).max(-1)
    rb = np.linalg.norm(b - cb[..., None, :], axis=-1).max(-1)
    d2 = ((ca - cb) ** 2).sum(-1)
    near = d2 <= (ra + rb) ** 2
    if near.ndim == 0:
        return np.asarray(bool(near) and bool(_sat_overlap(a, b)))
    out = np.zeros(near.shape, dtype=bool)
    idx = np.nonzero(near)
    if len(idx[0]) == 0:
        return out
    lead = near.shape
    a_full = np.broadcast_to(a, (*lead, 4, 2))
    b_full = np.broadcast_to(b, (*lead, 4, 2))
    out[idx] = _sat_overlap(a_full[idx], b_full[idx])
    return out


def convex_polygons_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether convex polygons a (..., Va, 2) and b (..., Vb, 2) overlap or touch: no edge normal of
    either separates their projections. Leading dimensions broadcast; returns bool of the broadcast shape."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ca, cb = a.mean(axis=-2), b.mean(axis=-2)
    ra = np.linalg.norm(a - ca[..., None, :], axis=-1).max(-1)
    rb = np.linalg.norm(b - cb[..., None, :], axis=-1).max(-1)
    near = ((ca - cb) ** 2).sum(-1) <= (ra + rb) ** 2
    out = np.zeros(near.shape, dtype=bool)
    idx = np.nonzero(near)
    if len(idx[0]) == 0:
        return out
    a_n = np.broadcast_to(a, (*near.shape, *a.shape[-2:]))[idx]
    b_n = np.broadcast_to(b, (*near.shape, *b.shape[-2:]))[idx]

    def normals(poly: np.ndarray) -> np.ndarray:
        e = np.roll(poly, -1, axis=-2) - poly
        return np.stack([-e[..., 1], e[..., 0]], axis=-1)

    axes = np.concatenate([normals(a_n), normals(b_n)], axis=-2)
    a_min, a_max = _project(a_n, axes)
    b_min, b_max = _project(b_n, axes)
    out[idx] = ~((a_max < b_min) | (b_max < a_min)).any(-1)
    return out


def segment_overlaps_box(p0: np.ndarray, p1: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Whether segments p0-p1 ((..., 2) each) intersect rectangles box (..., 4, 2)."""
    box = np.asarray(box, dtype=np.float64)
    lead = np.broadcast_shapes(np.shape(p0)[:-1], np.shape(p1)[:-1], box.shape[:-2])
    p0 = np.broadcast_to(np.asarray(p0, dtype=np.float64), (*lead, 2))
    p1 = np.broadcast_to(np.asarray(p1, dtype=np.float64), (*lead, 2))
    box = np.broadcast_to(box, (*lead, 4, 2))
    seg = np.stack([p0, p1], axis=-2)
    d = seg[..., 1, :] - seg[..., 0, :]
    seg_normal = np.stack([-d[..., 1], d[..., 0]], axis=-1)[..., None, :]
    axes = np.concatenate([_edge_normals(box), seg_normal], axis=-2)  # (..., 3, 2)
    s_min, s_max = _project(seg, axes)
    b_min, b_max = _project(box, axes)
    separated = (s_max < b_min) | (b_max < s_min)
    return ~separated.any(axis=-1)


def points_in_polygons(points: np.ndarray, polygons: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon for many points against padded polygons.

    points: (P, 2); polygons: (M, V, 2) padded (vertices beyond counts[m] are ignored); counts: (M,).
    Returns (P, M) bool. Points on an edge may land either side (measure-zero); a bounding-box
    pre-filter keeps the cost proportional to the (point, polygon) pairs that can actually match.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    polygons = np.asarray(polygons, dtype=np.float64)
    n_points, n_polys = len(points), len(polygons)
    inside = np.zeros((n_points, n_polys), dtype=bool)
    if n_points == 0 or n_polys == 0:
        return inside
    counts = np.asarray(counts, dtype=np.int64)
    v = polygons.shape[1]
    idx = np.arange(v)
    valid = idx[None, :] < counts[:, None]  # (M, V)
    # pad with the first vertex: padded edges become zero-length and never cross a ray
    closed = np.where(valid[..., None], polygons, polygons[:, :1, :])
    big = np.where(valid[..., None], closed, np.nan)
    lo, hi = np.nanmin(big, axis=1), np.nanmax(big, axis=1)  # (M, 2)
    cand = (
        (points[:, None, 0] >= lo[None, :, 0])
        & (points[:, None, 0] <= hi[None, :, 0])
        & (points[:, None, 1] >= lo[None, :, 1])
        & (points[:, None, 1] <= hi[None, :, 1])
    )
    pi, mi = np.nonzero(cand)
    if len(pi) == 0:
        return inside
    a = closed[mi]  # (K, V, 2)
    b = np.roll(closed, -1, axis=1)[mi]
    px, py = points[pi, 0][:, None], points[pi, 1][:, None]
    ay, by = a[..., 1], b[..., 1]
    straddles = (ay > py) != (by > py)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = a[..., 0] + (py - ay) * (b[..., 0] - a[..., 0]) / (by - ay)
    crossings = (straddles & (px < x_cross)).sum(axis=1)
    inside[pi, mi] = (crossings % 2) == 1
    return inside


class PolygonSet:
    """Padded polygons (M, V, 2) with counts (M,), prepared for fast even-odd point-in-polygon queries.

    Each polygon's edges are cut into chunks of `chunk` edges with their own bounding boxes: a horizontal
    ray from a point can only cross a chunk whose y-range holds the point and whose right end lies beyond
    it, so the exact crossing test runs on few edges per point.
    """

    def __init__(self, polygons: np.ndarray, counts: np.ndarray, chunk: int = 4):
        polygons = np.asarray(polygons, dtype=np.float64)
        counts = np.asarray(counts, dtype=np.int64)
        self.num = len(polygons)
        a_list, b_list, owner = [], [], []
        for m in range(self.num):
            v = polygons[m, : counts[m]]
            a, b = v, np.roll(v, -1, axis=0)
            pad = (-len(a)) % chunk
            a = np.concatenate([a, np.repeat(a[:1], pad, 0)])  # degenerate edges never cross a ray
            b = np.concatenate([b, np.repeat(a[:1], pad, 0)])
            a_list.append(a.reshape(-1, chunk, 2))
            b_list.append(b.reshape(-1, chunk, 2))
            owner.append(np.full(len(a) // chunk, m))
        if self.num:
            self.a = np.concatenate(a_list)  # (C, chunk, 2)
            self.b = np.concatenate(b_list)
            self.owner = np.concatenate(owner)
        else:
            self.a = self.b = np.zeros((0, chunk, 2))
            self.owner = np.zeros(0, np.int64)
        ys = np.concatenate([self.a[..., 1], self.b[..., 1]], axis=1)
        self.c_ymin, self.c_ymax = ys.min(1), ys.max(1)
        self.c_xmax = np.maximum(self.a[..., 0], self.b[..., 0]).max(1)

    def contains(self, points: np.ndarray) -> np.ndarray:
        """(P, M) bool: which polygons contain each point (P, 2)."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        inside = np.zeros((len(points), self.num), dtype=bool)
        if len(points) == 0 or self.num == 0:
            return inside
        px_all, py_all = points[:, 0:1], points[:, 1:2]
        near = (py_all >= self.c_ymin[None]) & (py_all <= self.c_ymax[None]) & (px_all <= self.c_xmax[None])
        pi, ci = np.nonzero(near)  # (point, chunk) pairs a rightward ray can cross
        if len(pi) == 0:
            return inside
        px, py = points[pi, 0], points[pi, 1]
        a, b = self.a[ci], self.b[ci]  # (K, chunk, 2)
        ay, by = a[..., 1], b[..., 1]
        straddles = (ay > py[:, None]) != (by > py[:, None])
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = a[..., 0] + (py[:, None] - ay) * (b[..., 0] - a[..., 0]) / (by - ay)
        crossings = (straddles & (px[:, None] < x_cross)).sum(axis=1)
        flat = np.bincount(pi * self.num + self.owner[ci], weights=crossings, minlength=len(points) * self.num)
        return (flat.reshape(len(points), self.num).astype(np.int64) % 2) == 1


def polyline_arclength(points: np.ndarray) -> np.ndarray:
    """Cumulative arc length (P,) of a polyline (P, 2), starting at 0."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=-1)
    return np.concatenate([[0.0], np.cumsum(seg)])


def project_on_polyline(
    points: np.ndarray, polyline: np.ndarray, extend_ends: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Arc length and signed lateral offset (left positive) of points (..., 2) on a polyline (S+1, 2).

    The foot point is searched on the two segments next to the nearest vertex (exact for paths whose
    vertices are closer together than their radius of curvature). With `extend_ends`, points beyond the ends
    are projected onto the extended first/last segment, so progress keeps growing past the end; without,
    the foot point stays on the polyline (shapely's ``project``) and |lateral| is the distance to it (shapely's
    ``distance``, sign from the side of the segment). Returns (arc_length, lateral), each of shape (...).
    """
    points = np.asarray(points, dtype=np.float64)
    polyline = np.asarray(polyline, dtype=np.float64)
    shape = points.shape[:-1]
    p = points.reshape(-1, 2)
    cum = polyline_arclength(polyline)
    d = np.diff(polyline, axis=0)
    seg_len = np.maximum(np.diff(cum), 1e-12)
    tangent = d / seg_len[:, None]
    d2 = (p**2).sum(-1)[:, None] - 2.0 * p @ polyline.T + (polyline**2).sum(-1)[None]
    k = np.argmin(d2, axis=1)
    last = len(d) - 1
    best_s = best_l = best_d = None
    for seg in (np.clip(k - 1, 0, last), np.minimum(k, last)):
        t = tangent[seg]
        rel = p - polyline[seg]
        along = (rel * t).sum(-1)
        lo = np.where((seg == 0) & extend_ends, -np.inf, 0.0)
        hi = np.where((seg == last) & extend_ends, np.inf, seg_len[seg])
        along_c = np.clip(along, lo, hi)
        lateral = t[:, 0] * rel[:, 1] - t[:, 1] * rel[:, 0]
        dist = (along - along_c) ** 2 + lateral**2
        if not extend_ends:
            lateral = np.sign(lateral) * np.sqrt(dist)
        if best_d is None:
            best_s, best_l, best_d = cum[seg] + along_c, lateral, dist
        else:
            better = dist < best_d
            best_s = np.where(better, cum[seg] + along_c, best_s)
            best_l = np.where(better, lateral, best_l)
            best_d = np.minimum(dist, best_d)
    return best_s.reshape(shape), best_l.reshape(shape)


def interpolate_polyline(polyline: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions (..., 2) and headings (...) at arc lengths s (...) along a polyline (P, 2); extrapolates
    linearly past both ends."""
    cum = polyline_arclength(polyline)
    s = np.asarray(s, dtype=np.float64)
    k = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(cum) - 2)
    seg = polyline[k + 1] - polyline[k]
    seg_len = np.maximum(cum[k + 1] - cum[k], 1e-9)
    t = (s - cum[k]) / seg_len
    pos = polyline[k] + t[..., None] * seg
    heading = np.arctan2(seg[..., 1], seg[..., 0])
    return pos, heading


def offset_polyline(polyline: np.ndarray, offset: float) -> np.ndarray:
    """Polyline (P, 2) shifted sideways by `offset` metres (left positive), using vertex normals."""
    d = np.gradient(polyline, axis=0)
    d /= np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-12)
    normal = np.stack([-d[:, 1], d[:, 0]], axis=-1)
    return polyline + offset * normal


def polyline_headings(polyline: np.ndarray) -> np.ndarray:
    """Heading (P,) at each vertex of a polyline (P, 2) from central differences."""
    d = np.gradient(polyline, axis=0)
    return np.arctan2(d[:, 1], d[:, 0])


def resample_polyline(polyline: np.ndarray, spacing: float) -> np.ndarray:
    """Polyline resampled at (about) uniform arc-length spacing, keeping both end points."""
    cum = polyline_arclength(polyline)
    n = max(int(np.ceil(cum[-1] / spacing)), 1) + 1
    s = np.linspace(0.0, cum[-1], n)
    return interpolate_polyline(polyline, s)[0]
