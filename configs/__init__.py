"""Hydra configs: the single source of truth for hyper-parameters (`pkg://diffpilot.configs`)."""

from pathlib import Path

from omegaconf import OmegaConf


def default_eval_dir(policy_path: str, planner: str | None) -> str:
    """`diffpilot eval`'s output_dir: `<policy_path>/../eval` beside a run's checkpoint, `runs/eval/<name>` for a
    policy folder outside a run (a shipped `checkpoints/<name>`), `runs/driving/<planner>/eval` for a built-in
    planner (which has no checkpoint to sit beside)."""
    if planner:
        return f"runs/driving/{planner}/eval"
    path = Path(policy_path)
    if path.name != "pretrained_model" and (path / "config.json").is_file():
        return f"runs/eval/{path.resolve().name}"
    return f"{policy_path}/../eval"


OmegaConf.register_new_resolver("eval_dir", default_eval_dir, replace=True)
