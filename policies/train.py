"""Behaviour cloning for every policy family (diffusion, flow, MoDE; the driving planners): AdamW, a cosine schedule
with warm-up, EMA, gradient clipping and optional autocast, on the one run loop (diffpilot/run.py: checkpoints with
exact resume, TensorBoard, progress). Runs unchanged under `torchrun` (DistributedDataParallel; gloo on CPU, nccl
on GPU): each rank takes every world-th window.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from diffpilot.errors import CheckpointError, check_field_types, whole_number
from diffpilot.run import PRETRAINED, Run, TrainingState, latest_checkpoint, read_json, read_state

from .checkpoint import CONFIG_FILE
from .ema import EMA
from .validation import LOWER_IS_BETTER, HeldOutScore


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 1e-6
    betas: tuple[float, float] = (0.95, 0.999)
    warmup_steps: int = 500
    grad_clip_norm: float = 10.0
    use_ema: bool = True
    ema_power: float = 0.75
    ema_max_decay: float = 0.9999
    amp: bool = False
    seed: int = 0
    log_every: int = 50
    save_every: int = 0  # 0: only at the end
    eval_every: int = 0  # 0: never during training
    num_threads: int = 0  # 0: torch's default
    device: str = "auto"

    def __post_init__(self) -> None:
        check_field_types(self, "train")
        for name in ("steps", "batch_size"):
            whole_number(f"train.{name}", getattr(self, name))


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to cfg.lr, then cosine decay to 0 at cfg.steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class BatchOrder:
    """Deterministic epoch-wise shuffling: epoch e is a permutation seeded by (seed, e); a rank takes every
    world-th item. The position (epoch, batch) is all a resume needs."""

    def __init__(self, n_items: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        self.n_items, self.batch_size, self.seed, self.rank, self.world = n_items, batch_size, seed, rank, world
        per_rank = n_items // world
        self.batches_per_epoch = per_rank // batch_size
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"dataset has {n_items} windows; batch_size={batch_size} × world size {world} needs at least "
                f"{batch_size * world}"
            )

        self._epoch, self._perm = -1, np.empty(0, dtype=np.int64)

    def batch(self, epoch: int, index: int) -> np.ndarray:
        if epoch != self._epoch:  # one permutation per epoch, not per step
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n_items)[self.rank :: self.world]
            self._epoch = epoch
        return self._perm[index * self.batch_size : (index + 1) * self.batch_size]


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))  # one GPU per rank
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return rank, world


def as_json(value: Any) -> Any:
    """`value` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


def config_differences(saved: Any, live: Any, name: str) -> list[str]:
    """Dotted fields where a checkpoint's saved config and the live one differ, with both values."""
    if isinstance(saved, dict) and isinstance(live, dict):
        keys = [k for k in (*saved, *(k for k in live if k not in saved)) if k != "version"]
        nested = (config_differences(saved.get(k), live.get(k), f"{name}.{k}") for k in keys)
        return [line for lines in nested for line in lines]
    return [] if saved == live else [f"{name}={live!r} (checkpoint: {saved!r})"]


