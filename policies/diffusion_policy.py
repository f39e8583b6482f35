"""Diffusion / flow action-chunk policy: observation encoder + denoiser network + sampler.

Works on observation dicts (LeRobot feature names such as `observation.state`, `observation.image`); knows nothing
of environments. The network comes from the network registry (`config.network.type`), the sampler from the sampler
registry (`config.sampler.name`); `predict_chunk` is the deterministic-when-asked noise → action map that RTI, GPC and
DSRL build on. `with_sampler` / `with_n_action_steps` give a differently sampled view of the same weights.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .chunk_policy import ChunkPolicy
from .denoiser import NetDenoiser
from .diffusion_config import DiffusionPolicyConfig
from .nets import ObservationEncoder, build_network
from .normalize import Normalizer
from .registry import register_policy
from .samplers import DiffusionSchedule, FlowSchedule, SamplerConfig, make_sampler
from .shortcut import ShortcutDenoiser, StepSizeCode
from .text_encoder import TaskConditioner


def feature_input(x: torch.Tensor, key: str, feature, window: bool) -> torch.Tensor:
    """Observation `key` as the network takes it before normalisation: float, images (…, 3, H, W) in [0, 1] (from
    uint8 or (…, H, W, 3)); a ValueError names a wrong shape. x is (B, n_obs, …) when `window`, else (B, …)."""
    lead = 2 if window else 1
    if feature.kind == "image" and x.dim() == lead + 3 and x.shape[-1] == 3 and x.shape[-3] != 3:
        x = x.movedim(-1, -3)  # (…, H, W, 3) → (…, 3, H, W)
    if feature.kind == "image" and x.dtype == torch.uint8:
        x = x.float() / 255.0
    if tuple(x.shape[lead:]) != feature.shape or x.dim() != lead + len(feature.shape):
        expected = ("B", "n_obs") if window else ("B",)
        raise ValueError(f"observation {key!r} has shape {tuple(x.shape)}; expected {(*expected, *feature.shape)}")
    return x.float()


class ObservationSpec:
    """A policy's inputs for someone feeding it from outside diffpilot; `str()` is the readable summary."""

    def __init__(self, config: DiffusionPolicyConfig, keys: list[str]):
        self.config, self.keys = config, keys
        self.environment = config.environment
        self.features = {k: (f.kind, f.shape) for k, f in config.input_features.items()}

    def __str__(self) -> str:
        c, env = self.config, self.environment
        source = {feature: key for key, feature in env.keys.items()}
        lines = [f"select_action(obs) takes one step per key, (B, *shape); the policy keeps {c.n_obs_steps} of them:"]
        for key in self.keys:
            kind, shape = self.features.get(key, ("task index", (1,)))
            origin = f"  ← env key {source[key]!r}" if key in source else ""
            lines.append(f"  {key:<32} {kind} {shape}{origin}")
        if env.env_id:
            lines.append(f"environment: {env.env_id}, obs_type={env.obs_type!r}")
        lines.append(f"action: {c.action_key} ({c.action_dim},), {c.n_action_steps} executed per chunk of {c.horizon}")
        return "\n".join(lines)


