"""Inference: a `PolicyRunner` turns an observation window into the chunk of actions for the ticks from the
window's last observation on (RTI warm start between contiguous chunks when enabled); an `InferenceWorker`
runs it on its own thread so the control loop never waits for the network (`SyncInference` runs it inline,
for offline replay)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class Request:
    tick: int
    window: dict[str, np.ndarray]  # (n_obs, *shape) per feature
    contiguous: bool  # this chunk starts exactly n_action_steps after the previous one (RTI may warm start)
    stamp: float | None  # newest header stamp in the window
    generation: int  # the server's reset counter when the request was made
    done: threading.Event = field(default_factory=threading.Event)  # set once the result was handled


@dataclass
class Result:
    request: Request
    actions: np.ndarray | None  # (N, A) in action units, ticks request.tick … request.tick + N − 1
    error: str | None  # "nan" | "exception: …"
    latency: float


class PolicyRunner:
    """Wraps a loaded policy (anything with config.n_obs_steps and predict_chunk) for the server."""

    def __init__(self, policy, rti: dict | None = None, device: str = "cpu", planner=None):
        """rti: the `rti:` config block (RTI warm start when enabled); planner: a ready chunk planner instead (an
        OnnxPolicy's warm_start())."""
        self.policy = policy
        self.config = policy.config
        self.device = torch.device(device)
        self.planner = planner
        if planner is None and rti and rti.get("enabled"):
            from diffpilot.policies.warmstart import RTIWarmStart

            self.planner = RTIWarmStart.from_config(policy, rti)

    def reset(self) -> None:
        if self.planner is not None:
            self.planner.reset()

    @torch.inference_mode()
    def __call__(self, request: Request) -> np.ndarray:
        window = {k: torch.as_tensor(v).unsqueeze(0).to(self.device) for k, v in request.window.items()}
        if self.planner is not None:
            if not request.contiguous:
                self.planner.reset()
            chunk = self.planner(window)
        else:
            chunk = self.policy.predict_chunk(window)
        return chunk[0, self.config.n_obs_steps - 1 :].detach().cpu().numpy().astype(np.float64)


def run_request(plan: Callable[[Request], np.ndarray], request: Request) -> Result:
    start = time.perf_counter()
    actions, error = None, None
    try:
        actions = np.asarray(plan(request), dtype=np.float64)
        if actions.ndim != 2 or not len(actions):
            error, actions = f"exception: chunk of shape {actions.shape}, expected (N, action_dim)", None
        elif not np.all(np.isfinite(actions)):
            error, actions = "nan", None
    except Exception as err:  # any policy failure must become a hold, never a crash
        error = f"exception: {type(err).__name__}: {err}"
    return Result(request, actions, error, time.perf_counter() - start)


class InferenceWorker:
    """One background thread; `submit` hands it a request if it is idle, results go to `on_result`."""

    def __init__(self, plan: Callable[[Request], np.ndarray], on_result: Callable[[Result], None]):
        self.plan, self.on_result = plan, on_result
        self._request: Request | None = None
        self._cv = threading.Condition()
        self._stopped = False
        self._busy = False
        self._thread = threading.Thread(target=self._loop, name="diffpilot-inference", daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        with self._cv:
            return self._busy

    def submit(self, request: Request) -> bool:
        with self._cv:
            if self._busy or self._stopped:
                return False
            self._request, self._busy = request, True
            self._cv.notify()
            return True

    def _loop(self) -> None:
        while True:
            with self._cv:
                while self._request is None and not self._stopped:
                    self._cv.wait()
                if self._stopped:
                    return
                request, self._request = self._request, None
            result = run_request(self.plan, request)
            try:
                self.on_result(result)
            finally:
                with self._cv:
                    self._busy = False
                request.done.set()

    def close(self, timeout: float = 5.0) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify_all()
        self._thread.join(timeout)


class SyncInference:
    """Same interface, runs inline: used for offline bag replay, where time is the bag's."""

    def __init__(self, plan: Callable[[Request], np.ndarray], on_result: Callable[[Result], None]):
        self.plan, self.on_result = plan, on_result
        self.busy = False

    def submit(self, request: Request) -> bool:
        self.on_result(run_request(self.plan, request))
        request.done.set()
        return True

    def close(self, timeout: float = 0.0) -> None:
        pass
