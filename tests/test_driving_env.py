"""NAVSIM-style driving env: agent input, open-loop evaluation, export, closed loop and demonstrations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env

from diffpilot.envs.driving import (
    NAVSIM_COLUMNS,
    DrivingEnv,
    ObservationConfig,
    evaluate_open_loop,
    load_demonstrations,
    observation_space,
    observe,
    rollout_closed_loop,
    stack_observations,
    write_demonstrations,
)
from diffpilot.sim.frames import future_frame
from diffpilot.sim.planners import PRIVILEGED_PDM_CLOSED, ConstantVelocityPlanner, PDMClosedPlanner
from diffpilot.sim.scenarios import make_scene
from diffpilot.sim.scene import SceneError


@pytest.fixture(scope="module")
def scenes():
    return [make_scene(seed) for seed in range(2_000_000, 2_000_006)]


class _CV:
    """Constant velocity from the observation alone (what a learned policy sees)."""

    def plan(self, obs):
        v = obs["ego_status"][:, 0]
        t = np.arange(1, 9) * 0.5
        return np.stack([v[:, None] * t, 0 * v[:, None] * t, 0 * v[:, None] * t], -1)


def test_observation_layout_matches_scene(scenes):
    scene = make_scene(3, "static_obstacle")
    cfg = ObservationConfig()
    obs = observe(scene, cfg)
    assert observation_space(cfg).contains(obs)
    assert obs["history"].shape == (4, 3) and np.allclose(obs["history"][-1], 0.0)
    assert obs["history"][0, 0] < obs["history"][1, 0] < 0.0  # 2 Hz past poses behind the ego
    assert obs["ego_status"][4 + scene.ego.command] == 1.0 and obs["ego_status"][4:].sum() == 1.0
    n = int(obs["agents_mask"].sum())
    c = scene.current_index
    near = scene.agents.valid[:, c] & (np.hypot(*scene.agents.poses[:, c, :2].T) <= cfg.agent_range)
    assert n == min(near.sum(), cfg.max_agents)
    d = np.hypot(obs["agents"][:n, 0], obs["agents"][:n, 1])
    assert np.all(np.diff(d) >= 0)  # nearest first
    assert not obs["agents"][n:].any()
    # the raster: the ego stands on the drivable area and the nearest static/vehicle obstacle shows up
    res, behind = cfg.resolution, cfg.behind
    i0, j0 = int(behind / res), cfg.size // 2
    assert obs["bev"][0, i0, j0] == 255
    x, y = obs["agents"][0, :2]
    cls = int(np.argmax(obs["agents"][0, 8:]))
    ch = {0: 2, 1: 3, 2: 3, 3: 4}[cls]
    i, j = int((x + behind) / res), int((y + 0.5 * cfg.size * res) / res)
    if 0 <= i < cfg.size and 0 <= j < cfg.size:
        assert obs["bev"][ch, i, j] == 255


def test_open_loop_nan_scores_zero_and_wrong_shape_names_the_scene(scenes):
    class Broken(_CV):
        def plan(self, obs):
            out = super().plan(obs)
            out[1] = np.nan
            return out

    refs = [PDMClosedPlanner().plan(s) for s in scenes]
    res = evaluate_open_loop(Broken(), scenes, batch_size=len(scenes), reference_plans=refs)
    rows = res.rows
    assert len(rows) == len(scenes)
    assert rows[1]["valid"] is False and rows[1]["score"] == 0.0 and rows[1]["ego_progress"] == 0.0
    assert all(r["valid"] for i, r in enumerate(rows) if i != 1)
    assert max(r["score"] for i, r in enumerate(rows) if i != 1) > 0.3

    class WrongShape:
        def plan(self, obs):
            return np.zeros((len(obs["ego_status"]), 6, 3))

    with pytest.raises(ValueError, match=rf"{scenes[0].token}.*'trajectory'.*\(4, 8, 3\)"):
        evaluate_open_loop(WrongShape(), scenes, batch_size=4, reference_plans=refs)

    broken = make_scene(9, "lead_braking")
    broken.agents.poses[0, broken.current_index, 0] = np.nan
    with pytest.raises(SceneError, match=r"lead_braking-00000009.*agents\.poses"):
        evaluate_open_loop(_CV(), [broken], reference_plans=refs[:1])


def test_export_uses_navsim_columns(scenes, tmp_path):
    refs = [PDMClosedPlanner().plan(s) for s in scenes]
    res = evaluate_open_loop(_CV(), scenes, reference_plans=refs)
    res.to_csv(tmp_path / "r.csv")
    res.to_parquet(tmp_path / "r.parquet")
    for df in (pd.read_csv(tmp_path / "r.csv"), pd.read_parquet(tmp_path / "r.parquet")):
        assert {"token", "valid", "score", *NAVSIM_COLUMNS.values()} <= set(df.columns)
        assert list(df["token"])[:-1] == [s.token for s in scenes] and df["token"].iloc[-1] == "average"
        assert df["score"].iloc[-1] == pytest.approx(df["score"].iloc[:-1].mean())
    # the CV planner observed through the env scores exactly like the sim's own CV planner
    cv = ConstantVelocityPlanner()
    own = evaluate_open_loop(type("P", (), {"plan": lambda self, o: np.stack([cv.plan(s) for s in scenes])})(), scenes)
    assert [r["score"] for r in own.rows] == pytest.approx([r["score"] for r in res.rows])


def test_future_frame_moves_world_into_the_new_ego_frame():
    scene = make_scene(5, "cut_in")
    h, steps = scene.num_history, 10
    v = scene.ego.speed
    t = np.arange(1, steps + 1) * scene.dt
    fut = np.stack([v * t, np.zeros(steps), np.zeros(steps)], -1)  # straight ahead at constant speed
    poses = np.concatenate([scene.ego.history_poses, fut])
    vel = np.concatenate([scene.ego.history_velocities, np.tile([v, 0.0], (steps, 1))])
    acc = np.concatenate([scene.ego.history_accelerations, np.zeros((steps, 2))])
    later = future_frame(scene, steps, poses, vel, acc)
    c = scene.current_index
    a = scene.agents
    k = int(np.argmax(a.valid[:, c + steps]))
    assert np.allclose(later.agents.poses[k, c, :2], a.poses[k, c + steps, :2] - [v * steps * scene.dt, 0.0])
    assert np.allclose(later.ego.history_poses[-1], 0.0)
    assert np.allclose(later.ego.history_poses[h - steps, 0], -v * steps * scene.dt)
    assert not later.agents.valid[:, -steps:].any()  # beyond the log


def test_closed_loop_env_passes_check_env_and_scores_episodes(scenes):
    seed = next(s for s in range(40) if make_scene(s, "static_obstacle").agents.classes[0] == 0)
    static = make_scene(seed, "static_obstacle")  # a stopped car in the ego's lane
    env = DrivingEnv(scenes=[*scenes[:2], static])
    check_env(env, skip_render_check=True)
    pdm = PDMClosedPlanner()

    class Expert:
        def plan(self, obs):
            return pdm.plan(env._view)[None]

    expert = rollout_closed_loop(Expert(), env, [2])
    cv = rollout_closed_loop(_CV(), env, [2])
    assert expert.rows[0]["score"] > 0.8
    assert cv.rows[0]["no_at_fault_collisions"] == 0.0 and cv.rows[0]["score"] == 0.0
    env.reset(options={"scene_index": 0})
    _, reward, done, _, info = env.step(np.full((8, 3), np.nan))
    assert done and reward == 0.0 and info["invalid_action"]
    with pytest.raises(ValueError, match=r"'action'.*\(8, 3\)"):
        env.reset(options={"scene_index": 0})
        env.step(np.zeros((4, 3)))


def test_demonstrations_round_trip(tmp_path):
    seeds = [11, 12, 13, 14]
    meta = write_demonstrations(tmp_path, seeds=seeds, shard_size=3)
    assert [s["scenes"] for s in meta["shards"]] == [3, 1]
    data = load_demonstrations(tmp_path)
    assert data["trajectory"].shape == (4, 8, 3) and data["bev"].dtype == np.uint8
    scene = make_scene(13)
    assert np.allclose(data["trajectory"][2], PDMClosedPlanner(PRIVILEGED_PDM_CLOSED).plan(scene), atol=1e-5)
    obs = stack_observations([observe(scene)])
    assert np.array_equal(data["bev"][2], obs["bev"][0]) and str(data["token"][2]) == scene.token
