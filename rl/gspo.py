"""GSPO (group sequence policy optimisation) and GRPO on the driving simulator, for any policy that exposes
per-token log-probabilities of sampled token sequences (WAM-Diff: ``token_log_probs`` by one-step unmasking).

One update (docs/methods.md):
1. draw S training scenes; the policy samples a group of G trajectories per scene (B = G * S token sequences of
   length L, row r belongs to scene r % S);
2. reward r = PDMS of each trajectory from the project's scorer (sim.scoring: LQR + bicycle simulation, EP
   normalised by the scene's PDM-Closed reference);
3. group-normalised advantages A_i = (r_i - mean r) / std r within each scene's group (0 where std is 0);
4. log-probabilities of the sampled tokens under the sampling policy (old) and, for `epochs` gradient steps,
   under the current one:
   - GSPO: sequence ratio s_i = exp(mean_t (log p_new - log p_old)) (the geometric mean of the token ratios),
     loss = -mean_i min(s_i A_i, clip(s_i, 1 - eps_low, 1 + eps_high) A_i), eps = 3e-4 / 4e-4, no KL;
   - GRPO: token ratios r_it = exp(log p_new - log p_old) clipped per token (eps 0.2), averaged over tokens,
     then over sequences.

``run(cfg)`` is the `diffpilot rl algo=gspo|grpo` runner on the one run loop (diffpilot/run.py): a checkpoint (policy,
AdamW, both random generators, the update index, the history) every `checkpoint_every` updates and at the end, each
with the policy as its pretrained_model (``resume=<run dir or checkpoint>`` continues exactly), TensorBoard, and the
reward history in result.json.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from diffpilot.envs.driving import ObservationConfig, observe
from diffpilot.errors import ConfigError
from diffpilot.policies.driving import trajectory_tokens as tt
from diffpilot.policies.registry import load_policy
from diffpilot.run import (
    PRETRAINED,
    Run,
    TrainingState,
    latest_checkpoint,
    naming_resume,
    resume_if_asked,
    wandb_settings,
)
from diffpilot.sim.evaluate import SceneScorer
from diffpilot.sim.planners import PDMClosedPlanner, simulate_in_scene
from diffpilot.sim.scenarios import make_split

from .registry import register_algorithm

LOSSES = ("gspo", "grpo")
SUBSCORES = ("nc", "dac", "ep_v1", "ttc", "c")  # the PDMS terms


@dataclass
class GSPOConfig:
    """configs/algo/{gspo,grpo}.yaml (minus `runner`)."""

    loss: str = "gspo"
    group_size: int = 3  # G trajectories per scene
    scenes_per_update: int = 16  # S
    updates: int = 150
    epochs: int = 2  # gradient steps per rollout batch (the first is on-policy: ratio 1)
    lr: float = 3e-5
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    eps_low: float = 3e-4
    eps_high: float = 4e-4
    temperature: float = 1.0  # sampling temperature of the rollouts
    iterations: int = 16  # unmasking iterations of the rollouts
    train_scenes: int = 400  # pool of training-split scenes (first seeds of the split)
    checkpoint_every: int = 25

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"algo.loss={self.loss!r}: expected one of {LOSSES}")
        for name in ("group_size", "scenes_per_update", "updates", "epochs", "train_scenes", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"algo.{name}={getattr(self, name)!r}: expected an integer >= 1")
        if self.group_size < 2:
            raise ConfigError(f"algo.group_size={self.group_size}: expected >= 2 (advantages are group-normalised)")
        if not (0 < self.eps_low < 1 and self.eps_high > 0):
            raise ConfigError(
                f"algo.eps_low={self.eps_low}, eps_high={self.eps_high}: expected 0 < eps_low < 1, eps_high > 0"
            )


# ----------------------------------------------------------------------------------------------- losses


def group_advantages(rewards: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """rewards (S, G) -> (S, G) advantages (r - mean) / std within each row (population std; 0 if std = 0)."""
    mean = rewards.mean(1, keepdim=True)
    std = rewards.std(1, unbiased=False, keepdim=True)
    return torch.where(std > eps, (rewards - mean) / std.clamp_min(eps), torch.zeros_like(rewards))


def gspo_loss(logp_new: torch.Tensor, logp_old: torch.Tensor, adv: torch.Tensor, eps_low: float, eps_high: float):
    """GSPO. logp_* (N, L) per-token log-probs, adv (N,) -> (loss, stats). s_i = exp(mean_t(new - old))."""
    log_ratio = (logp_new - logp_old).mean(-1)
    s = log_ratio.exp()
    clipped = s.clamp(1 - eps_low, 1 + eps_high)
    obj = torch.minimum(s * adv, clipped * adv)
    return -obj.mean(), _stats(s, clipped * adv < s * adv)


def grpo_loss(logp_new: torch.Tensor, logp_old: torch.Tensor, adv: torch.Tensor, eps_low: float, eps_high: float):
    """GRPO (no KL). Token ratios r_it clipped per token; mean over tokens, then sequences -> (loss, stats)."""
    r = (logp_new - logp_old).exp()
    a = adv[:, None]
    clipped = r.clamp(1 - eps_low, 1 + eps_high) * a
    obj = torch.minimum(r * a, clipped).mean(-1)
    return -obj.mean(), _stats(r, clipped < r * a)


def _stats(ratio: torch.Tensor, clip_active: torch.Tensor) -> dict[str, float]:
    """Mean ratio and the fraction of ratios whose clipped term is the one taken (no gradient there)."""
    return {"ratio_mean": float(ratio.detach().mean()), "clip_frac": float(clip_active.float().mean())}


LOSS_FNS = {"gspo": gspo_loss, "grpo": grpo_loss}


# ----------------------------------------------------------------------------------------------- scenes


class ScenePool:
    """Training scenes with their observations, scoring contexts and PDM-Closed reference progress."""

    def __init__(self, num_scenes: int, obs_config: ObservationConfig, split: str = "train"):
        self.scenes = make_split(split, num_scenes)
        obs = [observe(s, obs_config) for s in self.scenes]
        self.obs = {k: np.stack([o[k] for o in obs]) for k in obs[0]}
        reference = PDMClosedPlanner()
        self.scorers = [SceneScorer.of(s, reference.plan(s)) for s in self.scenes]

    def __len__(self) -> int:
        return len(self.scenes)

    def observations(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        return {k: v[idx] for k, v in self.obs.items()}

    def score(self, i: int, proposals: np.ndarray) -> dict[str, np.ndarray]:
        """Scene i's proposals (G, 8, 3) -> PDMS (G,) in [0, 1] and the sub-scores."""
        s = self.scorers[i].score(simulate_in_scene(self.scenes[i], proposals))
        return {"pdms": s.pdms, **{k: getattr(s, k) for k in SUBSCORES}}