@register_policy
class DiffusionPolicy(ChunkPolicy):
    type_name = "diffusion"
    config_class = DiffusionPolicyConfig

    def __init__(self, config: DiffusionPolicyConfig):
        super().__init__()
        self.config = config
        shapes = {k: f.shape for k, f in config.input_features.items()}
        shapes[config.action_key] = (config.action_dim,)
        modes = {k: config.normalization[f.kind] for k, f in config.input_features.items()}
        modes[config.action_key] = config.normalization["action"]
        self.normalizer = Normalizer(shapes, modes)
        vision = config.vision
        self.obs_encoder = ObservationEncoder(
            {k: config.input_features[k].shape[0] for k in config.state_keys},
            config.image_keys,
            config.n_obs_steps,
            vision.crop_shape,
            vision.feature_dim,
            vision.share_encoder,
            vision.backbone,
            vision.width,
            vision.norm,
        )
        cond_dim = self.obs_encoder.output_dim
        self.task_conditioner = None
        tc = config.task_conditioning
        if tc.enabled:
            self.task_conditioner = TaskConditioner(tc.mode, list(tc.instructions), tc.embed_dim)
            cond_dim += self.task_conditioner.out_dim
        step_code = StepSizeCode(config.shortcut.steps) if config.shortcut.steps else None
        cond_dim += step_code.n_codes if step_code is not None else 0
        self.net = build_network(config.network, config.action_dim, cond_dim, config.horizon)
        if config.objective == "diffusion":
            self.schedule = DiffusionSchedule(config.num_train_steps, config.beta_schedule)
        else:
            self.schedule = FlowSchedule(train_time_sampling=config.flow_time_sampling)
        if step_code is None:
            self.denoiser = NetDenoiser(self.net, self.schedule, config.prediction_type)
        else:
            self.denoiser = ShortcutDenoiser(
                self.net, self.schedule, config.prediction_type, step_code, config.shortcut
            )
        self.sampler = make_sampler(config.sampler, self.schedule)
        self._prepare_network()
        self.reset()

    def _prepare_network(self) -> None:
        """Tell the network every model time the sampler's default step list asks at (MoDE caches its experts)."""
        times = self.sampler.query_times(self.sampler.default_timesteps())
        self.net.prepare(self.schedule.model_time(torch.tensor(times)).tolist())

    @property
    def observation_keys(self) -> list[str]:
        """Input features, plus the task index when the policy is task-conditioned."""
        keys = list(self.config.input_features)
        return [*keys, self.config.task_conditioning.key] if self.task_conditioner is not None else keys

    def observation_spec(self) -> ObservationSpec:
        """What the policy reads and where it comes from (printable): each input feature's shape, the env it was
        trained on, its observation type and the env keys renamed to the features."""
        return ObservationSpec(self.config, self.observation_keys)

    # ----------------------------------------------------------------- views
    def with_sampler(self, sampler: SamplerConfig) -> DiffusionPolicy:
        """The same weights (shared, not copied) sampled with `sampler`; this policy is unchanged."""
        view = self._view(self.config.replace(sampler=sampler))
        view.sampler = make_sampler(sampler, self.schedule)
        view._prepare_network()
        return view

    # ----------------------------------------------------------------- observations
    def _prepare_obs(self, obs: dict[str, Any], window: bool) -> dict[str, torch.Tensor]:
        """Check shapes, convert images to (…, 3, H, W) float in [0, 1] and normalise.

        `window`: tensors are (B, n_obs, *shape); otherwise a single step (B, *shape).
        """
        return {
            key: self.normalizer.normalize(
                key, feature_input(self._feature(obs, key), key, feat, window).to(self.device)
            )
            for key, feat in self.config.input_features.items()
        }

    def encode(self, obs_window: dict[str, Any]) -> torch.Tensor:
        """Observation window (B, n_obs, …) → global condition (B, C)."""
        obs = self._prepare_obs(obs_window, window=True)
        n = next(iter(obs.values())).shape[1]
        if n != self.config.n_obs_steps:
            raise ValueError(f"observation window has {n} steps; expected n_obs_steps={self.config.n_obs_steps}")
        cond = self.obs_encoder(obs)
        if self.task_conditioner is not None:
            task = self._feature(obs_window, self.config.task_conditioning.key).to(cond.device)
            cond = torch.cat([cond, self.task_conditioner(task)], dim=-1)
        return cond

    # ----------------------------------------------------------------- training
    def compute_loss(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> torch.Tensor:
        """Denoising loss on a batch of windows: obs (B, n_obs, …), action (B, horizon, A); plus the network's own
        auxiliary loss (MoDE: load balancing)."""
        cond = self.encode({k: batch[k] for k in self.observation_keys})
        action = torch.as_tensor(batch[self.config.action_key]).float().to(cond.device)
        x0 = self.normalizer.normalize(self.config.action_key, action)
        eps = torch.randn(x0.shape, generator=generator, device=generator.device if generator else "cpu").to(x0.device)
        t = self.schedule.sample_training_times(x0.shape[0], generator).to(x0.device)
        loss = self.denoiser.loss(x0, eps, t, cond, generator)
        aux = self.net.aux_loss()
        return loss if aux is None else loss + aux

    # ----------------------------------------------------------------- inference
    def condition(self, obs_window: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """The denoiser's condition (B, C) for a window, and the same tensor as the batch/device reference."""
        cond = self.encode(obs_window)
        return cond, cond

    # ----------------------------------------------------------------- checkpoints
    def load_stats(self, stats: dict[str, dict[str, np.ndarray]]) -> None:
        self.normalizer.load_stats(stats)
