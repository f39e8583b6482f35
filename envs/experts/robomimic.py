"""Scripted experts for the robomimic tasks (envs/robomimic.py), reading privileged object poses from the
robosuite env: approach above the object, descend, grasp, lift, transport, place / insert.

Each expert is a list of phases. A phase names a gripper target (position, and a yaw about the world
z axis for the fingers), a gripper command (−1 open, +1 closed) and when it ends (target reached within
a tolerance, or a fixed number of steps). Actions are OSC_POSE deltas, shape (7,): a proportional step
towards the target position (speed-limited), the axis-angle rotation towards the target orientation, the
gripper command. A seeded RNG varies approach heights, grasp depths, speeds, yaw offsets and adds small
action noise, so demonstrations are diverse yet unimodal.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from diffpilot.errors import ConfigError
from diffpilot.rotations import matrix_to_rotation_6d

from ..registry import register_expert

POS_SCALE = 0.05  # metres per unit of action (robosuite's OSC_POSE output_max for position)
ROT_SCALE = 0.5  # radians per unit of action (OSC_POSE output_max for rotation)
OPEN, CLOSED = -1.0, 1.0


@dataclass
class Phase:
    """One stage of a scripted manipulation.

    target: () → (position (3,), yaw or None); re-evaluated each step, so it tracks moving objects.
    gripper: the gripper command held during the phase.
    steps: a fixed duration (e.g. closing the fingers); otherwise the phase ends at the target
        (position within `tol` metres, orientation within 0.15 rad) or after `max_steps`.
    """

    name: str
    target: Callable[[], tuple[np.ndarray, float | None]]
    gripper: float
    tol: float = 0.01
    steps: int | None = None
    max_steps: int = 80
    done: Callable[[], bool] | None = None  # replaces "target reached" as the end test when given


@dataclass
class ExpertParams:
    """Randomised per episode (metres, radians, unit-free gains)."""

    above: float = 0.08
    grasp_depth: float = 0.0
    lift: float = 0.15
    speed: float = 0.8  # cap on the position action's norm
    gain: float = 1.0
    yaw_offset: float = 0.0
    close_steps: int = 10
    noise: float = 0.03
    extra: dict[str, float] = field(default_factory=dict)


def _quat_xyzw_to_mat(q: np.ndarray) -> np.ndarray:
    x, y, z, w = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _axis_angle(rot: np.ndarray) -> np.ndarray:
    """Rotation matrix (3, 3) → axis-angle vector (3,) (angle in [0, π])."""
    cos = np.clip((np.trace(rot) - 1.0) / 2.0, -1.0, 1.0)
    angle = float(np.arccos(cos))
    if angle < 1e-6:
        return np.zeros(3)
    axis = np.array([rot[2, 1] - rot[1, 2], rot[0, 2] - rot[2, 0], rot[1, 0] - rot[0, 1]])
    norm = np.linalg.norm(axis)
    if norm < 1e-9:  # angle ≈ π: the axis is the dominant column of (R + I)
        m = rot + np.eye(3)
        axis = m[:, int(np.argmax(np.linalg.norm(m, axis=0)))]
        norm = np.linalg.norm(axis)
    return axis / norm * angle


def up(dz: float) -> np.ndarray:
    """A vertical offset (3,) of `dz` metres."""
    return np.array([0.0, 0.0, dz])


def _rot_z(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def yaw_of(quat_xyzw: np.ndarray) -> float:
    """Rotation about the world z axis of a body's x axis (radians)."""
    m = _quat_xyzw_to_mat(quat_xyzw)
    return float(np.arctan2(m[1, 0], m[0, 0]))


def wrap(angle: float, period: float) -> float:
    """`angle` wrapped into [−period/2, period/2)."""
    return float((angle + period / 2) % period - period / 2)


