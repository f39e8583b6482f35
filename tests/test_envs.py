"""PushT through the real gym-pusht: the env contract, the scripted expert and vectorised evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.wrappers import TimeLimit

from diffpilot.envs.evaluate import evaluate, wilson_interval
from diffpilot.envs.experts.pusht import ExpertPushT
from diffpilot.envs.experts.record import record_episode
from diffpilot.envs.pusht import PushTEnv, make_pusht_env


@pytest.mark.parametrize("mode", ["state", "pixels", "all"])
def test_env_passes_gymnasium_checker(mode):
    check_env(PushTEnv(mode), skip_render_check=True)


def test_env_observations_match_lerobot_feature_names():
    env = make_pusht_env("all")
    obs, info = env.reset(seed=3)
    assert set(obs) == {"observation.state", "observation.environment_state", "observation.image"}
    assert obs["observation.image"].shape == (96, 96, 3) and obs["observation.image"].dtype == np.uint8
    obs2, *_ = env.step(obs["observation.state"])
    assert info["coverage"] == 0.0 and obs2["observation.environment_state"].shape == (16,)
    with pytest.raises(ValueError, match="expected two finite numbers"):
        env.step(np.array([np.nan, 1.0]))


def test_scripted_expert_solves_pusht_from_random_starts():
    results = [record_episode(lambda: make_pusht_env("state"), ExpertPushT, seed) for seed in range(6)]
    successes = [r for r in results if r.success]
    assert len(successes) >= 3, [r.length for r in results]
    ep = successes[0]
    assert ep.frames["action"].shape == (ep.length, 2) and ep.frames["next.success"][-1]
    assert np.abs(np.diff(ep.frames["action"], axis=0)).max() < 60  # smooth targets, no teleports


class SolvedStartEnv(PushTEnv):
    """Starts with the T already on its goal, so any policy succeeds on the first step."""

    def reset(self, *, seed=None, options=None):
        obs, info = super().reset(seed=seed, options={"reset_to_state": [100.0, 100.0, 256.0, 256.0, 0.0]})
        self.sim.block.angle = np.pi / 4  # set the angle first, then the position: exactly the goal pose
        self.sim.block.position = (256.0, 256.0)
        return obs, info


class ConstantPolicy:
    def __init__(self):
        self.resets = 0

    def reset(self):
        self.resets += 1

    def select_action(self, obs):
        return np.tile(np.array([[60.0, 60.0]], np.float32), (len(obs["observation.state"]), 1))


def test_evaluate_counts_success_coverage_and_writes_videos(tmp_path):
    policy = ConstantPolicy()
    result = evaluate(
        policy,
        lambda: make_pusht_env("state", max_episode_steps=5),
        5,
        seed=7,
        n_envs=2,
        video_dir=tmp_path,
        n_videos=1,
        progress=False,
    )
    s = result.summary()
    assert s["episodes"] == 5 and s["success_rate"] == 0.0 and policy.resets == 3
    assert [e.seed for e in result.episodes] == [7, 8, 9, 10, 11] and all(e.steps == 5 for e in result.episodes)
    assert (tmp_path / "episode_7.mp4").stat().st_size > 1000
    solved = evaluate(ConstantPolicy(), lambda: TimeLimit(SolvedStartEnv("state"), 5), 3, n_envs=3, progress=False)
    assert solved.success_rate == 1.0 and solved.mean_max_coverage > 0.95
    assert all(e.steps == 1 for e in solved.episodes)
    json.dumps(solved.to_dict())


class CountingEnv(TimeLimit):
    """Counts step() calls; the first env made starts solved (its episode ends on step 1), the others do not."""

    made: list[CountingEnv] = []

    def __init__(self):
        super().__init__(SolvedStartEnv("state") if not CountingEnv.made else PushTEnv("state"), 6)
        self.calls = 0
        CountingEnv.made.append(self)

    def step(self, action):
        self.calls += 1
        return super().step(action)


def test_evaluate_never_steps_an_env_whose_episode_ended():
    CountingEnv.made.clear()
    result = evaluate(ConstantPolicy(), CountingEnv, 3, n_envs=3, progress=False)
    assert [e.steps for e in result.episodes] == [1, 6, 6] and result.episodes[0].success
    assert [env.calls for env in CountingEnv.made] == [1, 6, 6]  # the solved env idles while the others run


def test_wilson_interval():
    lo, hi = wilson_interval(65, 100)
    assert lo == pytest.approx(0.5525, abs=1e-3) and hi == pytest.approx(0.7364, abs=1e-3)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)


def test_expert_options_set_the_pusht_experts_tunables_and_bad_ones_fail_by_name(tmp_path):
    from diffpilot.commands.data import make_demonstrations
    from diffpilot.envs.registry import expert_factory
    from diffpilot.errors import ConfigError

    expert = expert_factory("pusht", {"score_jitter": 5.0})(0)
    assert expert.cfg.score_jitter == 5.0 and expert_factory("pusht")(0).cfg.score_jitter == 0.3
    with pytest.raises(ConfigError, match=r"unknown \['bogus'\]"):
        expert_factory("pusht", {"bogus": 1})
    with pytest.raises(ConfigError, match="only the pusht expert takes options"):
        expert_factory("lift", {"score_jitter": 5.0})
    with pytest.raises(ConfigError, match="bogus"):  # before anything is written
        make_demonstrations("pusht", "state", 1, 0, tmp_path / "demos", expert_options={"bogus": 1})
    assert not (tmp_path / "demos").exists()


def test_expert_action_noise_perturbs_the_target_but_not_the_plan():
    def first_actions(**tunables):
        env = make_pusht_env("state")
        env.reset(seed=3)
        expert = ExpertPushT(seed=7, **tunables)
        expert.reset(env.unwrapped.sim)
        return expert.act(), expert._target.copy()

    clean, clean_target = first_actions()
    again, _ = first_actions(action_noise=0.0)
    noisy, noisy_target = first_actions(action_noise=15.0)
    np.testing.assert_array_equal(clean, again)  # no noise: the same stream, the same actions
    np.testing.assert_array_equal(clean_target, noisy_target)  # the plan is untouched
    offset = np.abs(noisy - clean)
    assert offset.max() > 0.1 and offset.max() < 90.0, offset  # a draw of N(0, 15²) per axis
    with pytest.raises(ValueError, match=r"action_noise=-1\.0"):
        ExpertPushT(seed=0, action_noise=-1.0)


def test_expert_careless_operator_is_drawn_per_episode_and_picks_other_pushes():
    def first_push(seed: int, **tunables):
        env = make_pusht_env("state")
        env.reset(seed=3)
        expert = ExpertPushT(seed=seed, **tunables)
        expert.reset(env.unwrapped.sim)
        action = expert.act()
        return action, tuple(np.round(expert._push.dir_local, 3)), expert.careless

    default, _, careless = first_push(7)
    same, _, _ = first_push(7, careless_fraction=0.0)
    np.testing.assert_array_equal(default, same)  # fraction 0 draws nothing: old demonstrations stay reproducible
    assert not careless
    operators = [first_push(s, careless_fraction=0.5)[2] for s in range(12)]
    assert any(operators) and not all(operators)  # drawn per episode
    careful_dirs = {first_push(s)[1] for s in range(6)}
    careless_dirs = {first_push(s, careless_fraction=1.0)[1] for s in range(6)}
    assert len(careless_dirs) > len(careful_dirs)  # same state: the careless operator's push varies with the seed
    with pytest.raises(ValueError, match=r"careless_fraction=1\.5"):
        ExpertPushT(seed=0, careless_fraction=1.5)
