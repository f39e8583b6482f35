"""Action scheduler: chunks are pinned to the control tick their observation was taken at, so a chunk that
arrives late simply starts part-way through (its past actions are skipped). `queue` executes the newest chunk
covering a tick; `ensemble` averages every chunk covering it with weights exp(−decay·i), i = 0 for the oldest
(ACT's temporal ensembling)."""

from __future__ import annotations

import math
import threading

import numpy as np


class ActionScheduler:
    MODES = ("queue", "ensemble")

    def __init__(self, mode: str = "queue", ensemble_decay: float = 0.1):
        if mode not in self.MODES:
            raise ValueError(f"scheduler mode {mode!r}: expected one of {self.MODES}")
        self.mode, self.decay = mode, ensemble_decay
        self._chunks: list[tuple[int, np.ndarray, object]] = []  # (tick of actions[0], actions (N, A), tag)
        self._lock = threading.Lock()

    def add_chunk(self, start_tick: int, actions: np.ndarray, tag: object = None) -> None:
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim != 2 or not len(actions):
            raise ValueError(f"chunk has shape {actions.shape}; expected (N ≥ 1, action_dim)")
        with self._lock:
            self._chunks.append((int(start_tick), actions, tag))
            self._chunks.sort(key=lambda c: c[0])

    def clear(self) -> None:
        with self._lock:
            self._chunks.clear()

    def remaining(self, tick: int) -> int:
        """How many ticks from `tick` on are covered by some chunk."""
        with self._lock:
            return max((s + len(a) - tick for s, a, _ in self._chunks), default=0)

    def action(self, tick: int) -> tuple[np.ndarray | None, object]:
        """(action for `tick`, tag of the newest chunk covering it), or (None, None) when no chunk covers it
        (inference fell behind)."""
        with self._lock:
            self._chunks = [c for c in self._chunks if c[0] + len(c[1]) > tick]
            covering = [(a[tick - s], tag) for s, a, tag in self._chunks if s <= tick]
        if not covering:
            return None, None
        tag = covering[-1][1]
        if self.mode == "queue":
            return covering[-1][0].copy(), tag
        weights = np.array([math.exp(-self.decay * i) for i in range(len(covering))])
        return (np.stack([a for a, _ in covering]) * weights[:, None]).sum(0) / weights.sum(), tag
