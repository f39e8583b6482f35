"""The last gate before a command leaves: clip to the joint limits, limit the change per tick (max velocity ×
control period), and on any fault — stale input, a non-finite action, no action, an inference error, the
e-stop, shutdown — hold the last safe command or stop.

Every command that leaves is inside the limits and within one tick's step of the command before it: a stop moves
to the stop command at the rate limit, and the first command after start-up (or after a stop that sent nothing)
ramps from where the robot reports it is. Until that position is known the layer holds without sending."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Decision:
    command: np.ndarray | None  # what to send; None: send nothing
    state: str  # "ok" | "hold" | "stop"
    reason: str | None = None  # why not "ok"


class SafetyLayer:
    """low, high, max_velocity: (A,) limits; period: seconds per tick; on_fault: "hold" | "stop"; stop_command:
    (A,) inside [low, high] or None (a stop sends nothing); require_position: hold until `note_robot_position`."""

    def __init__(
        self,
        low,
        high,
        max_velocity,
        period: float,
        on_fault: str = "hold",
        stop_command=None,
        require_position: bool = False,
    ):
        if on_fault not in ("hold", "stop"):
            raise ValueError(f"on_fault={on_fault!r}: expected 'hold' or 'stop'")
        self.low, self.high = np.asarray(low, np.float64), np.asarray(high, np.float64)
        self.max_step = np.asarray(max_velocity, np.float64) * period
        self.on_fault = on_fault
        self.stop_command = None if stop_command is None else np.asarray(stop_command, np.float64)
        if self.stop_command is not None and (
            self.stop_command.shape != self.low.shape
            or np.any(self.stop_command < self.low)
            or np.any(self.stop_command > self.high)
        ):
            raise ValueError(
                f"stop_command={self.stop_command.tolist()}: expected {self.low.size} values inside the limits "
                f"[{self.low.tolist()}, {self.high.tolist()}]"
            )
        self.require_position = bool(require_position)
        self.last: np.ndarray | None = None  # the last command sent; None: none yet, or the robot may have moved
        self.position: np.ndarray | None = None  # the robot's last reported position (clipped to the limits)

    def _step_from(self, start: np.ndarray, target: np.ndarray) -> np.ndarray:
        return start + np.clip(target - start, -self.max_step, self.max_step)

    def _origin(self) -> np.ndarray | None:
        """Where the next command moves from: the last one sent, else the robot's reported position."""
        return self.last if self.last is not None else self.position

    def _fault(self, reason: str, force_stop: bool = False) -> Decision:
        if self.on_fault == "hold" and not force_stop:
            return Decision(None if self.last is None else self.last.copy(), "hold", reason)
        origin = self._origin()
        if self.stop_command is None or origin is None:
            if self.require_position:
                self.last = None  # nothing sent: the robot may drift; the next command ramps from its position
            return Decision(None, "stop", reason)
        self.last = self._step_from(origin, self.stop_command)
        return Decision(self.last.copy(), "stop", reason)

    def decide(self, action: np.ndarray | None, fault: str | None = None, estop: bool = False) -> Decision:
        """One tick: `action` (A,) from the policy or None, `fault` a reason to hold / stop, `estop` stops."""
        if estop:
            return self._fault("estop", force_stop=True)
        if fault is not None:
            return self._fault(fault)
        if action is None:
            return self._fault("no_action")
        action = np.asarray(action, np.float64)
        if action.shape != self.low.shape:
            return self._fault("bad_shape")
        if not np.all(np.isfinite(action)):
            return self._fault("nan")
        origin = self._origin()
        if origin is None and self.require_position:
            return Decision(None, "hold", "no_robot_position")
        command = np.clip(action, self.low, self.high)
        if origin is not None:
            command = self._step_from(origin, command)
        self.last = command
        return Decision(command.copy(), "ok")

    def settled(self) -> bool:
        """Whether a stop has arrived: nothing to send, or the stop command reached."""
        return self.stop_command is None or self.last is None or np.array_equal(self.last, self.stop_command)

    def note_robot_position(self, position: np.ndarray) -> None:
        """Where the robot reports it is, (A,) in action units: a command after start-up or after a stop that sent
        nothing ramps from here."""
        position = np.asarray(position, np.float64)
        if position.shape == self.low.shape and np.all(np.isfinite(position)):
            self.position = np.clip(position, self.low, self.high)
