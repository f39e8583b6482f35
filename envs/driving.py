"""NAVSIM-style driving on diffpilot's own simulator (`diffpilot.sim`): agent input, open-loop evaluation
(NAVSIM v1 protocol), a closed-loop Gymnasium env that replans every 0.5 s, per-scene result export and a
demonstration writer (PDM-Closed on the train split) for behaviour cloning.

Agent input (one scene; a batch stacks every array on a leading axis B). All coordinates are metres in the
ego frame now (rear axle at the origin, +x forward, +y left), headings in radians:

    ego_status   (8,)  float32  body-frame velocity vx, vy; acceleration ax, ay; driving command one-hot
                                (left, straight, right, unknown)
    history      (4, 3) float32 ego poses x, y, heading at -1.5, -1.0, -0.5, 0 s (4 frames at 2 Hz)
    bev          (6, S, S) uint8 bird's-eye raster (0 / 255; 128 for agents 1 s ago), S = ObservationConfig.size,
                                pixel (i, j) centred at x = -behind + (i + 0.5) res, y = -half + (j + 0.5) res;
                                channels BEV_CHANNELS: drivable area, route lanes, vehicles, pedestrians and
                                cyclists, static objects, red-light stop regions
    agents       (32, 12) float32 the nearest agents now (within agent_range): x, y, cos h, sin h, vx, vy,
                                length, width, class one-hot (vehicle, pedestrian, cyclist, static)
    agents_mask  (32,)  int8    1 where the row is an agent
    route        (16, 2) float32 route centreline points ahead, every 4 m from the ego's projection

Output: a trajectory (8, 3) - rear-axle x, y, heading at 0.5 .. 4.0 s in the same ego frame - per scene;
a policy is any object with ``plan(obs_batch) -> (B, 8, 3)`` (numpy or anything ``np.asarray`` takes).

Results export (CSV and parquet) uses NAVSIM's column names: token, valid, v2's sub-scores
(no_at_fault_collisions, drivable_area_compliance, driving_direction_compliance, traffic_light_compliance,
ego_progress, time_to_collision_within_bound, lane_keeping, history_comfort, two_frame_extended_comfort),
v1.1's comfort and ego_progress_v1, pdm_score (v1.1), extended_pdm_score (v2) and score (the protocol's score:
PDMS for v1), one row per scene plus a final ``average`` row as NAVSIM writes it. A scene whose proposal holds
NaN/inf is ``valid = False`` and scores 0; a proposal of the wrong shape raises ValueError naming the scene
token and the field.

Demonstrations (``write_demonstrations``): ``<dir>/meta.json`` (format, observation spec, shard list, expert
and split) and ``<dir>/shard-NNNNN.npz`` shards, each holding the agent-input arrays above stacked over
scenes plus ``trajectory`` (N, 8, 3) float32 (the expert's proposal), ``token`` and ``family`` (str) and
``seed`` (int64). No pickle: every array is numeric or fixed-width unicode.
"""

from __future__ import annotations

import csv
import functools
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from tqdm.auto import tqdm

from diffpilot.atomic import atomic_path, atomic_write_json
from diffpilot.errors import ConfigError, whole_number
from diffpilot.sim.evaluate import SceneScorer
from diffpilot.sim.frames import future_frame, previous_frame
from diffpilot.sim.geometry import PolygonSet, interpolate_polyline, project_on_polyline, wrap_angle
from diffpilot.sim.planners import (
    PRIVILEGED_PDM_CLOSED,
    ConstantVelocityPlanner,
    PDMClosedPlanner,
    ego_initial_state,
    simulate_in_scene,
)
from diffpilot.sim.scenarios import make_scene, make_split, split_seeds
from diffpilot.sim.scene import AgentClass, LightState, Scene
from diffpilot.sim.scoring import NAVSIM_SCORER, TRAFFIC, ScorerConfig, aggregate
from diffpilot.sim.simulate import PROPOSAL_POSES, SIM_STEPS, SimulatedStates, simulate_proposals
from diffpilot.sim.two_stage import SCORE_KEYS, TwoStageCase, TwoStageConfig

from .registry import EnvEntry, register_env

