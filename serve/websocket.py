"""A network policy server speaking openpi's websocket protocol, on the same serving core as the ROS adapters.

Protocol (what `openpi_client.WebsocketClientPolicy` speaks): on connect the server sends one msgpack frame of
metadata; then each binary frame from the client is an observation dict (feature name → numpy array, serve/wire.py)
and the server answers with one frame `{"actions": (1, A) command for this tick, "state", "reason", "tick",
"server_timing": {"infer_ms"}}`. A frame the server cannot use is answered too: its features are dropped as
malformed (counted, logged at most once per 10 s) and the tick holds or stops as the safety layer decides.
An error that ends the connection is sent as a text frame, which openpi's client raises as an error.

Each client frame is one control tick: observation checks (shape, finiteness as float32) → the cache → the chunk
scheduler with the RTI inference thread → the safety layer (limits, rate limit per tick at the mapping's
control_hz, hold / stop, the robot-position ramp) → the reply. One client controls at a time; a second connection
is refused with a text frame. A pause longer than a feature's max_age, or a new client, restarts planning."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any

import numpy as np

from .mapping import RobotMapping
from .messages import MessageError, array_feature
from .safety import Decision
from .server import PolicyServer, TickInfo
from .wire import WireError, pack, unpack

log = logging.getLogger("diffpilot.serve.websocket")
MAX_FRAME_BYTES = 64 * 2**20  # a frame larger than this closes the connection (several camera images fit)


class WebsocketPolicyServer:
    """plan: a `PolicyRunner` (or any Request → (N, A) callable); mapping: limits, safety, control rate and the
    observation features' shapes and max ages (topics are not used: features travel by name)."""

    def __init__(
        self,
        plan,
        mapping: RobotMapping,
        n_obs_steps: int,
        n_action_steps: int,
        host: str = "127.0.0.1",
        clock=time.monotonic,
    ):
        named = {k: dataclasses.replace(s, topic=k) for k, s in mapping.observations.items()}
        self.mapping = dataclasses.replace(mapping, observations=named)
        self.host, self.clock = host, clock
        self.core = PolicyServer(plan, self.mapping, n_obs_steps, n_action_steps, send=self._sent, clock=clock)
        self.connections = 0
        self._controller = threading.Lock()  # held by the one connected client
        self._tick = 0
        self._server = None
        self._thread: threading.Thread | None = None

    @property
    def connected(self) -> bool:
        """Whether a client controls now."""
        return self._controller.locked()

    def _sent(self, decision: Decision, info: TickInfo) -> None:
        """The core's output: nothing to publish — the decision is the reply to the client's frame."""

    def metadata(self) -> dict[str, Any]:
        a = self.mapping.action
        return {
            "server": "diffpilot",
            "control_hz": self.mapping.control_hz,
            "action_dim": len(a.low),
            "action_low": list(a.low),
            "action_high": list(a.high),
            "n_obs_steps": self.core.n_obs_steps,
            "n_action_steps": self.core.n_action_steps,
            "features": {k: list(s.shape) for k, s in self.mapping.observations.items()},
            "on_fault": self.mapping.safety.on_fault,
        }

    # ---------------------------------------------------------------- one tick per frame
    def step(self, frame: Any) -> dict[str, Any]:
        """Handle one client frame: observe what it carries, tick, and return the reply message."""
        now = self.clock()
        self.core.interrupt(now)  # the client paused past a max_age: restart planning
        problem = None
        try:
            observation = unpack(frame)
            if not isinstance(observation, dict):
                raise WireError(f"a {type(observation).__name__}: expected a map of feature name → array")
        except WireError as err:
            observation, problem = {}, f"malformed frame: {err}"
            for key in self.mapping.observations:
                self.core.reject(key, err)
        for key, source in self.mapping.observations.items() if problem is None else ():
            try:
                if key not in observation:
                    raise MessageError(f"{key} is missing from the frame; it has {sorted(map(str, observation))}")
                self.core.observe(key, array_feature(observation[key], source), received=now)
            except MessageError as err:  # the features after the first bad one are not used either
                self.core.reject(key, err)
                problem = f"malformed frame: {err}"
                break
        tick, self._tick = self._tick, self._tick + 1
        decision = self.core.tick(tick, now)
        action_dim = len(self.mapping.action.low)
        command = np.zeros((0, action_dim)) if decision.command is None else decision.command[None]
        return {
            "actions": command,
            "state": decision.state,
            "reason": decision.reason if problem is None else problem,
            "tick": tick,
            "server_timing": {"infer_ms": (self.clock() - now) * 1e3},
        }

    # ---------------------------------------------------------------- connections
    def _handle(self, connection) -> None:
        from websockets.exceptions import ConnectionClosed

        peer = getattr(connection, "remote_address", None)
        if not self._controller.acquire(blocking=False):
            log.warning("refused a second client %s: one client controls at a time", peer)
            connection.send("diffpilot serve: another client is connected; one client controls at a time")
            connection.close(1013, "busy")
            return
        try:
            self.connections += 1
            self.core.forget_inputs()
            log.info("client %s connected", peer)
            connection.send(pack(self.metadata()))
            for frame in connection:
                connection.send(pack(self.step(frame)))
            log.info("client %s disconnected", peer)
        except ConnectionClosed as err:
            log.warning("client %s dropped the connection (%s)", peer, err)
        finally:
            self.core.forget_inputs()
            self._controller.release()

    def start(self, port: int = 0) -> int:
        """Listen on (host, port) in a background thread; returns the port (a free one for 0)."""
        from websockets.sync.server import serve

        self._server = serve(self._handle, self.host, port, compression=None, max_size=MAX_FRAME_BYTES)
        self._thread = threading.Thread(target=self._server.serve_forever, name="diffpilot-websocket", daemon=True)
        self._thread.start()
        return int(self._server.socket.getsockname()[1])

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._thread.join(5)
        self.core.close()

    def summary(self) -> dict[str, Any]:
        return self.core.metrics.summary() | {"connections": self.connections}
