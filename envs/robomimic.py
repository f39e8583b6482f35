"""Robomimic's manipulation tasks (Lift, PickPlaceCan, NutAssemblySquare) on real robosuite 1.4 / MuJoCo 3,
as Gymnasium envs with robomimic's observation keys and settings.

Observations (a dict, robomimic's names): `robot0_eef_pos` (3,), `robot0_eef_quat` (4,),
`robot0_gripper_qpos` (2,), `object` (D,) — the task's object state (Lift 10, Can 14, Square 14) — and, in
image mode, `<camera>_image` (84, 84, 3) uint8, upright (robomimic flips robosuite's OpenGL frames too).
Actions (`control="delta"`, robomimic's datasets): (7,) in [-1, 1], the OSC_POSE controller's delta position,
delta axis-angle and gripper command, at 20 Hz. With `control="absolute"` (OSC_POSE with `control_delta=False`, the
absolute actions Diffusion Policy trains robomimic tasks on) an action is (10,): the end-effector goal position in
the world frame (metres), its orientation as rotation_6d (diffpilot/rotations.py) and the gripper command; the env
hands robosuite the (7,) position, axis-angle, gripper action its controller takes, which is what files store.
An episode terminates on the task's success (robomimic's rollouts stop there) and is truncated at robomimic's
horizon (400 steps for these three tasks) by the TimeLimit wrapper.

Each reset is robosuite's hard reset (its default, and what robomimic's envs do): the model is rebuilt, so
Lift's cube size is drawn anew per episode (0.020–0.022 m a side) along with the object placements and joint
noise, all from a generator seeded by `reset(seed=…)`, so an evaluation repeats from its seeds. `model_xml()`
and `restore(model_xml, state)` store and reload a scene the way robomimic's `EnvRobosuite.reset_to` does.

State mode builds no renderer at all (~150 steps/s, ~0.19 s per reset); image mode renders only the cameras
asked for (robosuite's offscreen renderer, `MUJOCO_GL=egl`). `render()` draws a frame for videos with a MuJoCo
renderer created on first use, so state envs pay nothing unless a video is asked for.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any, Literal

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from diffpilot.errors import ConfigError
from diffpilot.rotations import pose_action_from_6d

from .registry import EnvEntry, register_env
from .robosuite_base import MODEL_SEED, RobosuiteTaskEnv, check_scene_cameras, global_numpy_seed

ObsMode = Literal["state", "image"]
OBS_MODES = ("state", "image")
Control = Literal["delta", "absolute"]
CONTROLS = ("delta", "absolute")
STATE_KEYS = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "object")
# Every camera of the robosuite 1.4 table/bins arenas with a Panda (what `camera_names` may pick).
SCENE_CAMERAS = ("frontview", "birdview", "agentview", "sideview", "robot0_robotview", "robot0_eye_in_hand")
CONTROL_FREQ = 20
IMAGE_SIZE = 84
BOUND = 10.0  # metres: positions, relative positions and quaternions of the tabletop scenes stay well inside


@dataclass(frozen=True)
class RobomimicTask:
    """One robomimic task: the robosuite env name, robomimic's rollout horizon and the object-state size."""

    env_name: str
    horizon: int
    object_dim: int


# Horizons: robomimic's evaluation rollouts for the proficient-human (ph) datasets (Mandlekar et al. 2021).
TASKS: dict[str, RobomimicTask] = {
    "lift": RobomimicTask("Lift", 400, 10),
    "can": RobomimicTask("PickPlaceCan", 400, 14),
    "square": RobomimicTask("NutAssemblySquare", 400, 14),
}
ENV_NAMES = {t.env_name: name for name, t in TASKS.items()}


def resolve_task(task: str) -> str:
    """Our short name for `task`, given either the short name (lift) or robosuite's (Lift)."""
    if task in TASKS:
        return task
    if task in ENV_NAMES:
        return ENV_NAMES[task]
    raise ValueError(f"task={task!r}: expected one of {sorted(TASKS)} or robosuite's {sorted(ENV_NAMES)}")


def controller_config(control: Control = "delta") -> dict[str, Any]:
    """robosuite's default OSC_POSE controller: delta pose (what every robomimic dataset was recorded with), or
    absolute pose (`control_delta=False`)."""
    from robosuite.controllers import load_controller_config

    if control not in CONTROLS:
        raise ConfigError(f"action_space={control!r}: expected one of {list(CONTROLS)}")
    config = load_controller_config(default_controller="OSC_POSE")
    config["control_delta"] = control == "delta"
    return config