HISTORY_FRAMES = 4
HISTORY_STRIDE = 5  # 0.5 s at 0.1 s: 2 Hz
REPLAN_STEPS = 5  # the closed-loop env executes 0.5 s of each plan
BEV_CHANNELS = ("drivable_area", "route_lanes", "vehicles", "pedestrians_cyclists", "static_objects", "red_lights")
EGO_STATUS_DIM = 8
AGENT_FEATURES = 12
NAVSIM_COLUMNS = {
    "nc": "no_at_fault_collisions",
    "dac": "drivable_area_compliance",
    "ddc": "driving_direction_compliance",
    "tlc": "traffic_light_compliance",
    "ep": "ego_progress",
    "ep_v1": "ego_progress_v1",
    "ttc": "time_to_collision_within_bound",
    "c": "comfort",
    "lk": "lane_keeping",
    "hc": "history_comfort",
    "ec": "two_frame_extended_comfort",
}
DEMO_FORMAT = "diffpilot-driving-demos/1"


@dataclass(frozen=True)
class ObservationConfig:
    size: int = 64  # BEV pixels per side
    resolution: float = 0.75  # metres per pixel
    behind: float = 12.0  # metres of BEV behind the rear axle (the rest is ahead)
    max_agents: int = 32
    agent_range: float = 60.0
    route_points: int = 16
    route_spacing: float = 4.0

    def pixel_centres(self) -> np.ndarray:
        """(S * S, 2) x, y of every BEV pixel centre, row-major (i over x, j over y)."""
        c = (np.arange(self.size) + 0.5) * self.resolution
        xs, ys = np.meshgrid(c - self.behind, c - 0.5 * self.size * self.resolution, indexing="ij")
        return np.stack([xs.ravel(), ys.ravel()], -1)


def observation_space(cfg: ObservationConfig = ObservationConfig()) -> spaces.Dict:
    big = 1e4
    return spaces.Dict(
        {
            "ego_status": spaces.Box(-big, big, (EGO_STATUS_DIM,), np.float32),
            "history": spaces.Box(-big, big, (HISTORY_FRAMES, 3), np.float32),
            "bev": spaces.Box(0, 255, (len(BEV_CHANNELS), cfg.size, cfg.size), np.uint8),
            "agents": spaces.Box(-big, big, (cfg.max_agents, AGENT_FEATURES), np.float32),
            "agents_mask": spaces.MultiBinary(cfg.max_agents),
            "route": spaces.Box(-big, big, (cfg.route_points, 2), np.float32),
        }
    )


# ------------------------------------------------------------------------------------------------ observe


def _boxes_raster(
    pts: np.ndarray, centres: np.ndarray, heads: np.ndarray, sizes: np.ndarray, pixel: float
) -> np.ndarray:
    """(P,) bool: pixel centres `pts` (P, 2) inside any oriented box (centres (N, 2), heads (N,), sizes (N, 2)),
    each grown by half a pixel so that small objects (cones, pedestrians) always cover a pixel."""
    if len(centres) == 0:
        return np.zeros(len(pts), bool)
    d = pts[None] - centres[:, None]
    c, s = np.cos(heads)[:, None], np.sin(heads)[:, None]
    along = d[..., 0] * c + d[..., 1] * s
    across = -d[..., 0] * s + d[..., 1] * c
    half = 0.5 * sizes + 0.5 * pixel
    return ((np.abs(along) <= half[:, None, 0]) & (np.abs(across) <= half[:, None, 1])).any(0)


