"""Hydra configs: the single source of truth for hyper-parameters (`pkg://diffpilot.configs`)."""

from omegaconf import OmegaConf


def default_eval_dir(policy_path: str, planner: str | None) -> str:
    """`diffpilot eval`'s output_dir: `<policy_path>/../eval` beside the checkpoint, `runs/driving/<planner>/eval`
    for a built-in planner (which has no checkpoint to sit beside)."""
    return f"runs/driving/{planner}/eval" if planner else f"{policy_path}/../eval"


OmegaConf.register_new_resolver("eval_dir", default_eval_dir, replace=True)