# ----------------------------------------------------------------------------------------------- training


class GroupPolicyTrainer:
    """GSPO / GRPO updates of `policy` (anything with ``sample_tokens(obs, repeat, iterations, guidance_scale,
    temperature, generator)``, ``token_log_probs(obs, tokens, repeat)``, ``save_pretrained``) in the run directory
    `output_dir`, counting updates."""

    def __init__(self, policy, pool: ScenePool, cfg: GSPOConfig, output_dir: str | Path, seed: int = 0):
        self.policy, self.pool, self.cfg = policy, pool, cfg
        self.run = Run(output_dir, "update")
        self.opt = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scene_gen = torch.Generator().manual_seed(seed)
        self.sample_gen = torch.Generator().manual_seed(seed + 1)
        self.history: list[dict[str, float]] = []

    @property
    def update(self) -> int:
        return self.run.step

    def step(self) -> dict[str, float]:
        """One rollout batch and `epochs` gradient steps; returns the logged scalars."""
        cfg, pol = self.cfg, self.policy
        s, g = cfg.scenes_per_update, cfg.group_size
        idx = torch.randperm(len(self.pool), generator=self.scene_gen)[:s].numpy()
        obs = self.pool.observations(idx)
        pol.eval()
        tokens = pol.sample_tokens(
            obs,
            repeat=g,
            iterations=cfg.iterations,
            guidance_scale=1.0,
            temperature=cfg.temperature,
            generator=self.sample_gen,
        )
        traj = tt.decode(tokens.cpu()).numpy().reshape(g, s, tt.POSES, tt.CHANNELS)
        scores = [self.pool.score(int(i), traj[:, j]) for j, i in enumerate(idx)]
        rewards = torch.as_tensor(np.stack([sc["pdms"] for sc in scores]), dtype=torch.float32)  # (S, G)
        adv = group_advantages(rewards).T.reshape(-1)  # row r = scene r % S, member r // S
        with torch.no_grad():
            logp_old = pol.token_log_probs(obs, tokens, repeat=g)
        pol.train()
        stats: dict[str, float] = {}
        for _ in range(cfg.epochs):
            logp = pol.token_log_probs(obs, tokens, repeat=g)
            loss, stats = LOSS_FNS[cfg.loss](logp, logp_old, adv, cfg.eps_low, cfg.eps_high)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(pol.parameters(), cfg.max_grad_norm)
            self.opt.step()
        pol.eval()
        self.run.advance()
        row = {
            "step": self.update,
            "reward_mean": float(rewards.mean()),
            "reward_group_std": float(rewards.std(1, unbiased=False).mean()),
            "loss": loss.item(),
            "logp_seq_mean": float(logp_old.sum(-1).mean()),
            **stats,
            **{k: float(np.mean([sc[k] for sc in scores])) for k in SUBSCORES},
        }
        self.history.append(row)
        return row

    def train(self) -> None:
        """Updates until cfg.updates, each logged; a checkpoint every cfg.checkpoint_every updates and at the end."""
        cfg, run = self.cfg, self.run
        with run.progress(cfg.updates, cfg.loss):
            while run.step < cfg.updates:
                row = self.step()
                run.log({k: v for k, v in row.items() if k != "step"}, prefix=cfg.loss)
                run.show(reward=f"{row['reward_mean']:.3f}", clip=f"{row['clip_frac']:.2f}")
                if run.due(cfg.checkpoint_every) or run.step == cfg.updates:
                    self.save()

    # ------------------------------------------------------------------- state (exact resume)
    def state(self) -> TrainingState:
        generators = {"scene": self.scene_gen, "sample": self.sample_gen}
        counters = {"history": self.history, "config": asdict(self.cfg)}
        return TrainingState({"policy": self.policy}, {"policy": self.opt}, generators, counters=counters)

    def save(self) -> Path:
        """The run's checkpoint at this update, the policy as its pretrained_model."""
        return self.run.save(self.state(), self.policy)

    def resume(self, checkpoint: str | Path) -> None:
        """Continue exactly from a checkpoint (or a run directory's newest)."""
        self.history = list(self.run.resume(checkpoint, self.state())["history"])