def observe(scene: Scene, cfg: ObservationConfig = ObservationConfig()) -> dict[str, np.ndarray]:
    """The agent input of one scene (see the module docstring)."""
    e, m, a = scene.ego, scene.map, scene.agents
    h = scene.num_history
    c = scene.current_index
    status = np.zeros(EGO_STATUS_DIM, np.float32)
    status[0:2], status[2:4] = e.velocity, e.acceleration
    status[4 + int(e.command)] = 1.0
    hist_idx = [h - HISTORY_STRIDE * k for k in range(HISTORY_FRAMES - 1, -1, -1)]
    history = e.history_poses[hist_idx].astype(np.float32)

    # object list: valid now, nearest first
    agents = np.zeros((cfg.max_agents, AGENT_FEATURES), np.float32)
    mask = np.zeros(cfg.max_agents, np.int8)
    if a.num:
        pos = a.poses[:, c, :2]
        dist = np.hypot(pos[:, 0], pos[:, 1])
        keep = np.nonzero(a.valid[:, c] & (dist <= cfg.agent_range))[0]
        keep = keep[np.argsort(dist[keep], kind="stable")][: cfg.max_agents]
        n = len(keep)
        hd = a.poses[keep, c, 2]
        agents[:n, 0:2] = pos[keep]
        agents[:n, 2], agents[:n, 3] = np.cos(hd), np.sin(hd)
        agents[:n, 4:6] = a.velocities[keep, c]
        agents[:n, 6:8] = a.sizes[keep]
        agents[np.arange(n), 8 + a.classes[keep].astype(np.int64)] = 1.0
        mask[:n] = 1

    # route ahead
    s0, _ = project_on_polyline(np.zeros((1, 2)), m.route_centerline)
    route_s = s0[0] + cfg.route_spacing * np.arange(cfg.route_points)
    route_s = np.minimum(route_s, np.sum(np.linalg.norm(np.diff(m.route_centerline, axis=0), axis=-1)))
    route, _ = interpolate_polyline(m.route_centerline, route_s)

    # raster
    pts = cfg.pixel_centres()
    bev = np.zeros((len(BEV_CHANNELS), cfg.size * cfg.size), np.uint8)
    bev[0] = 255 * PolygonSet(m.area_polygons, m.area_polygon_num).contains(pts).any(-1)
    rl = m.route_lanes
    bev[1] = 255 * PolygonSet(m.lane_polygons[rl], m.lane_polygon_num[rl]).contains(pts).any(-1)
    groups = (
        (2, (AgentClass.VEHICLE,)),
        (3, (AgentClass.PEDESTRIAN, AgentClass.CYCLIST)),
        (4, (AgentClass.STATIC,)),
    )
    past = c - 2 * HISTORY_STRIDE  # 1 s ago: motion shows as a fainter trail
    for ch, classes in groups:
        sel = np.isin(a.classes, classes)
        for t, value in ((past, 128), (c, 255)):
            on = sel & a.valid[:, t]
            hit = _boxes_raster(pts, a.poses[on, t, :2], a.poses[on, t, 2], a.sizes[on], cfg.resolution)
            bev[ch] = np.maximum(bev[ch], np.where(hit, value, 0).astype(np.uint8))
    red = m.light_states[:, c] == LightState.RED
    if red.any():
        stops = m.light_stop_polygons[red]
        bev[5] = 255 * PolygonSet(stops, np.full(len(stops), 4)).contains(pts).any(-1)
    return {
        "ego_status": status,
        "history": history,
        "bev": bev.reshape(len(BEV_CHANNELS), cfg.size, cfg.size),
        "agents": agents,
        "agents_mask": mask,
        "route": route.astype(np.float32),
    }


def stack_observations(observations: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """A batch dict: every key stacked on a leading axis."""
    return {k: np.stack([o[k] for o in observations]) for k in observations[0]}


def observe_batch(scenes: Sequence[Scene], cfg: ObservationConfig = ObservationConfig()) -> dict[str, np.ndarray]:
    return stack_observations([observe(s, cfg) for s in scenes])


# ----------------------------------------------------------------------------------------------- open loop


def check_trajectories(trajectories: Any, tokens: Sequence[str]) -> np.ndarray:
    """(B, 8, 3) float64 from a policy's output, or ValueError naming the scene token(s) and field. NaN/inf
    values are kept (those scenes score 0)."""
    try:
        arr = np.asarray(trajectories, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"scenes {list(tokens)[:3]}: field 'trajectory': not a numeric array ({err})") from err
    if arr.ndim != 3 or arr.shape[1:] != (PROPOSAL_POSES, 3) or len(arr) != len(tokens):
        first = tokens[0] if len(tokens) else "?"
        raise ValueError(
            f"scene {first!r} (batch of {len(tokens)}): field 'trajectory': expected shape "
            f"({len(tokens)}, {PROPOSAL_POSES}, 3), got {arr.shape}"
        )
    return arr


def navsim_row(token: str, family: str, scores: dict[str, float], valid: bool) -> dict[str, Any]:
    row: dict[str, Any] = {"token": token, "valid": bool(valid)}
    for k, col in NAVSIM_COLUMNS.items():
        row[col] = float(scores[k])
    row["pdm_score"] = float(scores["pdms"])
    row["extended_pdm_score"] = float(scores["epdms"])
    row["score"] = float(scores["pdms"])
    row["family"] = family
    return row


@dataclass
class DrivingResults:
    """Per-scene rows (NAVSIM column names) and the aggregate (means; PDMS / EPDMS in percent)."""

    rows: list[dict[str, Any]]
    latency_ms: float = float("nan")

    def table(self) -> dict[str, float]:
        back = {v: k for k, v in NAVSIM_COLUMNS.items()}
        short = [
            {**{back[c]: r[c] for c in back}, "pdms": r["pdm_score"], "epdms": r["extended_pdm_score"]}
            for r in self.rows
        ]
        out = aggregate(short)
        out["latency_ms"] = self.latency_ms
        out["valid"] = float(np.mean([r["valid"] for r in self.rows])) if self.rows else 0.0
        return out

    def _with_average(self) -> list[dict[str, Any]]:
        if not self.rows:
            return []
        avg: dict[str, Any] = {"token": "average", "valid": all(r["valid"] for r in self.rows)}
        for col in [*NAVSIM_COLUMNS.values(), "pdm_score", "extended_pdm_score", "score"]:
            avg[col] = float(np.mean([r[col] for r in self.rows]))
        avg["family"] = ""
        return [*self.rows, avg]

    def to_csv(self, path: str | Path) -> Path:
        rows = self._with_average()
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["token", "score"])
            writer.writeheader()
            writer.writerows(rows)
        return Path(path)

    def to_parquet(self, path: str | Path) -> Path:
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = self._with_average()
        table = pa.Table.from_pylist(rows) if rows else pa.table({"token": pa.array([], pa.string())})
        with atomic_path(path) as tmp:
            pq.write_table(table, str(tmp))
        return Path(path)


