"""One run loop for every trainer (BC of any policy, DSRL, DPPO, GSPO): the run directory, atomic safetensors
checkpoints with exact resume, TensorBoard, the progress bar, the final evaluation and the result file.

    <output_dir>/
      checkpoints/step_<N>/training_state/   modules.safetensors, optim_<name>.safetensors, rng_rank<r>.safetensors,
                                            arrays_<name>.safetensors (replay buffers, env states), state.json
      checkpoints/step_<N>/pretrained_model/ the policy at that point (loadable with load_policy)
      checkpoints/step_<N>/complete.json    written last: the step and every file's size; a step without it was
                                            cut mid-save and is refused or skipped by name
      checkpoints/last                      → the newest complete checkpoint
      checkpoints/best                      → best_<N>/ {pretrained_model, best.json}: the policy at its best
                                            validation (or rollout) score, when a run keeps one
      tensorboard/                          every scalar of the run (train/…, eval/…)
      eval/eval_info.json                   the final evaluation, when there is one
      result.json                           what the run reports at the end

N counts the run's unit (gradient steps, environment steps or updates). An algorithm keeps its loop in its own file
and calls `advance`, `due`, `log`, `show` and `save`; `resume` puts a checkpoint back in place so that the continued
run is bit-for-bit the uninterrupted one. Never pickle: tensors go to safetensors, everything else to JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import load_file, save_file

from diffpilot.atomic import atomic_path, atomic_write_bytes, atomic_write_json, fsync_path
from diffpilot.errors import CheckpointError, ConfigError, check_field_types

CHECKPOINTS = "checkpoints"
TENSORBOARD_DIR = "tensorboard"
TRAINING_STATE = "training_state"
PRETRAINED = "pretrained_model"
STATE_FILE = "state.json"
COMPLETE_FILE = "complete.json"
BEST_FILE = "best.json"
RESULT_FILE = "result.json"


@dataclass
class TrainingState:
    """What a checkpoint restores exactly, besides torch's global RNG (always saved, per rank): modules' and
    optimisers' states, extra random generators, named dicts of arrays (a replay buffer, the envs' episode state)
    and JSON-able counters."""

    modules: dict[str, torch.nn.Module] = field(default_factory=dict)
    optimizers: dict[str, torch.optim.Optimizer] = field(default_factory=dict)
    generators: dict[str, torch.Generator] = field(default_factory=dict)
    arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    counters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WandbSettings:
    """`wandb.*`: optional Weights & Biases logging beside TensorBoard (rank 0)."""

    enabled: bool = False
    project: str = "diffpilot"
    entity: str | None = None
    mode: str = "online"  # online | offline (`wandb sync <output_dir>/wandb/offline-run-…` later)
    name: str | None = None  # the run's name; default: the output directory's

    def __post_init__(self) -> None:
        check_field_types(self, "wandb")
        if self.mode not in ("online", "offline"):
            raise ConfigError(f"wandb.mode={self.mode!r}: expected online or offline")


def wandb_settings(values: dict[str, Any] | None) -> WandbSettings:
    """A run config's `wandb` block (None: off) as WandbSettings; an unknown key is a ConfigError naming it."""
    values = dict(values or {})
    unknown = sorted(set(values) - set(WandbSettings.__dataclass_fields__))
    if unknown:
        raise ConfigError(f"wandb.{unknown[0]}: unknown field; expected {sorted(WandbSettings.__dataclass_fields__)}")
    return WandbSettings(**values)


