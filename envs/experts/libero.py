"""A scripted expert for LIBERO-Object's pick-and-place tasks ("pick the X and place it in the basket"), reading
privileged object poses and collision geometry from the LIBERO env (envs/libero.py). It reuses the phase machinery
of the robomimic experts (envs/experts/robomimic.py: OSC_POSE deltas towards per-phase targets).

Phases: above the object's grasp point, down to it, close, raise until the object's bottom clears the basket rim,
carry over the basket's contain region, lower into it, release, retreat. Boxes (cream cheese, butter, pudding) are
grasped across their short side; the grasp height is under the object's top by what the fingers can hold. A seeded
RNG varies heights, speeds and the drop point and adds small action noise.
"""

from __future__ import annotations

import numpy as np

from .robomimic import CLOSED, ExpertParams, Phase, ScriptedExpert, up

FINGERTIPS = 0.013  # metres from the grip site down to the fingertips: keep them off the floor, or friction jams them
RIM_CLEARANCE = 0.03  # metres between the carried object's bottom and the basket's rim
FINGER_REACH = 0.035  # metres from the grasp point (between the fingertips) up to the highest object top they hold


def body_tree(model, root: int) -> set[int]:
    """Ids of body `root` and all bodies below it in the kinematic tree."""
    bodies = {root}
    for body in range(root + 1, model.nbody):
        if model.body_parentid[body] in bodies:
            bodies.add(body)
    return bodies


def collision_extent(sim, body: int, frame: str = "world") -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned bounds (low (3,), high (3,)) of the collision geoms under `body`, in the world frame or in the
    body's own frame (`frame="body"`, for its true length and width)."""
    model, data = sim.model._model, sim.data._data
    bodies = body_tree(model, body)
    signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)
    body_rot, body_pos = data.xmat[body].reshape(3, 3), data.xpos[body]
    points = []
    for geom in range(model.ngeom):
        visual_only = model.geom_contype[geom] == 0 and model.geom_conaffinity[geom] == 0
        if model.geom_bodyid[geom] not in bodies or visual_only:
            continue
        centre, half = model.geom_aabb[geom][:3], model.geom_aabb[geom][3:]
        world = (signs * half + centre) @ data.geom_xmat[geom].reshape(3, 3).T + data.geom_xpos[geom]
        points.append(world if frame == "world" else (world - body_pos) @ body_rot)
    if not points:
        raise ValueError(f"body {body}: no collision geoms below it")
    points = np.concatenate(points)
    return points.min(axis=0), points.max(axis=0)


def goal_object_and_container(env) -> tuple[str, str]:
    """(object, container) of a BDDL goal `(In <object> <container>_contain_region)`."""
    goals = [g for g in env.parsed_problem["goal_state"] if g[0].lower() == "in"]
    if len(goals) != 1 or not goals[0][2].endswith("_contain_region"):
        goal = env.parsed_problem["goal_state"]
        raise ValueError(f"goal {goal}: expected one (In <object> <container>_contain_region)")
    return goals[0][1], goals[0][2].removesuffix("_contain_region")


class LiberoPickPlaceExpert(ScriptedExpert):
    """LIBERO pick-and-place into a container; the BDDL goal names the object and the container."""

    def sample_params(self) -> ExpertParams:
        r = self.rng
        return ExpertParams(
            above=r.uniform(0.06, 0.10),
            grasp_depth=r.uniform(-0.005, 0.005),
            lift=r.uniform(0.0, 0.03),  # extra clearance over the rim while carrying
            speed=r.uniform(0.7, 1.0),
            gain=r.uniform(0.8, 1.2),
            yaw_offset=r.uniform(-0.05, 0.05),
            close_steps=int(r.integers(10, 14)),
            noise=0.02,
            extra={"dx": r.uniform(-0.015, 0.015), "dy": r.uniform(-0.015, 0.015), "drop": r.uniform(0.03, 0.05)},
        )

    def _grasp_yaw(self, body: int) -> float:
        """The gripper yaw whose fingers close across the object's shorter horizontal side (the Panda's fingers
        close along the grip site's x axis, whose world yaw the phases steer)."""
        low, high = collision_extent(self.env.sim, body, frame="body")
        size = high - low
        yaw = self.body_yaw(body) + (np.pi / 2 if size[1] < size[0] else 0.0)
        return self.grasp_yaw(yaw, np.pi)

    def phases(self) -> list[Phase]:
        env, p = self.env, self.params
        obj_name, container_name = goal_object_and_container(env)
        body = env.obj_body_id[obj_name]
        low, high = collision_extent(env.sim, body)
        grasp_z = max(low[2] + 0.45 * (high[2] - low[2]), high[2] - FINGER_REACH, low[2] + FINGERTIPS + 0.004)
        grasp_below_origin = up(self.body_pos(body)[2] - grasp_z)  # the grasp point sits under the body's origin
        hold = grasp_z - low[2]  # fingertips above the object's bottom
        rim = collision_extent(env.sim, env.obj_body_id[container_name])[1][2]
        region = np.array(env.sim.data.get_site_xpos(f"{container_name}_contain_region"))
        goal_xy = region[:2] + np.array([p.extra["dx"], p.extra["dy"]])
        floor = collision_extent(env.sim, env.obj_body_id[container_name])[0][2]
        carry_z = rim + RIM_CLEARANCE + p.lift + hold
        yaw = self._grasp_yaw(body)
        memo: dict[str, np.ndarray] = {}

        def grasp_point() -> np.ndarray:
            return self.body_pos(body) - grasp_below_origin

        return [
            *self.grasp_phases(grasp_point, yaw, memo, tol=0.01, max_steps=40),
            Phase("raise", lambda: (np.array([*memo["grasp"][:2], carry_z]), yaw), CLOSED, tol=0.03),
            Phase("carry", lambda: (np.array([*goal_xy, carry_z]), yaw), CLOSED, tol=0.02, max_steps=100),
            Phase("lower", lambda: (np.array([*goal_xy, floor + p.extra["drop"] + hold]), yaw), CLOSED, tol=0.02),
            *self.release_phases(lambda: yaw, memo),
        ]


def libero_expert_for(suite: str, seed: int | None = None) -> ScriptedExpert:
    """The scripted expert of a LIBERO suite's tasks (LIBERO-Object and its LIBERO-PRO variants)."""
    if not suite.startswith("libero_object"):
        raise ValueError(f"suite={suite!r}: no scripted expert; expected libero_object or a LIBERO-PRO variant of it")
    return LiberoPickPlaceExpert(seed)