class BuiltinPlanner:
    """A planner of the simulator (sim/planners.py) as an evaluable policy: it plans from the scenes themselves
    (privileged), not from the agent input. `name`: one of BUILTIN_PLANNERS."""

    type_name = "builtin"

    def __init__(self, name: str):
        if name not in BUILTIN_PLANNERS:
            raise ConfigError(f"planner={name!r}: expected one of {sorted(BUILTIN_PLANNERS)}")
        self.name, self.planner = name, BUILTIN_PLANNERS[name]()

    def plan_scenes(self, scenes: Sequence[Scene]) -> np.ndarray:
        return np.stack([self.planner.plan(s) for s in scenes])


BUILTIN_PLANNERS = {
    "constant_velocity": ConstantVelocityPlanner,
    "pdm_closed": PDMClosedPlanner,  # NAVSIM's (constant-velocity forecasts): EP's reference
    "pdm_closed_privileged": lambda: PDMClosedPlanner(PRIVILEGED_PDM_CLOSED),  # the demonstrator, the human driver
}


def plan_batch(policy: Any, scenes: Sequence[Scene], obs: dict[str, np.ndarray]) -> np.ndarray:
    """A learned planner plans from the agent input, a built-in one from the scenes."""
    return policy.plan_scenes(scenes) if isinstance(policy, BuiltinPlanner) else policy.plan(obs)


