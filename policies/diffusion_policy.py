"""Diffusion / flow action-chunk policy: observation encoder + denoiser network + sampler.

Works on observation dicts (LeRobot feature names such as `observation.state`, `observation.image`);
knows nothing of environments. `predict_chunk` is the deterministic-when-asked noise → action map
that RTI, GPC and DSRL build on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .checkpoint import load_pretrained_module, save_pretrained_module
from .chunk_policy import ChunkPolicy
from .denoiser import NetDenoiser
from .diffusion_config import DiffusionPolicyConfig
from .mode_cache import refresh_expert_cache
from .nets import ConditionalUnet1D, ObservationEncoder, TransformerDenoiserNet
from .nets.mode import MoDEDenoiserNet
from .normalize import Normalizer
from .samplers import DiffusionSchedule, FlowSchedule
from .samplers.factory import make_sampler
from .samplers.parameterization import training_target
from .shortcut import ShortcutDenoiser, StepSizeCode, shortcut_batch, step_list_jumps
from .text_encoder import TaskConditioner


def build_sampler(config: DiffusionPolicyConfig, schedule):
    """The inference sampler named by `config.sampler` over the policy's schedule."""
    return make_sampler(
        config.sampler,
        schedule,
        config.num_inference_steps,
        config.eta,
        config.clip_sample,
        config.timestep_spacing,
        config.flow_time_power,
    )


