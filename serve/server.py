"""The policy server core — no ROS here. Adapters feed messages in (`observe_message`), a `ControlLoop`
calls `tick` at the control rate, and each tick ends in exactly one `send(decision, info)` call: a command
that passed the safety layer, a held command, a stop, or nothing."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .cache import ObservationCache
from .inference import InferenceWorker, Request, Result, SyncInference
from .mapping import RobotMapping
from .messages import MessageError, extract, stamp_seconds
from .metrics import Metrics
from .safety import Decision, SafetyLayer
from .scheduler import ActionScheduler

log = logging.getLogger("diffpilot.serve")
LOG_INTERVAL = 10.0  # seconds between two log lines about the same repeated fault


@dataclass
class TickInfo:
    tick: int
    time: float  # server monotonic seconds
    stamp: float | None  # header stamp of the observation the executed chunk was planned on

    def status(self, decision: Decision) -> dict[str, Any]:
        return {
            "tick": self.tick,
            "state": decision.state,
            "reason": decision.reason,
            "command": None if decision.command is None else [float(v) for v in decision.command],
            "stamp": self.stamp,
        }


class PolicyServer:
    """plan: a callable Request → (N, A) actions (a `PolicyRunner`), with an optional `reset()`."""

    def __init__(
        self,
        plan: Callable[[Request], np.ndarray],
        mapping: RobotMapping,
        n_obs_steps: int,
        n_action_steps: int,
        send: Callable[[Decision, TickInfo], None],
        sync: bool = False,
        clock: Callable[[], float] = time.monotonic,
        plan_wait: float = 0.5,
    ):
        self.mapping, self.send, self.clock = mapping, send, clock
        self.n_obs_steps, self.n_action_steps = int(n_obs_steps), int(n_action_steps)
        # A planning tick may wait this fraction of a control period for its own chunk, so a fast policy's
        # chunk acts on the tick it was planned at; a slower one is used from the tick after it arrives.
        self.plan_wait = float(plan_wait) * mapping.period
        self.sources = mapping.observations
        self.cache = ObservationCache(
            {k: s.max_age for k, s in self.sources.items()}, mapping.safety.clock_jump_tolerance
        )
        self.scheduler = ActionScheduler(mapping.scheduler.mode, mapping.scheduler.ensemble_decay)
        a, s = mapping.action, mapping.safety
        self.safety = SafetyLayer(
            a.low, a.high, a.max_velocity, mapping.period, s.on_fault, s.stop_command, a.position_from is not None
        )
        self.metrics = Metrics()
        self._lock = threading.RLock()
        self._history: deque = deque(maxlen=self.n_obs_steps)
        self.generation = 0
        self.estop = False
        self._healthy = False  # False until the first healthy tick, and after every fault
        self._next_plan_tick = 0
        self._last_plan_tick: int | None = None
        self._have_chunk = False
        self._ahead: Request | None = None  # a request submitted by plan_ahead for a coming tick
        self._reason: str | None = "starting"
        self._bad_keys: set[str] = set()
        self._logged_at: dict[str, float] = {}  # message-log key → when it was last logged (repeats: LOG_INTERVAL)
        self._suppressed: dict[str, int] = {}
        self.shutting_down = False
        self._jump_logged: set[str] = set()
        self._error_streak = False
        worker = SyncInference if sync else InferenceWorker
        self.inference = worker(plan, self._on_result)

    # ------------------------------------------------------------------ inputs (any thread)
    def _throttled(self, key: str) -> tuple[bool, int]:
        """Whether a log line for `key` may go out now (once per LOG_INTERVAL), and how many were held back."""
        now = self.clock()
        last = self._logged_at.get(key)
        if last is not None and now - last < LOG_INTERVAL:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False, 0
        self._logged_at[key] = now
        return True, self._suppressed.pop(key, 0)

    def observe_message(self, key: str, msg: Any) -> bool:
        """Convert and cache one message for feature `key`; a malformed one is dropped, counted and logged (at most
        once per LOG_INTERVAL seconds per feature, however it alternates with valid ones). Returns whether it was
        accepted."""
        source = self.sources[key]
        try:
            value = extract(msg, source)
        except (MessageError, TypeError, ValueError, AttributeError) as err:
            self.reject(key, err)
            return False
        self.observe(key, value, stamp_seconds(msg))
        return True

    def reject(self, key: str, err: Exception) -> None:
        """Count and log (throttled) a malformed message for feature `key`."""
        with self._lock:
            self.metrics.malformed[key] += 1
            self._bad_keys.add(key)
            emit, held = self._throttled("malformed:" + key)
        if emit:
            more = f" ({held} more since the last report)" if held else ""
            log.warning("dropping malformed message on %s for %s: %s%s", self.sources[key].topic, key, err, more)

    def observe(self, key: str, value: np.ndarray, stamp: float | None = None, received: float | None = None) -> None:
        received = self.clock() if received is None else received
        jumped = self.cache.update(key, value, received, stamp)
        with self._lock:
            if key == self.mapping.action.position_from:
                self.safety.note_robot_position(value)
            if key in self._bad_keys:
                self._bad_keys.discard(key)
                if self._throttled("valid:" + key)[0]:
                    log.info("valid messages again on %s", self.sources[key].topic)
            if jumped:
                self.metrics.clock_jumps += 1
                if key not in self._jump_logged:
                    self._jump_logged.add(key)
                    log.warning(
                        "clock jump in header stamps on %s (more than %.1f s off the arrival clock); staleness "
                        "uses arrival time, so serving continues",
                        self.sources[key].topic,
                        self.mapping.safety.clock_jump_tolerance,
                    )

    def interrupt(self, now: float | None = None) -> bool:
        """Restart at the next healthy tick (fresh history, a full sample) if any feature went stale by `now` — for
        adapters whose ticks follow the client (a pause longer than max_age). Returns whether it did."""
        now = self.clock() if now is None else now
        with self._lock:
            if self.cache.stale_keys(now) or self.estop:
                self._healthy = False
                return True
            return False

    def forget_inputs(self) -> None:
        """Drop every cached observation (a new client): serving resumes once each feature arrives afresh."""
        with self._lock:
            self.cache.clear()
            self._healthy = False

    def set_estop(self, engaged: bool) -> None:
        with self._lock:
            if bool(engaged) != self.estop:
                log.warning("e-stop %s", "ENGAGED: stopping" if engaged else "released")
            self.estop = bool(engaged)

    # ------------------------------------------------------------------ inference results (worker thread)
    def _on_result(self, result: Result) -> None:
        self.metrics.record_inference(result.latency, result.error.split(":")[0] if result.error else None)
        with self._lock:
            if result.request.generation != self.generation:
                return  # planned before a reset: stale
            if result.error:
                if not self._error_streak:
                    log.error("inference failed (%s): holding; retrying with a fresh sample", result.error)
                self._error_streak = True
                self._next_plan_tick = result.request.tick + 1
                self._last_plan_tick = None  # the next chunk must not warm-start from a failed one
                return
            if self._error_streak:
                log.info("inference recovered")
            self._error_streak = False
            self.scheduler.add_chunk(result.request.tick, result.actions, tag=result.request.stamp)
            self._have_chunk = True

    # ------------------------------------------------------------------ control tick (control thread)
    def _restart(self, tick: int) -> None:
        """After start-up or a fault: forget history and chunks; the next chunk is a full sample."""
        self._history.clear()
        self.scheduler.clear()
        self.generation += 1
        self._next_plan_tick, self._last_plan_tick, self._have_chunk = tick, None, False
        self._ahead = None

    def _submit(self, tick: int, history: list[dict[str, np.ndarray]], newest: float | None) -> Request:
        """Hand the inference worker the chunk for `tick` planned on `history` (n_obs_steps snapshots)."""
        contiguous = self._last_plan_tick is not None and tick - self._last_plan_tick == self.n_action_steps
        window = {k: np.stack([h[k] for h in history]) for k in self.sources}
        request = Request(tick, window, contiguous, newest, self.generation)
        self._last_plan_tick, self._next_plan_tick = tick, tick + self.n_action_steps
        self.inference.submit(request)
        return request

    def wants_plan(self, tick: int) -> bool:
        """Whether `tick` is a planning tick that could be planned ahead now (healthy, worker idle)."""
        with self._lock:
            return self._healthy and tick >= self._next_plan_tick and not self.inference.busy

    def plan_ahead(self, tick: int, now: float | None = None) -> bool:
        """Start the chunk for the coming `tick` now, on the newest observation, so that it is ready at the tick:
        the observation→command latency becomes the lead time instead of up to a period of waiting plus the
        inference. The snapshot joins the window as its newest step (the tick's own snapshot replaces it in the
        history). Returns whether a request was submitted."""
        now = self.clock() if now is None else now
        with self._lock:
            if not self._healthy or self._fault_reason(now) is not None:
                return False
            if tick < self._next_plan_tick or self.inference.busy:  # healthy: the history is full
                return False
            values, newest = self.cache.snapshot()
            history = [*list(self._history)[1:], values]
            self._ahead = self._submit(tick, history, newest)
        return True

    def _fault_reason(self, now: float) -> str | None:
        if self.estop:
            return "estop"
        if self.shutting_down:
            return "shutdown"
        stale = self.cache.stale_keys(now)
        return "stale:" + ",".join(stale) if stale else None

    def tick(self, tick: int, now: float | None = None, lateness: float = 0.0) -> Decision:
        now = self.clock() if now is None else now
        request = None
        with self._lock:
            reason = self._fault_reason(now)
            if reason is not None:
                self._healthy = False
            else:
                if not self._healthy:
                    self._restart(tick)
                    self._healthy = True
                values, newest = self.cache.snapshot()
                self._history.append(values)
                while len(self._history) < self.n_obs_steps:
                    self._history.appendleft(values)
                if self._ahead is not None and self._ahead.tick == tick:
                    request = self._ahead  # planned ahead of this tick (plan_ahead): wait for it below
                elif tick >= self._next_plan_tick and not self.inference.busy:
                    request = self._submit(tick, list(self._history), newest)
                self._ahead = None
        if request is not None and self.plan_wait > 0:
            request.done.wait(self.plan_wait)  # outside the lock: the result callback needs it
        action, stamp = None, None
        with self._lock:
            if reason is None:
                action, stamp = self.scheduler.action(tick)
                if action is None:
                    reason = "no_action" if self._have_chunk else "waiting"
            decision = self.safety.decide(action, reason, self.estop)
            self._log_transition(decision, now)
        info = TickInfo(tick, now, stamp)
        self.send(decision, info)
        self.metrics.record_tick(
            decision.state, decision.reason, decision.command is not None, self.cache.ages(now), lateness
        )
        return decision

    def _log_transition(self, decision: Decision, now: float) -> None:
        reason = decision.reason
        kind = lambda r: r.split(":")[0] if r else r  # noqa: E731
        if kind(reason) == kind(self._reason):  # once per fault, not again as more topics go stale
            self._reason = reason
            return
        previous, self._reason = self._reason, reason
        if reason is None:
            log.info("serving: policy commands flowing (after %s)", previous)
        elif reason == "waiting":
            log.info("%s: waiting for the first action chunk", decision.state)
        elif reason.startswith("stale:"):
            ages = self.cache.ages(now)
            detail = ", ".join(
                f"{k} on {self.sources[k].topic} (age {ages[k]:.3f} s > max_age {self.sources[k].max_age} s)"
                for k in reason[6:].split(",")
            )
            log.warning("%s: stale observation(s): %s", decision.state, detail)
        elif reason == "no_action":
            log.warning("%s: no action for this tick: inference is slower than the chunk lasts", decision.state)
        elif reason not in ("estop", "shutdown"):
            log.warning("%s: %s", decision.state, reason)

    def begin_shutdown(self) -> None:
        """From now on every tick is a fault tick ("shutdown"): hold repeats the last command, stop ramps to the
        stop command (ControlLoop.finish sends them)."""
        with self._lock:
            if not self.shutting_down:
                log.info("shutting down: sending the final %s command", self.safety.on_fault)
            self.shutting_down = True

    def close(self) -> None:
        self.inference.close()


class ControlLoop:
    """Calls server.tick at a fixed rate on deadlines t0 + k·period (monotonic clock). A tick that wakes more
    than a period late skips the deadlines it missed — counted as missed ticks — instead of bursting.

    plan_lead > 0: a planning tick's chunk is started `plan_lead` seconds before its deadline on the newest
    observation (PolicyServer.plan_ahead). sync_to (a feature key): phase-lock the tick grid to that feature's
    arrivals, so each plan-ahead wake-up comes just after a fresh observation — the grid moves by at most
    `max_phase_step` per chunk, so the control rate stays fixed while it locks."""

    def __init__(
        self,
        server: PolicyServer,
        hz: float,
        clock: Callable[[], float] = time.monotonic,
        plan_lead: float = 0.0,
        sync_to: str | None = None,
        sync_margin: float = 0.001,
        max_phase_step: float = 0.001,
    ):
        self.server, self.period, self.clock = server, 1.0 / hz, clock
        if not 0.0 <= plan_lead < self.period:
            raise ValueError(f"plan_lead={plan_lead}: expected seconds in [0, one control period {self.period})")
        if sync_to is not None and sync_to not in server.sources:
            raise ValueError(f"sync_to={sync_to!r}: expected one of the observation features {sorted(server.sources)}")
        self.plan_lead, self.sync_to = float(plan_lead), sync_to
        self.sync_margin, self.max_phase_step = float(sync_margin), float(max_phase_step)
        self.phase_errors: list[float] = []  # seconds between the sync feature's arrival and each plan wake-up

    def phase_correction(self, now: float) -> float:
        """Seconds to move the tick grid so the next plan-ahead wake-up falls `sync_margin` after an arrival of
        the sync feature (0 until its arrival period is known)."""
        last, gap = self.server.cache.arrival(self.sync_to)
        if last is None or gap is None:
            return 0.0
        error = (now - last) - self.sync_margin  # > 0: the observation is older than wanted → wake earlier
        error = (error + gap / 2) % gap - gap / 2  # modulo the arrival period: the nearest arrival counts
        self.phase_errors.append(error)
        return -max(-self.max_phase_step, min(self.max_phase_step, 0.3 * error))  # damped: arrivals jitter

    def run(self, stop: threading.Event, duration: float | None = None) -> None:
        t0, k = self.clock(), 0
        while not stop.is_set():
            deadline = t0 + k * self.period
            if self.plan_lead > 0 and self.server.wants_plan(k):
                wake = deadline - self.plan_lead
                now = self.clock()
                if now < wake and stop.wait(wake - now):
                    break
                now = self.clock()
                if now < deadline and self.server.plan_ahead(k, now) and self.sync_to is not None:
                    t0 += self.phase_correction(now)  # applies from the next deadline on
            now = self.clock()
            if now < deadline:
                if stop.wait(deadline - now):
                    break
                now = self.clock()
            late = now - deadline
            if late >= self.period:
                skipped = int(late // self.period)
                self.server.metrics.missed_ticks += skipped
                k += skipped
                late -= skipped * self.period
            self.server.tick(k, now, late)
            k += 1
            if duration is not None and now - t0 >= duration:
                break
        self.finish(t0, k)

    def finish(self, t0: float, k: int) -> None:
        """The final commands after a stop request: hold sends the last command once more; stop moves to the stop
        command at the rate limit, one tick per period (at most `ceil(range / step) + 1` ticks)."""
        server = self.server
        server.begin_shutdown()
        safety = server.safety
        span = np.max((safety.high - safety.low) / np.maximum(safety.max_step, 1e-12))
        for _ in range(int(np.ceil(span)) + 1):
            server.tick(k, self.clock())
            k += 1
            if safety.on_fault == "hold" or safety.settled():
                break
            time.sleep(max(0.0, t0 + k * self.period - self.clock()))