class Run:
    """A run in `output_dir`, counting progress in `unit`s; rank 0 of `world` writes (under torchrun)."""

    def __init__(self, output_dir: str | os.PathLike, unit: str = "step", rank: int = 0, world: int = 1):
        self.dir = Path(output_dir)
        self.unit, self.rank, self.world = unit, rank, world
        self.step = 0
        self._previous = 0  # the step the loop's current window of `advance`s started at
        self._checked = False  # whether `due` looked at that window (the next `advance` starts a new one)
        self._saved_step: int | None = None
        self._bar = None
        self._writer = None
        self._wandb = None

    def attach_wandb(self, settings: WandbSettings, config: dict[str, Any]) -> None:
        """Also log every scalar, the evaluations' videos and plots to Weights & Biases (rank 0; `config` is the
        run's resolved config). Files go to <output_dir>/wandb."""
        if not settings.enabled or self.rank != 0:
            return
        try:
            import wandb
        except ImportError:
            raise ConfigError("wandb.enabled=true: the wandb package is not installed (pip install wandb)") from None
        id_file = self.dir / "wandb" / "diffpilot_run_id"  # a resumed run continues its W&B run
        run_id = id_file.read_text().strip() if id_file.is_file() else uuid.uuid4().hex[:8]
        self._wandb = wandb.init(
            project=settings.project, entity=settings.entity, mode=settings.mode, dir=str(self.dir),
            name=settings.name or self.dir.name, config=config, id=run_id, resume="allow",
            settings=wandb.Settings(console="off"),  # scalars are logged explicitly; no wrapped stdout / stderr
        )  # fmt: skip
        atomic_write_bytes(id_file, run_id.encode())
        self._wandb.define_metric(self.unit)
        self._wandb.define_metric("*", step_metric=self.unit)  # charts against the run's own step count

    # ----------------------------------------------------------------- progress
    @contextlib.contextmanager
    def progress(self, total: int, desc: str) -> Iterator[Run]:
        """A progress bar of `total` units (rank 0 only) for the loop inside the block."""
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, initial=self.step, desc=desc, unit=self.unit, disable=self.rank != 0)
        try:
            yield self
        finally:
            self._bar.close()
            self._bar = None

    def advance(self, n: int = 1) -> None:
        """Count `n` more units done (the bar follows). The advances between two rounds of `due` checks are one
        window: an iteration that advances many times (a rollout of many vector steps) is checked once."""
        if self._checked:
            self._previous, self._checked = self.step, False
        self.step += int(n)
        if self._bar is not None:
            self._bar.update(self.step - self._bar.n)

    def show(self, **values: Any) -> None:
        """Values shown beside the progress bar (loss, success so far, …)."""
        if self._bar is not None:
            self._bar.set_postfix(values, refresh=False)

    def due(self, every: int) -> bool:
        """Whether the advances since the previous round of checks crossed a multiple of `every` (0: never)."""
        self._checked = True
        return bool(every) and self.step // every > self._previous // every

    # ----------------------------------------------------------------- TensorBoard
    @property
    def writer(self):
        if self._writer is None and self.rank == 0:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.dir / TENSORBOARD_DIR))
        return self._writer

    def log(self, values: dict[str, float | None], prefix: str = "train") -> None:
        """Scalars at the current step, as `<prefix>/<name>` (None values are skipped)."""
        if self.writer is None:
            return
        for name, value in values.items():
            if value is not None:
                self.writer.add_scalar(f"{prefix}/{name}", float(value), self.step)
        self.writer.flush()
        if self._wandb is not None:
            logged = {f"{prefix}/{k}": float(v) for k, v in values.items() if v is not None}
            self._wandb.log({**logged, self.unit: self.step})

    # ----------------------------------------------------------------- checkpoints
    def checkpoint_dir(self, step: int | None = None) -> Path:
        return self.dir / CHECKPOINTS / f"step_{self.step if step is None else step:07d}"

    def save(self, state: TrainingState, policy=None) -> Path:
        """Checkpoint `state` (and `policy` as a loadable pretrained_model) at the current step; `last` then
        points at it. Every file is written to a temp file, fsynced and renamed; complete.json comes last. A step
        already saved by this run (a loop's last checkpoint, then the final one) is not written again; a folder of
        that step left by a crash or an earlier run in the same directory is removed first, so its complete.json
        never describes files being rewritten."""
        directory = self.checkpoint_dir()
        if self._saved_step == self.step:
            return directory
        if self.rank == 0 and directory.exists():  # a cut save, or a step of an earlier run: written anew
            import shutil

            shutil.rmtree(directory)
            fsync_path(directory.parent)
        self._barrier()
        training = directory / TRAINING_STATE
        atomic_save_tensors(training / f"rng_rank{self.rank}.safetensors", rng_tensors(state.generators))
        if self.rank == 0:
            if policy is not None:
                policy.save_pretrained(directory / PRETRAINED)
            modules = {f"{name}.{k}": v for name, m in state.modules.items() for k, v in m.state_dict().items()}
            atomic_save_tensors(training / "modules.safetensors", modules)
            optimizers = {}
            for name, opt in state.optimizers.items():
                tensors, optimizers[name] = flatten_optimizer(opt)
                atomic_save_tensors(training / f"optim_{name}.safetensors", tensors)
            for name, arrays in state.arrays.items():
                with atomic_path(training / f"arrays_{name}.safetensors") as tmp:
                    save_numpy({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp))
            meta = {"step": self.step, "unit": self.unit, "world_size": self.world, "optimizers": optimizers}
            atomic_write_json(training / STATE_FILE, {**meta, "counters": state.counters})
        self._barrier()  # every rank's files are written before the checkpoint is marked complete
        if self.rank == 0:
            mark_complete(directory, self.step, self.unit)
            self._point("last", directory)
        self._saved_step = self.step
        return directory

    def save_best(self, policy, score: dict[str, Any]) -> Path:
        """checkpoints/best → best_<N>/: `policy` as pretrained_model and best.json (`score`), marked complete; the
        previous best is removed (rank 0)."""
        import shutil

        checkpoints = self.dir / CHECKPOINTS
        directory = checkpoints / f"best_{self.step:07d}"
        if directory.exists():
            shutil.rmtree(directory)
        policy.save_pretrained(directory / PRETRAINED)
        atomic_write_json(directory / BEST_FILE, score)
        mark_complete(directory, self.step, self.unit)
        self._point("best", directory)
        for old in checkpoints.glob("best_*"):
            if old != directory:
                shutil.rmtree(old)
        return directory

    def _point(self, name: str, directory: Path) -> None:
        """Switch the link checkpoints/<name> to `directory` atomically."""
        link = self.dir / CHECKPOINTS / name
        tmp = link.with_name(f".{name}.tmp")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(directory.name)
        os.replace(tmp, link)
        fsync_path(link.parent)

    def _barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def resume(self, checkpoint: str | os.PathLike, state: TrainingState) -> dict[str, Any]:
        """Put a checkpoint (`…/checkpoints/step_N` or a run directory: its newest) back into `state` in place and
        continue counting from its step; returns the saved counters."""
        directory = latest_checkpoint(checkpoint)
        training = directory / TRAINING_STATE
        meta = read_state(directory)
        if meta.get("world_size", 1) != self.world:
            raise CheckpointError(
                f"{training / STATE_FILE}: saved with world_size={meta.get('world_size')}; this run has {self.world} "
                "— data order would differ"
            )
        tensors = load_tensors(training / "modules.safetensors", "training checkpoint")
        for name, module in state.modules.items():
            own = module_part(tensors, name)
            if not own:
                raise CheckpointError(f"{training}: no weights for module {name!r}")
            module.load_state_dict(own)
        for name, opt in state.optimizers.items():
            if name not in meta["optimizers"]:
                raise CheckpointError(f"{training / STATE_FILE}: no state for optimizer {name!r}")
            flat = load_tensors(training / f"optim_{name}.safetensors", "training checkpoint")
            restore_optimizer(opt, flat, meta["optimizers"][name])
        for name in state.arrays:
            path = training / f"arrays_{name}.safetensors"
            if not path.is_file():
                raise CheckpointError(f"{training}: {path.name} is missing (needed to resume)")
            state.arrays[name] = load_numpy(str(path))
        rng = load_tensors(training / f"rng_rank{self.rank}.safetensors", "training checkpoint")
        restore_rng(rng, state.generators)
        self.step = self._previous = self._saved_step = int(meta["step"])
        self._checked = False
        state.counters = dict(meta.get("counters", {}))
        return state.counters

    # ----------------------------------------------------------------- results
    def record_evaluation(self, info: dict[str, Any], subdir: str = "eval") -> None:
        """The evaluation's eval_info.json and its summary as eval/… scalars at the current step (W&B: with its
        videos and the PNG plots beside them)."""
        record_evaluation(info, self.dir / subdir, self.step, self)
        if self._wandb is not None:
            import wandb

            media = {f"{subdir}/video_{Path(v).stem}": wandb.Video(v, format="mp4") for v in info.get("videos", [])}
            media |= {f"{subdir}/{p.stem}": wandb.Image(str(p)) for p in sorted((self.dir / subdir).glob("*.png"))}
            if media:
                self._wandb.log({**media, self.unit: self.step})

    def finish(self, result: dict[str, Any]) -> dict[str, Any]:
        """Write result.json (rank 0) and close TensorBoard; returns the result."""
        if self.rank == 0:
            atomic_write_json(self.dir / RESULT_FILE, result)
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._wandb is not None:
            self._wandb.summary.update({k: v for k, v in result.items() if isinstance(v, int | float | str)})
            self._wandb.finish()
            self._wandb = None
        return result