class DiffusionPolicy(ChunkPolicy):
    type_name = "diffusion"

    def __init__(self, config: DiffusionPolicyConfig):
        super().__init__()
        self.config = config
        shapes = {k: f.shape for k, f in config.input_features.items()}
        shapes[config.action_key] = (config.action_dim,)
        modes = {k: config.normalization[f.kind] for k, f in config.input_features.items()}
        modes[config.action_key] = config.normalization["action"]
        self.normalizer = Normalizer(shapes, modes)
        self.obs_encoder = ObservationEncoder(
            {k: config.input_features[k].shape[0] for k in config.state_keys},
            config.image_keys,
            config.n_obs_steps,
            config.crop_shape,
            config.image_feature_dim,
            config.share_image_encoder,
            config.vision_backbone,
            config.vision_width,
        )
        cond_dim = self.obs_encoder.output_dim
        self.task_conditioner = None
        if config.task_conditioning != "none":
            self.task_conditioner = TaskConditioner(
                config.task_conditioning, config.task_instructions, config.task_embed_dim
            )
            cond_dim += self.task_conditioner.out_dim
        step_code = StepSizeCode(config.flow_shortcut_steps) if config.flow_shortcut_steps else None
        cond_dim += step_code.n_codes if step_code is not None else 0
        if config.network == "unet":
            self.net = ConditionalUnet1D(
                config.action_dim,
                cond_dim,
                config.down_dims,
                config.kernel_size,
                config.n_groups,
                config.time_embed_dim,
            )
        elif config.network in ("transformer", "mode"):
            shape = (config.action_dim, cond_dim, config.horizon, config.d_model, config.n_layers, config.n_heads)
            if config.network == "transformer":
                self.net = TransformerDenoiserNet(*shape)
            else:
                experts = (config.mode_experts, config.mode_top_k, config.mode_expert_hidden, config.mode_token_routing)
                self.net = MoDEDenoiserNet(*shape, *experts)
        else:
            raise ValueError(f"network={config.network!r}: expected 'unet', 'transformer' or 'mode'")
        if config.objective == "diffusion":
            self.schedule = DiffusionSchedule(config.num_train_steps, config.beta_schedule)
        else:
            self.schedule = FlowSchedule(train_time_sampling=config.flow_time_sampling)
        if step_code is None:
            self.denoiser = NetDenoiser(self.net, self.schedule, config.prediction_type)
        else:
            self.denoiser = ShortcutDenoiser(self.net, self.schedule, config.prediction_type, step_code)
        self.sampler = build_sampler(config, self.schedule)
        refresh_expert_cache(self)
        self.reset()

    @property
    def observation_keys(self) -> list[str]:
        """Input features, plus the task index when the policy is task-conditioned."""
        keys = list(self.config.input_features)
        return [*keys, self.config.task_key] if self.task_conditioner is not None else keys

    # ----------------------------------------------------------------- observations
    def _prepare_obs(self, obs: dict[str, Any], window: bool) -> dict[str, torch.Tensor]:
        """Check shapes, convert images to (…, 3, H, W) float in [0, 1] and normalise.

        `window`: tensors are (B, n_obs, *shape); otherwise a single step (B, *shape).
        """
        out = {}
        lead = 2 if window else 1
        for key, feat in self.config.input_features.items():
            x = self._feature(obs, key)
            if feat.kind == "image" and x.dim() == lead + 3 and x.shape[-1] == 3 and x.shape[-3] != 3:
                x = x.movedim(-1, -3)  # (…, H, W, 3) → (…, 3, H, W)
            if feat.kind == "image" and x.dtype == torch.uint8:
                x = x.float() / 255.0
            if tuple(x.shape[lead:]) != feat.shape or x.dim() != lead + len(feat.shape):
                expected = ("B", "n_obs") if window else ("B",)
                raise ValueError(f"observation {key!r} has shape {tuple(x.shape)}; expected {(*expected, *feat.shape)}")
            out[key] = self.normalizer.normalize(key, x.float().to(self.device))
        return out

    def encode(self, obs_window: dict[str, Any]) -> torch.Tensor:
        """Observation window (B, n_obs, …) → global condition (B, C)."""
        obs = self._prepare_obs(obs_window, window=True)
        n = next(iter(obs.values())).shape[1]
        if n != self.config.n_obs_steps:
            raise ValueError(f"observation window has {n} steps; expected n_obs_steps={self.config.n_obs_steps}")
        cond = self.obs_encoder(obs)
        if self.task_conditioner is not None:
            task = self._feature(obs_window, self.config.task_key).to(cond.device)
            cond = torch.cat([cond, self.task_conditioner(task)], dim=-1)
        return cond

    # ----------------------------------------------------------------- training
    def compute_loss(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> torch.Tensor:
        """Denoising loss on a batch of windows: obs (B, n_obs, …), action (B, horizon, A); with MoDE plus
        mode_balance_weight × the experts' load-balancing loss."""
        cond = self.encode({k: batch[k] for k in self.observation_keys})
        action = torch.as_tensor(batch[self.config.action_key]).float().to(cond.device)
        x0 = self.normalizer.normalize(self.config.action_key, action)
        eps = torch.randn(x0.shape, generator=generator, device=generator.device if generator else "cpu").to(x0.device)
        t = self.schedule.sample_training_times(x0.shape[0], generator).to(x0.device)
        if isinstance(self.denoiser, ShortcutDenoiser):
            c = self.config
            grid = dict(
                target_steps=c.flow_shortcut_target_steps,
                sizes=c.flow_shortcut_sizes,
                times=c.flow_shortcut_times,
                warm_shift=c.flow_shortcut_warm_shift,
                jumps=step_list_jumps(c.flow_shortcut_steps, c.flow_shortcut_step_list),
            )
            x_t, t, d, target = shortcut_batch(
                self.denoiser, x0, eps, t, cond, c.flow_shortcut_fraction, generator, **grid
            )
            loss = nn.functional.mse_loss(self.denoiser.raw(x_t, t, cond, d), target)
        else:
            alpha, sigma = self.schedule.alpha_sigma(t)
            x_t = alpha[:, None, None] * x0 + sigma[:, None, None] * eps
            pred = self.denoiser.raw(x_t, t, cond)
            loss = nn.functional.mse_loss(pred, training_target(self.config.prediction_type, x0, eps))
        if isinstance(self.net, MoDEDenoiserNet):
            loss = loss + self.config.mode_balance_weight * self.net.balance_loss
        return loss

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        """The training loss (forward is what DistributedDataParallel wraps)."""
        return self.compute_loss(batch)

    # ----------------------------------------------------------------- inference
    def condition(self, obs_window: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """The denoiser's condition (B, C) for a window, and the same tensor as the batch/device reference."""
        cond = self.encode(obs_window)
        return cond, cond

    def set_sampler(
        self, sampler: str | None = None, num_inference_steps: int | None = None, spacing: str | None = None
    ) -> None:
        """Switch the inference sampler (e.g. a DDPM-trained policy sampled with DDIM-10), validated."""
        cfg = self.config
        cfg.sampler = sampler or cfg.sampler
        cfg.num_inference_steps = num_inference_steps or cfg.num_inference_steps
        cfg.timestep_spacing = spacing or cfg.timestep_spacing
        cfg.__post_init__()
        self.sampler = build_sampler(cfg, self.schedule)
        refresh_expert_cache(self)

    # ----------------------------------------------------------------- checkpoints
    def load_stats(self, stats: dict[str, dict[str, np.ndarray]]) -> None:
        self.normalizer.load_stats(stats)

    def save_pretrained(self, directory: str | Path) -> None:
        """Write config.json and model.safetensors (normalisation stats included) atomically."""
        save_pretrained_module(self, directory, self.type_name, self.config.to_dict())

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str = "cpu") -> DiffusionPolicy:
        return load_pretrained_module(cls, DiffusionPolicyConfig.from_dict, directory, map_location)
