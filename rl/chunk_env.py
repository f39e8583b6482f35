"""Action-chunk execution for RL on chunk policies.

`ChunkEnv` turns a per-step env into one whose action is a chunk of `n_action_steps` actions: it runs
them (stopping at the episode's end), answers with the window of the last `n_obs_steps` observations
and its reward, and remembers its episode (seed + executed actions) so that the episode can be
replayed exactly on resume. `ChunkVecEnv` runs several of them through `gymnasium.vector` with explicit
per-episode seeds and resets finished episodes itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium import spaces

REWARDS = ("env", "success")  # the chunk reward: the env's own r − 1, or success − 1 (sparse)


def shaping_potential(reward: float, success: bool = False) -> float:
    """Φ of a state for reward shaping: the env's own reward r there, clipped to [0, 1]; 1 once solved."""
    return 1.0 if success else float(np.clip(reward, 0.0, 1.0))


class ChunkEnv(gym.Wrapper):
    """Executes an action chunk (n_action_steps, A) per step; observations are windows (n_obs_steps, …).

    Reward per chunk: the mean over executed steps of `r − 1`, with r the env's own reward in [0, 1] (`reward=
    "env"`; 1 once the task is solved; PushT's r is its coverage / 0.95, robomimic's is sparse success) or
    its success alone (`reward="success"`: −1 per step until solved, PushT's sparse variant), and the
    episode terminates at success. `shaping` = w > 0 adds potential-based shaping w·(γ·Φ(s') − Φ(s)) with
    Φ the env's own reward r of the last step (0 after reset) and γ = `shaping_gamma`, the RL discount per
    chunk: dense progress signal that leaves the optimal policy unchanged (Ng et al. 1999; every success
    state has Φ = 1). `info["env_steps"]` is how many underlying steps
    ran. `reset(options={"replay": actions})` re-runs an episode's executed actions (k, A) after reset.
    """

    def __init__(
        self,
        env: gym.Env,
        n_obs_steps: int,
        n_action_steps: int,
        reward: str = "env",
        shaping: float = 0.0,
        shaping_gamma: float = 1.0,
    ):
        super().__init__(env)
        if n_obs_steps < 1 or n_action_steps < 1:
            raise ValueError(f"n_obs_steps={n_obs_steps}, n_action_steps={n_action_steps}: expected ≥ 1 each")
        if reward not in REWARDS:
            raise ValueError(f"reward={reward!r}: expected one of {REWARDS}")
        if not shaping >= 0 or not 0 < shaping_gamma <= 1:
            raise ValueError(f"shaping={shaping}, shaping_gamma={shaping_gamma}: expected shaping ≥ 0, gamma in (0, 1]")
        self.reward = reward
        self.shaping, self.shaping_gamma = shaping, shaping_gamma
        self._potential = 0.0  # Φ of the current state: the env's reward at its last step
        self.n_obs_steps = n_obs_steps
        self.n_action_steps = n_action_steps
        base_space = env.observation_space
        if not isinstance(base_space, spaces.Dict):
            raise TypeError(f"ChunkEnv needs a Dict observation space; got {type(base_space).__name__}")
        self.observation_space = spaces.Dict(
            {
                k: spaces.Box(
                    np.repeat(s.low[None], n_obs_steps, 0), np.repeat(s.high[None], n_obs_steps, 0), dtype=s.dtype
                )
                for k, s in base_space.spaces.items()
            }
        )
        act = env.action_space
        self.action_space = spaces.Box(
            np.repeat(act.low[None], n_action_steps, 0), np.repeat(act.high[None], n_action_steps, 0), dtype=act.dtype
        )
        self._history: list[dict[str, np.ndarray]] = []
        self._actions: list[np.ndarray] = []

    def _window(self) -> dict[str, np.ndarray]:
        frames = self._history[-self.n_obs_steps :]
        frames = [frames[0]] * (self.n_obs_steps - len(frames)) + frames
        return {k: np.stack([f[k] for f in frames]) for k in frames[0]}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        options = dict(options or {})
        replay = options.pop("replay", None)
        obs, info = self.env.reset(seed=seed, options=options or None)
        self._history, self._actions, self._potential = [obs], [], 0.0
        if replay is not None:
            for action in np.asarray(replay, dtype=np.float32).reshape(-1, self.action_space.shape[-1]):
                self._run(action)
        return self._window(), info

    def _run(self, action: np.ndarray):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._history = [*self._history[-(self.n_obs_steps - 1) :], obs] if self.n_obs_steps > 1 else [obs]
        self._actions.append(np.asarray(action, dtype=np.float32))
        self._potential = shaping_potential(reward, bool(info.get("is_success", False)))
        return reward, terminated, truncated, info

    def step(self, chunk):
        chunk = np.asarray(chunk, dtype=np.float32)
        if chunk.shape != self.action_space.shape:
            raise ValueError(f"action chunk has shape {chunk.shape}; expected {self.action_space.shape}")
        total, steps, success = 0.0, 0, False
        terminated = truncated = False
        potential_before = self._potential
        info: dict = {}
        for action in chunk:
            reward, terminated, truncated, info = self._run(action)
            success = bool(info.get("is_success", False))
            r = 1.0 if success else (float(reward) if self.reward == "env" else 0.0)
            total += r - 1.0
            steps += 1
            if success or terminated or truncated:
                break
        info = {**info, "env_steps": steps, "is_success": success}
        reward = total / steps + self.shaping * (self.shaping_gamma * self._potential - potential_before)
        return self._window(), reward, bool(terminated or success), bool(truncated and not success), info

    def episode_actions(self) -> np.ndarray:
        """The actions executed since the last reset, (k, A)."""
        width = self.action_space.shape[-1]
        return np.stack(self._actions) if self._actions else np.zeros((0, width), np.float32)