def record_evaluation(
    info: dict[str, Any], output_dir: str | os.PathLike, step: int = 0, run: Run | None = None
) -> None:
    """eval_info.json in `output_dir` and the summary's scalars (per task too, for a suite) in TensorBoard: the run's
    own log, or `output_dir/tensorboard` for a stand-alone evaluation; prints the result line."""
    output_dir = Path(output_dir)
    atomic_write_json(output_dir / "eval_info.json", info)
    scalars = {k: info[k] for k in SUMMARY_SCALARS if isinstance(info.get(k), (int, float))}
    if "success_ci95" in info:
        scalars["success_ci95_low"], scalars["success_ci95_high"] = info["success_ci95"]
    scalars |= {f"task_{k}_success_rate": t["success_rate"] for k, t in info.get("tasks", {}).items()}
    if run is not None:
        run.log(scalars, prefix="eval")
    else:
        log_scalars(output_dir / TENSORBOARD_DIR, scalars, step)
    print(f"{summary_line(info)}; results in {output_dir / 'eval_info.json'}")


SUMMARY_SCALARS = (
    *("success_rate", "mean_max_coverage", "pdms", "epdms"),
    *("nc", "dac", "ddc", "tlc", "ep", "ep_v1", "ttc", "c", "lk", "hc", "ec"),
)