def evaluate_open_loop(
    policy: Any,
    scenes: Sequence[Scene],
    batch_size: int = 32,
    obs_config: ObservationConfig = ObservationConfig(),
    reference: PDMClosedPlanner | None = None,
    reference_plans: Sequence[np.ndarray] | None = None,
    two_frame: bool = False,
    human_plans: Sequence[np.ndarray] | None = None,
    config: ScorerConfig = NAVSIM_SCORER,
    traffic: str = "log_replay",
) -> DrivingResults:
    """NAVSIM's open-loop protocol: the policy (a learned planner with `plan(obs_batch)`, or a BuiltinPlanner)
    plans each scene once, the plan is simulated and scored against the log; EP is normalised by the
    PDM-Closed reference of the same scene (`reference`, or its plans precomputed in `reference_plans`). With
    `two_frame` the policy also plans each scene's previous frame (0.5 s earlier) and EC compares the two plans
    (NAVSIM v2); otherwise EC = 1. With `human_plans` (the scenes' driver, one (8, 3) plan per scene) v2's
    human penalty filter applies. `traffic`: log_replay (NAVSIM's non-reactive policy) or reactive (its IDM
    agents, sim/reactive.py). latency_ms: the policy's planning time per scene (observation building
    excluded)."""
    reference = reference or PDMClosedPlanner()
    rows: list[dict[str, Any]] = []
    plan_s = 0.0
    for lo in range(0, len(scenes), batch_size):
        chunk = [s.validate() for s in scenes[lo : lo + batch_size]]  # SceneError names the token and field
        tokens = [s.token for s in chunk]
        obs = observe_batch(chunk, obs_config)
        t0 = time.perf_counter()
        traj = check_trajectories(plan_batch(policy, chunk, obs), tokens)
        plan_s += time.perf_counter() - t0
        prev_traj = None
        if two_frame:
            prev_scenes = [previous_frame(s) for s in chunk]
            prev_traj = check_trajectories(
                plan_batch(policy, prev_scenes, observe_batch(prev_scenes, obs_config)), tokens
            )
        for i, scene in enumerate(chunk):
            ref = reference_plans[lo + i] if reference_plans is not None else reference.plan(scene)
            human = human_plans[lo + i] if human_plans is not None else None
            scorer = SceneScorer.of(scene, ref, human, config, traffic)
            prev_states = simulate_in_scene(prev_scenes[i], prev_traj[i : i + 1]) if prev_traj is not None else None
            s = scorer.score(simulate_in_scene(scene, traj[i : i + 1]), prev_states)
            rows.append(navsim_row(scene.token, scene.family, s.row(0), bool(np.isfinite(traj[i]).all())))
    return DrivingResults(rows, 1e3 * plan_s / max(len(scenes), 1))


# ---------------------------------------------------------------------------------------------- closed loop


