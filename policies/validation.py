"""Validation on held-out episodes while training: which episodes are held out (a fraction, a count, a list, or a
robomimic filter key) and how a policy scores on them. The score is the action error of a few-step sample from
fixed noise (what Diffusion Policy logs as its action MSE), beside the denoising loss with fixed noise; the held-out
loss alone follows rollout success poorly (on PushT it bottoms out early, then rises while success keeps climbing)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from diffpilot.errors import ConfigError, check_field_types, whole_number

from .datasets.windowed import WindowedDataset

LOWER_IS_BETTER = {"action_mse": True, "loss": True, "success_rate": False}


@dataclass
class ValidationConfig:
    """`validation.*`: nothing is held out by default (episodes 0, no filter key)."""

    episodes: float | list[int] = 0  # a fraction in (0, 1), a count >= 1, or a list of episode indices
    filter_key: str | None = None  # robomimic_hdf5: hold out mask/<filter_key> (e.g. valid), train on the rest
    every: int = 500  # training steps between scores
    windows: int = 256  # held-out windows scored, evenly spaced over the held-out episodes
    batch_size: int = 64
    sample_steps: int | None = 10  # sampler steps of the scored sample (null: the policy's own)
    seed: int = 0  # the fixed noise, and which episodes a fraction or count holds out
    keep_best: str | None = "action_mse"  # checkpoints/best by action_mse | loss | success_rate (rollouts); null: none

    def __post_init__(self) -> None:
        check_field_types(self, "validation")
        for name in ("every", "windows", "batch_size"):
            whole_number(f"validation.{name}", getattr(self, name))
        if self.sample_steps is not None:
            whole_number("validation.sample_steps", self.sample_steps)
        whole_number("validation.seed", self.seed, minimum=0)
        if self.keep_best is not None and self.keep_best not in LOWER_IS_BETTER:
            raise ConfigError(f"validation.keep_best={self.keep_best!r}: expected one of {sorted(LOWER_IS_BETTER)}")
        episodes = self.episodes
        if isinstance(episodes, bool) or not isinstance(episodes, int | float | list | tuple):
            raise ConfigError(
                f"validation.episodes={episodes!r}: expected a fraction in (0, 1), a count or a list of indices"
            )

    @property
    def enabled(self) -> bool:
        return bool(self.filter_key) or self.episodes not in (0, 0.0, [], ())


def held_out_episodes(n_episodes: int, episodes: float | Sequence[int], seed: int = 0) -> np.ndarray:
    """Sorted indices of the held-out episodes among `n_episodes`: a fraction of them or a count (drawn with `seed`),
    or the listed ones; at least one episode is held out and one is left to train on."""
    what = "expected a fraction in (0, 1), a count or a list of episode indices"
    if isinstance(episodes, list | tuple):
        chosen = np.array(sorted(set(episodes)), dtype=np.int64)
        bad = [e for e in episodes if isinstance(e, bool) or not isinstance(e, int) or not 0 <= e < n_episodes]
        if bad or not len(chosen):
            raise ConfigError(f"validation.episodes={list(episodes)!r}: expected indices in [0, {n_episodes})")
    else:
        if isinstance(episodes, float) and 0 < episodes < 1:
            count = max(1, round(episodes * n_episodes))
        elif isinstance(episodes, int | float) and float(episodes).is_integer() and episodes >= 1:
            count = int(episodes)
        else:
            raise ConfigError(f"validation.episodes={episodes!r}: {what}")
        chosen = np.sort(np.random.default_rng(seed).permutation(n_episodes)[: min(count, n_episodes)])
    if len(chosen) >= n_episodes:
        raise ConfigError(
            f"validation.episodes={episodes!r}: holds out all {n_episodes} episodes; expected at least one to train on"
        )
    return chosen


class HeldOutScore:
    """A policy's score on fixed held-out windows: `action_mse`, the mean squared error (normalised action units,
    whole horizon) of a `sample_steps`-step sample from noise fixed once, and `loss`, the denoising loss with fixed
    noise and times. Both are deterministic for given weights and leave every global RNG alone."""

    def __init__(self, dataset: WindowedDataset, cfg: ValidationConfig):
        self.dataset, self.cfg = dataset, cfg
        n = min(cfg.windows, len(dataset))
        self.items = np.unique(np.linspace(0, len(dataset) - 1, n).round().astype(np.int64))

    def __call__(self, policy) -> dict[str, float]:
        """{"action_mse", "loss"} of `policy` (a chunk policy in eval mode) on the held-out windows."""
        cfg, config = self.cfg, policy.config
        steps = cfg.sample_steps
        sampled = policy.with_sampler(config.sampler.replace(num_inference_steps=steps)) if steps else policy
        device = next(policy.parameters()).device
        noise_gen = torch.Generator().manual_seed(cfg.seed)
        noise = torch.randn((len(self.items), config.horizon, config.action_dim), generator=noise_gen)
        sample_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
        loss_gen = torch.Generator(device=device).manual_seed(cfg.seed + 2)
        squared, losses, count = 0.0, [], 0
        with torch.inference_mode(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            for lo in range(0, len(self.items), cfg.batch_size):
                items = self.items[lo : lo + cfg.batch_size]
                batch = {
                    k: torch.from_numpy(np.ascontiguousarray(v)).to(device)
                    for k, v in self.dataset.get_batch(items).items()
                }
                window = {k: batch[k] for k in policy.observation_keys}
                chunk = noise[lo : lo + len(items)]
                predicted = sampled.predict_chunk(window, noise=chunk, generator=sample_gen, normalized=True)
                target = policy.normalizer.normalize(config.action_key, batch[config.action_key].float())
                squared += float(((predicted - target) ** 2).sum())
                count += target.numel()
                losses.append(float(policy.compute_loss(batch, generator=loss_gen)) * len(items))
        return {"action_mse": squared / count, "loss": sum(losses) / len(self.items)}