def summary_line(info: dict[str, Any]) -> str:
    """The evaluation in one line: success with its interval (and coverage), or a driving score."""
    if "pdms" in info:
        return f"PDMS {info['pdms']:.1f}, EPDMS {info['epdms']:.1f} over {info['scenes']} {info['split']} scenes"
    lo, hi = info["success_ci95"]
    where = f" ({info['suite']}, {len(info['tasks'])} task(s))" if "suite" in info else ""
    coverage = info.get("mean_max_coverage")
    shown = "" if coverage is None else f"; mean max coverage {coverage:.3f}"
    return (
        f"success {info['success_rate']:.1%} (95% CI {lo:.1%}–{hi:.1%}) over {info['episodes']} episodes{where}{shown}"
    )


def log_scalars(logdir: str | os.PathLike, values: dict[str, float | None], step: int, prefix: str = "eval") -> None:
    """Append scalars to the TensorBoard log in `logdir` (outside a run); None values are skipped."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(logdir)) as writer:
        for name, value in values.items():
            if value is not None:
                writer.add_scalar(f"{prefix}/{name}", value, step)


@contextlib.contextmanager
def naming_resume(resume: str | os.PathLike | None) -> Iterator[None]:
    """A CheckpointError inside the block (a bad `resume=` checkpoint) becomes one ConfigError that names it."""
    try:
        yield
    except CheckpointError as err:
        raise ConfigError(f"resume={str(resume)!r}: {err}") from None


def resume_if_asked(trainer: Any, resume: str | os.PathLike | None) -> None:
    """`trainer.resume(resume)` when a `resume=` checkpoint (or run directory: its newest) was given."""
    if resume:
        with naming_resume(resume):
            trainer.resume(resume)


# --------------------------------------------------------------------- files
def latest_checkpoint(path: str | os.PathLike) -> Path:
    """`path` itself when it is a checkpoint (`…/checkpoints/step_N`), else its run's newest complete checkpoint
    (incomplete ones, cut mid-save, are skipped and named on stderr). A CheckpointError names an incomplete one."""
    path = Path(path)
    if is_checkpoint_dir(path):
        check_complete(path)
        return path
    if path.name == CHECKPOINTS:
        path = path.parent
    steps = sorted(p for p in (path / CHECKPOINTS).glob("step_*") if p.is_dir())
    complete = [p for p in steps if is_complete(p)]
    newest = complete[-1].name if complete else ""
    skipped = [p.name for p in steps if not is_complete(p) and p.name > newest]
    if skipped:
        import sys

        print(
            f"diffpilot: skipping incomplete checkpoint(s) {', '.join(skipped)} in {path / CHECKPOINTS} "
            f"(no {COMPLETE_FILE}: cut mid-save)",
            file=sys.stderr,
        )
    if not complete:
        raise CheckpointError(f"{path}: no complete checkpoint (step_*/{COMPLETE_FILE}) there or under {CHECKPOINTS}/")
    return complete[-1]


def mark_complete(checkpoint: Path, step: int, unit: str) -> None:
    """Write a checkpoint's complete.json (the step and every file's size) once all its files are written."""
    written = sorted(f for f in checkpoint.rglob("*") if f.is_file() and f.name != COMPLETE_FILE)
    files = {str(f.relative_to(checkpoint)): f.stat().st_size for f in written}
    atomic_write_json(checkpoint / COMPLETE_FILE, {"step": step, "unit": unit, "files": files})


def is_checkpoint_dir(path: Path) -> bool:
    """Whether `path` is one step of a run (`checkpoints/step_N`, complete or not)."""
    return (path / TRAINING_STATE).is_dir() or (path / COMPLETE_FILE).is_file()


def is_complete(checkpoint: Path) -> bool:
    """Whether a step's complete.json was written (after every other file of it)."""
    return (checkpoint / COMPLETE_FILE).is_file()