class ScriptedExpert:
    """Base class: binds to a robosuite env at `reset(env)`, `act()` returns the next action (7,) float32."""

    def __init__(self, seed: int | None = None):
        self.rng = np.random.default_rng(seed)
        self.env = None

    # -- what a task defines
    def sample_params(self) -> ExpertParams:
        raise NotImplementedError

    def phases(self) -> list[Phase]:
        raise NotImplementedError

    # -- shared machinery
    def reset(self, env) -> None:
        self.env = env
        self.params = self.sample_params()
        self._ref_rot = self._eef_rot()  # fingers pointing down, as robosuite initialises the arm
        self._ref_yaw = float(np.arctan2(self._ref_rot[1, 0], self._ref_rot[0, 0]))
        self._phases = self.phases()
        self._index, self._count = 0, 0

    @property
    def phase(self) -> str:
        return self._phases[min(self._index, len(self._phases) - 1)].name

    def _eef_pos(self) -> np.ndarray:
        robot = self.env.robots[0]
        return np.array(self.env.sim.data.site_xpos[robot.eef_site_id])

    def _eef_rot(self) -> np.ndarray:
        robot = self.env.robots[0]
        return np.array(self.env.sim.data.site_xmat[robot.eef_site_id]).reshape(3, 3)

    def body_pos(self, body_id: int) -> np.ndarray:
        return np.array(self.env.sim.data.body_xpos[body_id])

    def body_yaw(self, body_id: int) -> float:
        m = np.array(self.env.sim.data.body_xmat[body_id]).reshape(3, 3)
        return float(np.arctan2(m[1, 0], m[0, 0]))

    def grasp_yaw(self, object_yaw: float, symmetry: float) -> float:
        """The finger yaw nearest the start pose that matches `object_yaw` modulo its `symmetry`."""
        return self._ref_yaw + wrap(object_yaw - self._ref_yaw, symmetry) + self.params.yaw_offset

    def grasp_phases(
        self, target: Callable[[], np.ndarray], yaw: float | None, memo: dict, tol: float, max_steps: int
    ) -> list[Phase]:
        """Above the grasp point `target()` (3,), down to it, close the fingers; memo["grasp"] = where they closed."""
        p = self.params

        def close():
            memo.setdefault("grasp", self._eef_pos())
            return memo["grasp"], yaw

        return [
            Phase("above", lambda: (target() + up(p.above), yaw), OPEN, tol=0.015),
            Phase("descend", lambda: (target() + up(p.grasp_depth), yaw), OPEN, tol=tol, max_steps=max_steps),
            Phase("close", close, CLOSED, steps=p.close_steps),
        ]

    def release_phases(self, yaw: Callable[[], float | None], memo: dict) -> list[Phase]:
        """Open the fingers where they are, then back straight up 15 cm (success needs the gripper clear)."""

        def release():
            memo.setdefault("release", self._eef_pos())
            return memo["release"], yaw()

        return [
            Phase("release", release, OPEN, steps=6),
            Phase("retreat", lambda: (memo["release"] + up(0.15), yaw()), OPEN, max_steps=400),
        ]

    def act(self) -> np.ndarray:
        if self.env is None:
            raise RuntimeError("call reset(env) before act()")
        while True:
            phase = self._phases[min(self._index, len(self._phases) - 1)]
            target, yaw = phase.target()
            pos_err = target - self._eef_pos()
            rot_err = self._rotation_error(yaw)
            done_fixed = phase.steps is not None and self._count >= phase.steps
            at_target = np.linalg.norm(pos_err) < phase.tol and np.linalg.norm(rot_err) < 0.15
            reached = phase.steps is None and (phase.done() if phase.done is not None else at_target)
            timed_out = phase.steps is None and self._count >= phase.max_steps
            if self._index < len(self._phases) - 1 and (done_fixed or reached or timed_out):
                self._index, self._count = self._index + 1, 0
                continue
            break
        self._count += 1
        p = self.params
        move = pos_err / POS_SCALE * p.gain
        norm = np.linalg.norm(move)
        if norm > p.speed:
            move *= p.speed / norm
        turn = np.clip(rot_err / ROT_SCALE, -0.5, 0.5)
        action = np.concatenate([move, turn, [phase.gripper]])
        action[:6] += self.rng.normal(0.0, p.noise, 6)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def _rotation_error(self, yaw: float | None) -> np.ndarray:
        """Axis-angle (world frame) from the current gripper orientation to `ref` turned to `yaw`."""
        goal = self._ref_rot if yaw is None else _rot_z(yaw - self._ref_yaw) @ self._ref_rot
        return _axis_angle(goal @ self._eef_rot().T)