class BCTrainer:
    """Behaviour cloning of `policy` (an nn.Module whose forward(batch) returns the loss) on `dataset` (anything with
    `len()` and `get_batch(indices) -> dict of arrays`) in the run directory `output_dir`."""

    def __init__(
        self,
        policy: nn.Module,
        dataset,
        cfg: TrainConfig,
        output_dir: str | Path,
        eval_fn: Callable[[nn.Module, int], dict[str, float | None]] | None = None,
        validation: HeldOutScore | None = None,
        augment: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
        keep_best: str | None = None,
    ):
        self.cfg, self.dataset, self.eval_fn, self.validation = cfg, dataset, eval_fn, validation
        self.augment = augment  # on each training batch, on the training device (never at validation or evaluation)
        self.best: dict[str, Any] | None = None  # the best score so far: {"metric", "value", "step"}
        # the metric checkpoints/best follows (None: the validation's keep_best, or none without validation)
        self.keep_best = keep_best if keep_best is not None else (validation.cfg.keep_best if validation else None)
        rank, world = _distributed()
        self.run = Run(output_dir, "step", rank, world)
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        self.device = pick_device(cfg.device)
        if self.device.type == "cuda" and world > 1:
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.manual_seed(cfg.seed + rank)
        self.policy = policy.to(self.device)
        self.model: nn.Module = self.policy
        if world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.policy, device_ids=ids)
        self.optimizer = torch.optim.AdamW(
            self.policy.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay
        )
        self.ema = EMA(self.policy, cfg.ema_power, max_decay=cfg.ema_max_decay) if cfg.use_ema else None
        self.order = BatchOrder(len(dataset), cfg.batch_size, cfg.seed, rank, world)
        self.epoch, self.batch_index = 0, 0

    @property
    def rank(self) -> int:
        return self.run.rank

    @property
    def step(self) -> int:
        return self.run.step

    @property
    def inference_policy(self) -> nn.Module:
        return self.ema.model if self.ema is not None else self.policy

    def state(self) -> TrainingState:
        modules = {"policy": self.policy, **({"ema": self.ema.model} if self.ema is not None else {})}
        counters = {"epoch": self.epoch, "batch_index": self.batch_index, "train": asdict(self.cfg), "best": self.best,
                    "episodes": self._episodes()}  # fmt: skip
        return TrainingState(modules, {"policy": self.optimizer}, counters=counters)

    def _episodes(self) -> dict[str, list[int] | None]:
        """The training and held-out episodes (None: all / none), which an exact resume must keep."""
        held_out = self.validation.dataset.episodes if self.validation is not None else None
        return {"train": getattr(self.dataset, "episodes", None), "held_out": held_out}

    def save(self) -> Path:
        """checkpoints/step_N with the (EMA) policy as pretrained_model and the exact training state."""
        return self.run.save(self.state(), self.inference_policy if self.rank == 0 else None)

    def resume(self, checkpoint: str | Path) -> None:
        """Restore weights, EMA, optimiser, step, data position and RNG from a checkpoint directory."""
        directory = latest_checkpoint(checkpoint)
        saved = read_state(directory).get("counters", {}).get("train", {})
        live = as_json({k: getattr(self.cfg, k) for k in RESUME_MUST_MATCH if k in saved})
        changed = config_differences({k: saved[k] for k in live}, live, "train")
        if changed:
            raise CheckpointError(
                f"{checkpoint}: resuming with a different {', '.join(changed)}; an exact continuation needs the same "
                "data order and schedule"
            )
        episodes = read_state(directory).get("counters", {}).get("episodes")
        if episodes is not None and episodes != self._episodes():
            raise CheckpointError(
                f"{checkpoint}: resuming with other training / held-out episodes (validation.episodes, "
                "validation.filter_key or validation.seed changed); an exact continuation needs the same split"
            )
        saved_policy = read_json(directory / PRETRAINED / CONFIG_FILE, "the saved policy")
        config_class = getattr(type(self.policy), "config_class", None)
        if config_class is not None and isinstance(saved_policy.get("config"), dict):
            # as the checkpoint loads: fields added since it was written take their defaults
            saved_policy["config"] = as_json(config_class.from_dict(saved_policy["config"]).to_dict())
        live_policy = {"type": self.policy.type_name, "config": self.policy.config.to_dict()}
        changed = config_differences(saved_policy, as_json(live_policy), "policy")
        if changed:
            raise CheckpointError(
                f"{checkpoint}: resuming with a different {', '.join(changed[:3])}; pass the task, policy and "
                "dataset the run was started with"
            )
        counters = self.run.resume(directory, self.state())
        self.epoch, self.batch_index, self.best = counters["epoch"], counters["batch_index"], counters.get("best")

    def _next_batch(self) -> dict[str, torch.Tensor]:
        if self.batch_index >= self.order.batches_per_epoch:
            self.epoch, self.batch_index = self.epoch + 1, 0
        items = self.order.batch(self.epoch, self.batch_index)
        self.batch_index += 1
        batch = {
            k: torch.from_numpy(np.ascontiguousarray(v)).to(self.device)
            for k, v in self.dataset.get_batch(items).items()
        }
        return batch if self.augment is None else self.augment(batch)

    def train(self, stop_at: int | None = None) -> Path:
        """Run to cfg.steps (or stop early at `stop_at`, as an interruption would), then checkpoint."""
        cfg, run = self.cfg, self.run
        end = min(cfg.steps, stop_at) if stop_at is not None else cfg.steps
        self.policy.train()
        tic, last_step = time.perf_counter(), run.step
        with run.progress(cfg.steps, "train"):
            while run.step < end:
                batch = self._next_batch()
                lr = lr_at(run.step, cfg)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.amp):
                    loss = self.model(batch)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.grad_clip_norm)
                self.optimizer.step()
                run.advance()
                if self.ema is not None:
                    self.ema.update(self.policy, run.step)
                if run.due(cfg.log_every) or run.step == end:
                    rate = (run.step - last_step) / max(time.perf_counter() - tic, 1e-9)
                    tic, last_step = time.perf_counter(), run.step
                    values = {"loss": loss.item(), "lr": lr, "grad_norm": float(grad_norm), "steps_per_s": rate}
                    run.log(values)
                    run.show(loss=f"{loss.item():.4f}", lr=f"{lr:.2e}", it_s=f"{rate:.1f}")
                if self.eval_fn is not None and run.due(cfg.eval_every) and self.rank == 0:
                    with torch.random.fork_rng():  # rollouts must not shift the training RNG (exact resume)
                        scores = self.eval_fn(self.inference_policy.eval(), run.step)
                    run.log(scores, prefix="eval")
                    self._keep_if_best(scores)
                    self.policy.train()
                if self.validation is not None and run.due(self.validation.cfg.every) and self.rank == 0:
                    scores = self.validation(self.inference_policy.eval())  # fixed noise; global RNGs untouched
                    run.log(scores, prefix="val")
                    run.show(val=f"{scores['action_mse']:.4f}")
                    self._keep_if_best(scores)
                    self.policy.train()
                if run.due(cfg.save_every) and run.step < cfg.steps:  # after the scores: the best so far is saved
                    self.save()
        return self.save()

    def _keep_if_best(self, scores: dict[str, float | None]) -> None:
        """checkpoints/best ← the (EMA) policy when `scores` holds the validation's keep_best metric at its best."""
        metric = self.keep_best
        value = scores.get(metric) if metric else None
        if value is None:
            return
        if self.best is not None:
            better = value < self.best["value"] if LOWER_IS_BETTER[metric] else value > self.best["value"]
            if not better:
                return
        self.best = {"metric": metric, "value": float(value), "step": self.step}
        self.run.save_best(self.inference_policy, self.best)


RESUME_MUST_MATCH = ("steps", "batch_size", "lr", "warmup_steps", "seed", "betas", "weight_decay")