def check_complete(checkpoint: Path) -> None:
    """A CheckpointError naming `checkpoint` when it has no complete.json, or a file it lists is missing or resized."""
    marker = checkpoint / COMPLETE_FILE
    if not marker.is_file():
        raise CheckpointError(
            f"{checkpoint}: incomplete checkpoint (no {COMPLETE_FILE}: the save was cut, or diffpilot wrote it before "
            "it marked complete checkpoints); use an earlier step or the run directory (its newest complete step)"
        )
    listed = read_json(marker, "checkpoint marker").get("files", {})
    for name, size in listed.items():
        file = checkpoint / name
        if not file.is_file() or file.stat().st_size != size:
            found = file.stat().st_size if file.is_file() else "missing"
            raise CheckpointError(f"{file}: {found} bytes, but {COMPLETE_FILE} lists {size}; the checkpoint is damaged")


def policy_dir(path: str | os.PathLike) -> Path:
    """The saved-policy folder `path` names: itself (config.json + weights), a run's or step's pretrained_model
    (the run's newest complete step); a step's pretrained_model only when the step is complete."""
    path = Path(path)
    if (path / CHECKPOINTS).is_dir() or is_checkpoint_dir(path):
        path = latest_checkpoint(path) / PRETRAINED
    elif path.name == PRETRAINED and is_checkpoint_dir(path.parent):
        check_complete(path.parent)
    return path


def read_state(checkpoint: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint's state.json: step, unit, world size, optimiser metadata and the algorithm's counters."""
    return read_json(Path(checkpoint) / TRAINING_STATE / STATE_FILE, "training checkpoint")


def read_json(path: str | os.PathLike, what: str) -> Any:
    """A JSON file, or a CheckpointError saying `what` is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what}: {path} does not exist")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{what}: {path} is not valid JSON ({e})") from e


def load_module_tensors(checkpoint: str | os.PathLike, name: str) -> dict[str, torch.Tensor]:
    """The state dict a checkpoint holds for module `name` (e.g. DSRL's actor)."""
    tensors = load_tensors(Path(checkpoint) / TRAINING_STATE / "modules.safetensors", "training checkpoint")
    return module_part(tensors, name)


def module_part(tensors: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """Module `name`'s entries of a modules.safetensors dict (saved as `<name>.<key>`), keyed as its state dict."""
    return {k.removeprefix(f"{name}."): v for k, v in tensors.items() if k.startswith(f"{name}.")}


def atomic_save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor]) -> None:
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))


def load_tensors(path: str | os.PathLike, what: str) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what}: {path} does not exist")
    try:
        return load_file(str(path))
    except SafetensorError as err:
        raise CheckpointError(f"{what}: {path} is not a readable safetensors file ({err})") from None


def rng_tensors(generators: dict[str, torch.Generator]) -> dict[str, torch.Tensor]:
    return {"torch": torch.get_rng_state(), **{f"generator.{k}": g.get_state() for k, g in generators.items()}}


def restore_rng(tensors: dict[str, torch.Tensor], generators: dict[str, torch.Generator]) -> None:
    torch.set_rng_state(tensors["torch"])
    for name, generator in generators.items():
        generator.set_state(tensors[f"generator.{name}"])


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
    """Load what `flatten_optimizer` wrote back into `opt`."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    for key, value in meta["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]]
    opt.load_state_dict({"state": state, "param_groups": groups})