def algo_config(algo: Any) -> GSPOConfig:
    fields = {k: v for k, v in dict(algo).items() if k != "runner"}
    try:
        return GSPOConfig(**fields)
    except TypeError as err:
        raise ConfigError(f"algo: {err}; expected the fields of GSPOConfig") from err


@register_algorithm("gspo")
def run(cfg) -> dict:
    """`diffpilot rl algo=gspo|grpo task=driving policy_path=<BC checkpoint>` (or resume=<run or checkpoint>)."""
    acfg = algo_config(cfg.algo)
    wandb = wandb_settings(OmegaConf.to_container(cfg.wandb, resolve=True) if "wandb" in cfg else None)
    if cfg.task.get("env") != "driving":
        raise ConfigError(f"task={cfg.task.get('name')!r}: {acfg.loss} runs on task=driving")
    if not cfg.get("policy_path") and not cfg.get("resume"):
        raise ConfigError("policy_path=None: expected the BC policy checkpoint directory to start from")
    torch.manual_seed(int(cfg.seed))
    with naming_resume(cfg.get("resume")):
        source = latest_checkpoint(cfg.resume) / PRETRAINED if cfg.get("resume") else Path(cfg.policy_path)
    policy = load_policy(source)
    for name in ("sample_tokens", "token_log_probs"):
        if not hasattr(policy, name):
            raise ConfigError(
                f"policy_path={str(source)!r}: a {type(policy).__name__} has no {name}(); "
                "expected a token policy (wamdiff)"
            )
    pool = ScenePool(acfg.train_scenes, ObservationConfig(**cfg.task.observation))
    trainer = GroupPolicyTrainer(policy, pool, acfg, cfg.output_dir, seed=int(cfg.seed))
    resume_if_asked(trainer, cfg.get("resume"))
    trainer.run.attach_wandb(wandb, OmegaConf.to_container(cfg, resolve=True))
    t0 = time.perf_counter()
    trainer.train()
    summary = {
        "algo": acfg.loss,
        "config": asdict(acfg),
        "policy_path": str(cfg.get("policy_path")),
        "checkpoint": str(trainer.run.checkpoint_dir()),
        "updates": trainer.update,
        "seconds": time.perf_counter() - t0,
        "history": trainer.history,
    }
    return trainer.run.finish(summary)
