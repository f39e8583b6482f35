"""The last gate before a command leaves: clip to the joint limits, limit the change per tick (max velocity ×
control period), and on any fault — stale input, a non-finite action, no action, an inference error, the
e-stop — hold the last safe command or stop (send the configured stop command, or nothing)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Decision:
    command: np.ndarray | None  # what to send; None: send nothing
    state: str  # "ok" | "hold" | "stop"
    reason: str | None = None  # why not "ok"


class SafetyLayer:
    def __init__(
        self,
        low,
        high,
        max_velocity,
        period: float,
        on_fault: str = "hold",
        stop_command=None,
    ):
        if on_fault not in ("hold", "stop"):
            raise ValueError(f"on_fault={on_fault!r}: expected 'hold' or 'stop'")
        self.low, self.high = np.asarray(low, np.float64), np.asarray(high, np.float64)
        self.max_step = np.asarray(max_velocity, np.float64) * period
        self.on_fault = on_fault
        self.stop_command = None if stop_command is None else np.asarray(stop_command, np.float64)
        self.last: np.ndarray | None = None  # the last command sent as "ok" or "hold"

    def _fault(self, reason: str, force_stop: bool = False) -> Decision:
        if self.on_fault == "hold" and not force_stop:
            return Decision(None if self.last is None else self.last.copy(), "hold", reason)
        # A stop ends the motion: the next ok command starts rate-limited from wherever the robot holds.
        return Decision(None if self.stop_command is None else self.stop_command.copy(), "stop", reason)

    def decide(self, action: np.ndarray | None, fault: str | None = None, estop: bool = False) -> Decision:
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
        command = np.clip(action, self.low, self.high)
        if self.last is not None:
            command = self.last + np.clip(command - self.last, -self.max_step, self.max_step)
        self.last = command
        return Decision(command.copy(), "ok")

    def note_robot_position(self, position: np.ndarray) -> None:
        """Where the robot actually is, e.g. after a stop: the rate limit then ramps from there."""
        position = np.asarray(position, np.float64)
        if position.shape == self.low.shape and np.all(np.isfinite(position)):
            self.last = np.clip(position, self.low, self.high)
