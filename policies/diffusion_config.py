"""Configuration of the diffusion / flow action-chunk policy (Diffusion Policy, Chi et al. 2023): typed and nested —
the sampler, the network, the shortcut model, vision and task conditioning each their own part.

Values come from the Hydra configs (configs/policy/*.yaml); the defaults here are the paper's PushT recipe so the
class is usable from Python alone. A checkpoint's config.json of the earlier flat layout (no `version`) is read
through `upgrade_flat_config`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from .nets.base import NETWORKS, NetworkConfig
from .nets.encoders import check_vision
from .nets.unet1d import UNetConfig
from .samplers.base import SamplerConfig, sampler_class
from .shortcut import ShortcutConfig
from .text_encoder import TASK_CONDITIONINGS
from .typed_config import config_from_dict, config_to_dict

FeatureKind = Literal["state", "image"]
CONFIG_VERSION = 2


@dataclass
class InputFeature:
    """One observation feature: `state` (shape (D,)) or `image` (shape (3, H, W), channels first)."""

    kind: FeatureKind
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        self.shape = tuple(int(s) for s in self.shape)
        if self.kind == "state" and len(self.shape) != 1:
            raise ValueError(f"state feature shape {self.shape}: expected (D,)")
        if self.kind == "image" and (len(self.shape) != 3 or self.shape[0] != 3):
            raise ValueError(f"image feature shape {self.shape}: expected (3, H, W)")
        if self.kind not in ("state", "image"):
            raise ValueError(f"feature kind {self.kind!r}: expected 'state' or 'image'")


@dataclass(frozen=True)
class VisionConfig:
    """Image features: a GroupNorm ResNet with spatial-softmax keypoints per camera (Diffusion Policy's)."""

    crop_shape: tuple[int, int] | None = (84, 84)
    """Random crop at training, centre crop at inference (None: none)."""
    feature_dim: int = 64
    """Features per camera."""
    backbone: str = "resnet18"
    """resnet18 (2 basic blocks per stage) or resnet10 (1)."""
    width: int = 64
    """The first stage's channels, doubled per stage (64: ResNet-18 itself; 16 / 32 for CPU budgets)."""
    share_encoder: bool = False
    """One encoder for all cameras (false: one per camera, Diffusion Policy's share_rgb_model=False)."""
    norm: str = "group"
    """group (Diffusion Policy's GroupNorm) or batch (torchvision's BatchNorm: imported LeRobot ≥ 0.6 encoders)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "crop_shape", tuple(int(v) for v in self.crop_shape) if self.crop_shape else None)


@dataclass(frozen=True)
class TaskConditioningConfig:
    """Multi-task conditioning (policies/text_encoder.py): a learned task embedding and/or the frozen sentence
    embedding of the task's instruction; the task index is read from observation[key]."""

    mode: str = "none"
    """none | id | text | id+text."""
    key: str = "task_index"
    """Observation entry holding the task index."""
    instructions: tuple[str, ...] = ()
    """Task i's instruction (it also fixes the number of tasks)."""
    embed_dim: int = 64
    """Width of each task feature."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "instructions", tuple(str(s) for s in self.instructions))
        if self.mode not in TASK_CONDITIONINGS:
            raise ValueError(f"task_conditioning.mode={self.mode!r}: expected one of {TASK_CONDITIONINGS}")
        if self.mode != "none" and not self.instructions:
            raise ValueError(
                f"task_conditioning.mode={self.mode!r} with task_conditioning.instructions=[]: expected one "
                "instruction per task (it also fixes the number of tasks)"
            )

    @property
    def enabled(self) -> bool:
        return self.mode != "none"


@dataclass(frozen=True)
class EnvironmentSpec:
    """What environment the policy's observations come from, so a user outside diffpilot can feed it."""

    env_id: str = ""
    """The Gymnasium id (e.g. gym_pusht/PushT-v0); empty: unknown."""
    obs_type: str = ""
    """The env's observation type (gym-pusht's obs_type, e.g. environment_state_agent_pos)."""
    keys: dict[str, str] = field(default_factory=dict)
    """env observation key → policy feature, e.g. agent_pos → observation.state."""


@dataclass(frozen=True)
class DiffusionPolicyConfig:
    input_features: dict[str, InputFeature] = field(default_factory=dict)
    """Observation features by key (LeRobot names such as observation.state)."""
    action_dim: int = 2
    action_key: str = "action"
    n_obs_steps: int = 2
    """Observations per window (Diffusion Policy's PushT: 2)."""
    horizon: int = 16
    """Actions per predicted chunk (16)."""
    n_action_steps: int = 8
    """Actions executed per chunk before re-planning (8)."""
    objective: Literal["diffusion", "flow"] = "diffusion"
    """diffusion (a DDPM schedule) or flow (linear flow matching)."""
    prediction_type: Literal["epsilon", "sample", "velocity"] = "epsilon"
    """What the network outputs."""
    num_train_steps: int = 100
    """Levels of the diffusion schedule."""
    beta_schedule: Literal["linear", "squaredcos_cap_v2"] = "squaredcos_cap_v2"
    flow_time_sampling: Literal["uniform", "beta"] = "uniform"
    """Training times of a flow model (beta: π0's emphasis on the noisy end)."""
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    network: NetworkConfig = field(default_factory=UNetConfig)
    shortcut: ShortcutConfig = field(default_factory=ShortcutConfig)
    vision: VisionConfig = field(default_factory=VisionConfig)
    task_conditioning: TaskConditioningConfig = field(default_factory=TaskConditioningConfig)
    environment: EnvironmentSpec = field(default_factory=EnvironmentSpec)
    normalization: dict[str, str] = field(
        default_factory=lambda: {"state": "min_max", "image": "identity", "action": "min_max"}
    )
    """Normalisation mode by feature kind (state / image / action)."""

    def __post_init__(self) -> None:
        features = {
            k: v if isinstance(v, InputFeature) else InputFeature(**v) for k, v in dict(self.input_features).items()
        }
        object.__setattr__(self, "input_features", features)
        object.__setattr__(self, "normalization", dict(self.normalization))
        if not self.input_features:
            raise ValueError("input_features is empty: a policy needs at least one observation feature")
        for name in ("n_obs_steps", "horizon", "n_action_steps", "action_dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: expected an integer ≥ 1")
        if self.n_action_steps > self.horizon - self.n_obs_steps + 1:
            raise ValueError(
                f"n_action_steps={self.n_action_steps}: expected ≤ horizon − n_obs_steps + 1 = "
                f"{self.horizon - self.n_obs_steps + 1}"
            )
        if self.objective not in ("diffusion", "flow"):
            raise ValueError(f"objective={self.objective!r}: expected 'diffusion' or 'flow'")
        kinds = ("epsilon", "sample", "velocity")
        if self.prediction_type not in kinds:
            raise ValueError(f"prediction_type={self.prediction_type!r}: expected one of {kinds}")
        if self.objective == "flow" and self.prediction_type == "epsilon":
            raise ValueError(
                "prediction_type='epsilon' with objective='flow': at t = 0 the flow path holds no data, so ε does "
                "not determine the velocity; expected 'velocity' or 'sample'"
            )
        sampler_class(self.sampler.name, self.objective)  # a sampler of the objective's family
        self.shortcut.check(self.objective, self.prediction_type, self.horizon)
        self.network.check(self.horizon)
        missing = sorted({"action", *(f.kind for f in self.input_features.values())} - set(self.normalization))
        if missing:
            raise ValueError(
                f"normalization={self.normalization}: no mode for {missing}; expected keys state/image/action"
            )
        if self.task_conditioning.enabled and self.task_conditioning.key in self.input_features:
            raise ValueError(
                f"task_conditioning.key={self.task_conditioning.key!r} is also an input feature; expected a "
                "separate key"
            )
        if self.image_keys:
            check_vision(self.vision.backbone, self.vision.width, self.vision.norm)

    @property
    def image_keys(self) -> list[str]:
        return [k for k, f in self.input_features.items() if f.kind == "image"]

    @property
    def state_keys(self) -> list[str]:
        return [k for k, f in self.input_features.items() if f.kind == "state"]

    def replace(self, **changes: Any) -> DiffusionPolicyConfig:
        """A validated copy with `changes` (the config itself is never edited)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {"version": CONFIG_VERSION, **config_to_dict(self)}

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "policy") -> DiffusionPolicyConfig:
        """From a Hydra policy config or a checkpoint's config.json (the earlier flat layout is upgraded)."""
        values = dict(values)
        version = values.pop("version", None)
        if version is None and is_flat_config(values):
            values = upgrade_flat_config(values)
        elif version not in (None, CONFIG_VERSION):
            raise ValueError(f"{where}.version={version!r}: expected {CONFIG_VERSION} (this diffpilot's layout)")
        return config_from_dict(cls, values, where)


# The flat layout of config.json before version 2: old key → (part, new key).
FLAT_KEYS: dict[str, tuple[str, str]] = {
    "sampler": ("sampler", "name"),
    "num_inference_steps": ("sampler", "num_inference_steps"),
    "eta": ("sampler", "eta"),
    "clip_sample": ("sampler", "clip_sample"),
    "timestep_spacing": ("sampler", "timestep_spacing"),
    "flow_time_power": ("sampler", "flow_time_power"),
    "network": ("network", "type"),
    "down_dims": ("network", "down_dims"),
    "kernel_size": ("network", "kernel_size"),
    "n_groups": ("network", "n_groups"),
    "time_embed_dim": ("network", "time_embed_dim"),
    "d_model": ("network", "d_model"),
    "n_layers": ("network", "n_layers"),
    "n_heads": ("network", "n_heads"),
    "mode_experts": ("network", "experts"),
    "mode_top_k": ("network", "top_k"),
    "mode_expert_hidden": ("network", "expert_hidden"),
    "mode_token_routing": ("network", "token_routing"),
    "mode_balance_weight": ("network", "balance_weight"),
    "mode_expert_cache": ("network", "expert_cache"),
    "flow_shortcut_steps": ("shortcut", "steps"),
    "flow_shortcut_fraction": ("shortcut", "fraction"),
    "flow_shortcut_target_steps": ("shortcut", "target_steps"),
    "flow_shortcut_sizes": ("shortcut", "sizes"),
    "flow_shortcut_times": ("shortcut", "times"),
    "flow_shortcut_step_list": ("shortcut", "step_list"),
    "flow_shortcut_warm_shift": ("shortcut", "warm_shift"),
    "crop_shape": ("vision", "crop_shape"),
    "image_feature_dim": ("vision", "feature_dim"),
    "vision_backbone": ("vision", "backbone"),
    "vision_width": ("vision", "width"),
    "share_image_encoder": ("vision", "share_encoder"),
    "task_conditioning": ("task_conditioning", "mode"),
    "task_key": ("task_conditioning", "key"),
    "task_instructions": ("task_conditioning", "instructions"),
    "task_embed_dim": ("task_conditioning", "embed_dim"),
}


def is_flat_config(values: dict[str, Any]) -> bool:
    """Whether `values` is the flat layout: a key only it has, or a part's name holding a string."""
    both = ("sampler", "network", "task_conditioning")  # a part's name now, a string then
    return bool((set(FLAT_KEYS) - set(both)) & set(values)) or any(isinstance(values.get(k), str) for k in both)


def upgrade_flat_config(values: dict[str, Any]) -> dict[str, Any]:
    """A version-1 (flat) policy config as the nested layout: each old key moved into its part; the network part
    keeps only its own type's fields (the flat layout stored every network's)."""
    nested: dict[str, Any] = {}
    parts: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        if key in FLAT_KEYS:
            part, new_key = FLAT_KEYS[key]
            parts.setdefault(part, {})[new_key] = value
        else:
            nested[key] = value
    network = parts.get("network", {})
    kind = network.get("type", "unet")
    own = {"type", *(f.name for f in dataclasses.fields(NETWORKS[kind].config_class))} if kind in NETWORKS else None
    parts["network"] = {k: v for k, v in {"type": kind, **network}.items() if own is None or k in own}
    return {**nested, **parts}
