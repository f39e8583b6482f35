"""Scene records, the .npz scene file format and the errors bad input gets."""

from __future__ import annotations

from dataclasses import fields, replace

import numpy as np
import pytest

from diffpilot.sim.scenarios import FAMILIES, make_scene, split_seeds
from diffpilot.sim.scene import Agents, MapData, SceneError
from diffpilot.sim.scene_io import load_scene, save_scene


def _same(a, b) -> bool:
    return all(np.array_equal(getattr(a, f.name), getattr(b, f.name)) for f in fields(a))


def test_save_load_round_trip_is_exact(tmp_path):
    scene = make_scene(7, "intersection")
    path = save_scene(scene, tmp_path / f"{scene.token}.npz")
    back = load_scene(path)
    assert back.token == scene.token and back.family == "intersection" and back.seed == 7
    assert back.ego.command == scene.ego.command
    assert _same(back.map, scene.map) and _same(back.agents, scene.agents) and _same(back.ego, scene.ego)
    assert not list(tmp_path.glob(".*.tmp"))  # the temp file was renamed away


def test_nan_pose_is_named_by_token_and_field():
    scene = make_scene(3, "lead_braking")
    poses = scene.agents.poses.copy()
    poses[0, 20, 1] = np.nan
    bad = replace(scene, agents=replace(scene.agents, poses=poses))
    with pytest.raises(SceneError, match=r"lead_braking-00000003.*agents\.poses.*non-finite"):
        bad.validate()


def test_wrong_shape_and_empty_map_are_rejected():
    scene = make_scene(4, "straight")
    with pytest.raises(SceneError, match=r"ego\.history_poses.*shape"):
        replace(scene, ego=replace(scene.ego, history_poses=np.zeros((4, 3)))).validate()
    m = scene.map
    empty = replace(m, lane_centerlines=np.zeros((0, 2, 2)))
    with pytest.raises(SceneError, match=r"map\.lane_centerlines.*empty map"):
        replace(scene, map=empty).validate()
    assert isinstance(m, MapData) and isinstance(scene.agents, Agents)


def test_malformed_files_raise_scene_errors(tmp_path):
    garbage = tmp_path / "garbage-token.npz"
    garbage.write_bytes(b"not a zip at all")
    with pytest.raises(SceneError, match=r"garbage-token.*file"):
        load_scene(garbage)
    # a pickled object array inside the archive is refused (allow_pickle=False)
    scene = make_scene(5, "cut_in")
    good = save_scene(scene, tmp_path / "ok.npz")
    with np.load(good) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["agents.poses"] = np.array([object()], dtype=object)
    np.savez(tmp_path / "pickled.npz", **arrays)
    with pytest.raises(SceneError, match=r"cut_in-00000005.*agents\.poses.*allow_pickle"):
        load_scene(tmp_path / "pickled.npz")
    del arrays["agents.poses"]
    np.savez(tmp_path / "missing.npz", **arrays)
    with pytest.raises(SceneError, match=r"agents\.poses.*missing"):
        load_scene(tmp_path / "missing.npz")


def test_every_family_builds_a_valid_scene_in_the_ego_frame():
    for i, family in enumerate(FAMILIES):
        scene = make_scene(100 + i, family)
        assert scene.family == family
        assert np.allclose(scene.ego.history_poses[-1], 0.0)
        assert scene.map.route_centerline.shape[1] == 2 and scene.agents.num >= 1


def test_generator_is_deterministic_and_splits_are_disjoint():
    a, b = make_scene(11), make_scene(11)
    assert a.token == b.token and _same(a.agents, b.agents) and _same(a.map, b.map)
    assert make_scene(12).token != a.token or not _same(make_scene(12).agents, a.agents)
    train, test = set(split_seeds("train", 1000)), set(split_seeds("test", 1000))
    assert not train & test and len(test) == 1000
    with pytest.raises(ValueError, match="unknown scenario family"):
        make_scene(1, "teleport")