class DrivingEnv(gym.Env):
    """Closed-loop NAVSIM-style driving: each step takes a trajectory (8, 3) in the current ego frame, executes
    its first 0.5 s with the LQR tracker + bicycle model, and observes the world again from where the ego is
    (agents replay their log: non-reactive). An episode covers the scene's 4 s (8 replans). The reward is 0
    per step and, at the last step, the PDM score of the executed 4 s (scored by `sim.scoring` against the log,
    EP normalised by NAVSIM's PDM-Closed plan, v2's human filter against the privileged one); `info` then holds
    every sub-score. A non-finite action ends the episode with reward 0 and info['invalid_action'] = True.

    Scenes: the `scenes` given, or `num_scenes` scenes of `split` (generated on first use)."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        scenes: Sequence[Scene] | None = None,
        split: str = "train",
        num_scenes: int = 64,
        obs_config: ObservationConfig = ObservationConfig(),
    ):
        self._scenes = list(scenes) if scenes is not None else None
        self._split, self._num = split, num_scenes
        self.obs_config = obs_config
        self.observation_space = observation_space(obs_config)
        low = np.tile(np.array([-20.0, -60.0, -np.pi], np.float32), (PROPOSAL_POSES, 1))
        high = np.tile(np.array([100.0, 60.0, np.pi], np.float32), (PROPOSAL_POSES, 1))
        self.action_space = spaces.Box(low, high, dtype=np.float32)
        self.reference, self.human = PDMClosedPlanner(), PDMClosedPlanner(PRIVILEGED_PDM_CLOSED)
        self.scene: Scene | None = None

    def _scene_list(self) -> list[Scene]:
        if self._scenes is None:
            self._scenes = make_split(self._split, self._num)
        return self._scenes

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        scenes = self._scene_list()
        idx = (options or {}).get("scene_index")
        idx = int(self.np_random.integers(len(scenes))) if idx is None else int(idx)
        self.scene = scene = scenes[idx]
        e = scene.ego
        self._poses = [p for p in e.history_poses]
        self._vel = [v for v in e.history_velocities]
        self._acc = [a for a in e.history_accelerations]
        speed, accel, steer = ego_initial_state(scene)
        self._state = (speed, accel, steer)
        n = SIM_STEPS + 1
        self._exec = {k: np.zeros(n) for k in ("speed", "accel_lon", "accel_lat", "yaw_rate", "steering")}
        self._exec_poses = np.zeros((n, 3))
        self._exec["speed"][0], self._exec["accel_lon"][0], self._exec["steering"][0] = speed, accel, steer
        self._exec["accel_lat"][0] = e.acceleration[1]
        self._exec["yaw_rate"][0] = wrap_angle(e.history_poses[-1, 2] - e.history_poses[-2, 2]) / scene.dt
        self._steps = 0
        self._view = scene
        return observe(scene, self.obs_config), {"token": scene.token, "family": scene.family}

    def step(self, action):
        if self.scene is None:
            raise RuntimeError("DrivingEnv.step called before reset")
        traj = np.asarray(action, dtype=np.float64)
        if traj.shape != (PROPOSAL_POSES, 3):
            raise ValueError(
                f"scene {self.scene.token!r}: field 'action': expected shape ({PROPOSAL_POSES}, 3), got {traj.shape}"
            )
        view = self._view
        if not np.isfinite(traj).all():
            info = {"token": self.scene.token, "invalid_action": True, "pdms": 0.0}
            return observe(view, self.obs_config), 0.0, True, False, info
        speed, accel, steer = self._state
        st = simulate_proposals(traj[None], speed, accel, steer)
        base = np.asarray(self._poses[-1])  # the ego now, in the scene frame
        c, s = np.cos(base[2]), np.sin(base[2])
        k0 = self._steps * REPLAN_STEPS
        for j in range(1, REPLAN_STEPS + 1):
            lx, ly, lh = st.poses[0, j]
            pose = np.array([base[0] + c * lx - s * ly, base[1] + s * lx + c * ly, wrap_angle(base[2] + lh)])
            self._poses.append(pose)
            self._vel.append(np.array([st.speed[0, j], 0.0]))
            self._acc.append(np.array([st.accel_lon[0, j], st.accel_lat[0, j]]))
            self._exec_poses[k0 + j] = pose
            for key in self._exec:
                self._exec[key][k0 + j] = getattr(st, key)[0, j]
        self._state = (st.speed[0, REPLAN_STEPS], st.accel_lon[0, REPLAN_STEPS], st.steering[0, REPLAN_STEPS])
        self._steps += 1
        done = self._steps * REPLAN_STEPS >= SIM_STEPS
        self._view = future_frame(
            self.scene, self._steps * REPLAN_STEPS, np.array(self._poses), np.array(self._vel), np.array(self._acc)
        )
        info: dict[str, Any] = {"token": self.scene.token}
        reward = 0.0
        if done:
            scores = self.score_executed()
            info.update(scores)
            reward = scores["pdms"]
        return observe(self._view, self.obs_config), float(reward), done, False, info

    def score_executed(self) -> dict[str, float]:
        """Sub-scores, PDMS and EPDMS of the 4 s driven so far (the remainder held at the last state)."""
        scene = self.scene
        last = self._steps * REPLAN_STEPS
        poses = self._exec_poses.copy()
        poses[last + 1 :] = poses[last]
        ex = {k: v.copy() for k, v in self._exec.items()}
        for v in ex.values():
            v[last + 1 :] = v[last]
        states = SimulatedStates(poses=poses[None], **{k: v[None] for k, v in ex.items()}, finite=np.ones(1, bool))
        return SceneScorer.of(scene, self.reference.plan(scene), self.human.plan(scene)).score(states).row(0)


def rollout_closed_loop(policy: Any, env: DrivingEnv, scene_indices: Iterable[int]) -> DrivingResults:
    """Closed-loop evaluation: one episode per scene index with `policy.plan` replanning every 0.5 s."""
    rows = []
    plan_s, calls = 0.0, 0
    for i in scene_indices:
        obs, info = env.reset(options={"scene_index": i})
        done = False
        while not done:
            t0 = time.perf_counter()
            traj = check_trajectories(policy.plan(stack_observations([obs])), [info["token"]])[0]
            plan_s += time.perf_counter() - t0
            calls += 1
            obs, _, done, _, step_info = env.step(traj)
        valid = not step_info.get("invalid_action", False)
        scores = step_info if valid else {k: 0.0 for k in [*NAVSIM_COLUMNS, "pdms", "epdms"]}
        rows.append(navsim_row(env.scene.token, env.scene.family, scores, valid))
    return DrivingResults(rows, 1e3 * plan_s / max(calls, 1))


# ---------------------------------------------------------------------------------------------- demos


def write_demonstrations(
    directory: str | Path,
    split: str = "train",
    num_scenes: int = 500,
    shard_size: int = 256,
    obs_config: ObservationConfig = ObservationConfig(),
    expert: PDMClosedPlanner | None = None,
    seeds: Sequence[int] | None = None,
) -> dict:
    """PDM-Closed (privileged: oracle forecast, by default) plans on `num_scenes` scenes of `split` -> npz shards +
    meta.json (format in the module docstring). Returns the meta dict."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    expert = expert or PDMClosedPlanner(PRIVILEGED_PDM_CLOSED)
    seeds = list(seeds) if seeds is not None else list(split_seeds(split, num_scenes))
    shards = []
    for k, lo in enumerate(range(0, len(seeds), shard_size)):
        scenes = [make_scene(s) for s in seeds[lo : lo + shard_size]]
        data = observe_batch(scenes, obs_config)
        data["trajectory"] = np.stack([expert.plan(s) for s in scenes]).astype(np.float32)
        data["token"] = np.array([s.token for s in scenes])
        data["family"] = np.array([s.family for s in scenes])
        data["seed"] = np.array([s.seed for s in scenes], dtype=np.int64)
        name = f"shard-{k:05d}.npz"
        with atomic_path(directory / name) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, **data)
        shards.append({"file": name, "scenes": len(scenes)})
    meta = {
        "format": DEMO_FORMAT,
        "split": split,
        "scenes": len(seeds),
        "expert": {"name": "pdm_closed", "forecast": expert.config.forecast},
        "observation_config": asdict(obs_config),
        "bev_channels": list(BEV_CHANNELS),
        "keys": ["ego_status", "history", "bev", "agents", "agents_mask", "route", "trajectory", "token", "family"],
        "shards": shards,
    }
    atomic_write_json(directory / "meta.json", meta)
    return meta