class LiftExpert(ScriptedExpert):
    """Lift: grasp the cube (yaw aligned modulo 90°) and raise it above the success height."""

    def sample_params(self) -> ExpertParams:
        r = self.rng
        return ExpertParams(
            above=r.uniform(0.06, 0.12),
            grasp_depth=r.uniform(-0.005, 0.005),
            lift=r.uniform(0.12, 0.18),
            speed=r.uniform(0.6, 1.0),
            gain=r.uniform(0.8, 1.2),
            yaw_offset=r.uniform(-0.1, 0.1),
            close_steps=int(r.integers(8, 13)),
        )

    def phases(self) -> list[Phase]:
        env, p = self.env, self.params
        cube = env.cube_body_id
        yaw = self.grasp_yaw(self.body_yaw(cube), np.pi / 2)
        memo: dict[str, np.ndarray] = {}
        return [
            *self.grasp_phases(lambda: self.body_pos(cube), yaw, memo, tol=0.008, max_steps=50),
            Phase("lift", lambda: (memo["grasp"] + up(p.lift), yaw), CLOSED, max_steps=400),
        ]


class CanExpert(ScriptedExpert):
    """PickPlaceCan: grasp the can from above, carry it over its target bin, lower, release, retreat."""

    def sample_params(self) -> ExpertParams:
        r = self.rng
        return ExpertParams(
            above=r.uniform(0.06, 0.10),
            grasp_depth=r.uniform(0.0, 0.015),
            lift=r.uniform(0.20, 0.26),  # above the bin floor while carrying
            speed=r.uniform(0.7, 1.0),
            gain=r.uniform(0.8, 1.2),
            close_steps=int(r.integers(8, 13)),
            extra={"drop": r.uniform(0.10, 0.14), "dx": r.uniform(-0.02, 0.02), "dy": r.uniform(-0.02, 0.02)},
        )

    def phases(self) -> list[Phase]:
        env, p = self.env, self.params
        can = env.obj_body_id["Can"]
        goal = np.array(env.target_bin_placements[env.object_to_id["can"]], dtype=np.float64)
        goal[:2] += [p.extra["dx"], p.extra["dy"]]
        carry_z = env.bin2_pos[2] + p.lift
        memo: dict[str, np.ndarray] = {}

        def over_goal(z: float):
            return np.array([goal[0], goal[1], z]), None

        return [
            *self.grasp_phases(lambda: self.body_pos(can), None, memo, tol=0.015, max_steps=30),
            Phase("raise", lambda: (np.array([*memo["grasp"][:2], carry_z]), None), CLOSED, tol=0.03),
            Phase("carry", lambda: over_goal(carry_z), CLOSED, tol=0.04, max_steps=60),
            Phase("lower", lambda: over_goal(env.bin2_pos[2] + p.extra["drop"]), CLOSED, tol=0.03, max_steps=30),
            *self.release_phases(lambda: None, memo),
        ]


class SquareExpert(ScriptedExpert):
    """NutAssemblySquare: grasp the nut's handle across its axis, raise it, turn it square to the peg, carry its
    centre over the peg, lower it down the peg, release and retreat."""

    def sample_params(self) -> ExpertParams:
        r = self.rng
        return ExpertParams(
            above=r.uniform(0.06, 0.10),
            grasp_depth=r.uniform(-0.005, 0.005),
            lift=r.uniform(0.10, 0.14),  # nut height above the peg top while carrying
            speed=r.uniform(0.6, 0.9),
            gain=r.uniform(0.8, 1.2),
            yaw_offset=r.uniform(-0.05, 0.05),
            close_steps=int(r.integers(8, 13)),
            extra={"drop": r.uniform(0.0, 0.01)},
        )

    def phases(self) -> list[Phase]:
        env, p = self.env, self.params
        nut = env.nuts[0]
        body = env.obj_body_id[nut.name]
        handle = env.sim.model.site_name2id(nut.important_sites["handle"])
        peg = self.body_pos(env.peg1_body_id)
        table_z = float(env.table_offset[2])
        grasp_yaw = self.grasp_yaw(self.body_yaw(body), np.pi)  # fingers close across the handle
        memo: dict[str, np.ndarray | float] = {}

        def handle_pos() -> np.ndarray:
            return np.array(env.sim.data.site_xpos[handle])

        def raise_():
            return np.array([*memo["grasp"][:2], table_z + 0.12 + p.lift]), grasp_yaw

        def turn():  # turn the nut square to the peg, its handle never pointing away from the robot (+x)
            if "yaw" not in memo:
                nut_yaw = self.body_yaw(body)
                goals = np.array([0.5, 1.0, -0.5]) * np.pi  # handle towards −y, towards the robot, towards +y
                turns = np.array([wrap(g - nut_yaw, 2 * np.pi) for g in goals])
                memo["yaw"] = grasp_yaw + float(turns[np.argmin(np.abs(turns))])
            return np.array([*memo["grasp"][:2], table_z + 0.12 + p.lift]), memo["yaw"]

        def over_peg(z: float):
            offset = self._eef_pos()[:2] - self.body_pos(body)[:2]  # gripper relative to the nut's centre
            return np.array([*(peg[:2] + offset), z]), memo["yaw"]

        def carry():
            return over_peg(table_z + 0.12 + p.lift)

        def hover():  # just above the peg top, until the nut's centre sits over the peg
            return over_peg(table_z + 0.17)

        def centred() -> bool:  # the nut's centre has stayed within 4 mm of the peg axis for 4 steps
            nut = self.body_pos(body)
            ok = np.linalg.norm(nut[:2] - peg[:2]) < 0.004 and abs(nut[2] - table_z - 0.17) < 0.02
            memo["settled"] = memo.get("settled", 0) + 1 if ok else 0
            return memo["settled"] >= 4

        def lower():  # to just above the peg top (the nut then drops down the peg when released)
            return over_peg(table_z + 0.145 + p.extra["drop"])

        return [
            *self.grasp_phases(handle_pos, grasp_yaw, memo, tol=0.01, max_steps=40),
            Phase("raise", raise_, CLOSED, tol=0.03),
            Phase("turn", turn, CLOSED, tol=0.03, max_steps=40),
            Phase("carry", carry, CLOSED, tol=0.02, max_steps=100),
            Phase("hover", hover, CLOSED, max_steps=60, done=centred),
            Phase("lower", lower, CLOSED, tol=0.008, max_steps=30),
            *self.release_phases(lambda: memo["yaw"], memo),
        ]


