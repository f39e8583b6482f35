"""A fixed set of envs driven by index, for evaluation: in this process one after another (`InlineEnvs`), or each in
its own worker process, stepped in parallel (`SubprocessEnvs`, as gymnasium's AsyncVectorEnv does it). Both answer
the same calls with the same values, so a rollout gives the same episodes whichever runs it."""

from __future__ import annotations

import multiprocessing as mp
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np


class InlineEnvs:
    """`n` envs made by `make_env` in this process."""

    def __init__(self, make_env: Callable[[], gym.Env], n: int):
        self.envs = [make_env() for _ in range(n)]
        self.metadata = self.envs[0].metadata

    def __len__(self) -> int:
        return len(self.envs)

    def reset(self, seeds: Sequence[int]) -> list[Any]:
        """Every env reset with its seed; their first observations."""
        return [env.reset(seed=int(s))[0] for env, s in zip(self.envs, seeds)]

    def step(self, indices: Sequence[int], actions: np.ndarray) -> list[tuple]:
        """Envs `indices` stepped with `actions` (one row each): their (obs, reward, terminated, truncated, info)."""
        return [self.envs[i].step(a) for i, a in zip(indices, actions)]

    def render(self, indices: Sequence[int]) -> list[np.ndarray]:
        return [self.envs[i].render() for i in indices]

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _worker(conn, make_env: Callable[[], gym.Env]) -> None:
    """One env in a worker process: answers (command, argument) with ("ok", value) or ("error", traceback)."""
    try:
        env = make_env()
        conn.send(("ok", env.metadata))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        return
    while True:
        try:
            command, arg = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        try:
            if command == "reset":
                value = env.reset(seed=arg)[0]
            elif command == "step":
                value = env.step(arg)
            elif command == "render":
                value = env.render()
            else:  # close
                env.close()
                conn.send(("ok", None))
                return
            conn.send(("ok", value))
        except BaseException:
            conn.send(("error", traceback.format_exc()))


class EnvWorkerError(RuntimeError):
    """An env raised inside its worker process; the message carries the worker's traceback."""


class SubprocessEnvs:
    """`n` envs, each made by `make_env` in its own process (forked, so the constructor needs no pickling), stepped
    in parallel: a call is sent to every env it concerns before any answer is awaited."""

    def __init__(self, make_env: Callable[[], gym.Env], n: int, context: str = "fork"):
        ctx = mp.get_context(context)
        self.conns, self.processes = [], []
        try:
            for _ in range(n):
                parent, child = ctx.Pipe()
                process = ctx.Process(target=_worker, args=(child, make_env), daemon=True)
                process.start()
                child.close()
                self.conns.append(parent)
                self.processes.append(process)
            self.metadata = self._gather(range(n))[0]
        except BaseException:
            self.close()
            raise

    def __len__(self) -> int:
        return len(self.conns)

    def _gather(self, indices: Sequence[int]) -> list[Any]:
        answers = []
        for i in indices:
            try:
                answers.append(self.conns[i].recv())
            except (EOFError, OSError):
                self.processes[i].join(timeout=5)  # the pipe closes before the process is reaped
                code = self.processes[i].exitcode
                self.close()
                raise EnvWorkerError(f"env {i}: its worker process ended (exit code {code})") from None
        for i, (status, value) in zip(indices, answers):
            if status == "error":
                self.close()
                raise EnvWorkerError(f"env {i} (in its worker process) failed:\n{value}")
        return [value for _, value in answers]

    def _call(self, indices: Sequence[int], command: str, args: Sequence[Any]) -> list[Any]:
        for i, arg in zip(indices, args):
            self.conns[i].send((command, arg))
        return self._gather(indices)

    def reset(self, seeds: Sequence[int]) -> list[Any]:
        return self._call(range(len(self)), "reset", [int(s) for s in seeds])

    def step(self, indices: Sequence[int], actions: np.ndarray) -> list[tuple]:
        return self._call(list(indices), "step", list(actions))

    def render(self, indices: Sequence[int]) -> list[np.ndarray]:
        return self._call(list(indices), "render", [None] * len(indices))

    def close(self) -> None:
        for conn, process in zip(self.conns, self.processes):
            if process.is_alive():
                try:
                    conn.send(("close", None))
                    if conn.poll(5):
                        conn.recv()
                except (BrokenPipeError, EOFError, OSError):
                    pass
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
            conn.close()
        self.conns, self.processes = [], []


def make_env_pool(make_env: Callable[[], gym.Env], n: int, executor: str) -> InlineEnvs | SubprocessEnvs:
    """`n` envs for `executor` inline (this process) or subprocess (one worker process each)."""
    return SubprocessEnvs(make_env, n) if executor == "subprocess" else InlineEnvs(make_env, n)
