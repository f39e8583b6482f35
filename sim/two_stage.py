"""NAVSIM v2's two-stage (pseudo closed-loop) evaluation on generated follow-up scenes.

A group is a scene S (t = 0), its previous frame P (-0.5 s), M follow-up scenes A_j that start 4 s later with
the ego placed around the human driver's 4 s state (sim/scenarios.py ``make_follow_up_scenes``), and their
previous frames B_j (3.5 s). The planner plans every frame; each plan is scored with reactive traffic (NAVSIM's
run_pdm_score.py scores both stages with ``traffic_agents_policy.reactive``), the human penalty filter on the
original frames S and P only, and one EC per frame pair (S, P), (A_j, B_j) given to both frames. A_j counts by
how close its start is to the last pose of the plan for S (the plan's pose, not the simulated one: run_pdm_score.py
``endpoint_x``), B_j by the plan for P; sim/aggregation.py combines them.

NAVSIM renders its follow-up scenes from perturbed ego poses; here the perturbations are drawn uniformly within
TwoStageConfig's bounds; a start whose ego box touches another road user, leaves the drivable area or stands in a
red light's lane connector is dropped (the driver's own state is the last resort). The previous frame P of the
scene extrapolates the ego's past before -1.5 s (sim/frames.py); a follow-up's previous frame B_j has its true past.
A plan that is not finite scores 0 on every term (NAVSIM's run stops without a score).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diffpilot.sim.aggregation import FollowUp, StageOneFrame, TwoStageScores, two_stage_group
from diffpilot.sim.evaluate import SceneScorer
from diffpilot.sim.frames import SHIFT_STEPS, previous_frame
from diffpilot.sim.geometry import PolygonSet, box_corners, boxes_overlap, convex_polygons_overlap
from diffpilot.sim.planners import PDMClosedPlanner, simulate_in_scene
from diffpilot.sim.scenarios import EgoPerturbation, follow_up_world
from diffpilot.sim.scene import Scene
from diffpilot.sim.scoring import EPDMS_TERMS, ScoringContext, with_extended_comfort
from diffpilot.sim.vehicle import ego_corners

SCORE_KEYS = (*EPDMS_TERMS, "epdms")  # the columns of NAVSIM v2's two-stage result
CANDIDATES_PER_FOLLOW_UP = 3


@dataclass(frozen=True)
class TwoStageConfig:
    """follow_ups: at most M follow-up scenes per frame (fewer when fewer clear starts were drawn; the driver's own
    state when none was); the ego's start is moved up to longitudinal_m / lateral_m metres along / across the
    driver's 4 s heading and its speed by up to speed_fraction."""

    follow_ups: int = 5
    longitudinal_m: float = 3.0
    lateral_m: float = 1.0
    speed_fraction: float = 0.2
    traffic: str = "reactive"


def compose(origin: np.ndarray, local: np.ndarray) -> np.ndarray:
    """Poses (..., 3) given in the frame of `origin` (3,) expressed in the frame `origin` itself is given in."""
    c, s = np.cos(origin[2]), np.sin(origin[2])
    x, y = local[..., 0], local[..., 1]
    return np.stack([origin[0] + c * x - s * y, origin[1] + s * x + c * y, local[..., 2] + origin[2]], -1)


def clear_start(scene: Scene) -> bool:
    """Whether the ego's box now touches no road user, lies inside the drivable area and outside every on-route
    lane connector closed by a red light (a start that breaks a rule before the plan begins)."""
    corners = ego_corners(np.zeros(3))
    ctx = ScoringContext(scene)
    if convex_polygons_overlap(corners[None], ctx.red_quads[ctx.red_quad_red[0]]).any():
        return False
    a = scene.agents
    now = scene.num_history
    if len(a.ids):
        valid = a.valid[:, now]
        boxes = box_corners(a.poses[valid, now, :2], a.poses[valid, now, 2], a.sizes[valid, 0], a.sizes[valid, 1])
        if boxes_overlap(corners[None], boxes).any():
            return False
    area = PolygonSet(scene.map.area_polygons, scene.map.area_polygon_num)
    return bool(area.contains(corners).any(axis=1).all())


