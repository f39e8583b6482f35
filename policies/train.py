"""Behaviour-cloning trainer: AdamW, cosine schedule with warm-up, EMA, gradient clipping, optional
autocast, TensorBoard, tqdm, atomic safetensors checkpoints and exact resume. Runs unchanged under
`torchrun` (DistributedDataParallel; gloo on CPU, nccl on GPU): each rank takes every world-th window.
"""

from __future__ import annotations

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
from tqdm.auto import tqdm

from .checkpoint import CheckpointError, atomic_save_tensors, atomic_write_json, load_tensors, read_json
from .datasets.windowed import WindowedDataset
from .ema import EMA


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
        self.betas = tuple(self.betas)
        for name in ("steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name}={getattr(self, name)}: expected a positive integer")


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


class Trainer:
    """Trains `policy` (an nn.Module whose forward(batch) returns the loss) on `dataset` windows."""

    def __init__(
        self,
        policy: nn.Module,
        dataset: WindowedDataset,
        cfg: TrainConfig,
        output_dir: str | Path,
        eval_fn: Callable[[nn.Module, int], dict[str, float | None]] | None = None,
    ):
        self.cfg, self.dataset, self.eval_fn = cfg, dataset, eval_fn
        self.output_dir = Path(output_dir)
        self.rank, self.world = _distributed()
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        self.device = pick_device(cfg.device)
        if self.device.type == "cuda" and self.world > 1:
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.manual_seed(cfg.seed + self.rank)
        self.policy = policy.to(self.device)
        self.model: nn.Module = self.policy
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.policy, device_ids=ids)
        self.optimizer = torch.optim.AdamW(
            self.policy.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay
        )
        self.ema = EMA(self.policy, cfg.ema_power, max_decay=cfg.ema_max_decay) if cfg.use_ema else None
        self.order = BatchOrder(len(dataset), cfg.batch_size, cfg.seed, self.rank, self.world)
        self.step, self.epoch, self.batch_index = 0, 0, 0

    # ----------------------------------------------------------------- checkpoints
    @property
    def inference_policy(self) -> nn.Module:
        return self.ema.model if self.ema is not None else self.policy

    def save(self) -> Path:
        """checkpoints/step_XXXXXX/{pretrained_model, training_state}; `last` points at the newest."""
        ckpt = self.output_dir / "checkpoints" / f"step_{self.step:07d}"
        state_dir = ckpt / "training_state"
        atomic_save_tensors(state_dir / f"rng_rank{self.rank}.safetensors", {"torch": torch.get_rng_state()})
        if self.rank == 0:
            self.inference_policy.save_pretrained(ckpt / "pretrained_model")
            atomic_save_tensors(state_dir / "model.safetensors", self.policy.state_dict())
            tensors, meta = flatten_optimizer(self.optimizer)
            atomic_save_tensors(state_dir / "optimizer.safetensors", tensors)
            atomic_write_json(
                state_dir / "state.json",
                {
                    "step": self.step,
                    "epoch": self.epoch,
                    "batch_index": self.batch_index,
                    "world_size": self.world,
                    "optimizer": meta,
                    "train": asdict(self.cfg),
                },
            )
        if self.world > 1:
            dist.barrier()  # every rank's files are written before `last` points here
        if self.rank == 0:
            link = self.output_dir / "checkpoints" / "last"
            tmp = link.with_name(".last.tmp")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(ckpt.name)
            os.replace(tmp, link)
        return ckpt

    def resume(self, checkpoint: str | Path) -> None:
        """Restore weights, EMA, optimiser, step, data position and RNG from a checkpoint directory."""
        ckpt = Path(checkpoint)
        state_dir = ckpt / "training_state"
        state = read_json(state_dir / "state.json", "training checkpoint")
        saved = state.get("train", {})
        changed = [
            f"train.{k}={getattr(self.cfg, k)!r} (checkpoint: {saved[k]!r})"
            for k in RESUME_MUST_MATCH
            if k in saved and _jsonable(getattr(self.cfg, k)) != saved[k]
        ]
        if changed:
            raise CheckpointError(
                f"{state_dir / 'state.json'}: resuming with a different {', '.join(changed)}; an exact "
                "continuation needs the same data order and schedule"
            )
        if state.get("world_size", 1) != self.world:
            raise CheckpointError(
                f"{state_dir / 'state.json'}: saved with world_size={state.get('world_size')}; this run has "
                f"{self.world} — data order would differ"
            )
        self.policy.load_state_dict(load_tensors(state_dir / "model.safetensors", "training checkpoint"))
        if self.ema is not None:
            ema_state = load_tensors(ckpt / "pretrained_model" / "model.safetensors", "training checkpoint")
            self.ema.model.load_state_dict(ema_state)
        restore_optimizer(
            self.optimizer, load_tensors(state_dir / "optimizer.safetensors", "optimizer"), state["optimizer"]
        )
        rng = load_tensors(state_dir / f"rng_rank{self.rank}.safetensors", "training checkpoint")
        torch.set_rng_state(rng["torch"])
        self.step, self.epoch, self.batch_index = state["step"], state["epoch"], state["batch_index"]

    # ----------------------------------------------------------------- loop
    def _next_batch(self) -> dict[str, torch.Tensor]:
        if self.batch_index >= self.order.batches_per_epoch:
            self.epoch, self.batch_index = self.epoch + 1, 0
        items = self.order.batch(self.epoch, self.batch_index)
        self.batch_index += 1
        return {
            k: torch.from_numpy(np.ascontiguousarray(v)).to(self.device)
            for k, v in self.dataset.get_batch(items).items()
        }

    def train(self, stop_at: int | None = None) -> Path:
        """Run to cfg.steps (or stop early at `stop_at`, as an interruption would), then checkpoint."""
        from torch.utils.tensorboard import SummaryWriter

        cfg = self.cfg
        writer = SummaryWriter(str(self.output_dir / "tensorboard")) if self.rank == 0 else None
        bar = tqdm(total=cfg.steps, initial=self.step, desc="train", unit="step", disable=self.rank != 0)
        self.policy.train()
        tic, last_step = time.perf_counter(), self.step
        end = min(cfg.steps, stop_at) if stop_at is not None else cfg.steps
        while self.step < end:
            batch = self._next_batch()
            lr = lr_at(self.step, cfg)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.amp):
                loss = self.model(batch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.grad_clip_norm)
            self.optimizer.step()
            self.step += 1
            if self.ema is not None:
                self.ema.update(self.policy, self.step)
            bar.update(1)
            if self.step % cfg.log_every == 0 or self.step == end:
                rate = (self.step - last_step) / max(time.perf_counter() - tic, 1e-9)
                tic, last_step = time.perf_counter(), self.step
                bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.2e}", it_s=f"{rate:.1f}")
                if writer is not None:
                    writer.add_scalar("train/loss", loss.item(), self.step)
                    writer.add_scalar("train/lr", lr, self.step)
                    writer.add_scalar("train/grad_norm", float(grad_norm), self.step)
                    writer.add_scalar("train/steps_per_s", rate, self.step)
            if cfg.save_every and self.step % cfg.save_every == 0 and self.step < cfg.steps:
                self.save()
            if self.eval_fn is not None and cfg.eval_every and self.step % cfg.eval_every == 0 and self.rank == 0:
                with torch.random.fork_rng():  # rollouts must not shift the training RNG (exact resume)
                    for name, value in self.eval_fn(self.inference_policy.eval(), self.step).items():
                        if value is not None:  # e.g. coverage on tasks without one
                            writer.add_scalar(f"eval/{name}", value, self.step)
                self.policy.train()
        bar.close()
        final = self.save()
        if writer is not None:
            writer.close()
        return final


RESUME_MUST_MATCH = ("steps", "batch_size", "lr", "warmup_steps", "seed", "betas", "weight_decay")


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimizer state as flat tensors (for safetensors) and JSON-able metadata (no pickle)."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, pstate in sd["state"].items():
        for name, value in pstate.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{name}"] = value
            else:
                scalars[f"{pid}.{name}"] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Load what `flatten_optimizer` wrote back into `opt` (BC training and the RL trainers resume with it)."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    for key, value in meta["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]]
    opt.load_state_dict({"state": state, "param_groups": groups})
