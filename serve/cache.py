"""Observation cache: the newest value of each policy feature with its arrival time (the server's monotonic
clock) and header stamp. A feature is stale when nothing valid arrived for longer than its max_age; staleness
is judged on arrival time, so a jump of the robot's clock never makes fresh data look old (or stale data
fresh) — such jumps are only counted and reported."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass
class Entry:
    value: np.ndarray
    received: float  # server monotonic seconds
    stamp: float | None  # header stamp (robot clock), if the message had one


class ObservationCache:
    def __init__(self, max_age: dict[str, float], clock_jump_tolerance: float = 1.0):
        self.max_age = dict(max_age)
        self.clock_jump_tolerance = clock_jump_tolerance
        self._entries: dict[str, Entry] = {}
        self._lock = threading.Lock()
        self.clock_jumps = 0
        self._gaps: dict[str, deque] = {k: deque(maxlen=32) for k in self.max_age}  # recent inter-arrival times

    def update(self, key: str, value: np.ndarray, received: float, stamp: float | None = None) -> bool:
        """Store a value; returns True when its header stamp jumped against the arrival clock."""
        if key not in self.max_age:
            raise KeyError(f"observation {key!r} is not cached; expected one of {sorted(self.max_age)}")
        jumped = False
        with self._lock:
            old = self._entries.get(key)
            if old is not None and old.stamp is not None and stamp is not None:
                drift = (stamp - old.stamp) - (received - old.received)
                if abs(drift) > self.clock_jump_tolerance:
                    jumped = True
                    self.clock_jumps += 1
            if old is not None and received > old.received:
                self._gaps[key].append(received - old.received)
            self._entries[key] = Entry(value, received, stamp)
        return jumped

    def arrival(self, key: str) -> tuple[float | None, float | None]:
        """(arrival time of `key`'s newest value, its typical inter-arrival period: the median of recent gaps)."""
        with self._lock:
            entry, gaps = self._entries.get(key), list(self._gaps[key])
        return (entry.received if entry else None), (float(np.median(gaps)) if len(gaps) >= 4 else None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            for gaps in self._gaps.values():
                gaps.clear()

    def ages(self, now: float) -> dict[str, float]:
        """Seconds since each feature last arrived (inf if never)."""
        with self._lock:
            return {k: now - e.received if (e := self._entries.get(k)) else float("inf") for k in self.max_age}

    def stale_keys(self, now: float) -> list[str]:
        ages = self.ages(now)
        return [k for k, age in ages.items() if age > self.max_age[k]]

    def snapshot(self) -> tuple[dict[str, np.ndarray], float | None]:
        """Every feature's newest value and the newest header stamp among them."""
        with self._lock:
            values = {k: e.value for k, e in self._entries.items()}
            stamps = [e.stamp for e in self._entries.values() if e.stamp is not None]
        return values, (max(stamps) if stamps else None)
