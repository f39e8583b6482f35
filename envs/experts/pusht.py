"""Scripted expert for gym-pusht, used to record behaviour-cloning demonstrations.

The expert reads privileged state from ``env.unwrapped`` and alternates two phases:

* **plan** - enumerate push primitives (a contact point on the T's outline, a push direction
  near the inward normal, a push length), simulate each on a private pymunk replica of the
  env's physics (exact, since the env is deterministic) and pick the one with the lowest goal
  cost (centre-of-gravity offset + weighted angle error) plus a time penalty for walking there
  and pushing; the push length is re-optimised from the true state when the push begins;
* **execute** - walk the agent target around the T to the pre-push point (shortest path on a
  visibility graph of an inflated T footprint, in the block frame so it tracks a sliding block),
  then push in a straight line at constant speed.

The commanded target moves at most ``transit_speed`` pixels per step, so trajectories look like
a smooth teleoperated mouse path; a seeded RNG adds small jitter (pre-push gap, score noise) so
demonstrations are diverse yet unimodal enough to imitate.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, fields, replace

import gymnasium as gym
import numpy as np
import pymunk
import shapely
from shapely.geometry import Polygon
from shapely.ops import unary_union

from diffpilot.errors import ConfigError

from ..registry import register_expert

ARENA_LO, ARENA_HI = 20.0, 492.0


@dataclass(frozen=True)
class ExpertPushTConfig:
    """Tunables of :class:`ExpertPushT` (all distances in pixels, speeds in pixels per step)."""

    transit_speed: float = 20.0
    push_speed: float = 15.0
    fine_push_speed: float = 5.0
    fine_error: float = 18.0  # goal cost below which pushes become slow and short
    max_push: float = 90.0
    max_fine_push: float = 24.0
    gap: float = 8.0  # free space between agent and block at the pre-push point
    gap_jitter: float = 3.0
    approach: float = 20.0  # straight run-up before the contact along the push direction
    nav_margin: float = 11.0  # clearance between agent and T at navigation nodes
    clear_margin: float = 3.0  # extra clearance (beyond agent radius) required on transit
    push_angles_deg: tuple[float, ...] = (-30.0, 0.0, 30.0)
    contact_spacing: float = 20.0
    time_penalty: float = 0.05  # cost one step is worth: time_penalty + time_penalty_frac * cost
    time_penalty_frac: float = 0.006
    rot_weight: float = 60.0  # cost pixels per radian of angle error
    score_jitter: float = 0.3
    dwell_steps: int = 1  # target held still after a push
    retreat_steps: int = 2  # steps of backing off assumed when predicting a push's outcome
    action_noise: float = 0.0  # std of Gaussian noise on each returned target (a noisy demonstrator; the plan is kept)
    careless_fraction: float = 0.0  # share of episodes by a careless operator (mixed-quality data, like robomimic's MH)
    careless_jitter: float = 80.0  # the careless operator's score_jitter: it often picks a poor candidate push


def _rotation(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


def _to_world(pose: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ _rotation(pose[2]).T + pose[:2]


def _to_local(pose: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return (pts - pose[:2]) @ _rotation(pose[2])


class _TeeGeometry:
    """Block-frame geometry of the T: outline, candidate contacts, navigation graph."""

    def __init__(self, rects: list[np.ndarray], agent_radius: float, cfg: ExpertPushTConfig):
        self.outline = unary_union([Polygon(r) for r in rects]).normalize()
        self.contacts, self.normals = self._contact_candidates(cfg.contact_spacing)
        nav = self.outline.buffer(agent_radius + cfg.nav_margin, join_style="mitre")
        self.nodes = np.asarray(nav.exterior.coords)[:-1]
        self.clearance = agent_radius + cfg.clear_margin
        self.edge_len = self._node_visibility()
        self._graph_cache: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}

    def _contact_candidates(self, spacing: float) -> tuple[np.ndarray, np.ndarray]:
        """Points along every outline edge with the edge's inward normal."""
        coords = np.asarray(self.outline.exterior.coords)
        ccw = self.outline.exterior.is_ccw
        points, normals = [], []
        for a, b in itertools.pairwise(coords):
            edge = b - a
            length = float(np.linalg.norm(edge))
            tangent = edge / length
            outward = np.array([tangent[1], -tangent[0]]) if ccw else np.array([-tangent[1], tangent[0]])
            n = max(1, round((length - 10.0) / spacing))
            for f in (np.arange(n) + 0.5) / n:
                points.append(a + edge * f)
                normals.append(-outward)
        return np.array(points), np.array(normals)

    def visible(self, a: np.ndarray, b: np.ndarray, clearance: float | None = None) -> np.ndarray:
        """Whether straight segments a[i] -> b[i] keep ``clearance`` from the T (block frame)."""
        a, b = np.atleast_2d(a), np.atleast_2d(b)
        a, b = np.broadcast_arrays(a, b)
        lines = shapely.linestrings(np.stack([a, b + 1e-6], axis=1))
        clear = self.clearance if clearance is None else clearance
        return shapely.distance(lines, self.outline) >= clear - 1e-6

    def _node_visibility(self) -> np.ndarray:
        n = len(self.nodes)
        ii, jj = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        ok = self.visible(self.nodes[ii.ravel()], self.nodes[jj.ravel()]).reshape(n, n)
        d = np.linalg.norm(self.nodes[:, None] - self.nodes[None], axis=-1)
        return np.where(ok | (ii == jj), d, np.inf)

    def graph(self, node_ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All-pairs shortest distances and next hops over the usable nodes (Floyd-Warshall)."""
        key = node_ok.tobytes()
        if key not in self._graph_cache:
            d = np.where(node_ok[:, None] & node_ok[None, :], self.edge_len, np.inf)
            n = len(self.nodes)
            nxt = np.tile(np.arange(n), (n, 1))
            for k in range(n):
                via = d[:, k : k + 1] + d[k : k + 1, :]
                better = via < d
                d = np.where(better, via, d)
                nxt = np.where(better, nxt[:, k : k + 1], nxt)
            self._graph_cache[key] = (d, nxt)
        return self._graph_cache[key]

    def path_lengths(
        self, a: np.ndarray, goals: np.ndarray, node_ok: np.ndarray, fallback: np.ndarray, hop_radius: float
    ) -> np.ndarray:
        """Shortest collision-free path length from ``a`` to each of ``goals`` (block frame).

        Short hops (< 40 px) only need ``hop_radius`` clearance; longer routes first leave the
        block (see :meth:`escape_point`) and then go via navigation nodes.
        """
        hop = np.linalg.norm(goals - a, axis=-1)
        hop_ok = (hop < 40.0) & self.visible(a[None], goals, hop_radius)
        out = self.escape_point(a, fallback)
        lead = float(np.linalg.norm(out - a))
        direct = np.where(self.visible(out[None], goals), np.linalg.norm(goals - out, axis=-1) + lead, np.inf)
        from_a = np.linalg.norm(self.nodes - out, axis=-1) + lead
        from_a = np.where(self.visible(out[None], self.nodes) & node_ok, from_a, np.inf)
        m, n = len(goals), len(self.nodes)
        to_g = np.linalg.norm(goals[:, None] - self.nodes[None], axis=-1)
        vis = self.visible(np.repeat(goals, n, axis=0), np.tile(self.nodes, (m, 1))).reshape(m, n)
        to_g = np.where(vis & node_ok, to_g, np.inf)
        node_dist, _ = self.graph(node_ok)
        via = (from_a[:, None] + node_dist)[None] + to_g[:, None, :]
        return np.where(hop_ok, hop, np.minimum(direct, via.reshape(m, -1).min(axis=1)))

    def next_waypoint(self, a: np.ndarray, goal: np.ndarray, node_ok: np.ndarray) -> np.ndarray:
        """First corner of the shortest path from ``a`` to ``goal`` (``goal`` if directly visible)."""
        if self.visible(a, goal)[0]:
            return goal
        from_a = np.linalg.norm(self.nodes - a, axis=-1)
        from_a = np.where(self.visible(a[None], self.nodes) & node_ok, from_a, np.inf)
        to_g = np.linalg.norm(self.nodes - goal, axis=-1)
        to_g = np.where(self.visible(goal[None], self.nodes) & node_ok, to_g, np.inf)
        node_dist, next_hop = self.graph(node_ok)
        total = from_a[:, None] + node_dist + to_g[None, :]
        i, j = np.unravel_index(np.argmin(total), total.shape)
        if not np.isfinite(total[i, j]):
            return goal
        if np.linalg.norm(self.nodes[i] - a) > 1e-6:
            return self.nodes[i]
        return goal if i == j else self.nodes[next_hop[i, j]]

    def escape_point(self, a: np.ndarray, fallback: np.ndarray) -> np.ndarray:
        """Nearest point to ``a`` with navigation clearance, preferring the ``fallback`` direction."""
        if self.visible(a, a)[0]:
            return a
        angles = np.linspace(0.0, 2.0 * np.pi, 24, endpoint=False)
        units = np.stack([np.cos(angles), np.sin(angles)], axis=1)
        radii = np.arange(4.0, 61.0, 4.0)
        pts = (a + radii[:, None, None] * units[None]).reshape(-1, 2)
        ok = self.visible(pts, pts)
        cost = (radii[:, None] - 6.0 * (units @ fallback)[None]).ravel()
        return pts[np.argmin(np.where(ok, cost, np.inf))]


class _PhysicsReplica:
    """A private pymunk space mirroring the env's walls, block and PD-controlled agent."""

    def __init__(self, env: gym.Env):
        self.space = pymunk.Space()
        self.space.gravity = env.space.gravity
        self.space.damping = env.space.damping
        for shape in env.space.shapes:
            if isinstance(shape, pymunk.Segment):
                wall = pymunk.Segment(self.space.static_body, shape.a, shape.b, shape.radius)
                wall.friction, wall.elasticity = shape.friction, shape.elasticity
                self.space.add(wall)
        self.block = pymunk.Body(env.block.mass, env.block.moment)
        self.block.center_of_gravity = env.block.center_of_gravity
        self.space.add(self.block)
        for src in env.block.shapes:
            poly = pymunk.Poly(self.block, src.get_vertices())
            poly.friction, poly.elasticity = src.friction, src.elasticity
            self.space.add(poly)
        self.agent = pymunk.Body(body_type=pymunk.Body.KINEMATIC)
        (agent_shape,) = env.agent.shapes
        circle = pymunk.Circle(self.agent, agent_shape.radius)
        circle.friction, circle.elasticity = agent_shape.friction, agent_shape.elasticity
        self.space.add(self.agent, circle)
        self.kp, self.kv, self.dt = float(env.k_p), float(env.k_v), float(env.dt)
        self.substeps = int(1 / (env.dt * env.control_hz))

    def set_state(self, block: tuple, agent: tuple) -> None:
        """block = (x, y, angle, vx, vy, omega); agent = (x, y, vx, vy)."""
        (bx, by, ba, bvx, bvy, bw), (ax, ay, avx, avy) = block, agent
        self.block.angle = ba  # angle first: pymunk keeps the centre of gravity fixed on rotation
        self.block.position = (bx, by)
        self.block.velocity, self.block.angular_velocity = (bvx, bvy), bw
        self.agent.position, self.agent.velocity = (ax, ay), (avx, avy)

    def get_state(self) -> tuple[tuple, tuple]:
        b, a = self.block, self.agent
        block = (b.position.x, b.position.y, b.angle, b.velocity.x, b.velocity.y, b.angular_velocity)
        return block, (a.position.x, a.position.y, a.velocity.x, a.velocity.y)

    def pose(self) -> tuple[float, float, float]:
        return self.block.position.x, self.block.position.y, self.block.angle

    def step(self, target: np.ndarray) -> None:
        """One env step (PD-controlled agent towards ``target``), as in ``PushTEnv.step``."""
        tx, ty = (float(v) for v in np.asarray(target, dtype=np.float32))
        kp, kv, dt, agent, space = self.kp, self.kv, self.dt, self.agent, self.space
        (px, py), (vx, vy) = agent.position, agent.velocity
        for _ in range(self.substeps):
            # The agent is kinematic, so contacts never alter its motion: track it locally
            # (same arithmetic as chipmunk's p += v * dt) instead of reading it back each substep.
            vx, vy = vx + (kp * (tx - px) - kv * vx) * dt, vy + (kp * (ty - py) - kv * vy) * dt
            agent.velocity = (vx, vy)
            space.step(dt)
            px, py = px + vx * dt, py + vy * dt

    def rollout(self, block: tuple, agent: tuple, targets: np.ndarray) -> np.ndarray:
        """Simulate env steps towards ``targets`` (k, 2); returns block poses (k, 3) after each."""
        self.set_state(block, agent)
        out = np.empty((len(targets), 3))
        for i, target in enumerate(targets):
            self.step(target)
            out[i] = self.pose()
        return out

    def push_outcomes(
        self,
        block: tuple,
        agent: tuple,
        start: np.ndarray,
        direction: np.ndarray,
        speed: float,
        n: int,
        release: np.ndarray,
    ) -> np.ndarray:
        """Block pose (n, 3) after pushing k = 1..n steps from ``start`` and then following the
        target offsets ``release`` (m, 2), relative to the last push target."""
        self.set_state(block, agent)
        out = np.empty((n, 3))
        for k in range(n):
            target = start + direction * speed * (k + 1)
            self.step(target)
            saved = self.get_state()
            for offset in release:
                self.step(target + offset)
            out[k] = self.pose()
            self.set_state(*saved)
        return out


@dataclass
class _Push:
    """A chosen push primitive, stored in the block frame until it starts."""

    start_local: np.ndarray  # pre-push point
    dir_local: np.ndarray  # unit push direction
    steps: int
    speed: float
    max_steps: int = 1
    predicted_cost: float = float("nan")  # goal cost the planner expects afterwards
    dir_world: np.ndarray | None = None  # frozen when the push starts
    done: int = 0


class ExpertPushT:
    """Privileged-state scripted expert for ``gym_pusht/PushT-v0``.

    Call :meth:`reset` after ``env.reset`` and :meth:`act` once per step; ``act`` returns the
    agent target position, shape (2,), float32, in [0, 512].
    """

    def __init__(self, seed: int | None = None, **tunables: object):
        names = {f.name for f in fields(ExpertPushTConfig)}
        unknown = set(tunables) - names
        if unknown:
            raise TypeError(f"unknown ExpertPushT tunables: {sorted(unknown)}")
        self.cfg = replace(ExpertPushTConfig(), **tunables)
        if not self.cfg.action_noise >= 0:
            raise ValueError(f"action_noise={self.cfg.action_noise}: expected a standard deviation ≥ 0 (pixels)")
        if not 0.0 <= self.cfg.careless_fraction <= 1.0:
            raise ValueError(f"careless_fraction={self.cfg.careless_fraction}: expected a share in [0, 1]")
        self._rng = np.random.default_rng(seed)
        self._env = None
        self._sim_env = None
        self._geom: _TeeGeometry | None = None
        self._sim: _PhysicsReplica | None = None

    # ------------------------------------------------------------------ public API
    def reset(self, env: gym.Env) -> None:
        """Bind to ``env`` (already reset) and clear the plan."""
        self._env = env.unwrapped
        if self._sim_env is not self._env:
            rects = [np.array([tuple(v) for v in s.get_vertices()]) for s in self._env.block.shapes]
            (agent_shape,) = self._env.agent.shapes
            self._agent_radius = float(agent_shape.radius)
            self._geom = _TeeGeometry(rects, self._agent_radius, self.cfg)
            self._sim = _PhysicsReplica(self._env)
            self._cog = np.array(tuple(self._env.block.center_of_gravity), dtype=np.float64)
            self._sim_env = self._env
        self._target = np.array(self._env.agent.position, dtype=np.float64)
        self._push: _Push | None = None
        self._escape_dir = np.array([1.0, 0.0])
        careless = self.cfg.careless_fraction > 0 and self._rng.uniform() < self.cfg.careless_fraction
        self.careless = bool(careless)  # this episode's operator (drawn only when careless_fraction > 0)
        self._score_jitter = self.cfg.careless_jitter if careless else self.cfg.score_jitter

    def act(self) -> np.ndarray:
        """Next agent target position, shape (2,), float32."""
        if self._env is None:
            raise RuntimeError("call reset(env) before act()")
        if self._push is None:
            self._push = self._plan()
        push = self._push
        if push.dir_world is None:
            self._transit_step(push)
        else:
            self._push_step(push)
        self._target = np.clip(self._target, 0.0, 512.0)
        if self.cfg.action_noise > 0:
            noisy = self._target + self._rng.normal(0.0, self.cfg.action_noise, 2)
            return np.clip(noisy, 0.0, 512.0).astype(np.float32)
        return self._target.astype(np.float32)

    # ------------------------------------------------------------------ state access
    def _block_pose(self) -> np.ndarray:
        b = self._env.block
        return np.array([b.position.x, b.position.y, b.angle])

    def _goal_pose(self) -> np.ndarray:
        return np.asarray(self._env.goal_pose, dtype=np.float64)

    # ------------------------------------------------------------------ execution
    def _transit_step(self, push: _Push) -> None:
        """Move the target one step along the collision-free path to the pre-push point."""
        pose = self._block_pose()
        a = _to_local(pose, self._target[None])[0]
        start, d = push.start_local, push.dir_local
        runup = start - d * self.cfg.approach
        if not self._geom.visible(runup, start, self._agent_radius + 1.0)[0]:
            runup = start
        node_ok = self._node_ok(pose)
        new_a, budget = a, self.cfg.transit_speed
        for _ in range(3):  # spend the step's travel budget along the path, corner by corner
            goal = runup if np.linalg.norm(new_a - start) > self.cfg.approach + 1.0 else start
            if goal is start:
                budget = min(budget, push.speed)
            waypoint = self._waypoint(new_a, goal, node_ok)
            dist = float(np.linalg.norm(waypoint - new_a))
            new_a = _step_towards(new_a, waypoint, budget)
            budget -= dist
            if budget <= 1e-6 or np.linalg.norm(new_a - start) < 1e-6:
                break
        self._target = _to_world(pose, new_a[None])[0]
        if np.linalg.norm(new_a - start) < 1e-6:  # arrived: freeze push direction in world frame
            push.dir_world = _rotation(pose[2]) @ d

    def _waypoint(self, a: np.ndarray, goal: np.ndarray, node_ok: np.ndarray) -> np.ndarray:
        """Next point to head for (block frame): goal, a path corner, or a point away from the T."""
        geom = self._geom
        if np.linalg.norm(a - goal) < 40 and geom.visible(a, goal, self._agent_radius + 1.0)[0]:
            return goal  # short hop that does not run into the block
        if not geom.visible(a, a)[0]:
            return geom.escape_point(a, self._escape_local(self._block_pose()))
        return geom.next_waypoint(a, goal, node_ok)

    def _push_step(self, push: _Push) -> None:
        if push.done == 0:
            self._refine_length(push)
        if push.done < push.steps:
            self._target = self._target + push.dir_world * push.speed
        push.done += 1  # steps beyond push.steps are dwell steps: the target holds still
        if push.done >= push.steps + self.cfg.dwell_steps:
            self._escape_dir = -push.dir_world
            self._push = None

    def _escape_local(self, pose: np.ndarray) -> np.ndarray:
        return _rotation(pose[2]).T @ self._escape_dir

    def _refine_length(self, push: _Push) -> None:
        """Re-simulate the push from the true current state and pick its best length."""
        block, agent = self._sim_state()
        release = self._release(push.dir_world)
        outcomes = self._sim.push_outcomes(
            block, agent, self._target, push.dir_world, push.speed, push.max_steps, release
        )
        costs = self._cost(outcomes, self._goal_pose())
        step_cost = self._step_cost(float(self._cost(self._block_pose(), self._goal_pose())))
        push.steps = int(np.argmin(costs + step_cost * np.arange(1, push.max_steps + 1))) + 1
        push.predicted_cost = float(costs[push.steps - 1])

    def _release(self, direction: np.ndarray) -> np.ndarray:
        """Nominal target offsets after a push: dwell, then back off along -direction."""
        back = np.arange(1, self.cfg.retreat_steps + 1) * self.cfg.transit_speed
        hold = np.zeros((self.cfg.dwell_steps, 2))
        return np.concatenate([hold, -back[:, None] * direction])

    def _step_cost(self, cost_now: float) -> float:
        """How much goal cost one step of effort is worth (shrinks as the goal gets close)."""
        return self.cfg.time_penalty + self.cfg.time_penalty_frac * cost_now

    def _sim_state(self) -> tuple[tuple, tuple]:
        b, ag = self._env.block, self._env.agent
        block = (b.position.x, b.position.y, b.angle, b.velocity.x, b.velocity.y, b.angular_velocity)
        return block, (ag.position.x, ag.position.y, ag.velocity.x, ag.velocity.y)

    def _node_ok(self, pose: np.ndarray) -> np.ndarray:
        world = _to_world(pose, self._geom.nodes)
        return np.all((world > ARENA_LO) & (world < ARENA_HI), axis=1)

    # ------------------------------------------------------------------ planning
    def _settled_pose(self) -> np.ndarray:
        """Predict the block pose once the current motion dies out (agent backing off)."""
        block, agent = self._sim_state()
        release = self._release(-self._escape_dir)[self.cfg.dwell_steps :]
        poses = self._sim.rollout(block, agent, self._target + release)
        return poses[-1]

    def _plan(self) -> _Push:
        cfg, geom = self.cfg, self._geom
        pose = self._settled_pose()
        goal = self._goal_pose()
        err_now = float(self._cost(pose, goal))
        step_cost = self._step_cost(err_now)
        fine = err_now < cfg.fine_error
        speed = cfg.fine_push_speed if fine else cfg.push_speed
        max_len = cfg.max_fine_push if fine else cfg.max_push
        gap = cfg.gap + self._rng.uniform(-1.0, 1.0) * cfg.gap_jitter

        starts, dirs = self._candidate_pushes(pose, gap)
        a_local = _to_local(pose, self._target[None])[0]
        transit = geom.path_lengths(
            a_local, starts, self._node_ok(pose), self._escape_local(pose), self._agent_radius + 1.0
        )
        transit_steps = transit / cfg.transit_speed

        n_push = int(np.ceil((gap + max_len) / speed))
        best = (np.inf, None)
        for k_cand in range(len(starts)):
            if not np.isfinite(transit[k_cand]):
                continue
            s_w = _to_world(pose, starts[k_cand][None])[0]
            d_w = _rotation(pose[2]) @ dirs[k_cand]
            block = (pose[0], pose[1], pose[2], 0.0, 0.0, 0.0)
            agent = (s_w[0], s_w[1], 0.0, 0.0)  # the agent arrives (nearly) at rest
            poses = self._sim.push_outcomes(block, agent, s_w, d_w, speed, n_push, self._release(d_w))
            errs = self._cost(poses, goal)
            k = np.arange(1, len(errs) + 1)
            scores = errs + step_cost * (k + transit_steps[k_cand])
            j = int(np.argmin(scores))
            score = scores[j] + self._rng.uniform(0.0, self._score_jitter)
            if score < best[0]:
                best = (score, _Push(starts[k_cand], dirs[k_cand], int(k[j]), speed, n_push, float(errs[j])))
        if best[1] is None:  # nothing reachable: nudge towards the block centre from where we are
            d = -a_local / max(np.linalg.norm(a_local), 1e-6)
            return _Push(a_local, d, 3, speed, 3)
        return best[1]

    def _cost(self, poses: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Distance to the goal: centre-of-gravity offset plus weighted absolute angle error."""
        return _pose_cost(poses, goal, self._cog, self.cfg.rot_weight)

    def _candidate_pushes(self, pose: np.ndarray, gap: float) -> tuple[np.ndarray, np.ndarray]:
        """Pre-push points and push directions (block frame) that are free and inside the arena."""
        geom = self._geom
        starts, dirs = [], []
        for deg in self.cfg.push_angles_deg:
            rot = _rotation(np.deg2rad(deg))
            d = geom.normals @ rot.T
            starts.append(geom.contacts - d * (self._agent_radius + gap))
            dirs.append(d)
        starts, dirs = np.concatenate(starts), np.concatenate(dirs)
        free = geom.visible(starts, starts, self._agent_radius + 0.6 * gap)
        world = _to_world(pose, starts)
        inside = np.all((world > ARENA_LO) & (world < ARENA_HI), axis=1)
        keep = free & inside
        return starts[keep], dirs[keep]


def _pose_cost(poses: np.ndarray, goal: np.ndarray, cog: np.ndarray, rot_weight: float) -> np.ndarray:
    """Centre-of-gravity distance plus ``rot_weight`` x |angle error| for poses (..., 3)."""
    poses = np.asarray(poses, dtype=np.float64)
    c, s = np.cos(poses[..., 2]), np.sin(poses[..., 2])
    cx = poses[..., 0] + c * cog[0] - s * cog[1]
    cy = poses[..., 1] + s * cog[0] + c * cog[1]
    goal_cog = _to_world(goal, cog[None])[0]
    dtheta = np.angle(np.exp(1j * (poses[..., 2] - goal[2])))
    return np.hypot(cx - goal_cog[0], cy - goal_cog[1]) + rot_weight * np.abs(dtheta)


def _step_towards(a: np.ndarray, b: np.ndarray, max_step: float) -> np.ndarray:
    d = b - a
    dist = float(np.linalg.norm(d))
    return b.copy() if dist <= max_step else a + d * (max_step / dist)


@register_expert("pusht")
def pusht_expert(options: dict) -> type[ExpertPushT] | functools.partial:
    """seed → ExpertPushT with `options` set (its ExpertPushTConfig tunables, e.g. score_jitter)."""
    known = [f.name for f in fields(ExpertPushTConfig)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"expert_options: unknown {unknown}; expected ExpertPushT tunables, some of {known}")
    return functools.partial(ExpertPushT, **options) if options else ExpertPushT