def robosuite_kwargs(
    obs_mode: ObsMode, cameras: tuple[str, ...], image_size: int = IMAGE_SIZE, control: Control = "delta"
) -> dict[str, Any]:
    """robosuite.make keyword arguments, robomimic's `env_kwargs` for these tasks (JSON-serialisable)."""
    image = obs_mode == "image"
    return {
        "robots": ["Panda"],
        "controller_configs": controller_config(control),
        "has_renderer": False,
        "has_offscreen_renderer": image,
        "use_camera_obs": image,
        "use_object_obs": True,
        "camera_names": list(cameras) if image else ["agentview"],
        "camera_heights": image_size,
        "camera_widths": image_size,
        "camera_depths": False,
        "reward_shaping": False,
        "control_freq": CONTROL_FREQ,
        "ignore_done": True,
    }


def check_cameras(cameras: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """`cameras` as a tuple, or a ConfigError naming those not in the robomimic scenes and the choices."""
    return check_scene_cameras(cameras, SCENE_CAMERAS)


class RobomimicEnv(RobosuiteTaskEnv):
    """A robomimic task as a Gymnasium env (see the module docstring for spaces)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_FREQ}

    def __init__(
        self,
        task: str = "lift",
        obs_mode: ObsMode = "state",
        cameras: tuple[str, ...] | list[str] = ("agentview", "robot0_eye_in_hand"),
        image_size: int = IMAGE_SIZE,
        render_size: int = 256,
        render_camera: str = "agentview",
        control: Control = "delta",
    ):
        import robosuite

        if obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode={obs_mode!r}: expected one of {OBS_MODES}")
        self.control = control
        self.task = resolve_task(task)
        self.spec_task = TASKS[self.task]
        self.obs_mode = obs_mode
        self.cameras = check_cameras(cameras) if obs_mode == "image" else ()
        self.render_camera = check_cameras([render_camera])[0]
        self.render_size = int(render_size)
        self.render_mode = "rgb_array"
        self.env_kwargs = robosuite_kwargs(obs_mode, self.cameras or ("agentview",), image_size, control)
        with global_numpy_seed(MODEL_SEED):
            self._env = robosuite.make(self.spec_task.env_name, **self.env_kwargs)
        features: dict[str, spaces.Space] = {
            "robot0_eef_pos": spaces.Box(-BOUND, BOUND, (3,), np.float32),
            "robot0_eef_quat": spaces.Box(-1.0, 1.0, (4,), np.float32),
            "robot0_gripper_qpos": spaces.Box(-BOUND, BOUND, (2,), np.float32),
            "object": spaces.Box(-BOUND, BOUND, (self.spec_task.object_dim,), np.float32),
        }
        for cam in self.cameras:
            features[f"{cam}_image"] = spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
        self.observation_space = spaces.Dict(features)
        low, high = self._env.action_spec
        if control == "absolute":
            low = np.array([-BOUND] * 3 + [-1.0] * 6 + [low[-1]])
            high = np.array([BOUND] * 3 + [1.0] * 6 + [high[-1]])
        self.action_space = spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)
        self._renderer = None

    def robosuite_action(self, action: np.ndarray) -> np.ndarray:
        """The (7,) action robosuite's controller takes (and files store) for an action of this env."""
        return pose_action_from_6d(action) if self.control == "absolute" else action

    @property
    def sim(self) -> Any:
        """The robosuite env (privileged object poses for scripted experts, `sim` for states)."""
        return self._env

    def get_state(self) -> np.ndarray:
        """The flattened MuJoCo state (time, qpos, qvel) that robomimic stores under `states`."""
        return np.asarray(self._env.sim.get_state().flatten(), dtype=np.float64)

    def is_success(self) -> bool:
        return bool(self._env._check_success())

    def _observe(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        obs = {key: np.asarray(raw[key], dtype=np.float32) for key in STATE_KEYS if key != "object"}
        obs["object"] = np.asarray(raw["object-state"], dtype=np.float32)
        for cam in self.cameras:
            obs[f"{cam}_image"] = np.ascontiguousarray(raw[f"{cam}_image"][::-1])  # OpenGL rows are bottom-up
        return obs

    def model_xml(self) -> str:
        """The MJCF of the current scene (robomimic's per-demo `model_file`: Lift's cube size lives here)."""
        return self._env.sim.model.get_xml()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        # robosuite draws the model (cube size), object placements and joint noise from numpy's global RNG:
        # seed it from this env's generator for the reset only, then give the caller's global state back.
        with global_numpy_seed(int(self.np_random.integers(2**31))):
            raw = self._env.reset()
        self._drop_renderer()  # the model was rebuilt
        self._open_gripper_ramp()
        return self._observe(raw), {"is_success": False}

    def restore(self, model_xml: str, state: np.ndarray) -> dict[str, np.ndarray]:
        """Reload a stored scene and state as robomimic 0.3's `EnvRobosuite.reset_to({"model", "states"})` does
        (`robomimic/envs/env_robosuite.py`): rebuild from the edited MJCF with robosuite's deterministic reset (no
        placement or joint-noise draw; the controller's nullspace posture is the noise-free home pose), then set
        the flattened state. Returns the observation there."""
        self._env.reset_from_xml_string(self._env.edit_model_xml(model_xml))
        self._env.sim.reset()
        self._env.sim.set_state_from_flattened(np.asarray(state, dtype=np.float64))
        self._env.sim.forward()
        self._drop_renderer()
        return self._observe(self._env._get_observations(force_update=True))


def make_robomimic_env(
    task: str = "lift", obs_mode: ObsMode = "state", max_episode_steps: int | None = None, **kwargs
) -> gym.Env:  # kwargs: RobomimicEnv's (cameras, image_size, control, …)
    """A robomimic task with its rollout horizon (or `max_episode_steps`) as the time limit."""
    env = RobomimicEnv(task, obs_mode, **kwargs)
    return gym.wrappers.TimeLimit(env, max_episode_steps=max_episode_steps or env.spec_task.horizon)


def make_env_from_args(env_args: dict[str, Any], obs_mode: ObsMode = "state", **kwargs) -> gym.Env:
    """Our env for a robomimic file's `env_args` (env_name must be one of the tasks here)."""
    name = env_args.get("env_name")
    if name not in ENV_NAMES:
        raise ValueError(f"env_args env_name={name!r}: unknown robomimic task; expected one of {sorted(ENV_NAMES)}")
    return make_robomimic_env(ENV_NAMES[name], obs_mode, **kwargs)


def enable_robomimic_env_utils() -> None:
    """Let robomimic 0.3.0's EnvUtils build robosuite 1.4 envs.

    Its `envs/env_robosuite.py` imports `mujoco_py` (the pre-2.0 bindings, not installable with MuJoCo 3)
    only to name the exception a simulation raises when it goes unstable. robosuite 1.4 runs on the
    official `mujoco` bindings, whose exception is `mujoco.FatalError`: register a `mujoco_py` module that
    names exactly that, unless a real mujoco_py is importable.
    """
    import importlib.util
    import sys
    import types

    if "mujoco_py" in sys.modules or importlib.util.find_spec("mujoco_py") is not None:
        return
    import mujoco

    module = types.ModuleType("mujoco_py")
    module.builder = types.SimpleNamespace(MujocoException=mujoco.FatalError)
    sys.modules["mujoco_py"] = module


IMAGE_SUFFIX = "_image"  # robomimic's image observation keys are `<camera>_image`


def task_cameras(task: dict[str, Any]) -> tuple[str, ...]:
    """The cameras a robomimic image task renders: `task.cameras` when given, else those its `<camera>_image`
    obs_keys name. ConfigError naming the camera when one is not in the scene, or an image key's camera is not
    rendered."""
    wanted = [k.removesuffix(IMAGE_SUFFIX) for k in task.get("obs_keys", []) if k.endswith(IMAGE_SUFFIX)]
    cameras = tuple(task.get("cameras") or wanted)
    if not cameras:
        raise ConfigError(
            f"task {task.get('name')!r} obs_mode=image: no cameras (task.cameras is empty and task.obs_keys has no "
            f"'<camera>_image' key); expected some of {list(SCENE_CAMERAS)}"
        )
    try:
        check_cameras(cameras)
    except ConfigError as err:
        raise ConfigError(f"task {task.get('name')!r}: {err}") from None
    missing = [c for c in wanted if c not in cameras]
    if missing:
        raise ConfigError(
            f"task.obs_keys has {[c + IMAGE_SUFFIX for c in missing]} but task.cameras={list(cameras)} does not "
            f"render {missing}; expected every image key's camera among the cameras"
        )
    return cameras


def robomimic_env_constructor(task: dict[str, Any], max_episode_steps: int | None) -> functools.partial:
    """The task config's robomimic env; image mode renders only the task's cameras (`task_cameras`)."""
    kwargs: dict[str, Any] = {"control": task.get("action_space", "delta")}
    obs_mode = task.get("obs_mode", "state")
    if obs_mode == "image":
        kwargs["cameras"] = task_cameras(task)
        if task.get("image_size"):
            kwargs["image_size"] = int(task["image_size"])
    return functools.partial(make_robomimic_env, task["env"], obs_mode, max_episode_steps, **kwargs)


for _name in TASKS:
    register_env(EnvEntry(_name, robomimic_env_constructor))
