"""Evaluation in parallel: envs in worker processes, or batches of episodes on a local Ray cluster, give exactly the
episodes of the in-process run (same seeds, same sampling noise per batch)."""

from __future__ import annotations

import json

import pytest
import torch

from diffpilot.commands.common import load_task_config
from diffpilot.envs.env_pool import EnvWorkerError, SubprocessEnvs
from diffpilot.envs.evaluate import evaluate
from diffpilot.envs.registry import env_factory
from diffpilot.errors import ConfigError

from .conftest import diffpilot
from .test_dsrl import pusht_policy

TASK = load_task_config("pusht_state")


def _same(a, b) -> bool:
    """The same episodes: seeds, successes and steps exactly; coverage to 1e-9 (gym-pusht's physics differs in the
    last bits of the coverage even between two runs in one process)."""
    return len(a.episodes) == len(b.episodes) and all(
        (x.seed, x.success, x.steps) == (y.seed, y.success, y.steps) and abs(x.max_coverage - y.max_coverage) < 1e-9
        for x, y in zip(a.episodes, b.episodes)
    )


def _run(executor: str, tmp_path=None, episodes: int = 5, n_envs: int = 2, policy=None):
    video_dir = tmp_path / executor if tmp_path is not None else None
    make_env = env_factory(TASK, max_episode_steps=25)
    policy = policy or pusht_policy()
    return evaluate(policy, make_env, episodes, 100_000, n_envs, video_dir, 1 if video_dir else 0, False, executor)


def test_worker_processes_give_the_episodes_of_the_in_process_run(tmp_path):
    policy = pusht_policy()
    torch.manual_seed(7)
    before = torch.get_rng_state()
    inline = _run("inline", tmp_path, policy=policy)
    assert torch.equal(before, torch.get_rng_state())  # the caller's generator is left as it was
    subprocess = _run("subprocess", tmp_path)
    assert [e.seed for e in inline.episodes] == list(range(100_000, 100_005))
    assert _same(inline, subprocess)
    assert len({e.max_coverage for e in inline.episodes}) > 1  # the episodes differ from each other
    for executor in ("inline", "subprocess"):
        assert (tmp_path / executor / "episode_100000.mp4").stat().st_size > 1000
    # a batch's episodes do not depend on the batches before it
    shorter = _run("inline", episodes=3, n_envs=2)
    shorter.episodes = shorter.episodes[:2]
    inline.episodes = inline.episodes[:2]
    assert _same(shorter, inline)


def test_a_failing_env_is_named_with_its_traceback():
    def broken():
        raise RuntimeError("no display")

    with pytest.raises(EnvWorkerError, match=r"(?s)env 0 \(in its worker process\) failed:.*no display"):
        SubprocessEnvs(broken, 2)
    with pytest.raises(ConfigError, match=r"executor='threads': expected one of \['inline', 'subprocess', 'ray'\]"):
        _run("threads")


def test_ray_workers_give_the_episodes_of_the_in_process_run():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert _same(_run("ray"), _run("inline"))
    finally:
        ray.shutdown()


def test_eval_command_takes_the_executor(tmp_path):
    policy = tmp_path / "policy"
    pusht_policy().save_pretrained(policy)
    results = {}
    for executor in ("inline", "subprocess"):
        out = tmp_path / executor
        proc = diffpilot(
            "eval", f"policy_path={policy}", "episodes=4", "n_envs=2", "videos=0", f"executor={executor}",
            f"output_dir={out}", "task.max_episode_steps=20",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        results[executor] = json.loads((out / "eval_info.json").read_text())["per_episode"]
    pairs = zip(results["inline"], results["subprocess"])
    assert all(a["success"] == b["success"] and abs(a["max_coverage"] - b["max_coverage"]) < 1e-9 for a, b in pairs)
    proc = diffpilot("eval", f"policy_path={policy}", "executor=threads", f"output_dir={tmp_path / 'bad'}")
    assert proc.returncode == 2 and proc.stderr.strip().startswith("diffpilot: executor='threads': expected one of")


def test_a_worker_that_dies_is_named():
    import os

    import gymnasium as gym

    class Dying(gym.Env):
        observation_space = gym.spaces.Box(-1, 1, (1,))
        action_space = gym.spaces.Box(-1, 1, (1,))

        def reset(self, *, seed=None, options=None):
            return self.observation_space.sample(), {}

        def step(self, action):
            os._exit(3)

    envs = SubprocessEnvs(Dying, 2)
    envs.reset([0, 1])
    with pytest.raises(EnvWorkerError, match=r"env 0: its worker process ended \(exit code 3\)"):
        envs.step([0, 1], [[0.0], [0.0]])
    assert envs.processes == []  # closed
