"""Server metrics: observation age per feature, inference latency, tick lateness, dropped (missed) ticks,
ticks without a policy action, faults by reason, malformed messages — with p50/p99 summaries."""

from __future__ import annotations

import threading
from collections import Counter, deque

import numpy as np


def percentiles(values, qs=(50, 99)) -> dict[str, float | None]:
    values = np.asarray(list(values), dtype=np.float64)
    if not len(values):
        return {f"p{q}": None for q in qs} | {"max": None}
    return {f"p{q}": float(np.percentile(values, q)) for q in qs} | {"max": float(values.max())}


class Metrics:
    def __init__(self, window: int = 100_000):
        self._lock = threading.Lock()
        self.obs_age: dict[str, deque] = {}
        self.inference_latency: deque = deque(maxlen=window)
        self.tick_lateness: deque = deque(maxlen=window)
        self.window = window
        self.ticks = 0
        self.missed_ticks = 0  # control deadlines that passed without a tick (the loop woke too late)
        self.commands_sent = 0
        self.states: Counter = Counter()  # ok / hold / stop per tick
        self.faults: Counter = Counter()  # reason per non-ok tick
        self.malformed: Counter = Counter()  # dropped messages per feature
        self.inference_errors: Counter = Counter()  # nan / exception per chunk
        self.chunks = 0
        self.clock_jumps = 0

    def record_tick(self, state: str, reason: str | None, sent: bool, ages: dict[str, float], lateness: float):
        with self._lock:
            self.ticks += 1
            self.states[state] += 1
            if reason:
                self.faults[reason.split(":")[0]] += 1
            self.commands_sent += int(sent)
            self.tick_lateness.append(lateness)
            for key, age in ages.items():
                if np.isfinite(age):
                    self.obs_age.setdefault(key, deque(maxlen=self.window)).append(age)

    def record_inference(self, latency: float, error: str | None) -> None:
        with self._lock:
            self.inference_latency.append(latency)
            if error:
                self.inference_errors[error] += 1
            else:
                self.chunks += 1

    def summary(self) -> dict:
        with self._lock:
            ms = lambda d: {k: (None if v is None else round(v * 1e3, 3)) for k, v in percentiles(d).items()}  # noqa: E731
            return {
                "ticks": self.ticks,
                "missed_ticks": self.missed_ticks,
                "commands_sent": self.commands_sent,
                "states": dict(self.states),
                "faults": dict(self.faults),
                "malformed_messages": dict(self.malformed),
                "inference_errors": dict(self.inference_errors),
                "chunks": self.chunks,
                "clock_jumps": self.clock_jumps,
                "inference_latency_ms": ms(self.inference_latency),
                "tick_lateness_ms": ms(self.tick_lateness),
                "observation_age_ms": {k: ms(v) for k, v in self.obs_age.items()},
            }
