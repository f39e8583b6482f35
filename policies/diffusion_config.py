"""Configuration of the diffusion / flow action-chunk policy (Diffusion Policy, Chi et al. 2023).

Values come from the Hydra configs (configs/policy/*.yaml); the defaults here are the paper's PushT
recipe so the class is usable from Python alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from .nets.encoders import check_vision
from .samplers.diffusion import SPACINGS
from .shortcut import check_shortcut_grid, check_shortcut_steps, step_list_jumps

FeatureKind = Literal["state", "image"]


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


@dataclass
class DiffusionPolicyConfig:
    input_features: dict[str, InputFeature] = field(default_factory=dict)
    action_dim: int = 2
    action_key: str = "action"
    # Action chunking (DP's PushT: observe 2, predict 16, execute 8).
    n_obs_steps: int = 2
    horizon: int = 16
    n_action_steps: int = 8
    # Generative objective: "diffusion" (DDPM schedule) or "flow" (linear flow matching).
    objective: Literal["diffusion", "flow"] = "diffusion"
    prediction_type: Literal["epsilon", "sample", "velocity"] = "epsilon"
    num_train_steps: int = 100
    beta_schedule: Literal["linear", "squaredcos_cap_v2"] = "squaredcos_cap_v2"
    flow_time_sampling: Literal["uniform", "beta"] = "uniform"
    # Inference: "ddpm", "ddim", "heun" (diffusion) or "flow_euler", "flow_midpoint", "flow_heun" (flow).
    sampler: str = "ddpm"
    num_inference_steps: int = 100
    eta: float = 0.0
    clip_sample: float | None = 1.0
    # DDIM step spacing: "leading" [90, 80, …, 0], "trailing" [99, 88, …, 0] (starts at the noisiest level) or
    # "quadratic" [90, 71, 54, 40, 28, 18, 10, 4, 1, 0] (short steps near clean data; `quadratic_levels`).
    timestep_spacing: Literal["leading", "trailing", "quadratic"] = "leading"
    # Flow samplers' step-start times t_i = 1 − (1 − i/n)^p: 1 is uniform, 2–3 shortens the steps near the
    # data end (PushT flow Euler-10: 65.0 % uniform, 87.0 % at p = 3; BENCHMARKS.md "Fast inference").
    flow_time_power: float = 1.0
    # Shortcut flow model (policies/shortcut.py; Frans et al. 2025): 0 is plain flow matching; M (a power of two,
    # e.g. 128) conditions the network on the step size d ∈ {0, 2/M, …, 1} and trains `flow_shortcut_fraction` of
    # each batch on self-consistency, so the same weights sample with M small steps or a few large ones.
    flow_shortcut_steps: int = 0
    flow_shortcut_fraction: float = 0.25
    # Steps of the self-consistency target: a jump of 2d is trained towards K steps of 2d/K of the model itself
    # (2: the paper's two half steps; 8: a target from nearly the flow field's own path, for fine-tuning large
    # steps of a model whose small steps are already good; costs K − 2 more no-grad evaluations on those rows).
    flow_shortcut_target_steps: int = 2
    # Restrict the self-consistency rows to these jump sizes 2d and start times (empty: every trained size, t
    # uniform): a fine-tune that spends them on one few-step sampler's grid, e.g. RTI's three steps of 1/8 from
    # t = 0.625 (sizes [0.125], times [0.625, 0.75, 0.875]; with target steps 2d·M = 16 the target is the flow field).
    flow_shortcut_sizes: tuple[float, ...] = ()
    flow_shortcut_times: tuple[float, ...] = ()
    # Or train exactly the steps of one uneven step list (each from its start time, jump = next time − t, the last
    # to 1), e.g. RTI's [0.125, 0.625, 0.875]: jumps 1/2, 1/4, 1/8. Exclusive with sizes / times.
    flow_shortcut_step_list: tuple[float, ...] = ()
    # > 0: those rows start from RTI's input — the chunk shifted by this many executed steps with a linear tail —
    # rather than from the data chunk (the n_action_steps of the RTI the fine-tune is for; 0: off).
    flow_shortcut_warm_shift: int = 0
    # Denoiser network.
    network: Literal["unet", "transformer", "mode"] = "unet"
    down_dims: tuple[int, ...] = (256, 512, 1024)
    kernel_size: int = 5
    n_groups: int = 8
    time_embed_dim: int = 128
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    # MoDE (network="mode", policies/nets/mode.py): experts per block, experts per step, expert width
    # (0: 8/3·d_model), routing on the token as well as the noise level, load-balancing loss weight, and
    # expert caching at inference (precomputed routes + fused experts for the sampler's step list).
    mode_experts: int = 4
    mode_top_k: int = 2
    mode_expert_hidden: int = 0
    mode_token_routing: bool = False
    mode_balance_weight: float = 0.01
    mode_expert_cache: bool = True
    # Task conditioning (policies/text_encoder.py): "none", "id" (learned task embedding), "text" (frozen
    # all-MiniLM-L6-v2 embedding of the instruction) or "id+text"; the task index is observation[task_key]
    # and task_instructions[i] is task i's instruction.
    task_conditioning: Literal["none", "id", "text", "id+text"] = "none"
    task_key: str = "task_index"
    task_instructions: list[str] = field(default_factory=list)
    task_embed_dim: int = 64
    # Vision (policies/nets/encoders.py): random crop at training (centre crop at inference), a GroupNorm ResNet
    # with spatial-softmax keypoints per camera (Diffusion Policy's share_rgb_model=False; share_image_encoder
    # gives all cameras one encoder). vision_backbone: "resnet18" (2 basic blocks per stage) or "resnet10" (1);
    # vision_width: the first stage's channels (64: ResNet-18 itself; 16 / 32 for CPU budgets).
    crop_shape: tuple[int, int] | None = (84, 84)
    image_feature_dim: int = 64
    vision_backbone: str = "resnet18"
    vision_width: int = 64
    share_image_encoder: bool = False
    # Normalisation mode by feature kind (state / image / action).
    normalization: dict[str, str] = field(
        default_factory=lambda: {"state": "min_max", "image": "identity", "action": "min_max"}
    )

    def __post_init__(self) -> None:
        self.input_features = {
            k: v if isinstance(v, InputFeature) else InputFeature(**v) for k, v in dict(self.input_features).items()
        }
        self.down_dims = tuple(self.down_dims)
        self.flow_shortcut_sizes = tuple(float(v) for v in self.flow_shortcut_sizes)
        self.flow_shortcut_times = tuple(float(v) for v in self.flow_shortcut_times)
        self.flow_shortcut_step_list = tuple(float(v) for v in self.flow_shortcut_step_list)
        self.crop_shape = tuple(self.crop_shape) if self.crop_shape else None
        self.normalization = dict(self.normalization)
        self.task_instructions = [str(s) for s in self.task_instructions]
        if not self.input_features:
            raise ValueError("input_features is empty: a policy needs at least one observation feature")
        if self.n_action_steps > self.horizon - self.n_obs_steps + 1:
            raise ValueError(
                f"n_action_steps={self.n_action_steps}: expected ≤ horizon − n_obs_steps + 1 = "
                f"{self.horizon - self.n_obs_steps + 1}"
            )
        for name in ("n_obs_steps", "horizon", "n_action_steps", "action_dim", "num_inference_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: expected an integer ≥ 1")
        if not self.flow_time_power > 0:
            raise ValueError(f"flow_time_power={self.flow_time_power}: expected > 0 (1 is uniform flow steps)")
        if self.eta < 0:
            raise ValueError(f"eta={self.eta}: expected ≥ 0 (0 is deterministic DDIM, 1 is DDPM-like)")
        kinds = ("epsilon", "sample", "velocity")
        if self.prediction_type not in kinds:
            raise ValueError(f"prediction_type={self.prediction_type!r}: expected one of {kinds}")
        if self.objective == "flow" and self.prediction_type == "epsilon":
            raise ValueError(
                "prediction_type='epsilon' with objective='flow': at t = 0 the flow path holds no data, so ε does "
                "not determine the velocity; expected 'velocity' or 'sample'"
            )
        self._check_shortcut()
        missing = sorted({"action", *(f.kind for f in self.input_features.values())} - set(self.normalization))
        if missing:
            raise ValueError(
                f"normalization={self.normalization}: no mode for {missing}; expected keys state/image/action"
            )
        if self.network == "unet" and self.horizon % 2 ** (len(self.down_dims) - 1):
            raise ValueError(
                f"horizon={self.horizon}: the UNet with down_dims={list(self.down_dims)} needs a multiple of "
                f"{2 ** (len(self.down_dims) - 1)}"
            )
        self._check_mode_and_task()
        if self.image_keys:
            check_vision(self.vision_backbone, self.vision_width)
        samplers = {"diffusion": ("ddpm", "ddim", "heun"), "flow": ("flow_euler", "flow_midpoint", "flow_heun")}
        if self.objective not in samplers:
            raise ValueError(f"objective={self.objective!r}: expected 'diffusion' or 'flow'")
        if self.timestep_spacing not in SPACINGS:
            raise ValueError(f"timestep_spacing={self.timestep_spacing!r}: expected one of {SPACINGS}")
        if self.sampler not in samplers[self.objective]:
            raise ValueError(
                f"sampler={self.sampler!r} does not fit objective={self.objective!r}; "
                f"expected one of {samplers[self.objective]}"
            )

    def _check_shortcut(self) -> None:
        check_shortcut_steps(self.flow_shortcut_steps)
        if not self.flow_shortcut_steps:
            return
        if self.objective != "flow" or self.prediction_type != "velocity":
            raise ValueError(
                f"flow_shortcut_steps={self.flow_shortcut_steps} with objective={self.objective!r}, "
                f"prediction_type={self.prediction_type!r}: a shortcut model is a flow model predicting velocity"
            )
        if not 0.0 <= self.flow_shortcut_fraction < 1.0:
            raise ValueError(f"flow_shortcut_fraction={self.flow_shortcut_fraction}: expected a share in [0, 1)")
        k = self.flow_shortcut_target_steps
        if k < 2 or k & (k - 1):
            raise ValueError(f"flow_shortcut_target_steps={k}: expected a power of two ≥ 2 (2: two half steps)")
        check_shortcut_grid(self.flow_shortcut_steps, self.flow_shortcut_sizes, self.flow_shortcut_times)
        if self.flow_shortcut_step_list and (self.flow_shortcut_sizes or self.flow_shortcut_times):
            raise ValueError(
                f"flow_shortcut_step_list={list(self.flow_shortcut_step_list)} with flow_shortcut_sizes / "
                "flow_shortcut_times: expected one way of choosing the trained jumps (clear the other)"
            )
        step_list_jumps(self.flow_shortcut_steps, self.flow_shortcut_step_list)
        if not 0 <= self.flow_shortcut_warm_shift <= self.horizon - 2:
            raise ValueError(
                f"flow_shortcut_warm_shift={self.flow_shortcut_warm_shift}: expected 0 (off) … horizon − 2 = "
                f"{self.horizon - 2} executed steps"
            )

    def _check_mode_and_task(self) -> None:
        networks = ("unet", "transformer", "mode")
        if self.network not in networks:
            raise ValueError(f"network={self.network!r}: expected one of {networks}")
        if self.network == "mode":
            if self.mode_experts < 1 or not 1 <= self.mode_top_k <= self.mode_experts:
                raise ValueError(
                    f"mode_top_k={self.mode_top_k}, mode_experts={self.mode_experts}: expected 1 ≤ top_k ≤ experts"
                )
            if self.mode_balance_weight < 0:
                raise ValueError(f"mode_balance_weight={self.mode_balance_weight}: expected ≥ 0")
            if self.mode_expert_cache and self.mode_token_routing:
                raise ValueError(
                    "mode_expert_cache=true with mode_token_routing=true: token-dependent routes cannot be cached; "
                    "expected mode_expert_cache=false"
                )
        conditionings = ("none", "id", "text", "id+text")
        if self.task_conditioning not in conditionings:
            raise ValueError(f"task_conditioning={self.task_conditioning!r}: expected one of {conditionings}")
        if self.task_conditioning != "none":
            if not self.task_instructions:
                raise ValueError(
                    f"task_conditioning={self.task_conditioning!r} with task_instructions=[]: expected one "
                    "instruction per task (it also fixes the number of tasks)"
                )
            if self.task_key in self.input_features:
                raise ValueError(f"task_key={self.task_key!r} is also an input feature; expected a separate key")

    @property
    def image_keys(self) -> list[str]:
        return [k for k, f in self.input_features.items() if f.kind == "image"]

    @property
    def state_keys(self) -> list[str]:
        return [k for k, f in self.input_features.items() if f.kind == "state"]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DiffusionPolicyConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"policy config: unknown key(s) {unknown}; expected keys among {sorted(known)}")
        return cls(**values)