def _draw(rng: np.random.Generator, config: TwoStageConfig) -> EgoPerturbation:
    return EgoPerturbation(
        float(rng.uniform(-config.longitudinal_m, config.longitudinal_m)),
        float(rng.uniform(-config.lateral_m, config.lateral_m)),
        float(rng.uniform(1.0 - config.speed_fraction, 1.0 + config.speed_fraction)),
    )


@dataclass
class TwoStageCase:
    """The planner-independent part of one group: frames [S, P, A_1..A_M, B_1..B_M], each frame's ego pose
    (F, 3) in S's frame, and each frame's scorer (its PDM-Closed reference; the human filter on S and P)."""

    frames: list[Scene]
    origins: np.ndarray
    scorers: list[SceneScorer]

    @property
    def follow_ups(self) -> int:
        return (len(self.frames) - 2) // 2

    @staticmethod
    def of(
        scene: Scene, reference: PDMClosedPlanner, human: PDMClosedPlanner, config: TwoStageConfig = TwoStageConfig()
    ) -> TwoStageCase:
        """The group of `scene`: `human` (the scene's driver) drives the world on and is the human filter's
        plan; `reference` plans every frame for EP's normaliser."""
        prev = previous_frame(scene)
        human_now, human_prev = human.plan(scene), human.plan(prev)
        driver = simulate_in_scene(scene, human_now[None])
        rng = np.random.default_rng([scene.seed, 2])
        candidates = [_draw(rng, config) for _ in range(CANDIDATES_PER_FOLLOW_UP * config.follow_ups)]
        candidates.append(EgoPerturbation())
        world = follow_up_world(scene, driver.poses[0], driver.speed[0], driver.accel_lon[0])
        probes = world.frames(candidates)
        chosen = [p for p, f in zip(candidates[:-1], probes) if clear_start(f)][: config.follow_ups]
        chosen = chosen or candidates[-1:]
        follow, follow_prev = world.frames(chosen), world.frames(chosen, SHIFT_STEPS)
        end = driver.poses[0, -1]
        h = scene.num_history
        origin_follow = [compose(end, np.array([p.longitudinal, p.lateral, 0.0])) for p in chosen]
        origins = np.array(
            [
                np.zeros(3),
                scene.ego.history_poses[h - SHIFT_STEPS],
                *origin_follow,
                *[compose(o, f.ego.history_poses[h - SHIFT_STEPS]) for o, f in zip(origin_follow, follow)],
            ]
        )
        frames = [scene, prev, *follow, *follow_prev]
        humans = [human_now, human_prev] + [None] * (2 * len(follow))
        scorers = [SceneScorer.of(f, reference.plan(f), hp, traffic=config.traffic) for f, hp in zip(frames, humans)]
        return TwoStageCase(frames, origins, scorers)

    def score(self, plans: np.ndarray) -> TwoStageScores:
        """The group's scores for one plan (8, 3) per frame, `plans` (F, 8, 3) in the order of `frames`."""
        plans = np.asarray(plans, dtype=np.float64)
        m = self.follow_ups
        states = [simulate_in_scene(f, plans[i : i + 1]) for i, f in enumerate(self.frames)]
        rows: list[dict[str, float]] = [{}] * len(self.frames)
        for now, prev in [(0, 1), *[(2 + j, 2 + m + j) for j in range(m)]]:
            s_now = self.scorers[now].score(states[now], states[prev])
            s_prev = with_extended_comfort(self.scorers[prev].score(states[prev]), s_now.ec)
            rows[now], rows[prev] = s_now.row(0), s_prev.row(0)
        endpoint_now = plans[0, -1, :2]
        endpoint_prev = compose(self.origins[1], plans[1, -1])[:2]
        return two_stage_group(
            StageOneFrame(rows[0], endpoint_now),
            StageOneFrame(rows[1], endpoint_prev),
            [FollowUp(rows[2 + j], self.origins[2 + j, :2]) for j in range(m)],
            [FollowUp(rows[2 + m + j], self.origins[2 + m + j, :2]) for j in range(m)],
            SCORE_KEYS,
        )