@dataclass
class ChunkStep:
    """One vector step. obs/next_obs: dicts of (N, n_obs, …); final_obs is next_obs before any reset."""

    next_obs: dict[str, np.ndarray]
    final_obs: dict[str, np.ndarray]
    reward: np.ndarray  # (N,)
    terminated: np.ndarray  # (N,) bool
    truncated: np.ndarray  # (N,) bool
    success: np.ndarray  # (N,) bool, episode solved at this step
    env_steps: int  # underlying env steps this vector step ran


class ChunkVecEnv:
    """`n_envs` ChunkEnvs in a `gymnasium.vector` env ("sync" or "async" workers) with explicit seeds.

    Episode e of env i is seeded `seed + e * n_envs + i`; finished episodes are reset at once (the
    returned `next_obs` already belongs to the new episode, `final_obs` to the old one). `state()` and
    `load_state()` save and restore every env's episode exactly by replaying its actions.
    """

    def __init__(
        self,
        make_env: Callable[[], gym.Env],
        n_envs: int,
        n_obs_steps: int,
        n_action_steps: int,
        seed: int = 0,
        vector: str = "sync",
        reward: str = "env",
        shaping: float = 0.0,
        shaping_gamma: float = 1.0,
    ):
        if n_envs < 1:
            raise ValueError(f"n_envs={n_envs}: expected ≥ 1")
        if vector not in ("sync", "async"):
            raise ValueError(f"vector={vector!r}: expected 'sync' or 'async'")

        def factory() -> gym.Env:
            return ChunkEnv(make_env(), n_obs_steps, n_action_steps, reward, shaping, shaping_gamma)

        vec_cls = gym.vector.SyncVectorEnv if vector == "sync" else gym.vector.AsyncVectorEnv
        self.envs = vec_cls([factory] * n_envs, autoreset_mode=gym.vector.AutoresetMode.DISABLED)
        self.n_envs = n_envs
        self.seed = seed
        self.episodes = np.arange(n_envs, dtype=np.int64)  # global episode index of each env's episode
        self.next_episode = n_envs
        self.obs: dict[str, np.ndarray] | None = None

    def episode_seed(self, episode: int) -> int:
        return self.seed + int(episode)

    def reset(self) -> dict[str, np.ndarray]:
        self.obs, _ = self.envs.reset(seed=[self.episode_seed(e) for e in self.episodes])
        return self.obs

    def step(self, chunks: np.ndarray) -> ChunkStep:
        """chunks (N, n_action_steps, A) in action units."""
        if self.obs is None:
            raise RuntimeError("ChunkVecEnv.step before reset()")
        next_obs, reward, terminated, truncated, info = self.envs.step(chunks)
        final_obs = {k: v.copy() for k, v in next_obs.items()}
        done = terminated | truncated
        if done.any():
            seeds: list[int | None] = [None] * self.n_envs
            for i in np.flatnonzero(done):
                self.episodes[i] = self.next_episode
                self.next_episode += 1
                seeds[i] = self.episode_seed(self.episodes[i])
            next_obs, _ = self.envs.reset(seed=seeds, options={"reset_mask": done})
        self.obs = next_obs
        success = np.asarray(info["is_success"], dtype=bool)
        return ChunkStep(
            next_obs,
            final_obs,
            np.asarray(reward, np.float32),
            terminated,
            truncated,
            success,
            int(np.sum(info["env_steps"])),
        )

    def state(self) -> dict[str, np.ndarray]:
        """Episode indices, the episode counter and each env's executed actions (padded, with lengths)."""
        actions = self.envs.call("episode_actions")
        longest = max(len(a) for a in actions)
        width = self.envs.single_action_space.shape[-1]
        padded = np.zeros((self.n_envs, longest, width), np.float32)
        for i, a in enumerate(actions):
            padded[i, : len(a)] = a
        return {
            "episodes": self.episodes.copy(),
            "next_episode": np.array(self.next_episode, np.int64),
            "actions": padded,
            "lengths": np.array([len(a) for a in actions], np.int64),
        }

    def load_state(self, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Restore what `state()` saved (each env re-runs its episode's actions); returns the current obs."""
        if len(state["episodes"]) != self.n_envs:
            raise ValueError(f"saved state has {len(state['episodes'])} envs; this run has n_envs={self.n_envs}")
        self.episodes = np.asarray(state["episodes"], np.int64).copy()
        self.next_episode = int(np.asarray(state["next_episode"]).reshape(-1)[0])
        self.reset()
        for i in np.flatnonzero(np.asarray(state["lengths"]) > 0):
            mask = np.arange(self.n_envs) == i
            seeds: list[int | None] = [None] * self.n_envs
            seeds[i] = self.episode_seed(self.episodes[i])
            replay = state["actions"][i, : int(state["lengths"][i])]
            self.obs, _ = self.envs.reset(seed=seeds, options={"reset_mask": mask, "replay": replay})
        return self.obs

    def close(self) -> None:
        self.envs.close()