def load_demonstrations(directory: str | Path) -> dict[str, np.ndarray]:
    """All shards of a demonstration directory concatenated (arrays keyed as in the shards)."""
    directory = Path(directory)
    meta_path = directory / "meta.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"demonstrations: {meta_path} does not exist")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != DEMO_FORMAT:
        raise ValueError(f"demonstrations: {meta_path}: format {meta.get('format')!r}, expected {DEMO_FORMAT!r}")
    parts: dict[str, list[np.ndarray]] = {}
    for shard in meta["shards"]:
        with np.load(directory / shard["file"], allow_pickle=False) as z:
            for key in z.files:
                parts.setdefault(key, []).append(z[key])
    return {k: np.concatenate(v) for k, v in parts.items()}


@functools.lru_cache(maxsize=2)
def scored_split(
    split: str, num_scenes: int, with_human: bool = True
) -> tuple[list[Scene], list[np.ndarray], list[np.ndarray] | None]:
    """The first `num_scenes` scenes of `split`, NAVSIM's PDM-Closed plan for each (EP's reference) and, with
    `with_human`, the privileged PDM-Closed plan that wrote the demonstrations (the scenes' human driver, for v2's
    human filter), built once per process: every planner evaluated in one process is scored against the same ones."""
    scenes = make_split(split, num_scenes)
    reference, human = PDMClosedPlanner(), PDMClosedPlanner(PRIVILEGED_PDM_CLOSED)
    references, humans = [], []
    for scene in tqdm(scenes, desc="reference plans", leave=False, disable=len(scenes) < 20):
        references.append(reference.plan(scene))
        if with_human:
            humans.append(human.plan(scene))
    return scenes, references, humans if with_human else None


@functools.lru_cache(maxsize=2)
def two_stage_split(split: str, num_scenes: int, follow_ups: int) -> list[TwoStageCase]:
    """The planner-independent part of NAVSIM v2's two-stage evaluation for the first `num_scenes` scenes of
    `split` (follow-up scenes, references, the human filter), built once per process."""
    scenes = make_split(split, num_scenes)
    reference, human = PDMClosedPlanner(), PDMClosedPlanner(PRIVILEGED_PDM_CLOSED)
    config = TwoStageConfig(follow_ups=follow_ups)
    cases = []
    for scene in tqdm(scenes, desc="follow-up scenes", leave=False, disable=len(scenes) < 20):
        cases.append(TwoStageCase.of(scene, reference, human, config))
    return cases


