"""Hydra configs: the single source of truth for hyper-parameters (`pkg://diffpilot.configs`)."""

from pathlib import Path

from omegaconf import OmegaConf


def default_eval_dir(policy_path: str, planner: str | None) -> str:
    """`diffpilot eval`'s output_dir: `eval/` in a run or checkpoint step given directly, `<policy_path>/../eval`
    beside a step's saved policy (its pretrained_model or score-head copy), `runs/eval/<name>` for a policy folder
    outside a run (a shipped `checkpoints/<name>`), `runs/driving/<planner>/eval` for a built-in planner."""
    if planner:
        return f"runs/driving/{planner}/eval"
    path = Path(policy_path)
    if (path / "checkpoints").is_dir() or _is_step(path):
        return f"{policy_path}/eval"
    if (path / "config.json").is_file() and not _is_step(path.parent):
        return f"runs/eval/{path.resolve().name}"
    return f"{policy_path}/../eval"


def _is_step(path: Path) -> bool:
    """Whether `path` is one saved step of a run (what diffpilot.run writes: training_state/, complete.json)."""
    return (path / "training_state").is_dir() or (path / "complete.json").is_file()


OmegaConf.register_new_resolver("eval_dir", default_eval_dir, replace=True)
