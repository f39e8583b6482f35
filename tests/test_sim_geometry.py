"""Geometry primitives behind the scorer: box overlap, point-in-polygon, projection onto polylines."""

from __future__ import annotations

import numpy as np

from diffpilot.sim.geometry import (
    PolygonSet,
    box_corners,
    boxes_overlap,
    points_in_polygons,
    project_on_polyline,
    segment_overlaps_box,
)


def test_boxes_overlap_touch_and_rotation():
    a = box_corners(np.zeros(2), 0.0, 4.0, 2.0)
    assert boxes_overlap(a, box_corners(np.array([3.9, 0.0]), 0.0, 4.0, 2.0))
    assert not boxes_overlap(a, box_corners(np.array([4.1, 0.0]), 0.0, 4.0, 2.0))
    # a 45-degree box whose corner pokes in, and one whose bounding circle overlaps but the box does not
    assert boxes_overlap(a, box_corners(np.array([2.0 + np.sqrt(2) - 0.1, 0.0]), np.pi / 4, 2.0, 2.0))
    assert not boxes_overlap(
        a, box_corners(np.array([2.0 + np.sqrt(2) + 0.1, 1.0 + np.sqrt(2) + 0.1]), np.pi / 4, 2.0, 2.0)
    )
    # broadcasting: (3,) boxes against one
    many = box_corners(np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 1.9]]), np.zeros(3), 4.0, 2.0)
    assert boxes_overlap(many, a).tolist() == [True, False, True]


def test_segment_against_box():
    box = box_corners(np.array([5.0, 0.0]), 0.0, 2.0, 2.0)
    assert segment_overlaps_box(np.array([4.5, -3.0]), np.array([4.5, 3.0]), box)
    assert not segment_overlaps_box(np.array([3.0, -3.0]), np.array([3.0, 3.0]), box)


def test_polygon_set_matches_plain_even_odd_on_a_concave_polygon():
    ell = np.array([[0, 0], [10, 0], [10, 2], [2, 2], [2, 10], [0, 10]], float)  # an L
    tri = np.array([[5, 5], [9, 5], [5, 9], [5, 5], [5, 5], [5, 5]], float)  # padded with repeats
    polys, counts = np.stack([ell, tri]), np.array([6, 3])
    pts = np.random.default_rng(0).uniform(-1, 11, (5000, 2))
    fast = PolygonSet(polys, counts, chunk=2).contains(pts)
    assert np.array_equal(fast, points_in_polygons(pts, polys, counts))
    assert fast[:, 0].sum() > 0 and fast[:, 1].sum() > 0
    assert PolygonSet(polys, counts).contains(np.array([[1.0, 1.0], [4.0, 4.0], [6.0, 6.0]])).tolist() == [
        [True, False],
        [False, False],
        [False, True],
    ]


def test_projection_on_polyline_gives_arc_length_and_signed_offset():
    line = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]])
    s, lat = project_on_polyline(np.array([[5.0, 1.0], [11.0, 5.0], [-2.0, -0.5], [10.0, 13.0]]), line)
    assert np.allclose(s, [5.0, 15.0, -2.0, 23.0])  # extends past both ends
    assert np.allclose(lat, [1.0, -1.0, -0.5, 0.0])


def test_box_overlap_agrees_with_shapely_on_random_boxes():
    import shapely  # a dependency of gym-pusht, so always installed here

    rng = np.random.default_rng(1)
    n = 400
    a = box_corners(
        rng.uniform(-3, 3, (n, 2)), rng.uniform(-np.pi, np.pi, n), rng.uniform(1, 5, n), rng.uniform(0.5, 2.5, n)
    )
    b = box_corners(
        rng.uniform(-3, 3, (n, 2)), rng.uniform(-np.pi, np.pi, n), rng.uniform(1, 5, n), rng.uniform(0.5, 2.5, n)
    )
    ours = boxes_overlap(a, b)
    ref = np.array([shapely.Polygon(p).intersects(shapely.Polygon(q)) for p, q in zip(a, b)])
    assert np.array_equal(ours, ref)
    assert 50 < ours.sum() < n - 50  # both outcomes are exercised