EXPERTS: dict[str, type[ScriptedExpert]] = {"lift": LiftExpert, "can": CanExpert, "square": SquareExpert}


class AbsolutePoseExpert:
    """A scripted expert's delta actions, sent to an absolute OSC_POSE env (`control="absolute"`) as the goals
    robosuite's delta controller would have set from them (`robosuite/controllers/osc.py:
    OperationalSpaceController.set_goal`): the position goal is the current end-effector position plus the scaled
    delta, the orientation goal the current orientation turned by the scaled axis-angle delta (kept from the previous
    step when that delta is zero). Actions: (10,) position, rotation_6d, gripper."""

    def __init__(self, expert: ScriptedExpert):
        self.expert = expert

    @property
    def phase(self) -> str:
        return self.expert.phase

    def reset(self, env) -> None:
        self.expert.reset(env)
        self.env = env
        self.goal_ori = self._eef_pose()[1]

    def _eef_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """The end-effector position (3,) and orientation (3, 3) now, read as the controller reads them (after a
        forward pass; the controller's own cached state is left alone, so a replay from the file steps the same)."""
        sim, site = self.env.sim, self.env.robots[0].eef_site_id
        sim.forward()
        return np.array(sim.data.site_xpos[site]), np.array(sim.data.site_xmat[site]).reshape(3, 3)

    def act(self) -> np.ndarray:
        from robosuite.utils.control_utils import set_goal_orientation, set_goal_position

        delta = np.asarray(self.expert.act(), dtype=np.float64)
        controller = self.env.robots[0].controller
        scaled = controller.scale_action(delta[:6])
        ee_pos, ee_ori = self._eef_pose()
        if np.any(scaled[3:] != 0):
            self.goal_ori = set_goal_orientation(scaled[3:], ee_ori, orientation_limit=controller.orientation_limits)
        goal_pos = set_goal_position(scaled[:3], ee_pos, position_limit=controller.position_limits)
        return np.concatenate([goal_pos, matrix_to_rotation_6d(self.goal_ori), delta[6:]]).astype(np.float32)


def expert_for(task: str, seed: int | None = None, control: str = "delta") -> ScriptedExpert | AbsolutePoseExpert:
    """The scripted expert of a robomimic task (`lift`, `can`, …) with its RNG seeded, for the env's `control`."""
    if task not in EXPERTS:
        raise ValueError(f"task={task!r}: no scripted expert; expected one of {sorted(EXPERTS)}")
    expert = EXPERTS[task](seed)
    return AbsolutePoseExpert(expert) if control == "absolute" else expert


def robomimic_expert(task: str):
    """The registered expert factory of a robomimic task: options → (seed → expert); this expert takes no options."""

    def factory(options: dict):
        if options:
            raise ConfigError(f"expert_options={dict(options)}: only the pusht expert takes options (env={task!r})")
        return functools.partial(expert_for, task)

    return factory


for _task in EXPERTS:
    register_expert(_task)(robomimic_expert(_task))