def evaluate_two_stage(
    policy: Any, cases: Sequence[TwoStageCase], obs_config: ObservationConfig = ObservationConfig(), batch_size: int = 8
) -> dict[str, Any]:
    """NAVSIM v2's two-stage EPDMS (sim/two_stage.py): the policy plans every frame of every group. Returns what
    NAVSIM's run_pdm_score.py reports: EPDMS (%) as the mean over groups of stage one x weighted stage two, and
    every term's stage-one and stage-two means (`follow_ups`: the mean number per frame)."""
    groups = []
    for lo in tqdm(range(0, len(cases), batch_size), desc="two-stage", leave=False, disable=len(cases) < 20):
        chunk = cases[lo : lo + batch_size]
        frames = [f for case in chunk for f in case.frames]
        plans = check_trajectories(
            plan_batch(policy, frames, observe_batch(frames, obs_config)), [f.token for f in frames]
        )
        at = 0
        for case in chunk:
            groups.append(case.score(plans[at : at + len(case.frames)]))
            at += len(case.frames)

    def mean(part: str) -> dict[str, float]:
        return {
            key: (100.0 if key == "epdms" else 1.0) * float(np.mean([getattr(g, part)[key] for g in groups]))
            for key in SCORE_KEYS
        }

    return {
        "scenes": len(groups),
        "follow_ups": float(np.mean([case.follow_ups for case in cases])) if cases else 0.0,
        "epdms": mean("group")["epdms"],
        "stage_one": mean("stage_one"),
        "stage_two": mean("stage_two"),
    }


def evaluate_driving(
    policy: Any,
    task: dict[str, Any],
    episodes: int = 0,
    seed: int = 0,
    n_envs: int = 1,
    output_dir: str | Path | None = None,
    videos: int = 0,
    executor: str = "inline",
) -> dict[str, Any]:
    """`diffpilot eval task=driving`: NAVSIM's open-loop protocol on the first `task.eval.num_scenes` scenes of
    `task.eval.split` (a fixed split: `episodes`, `seed`, `n_envs` and `videos` do not apply). Returns PDMS / EPDMS
    (percent) with every sub-score (fractions), the planning latency and PDMS per scenario family; writes the
    per-scene NAVSIM-style `scores.csv` into `output_dir`."""
    if executor != "inline":
        raise ConfigError(f"executor={executor!r} with task=driving: the driving protocol scores its scenes in-process")
    ev = task.get("eval", {})
    obs_config = ObservationConfig(**task.get("observation", {}))
    split, num = ev.get("split", "test"), int(ev.get("num_scenes", 500))
    traffic = str(ev.get("traffic", "log_replay"))
    if traffic not in TRAFFIC:
        raise ConfigError(f"task.eval.traffic={traffic!r}: expected one of {list(TRAFFIC)}")
    n_two = min(int(ev.get("two_stage_scenes", 0)), num)
    follow_ups = ev.get("follow_ups", TwoStageConfig.follow_ups)
    if n_two > 0:
        whole_number("task.eval.follow_ups", follow_ups)
    scenes, references, human = scored_split(split, num, bool(ev.get("human_penalty_filter", True)))
    two_frame = bool(ev.get("two_frame", True))
    results = evaluate_open_loop(
        policy,
        scenes,
        64,
        obs_config,
        reference_plans=references,
        two_frame=two_frame,
        human_plans=human,
        traffic=traffic,
    )
    if output_dir is not None:
        results.to_csv(Path(output_dir) / "scores.csv")
    two_stage = {}
    if n_two > 0:
        two_stage = evaluate_two_stage(policy, two_stage_split(split, n_two, follow_ups), obs_config)
    families: dict[str, list[float]] = {}
    for row in results.rows:
        families.setdefault(row["family"], []).append(100.0 * row["pdm_score"])
    return {
        "protocol": "NAVSIM open loop: one plan per scene, LQR + bicycle simulation, PDMS (v1) and EPDMS (v2)",
        "split": split,
        "scenes": len(scenes),
        **results.table(),
        **({"epdms_two_stage": two_stage["epdms"], "two_stage": two_stage} if two_stage else {}),
        "per_family_pdms": {f: {"scenes": len(v), "pdms": float(np.mean(v))} for f, v in sorted(families.items())},
    }


def driving_env_constructor(task: dict[str, Any], max_episode_steps: int | None) -> Callable[[], gym.Env]:
    """The closed-loop env on the task's evaluation split (8 replans of 0.5 s per scene)."""
    ev = task.get("eval", {})
    obs_config = ObservationConfig(**task.get("observation", {}))
    return lambda: DrivingEnv(
        split=ev.get("split", "test"), num_scenes=int(ev.get("num_scenes", 500)), obs_config=obs_config
    )


register_env(EnvEntry("driving", driving_env_constructor, protocol=evaluate_driving))
