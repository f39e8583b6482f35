"""Scripted-expert demonstrations of LIBERO-Object tasks written in robomimic's hdf5 layout (LIBERO's own datasets
use it too), successful episodes only: `env_args` names the LIBERO problem class and carries the BDDL file, the
suite and task so a reader can rebuild the env."""

from __future__ import annotations

from pathlib import Path

from tqdm.auto import tqdm

from diffpilot.envs.experts.libero import libero_expert_for
from diffpilot.envs.experts.robomimic_record import RecordedDemo, record_demo
from diffpilot.envs.libero import CONTROL_FREQ, LiberoEnv, make_libero_env
from diffpilot.policies.datasets.robomimic_hdf5 import EnvArgs, write_robomimic_hdf5

from .common import ConfigError
from .data_robomimic import as_robomimic_demos


def libero_env_args(env: LiberoEnv) -> EnvArgs:
    """robomimic-style env metadata of a LIBERO task (LIBERO's files store the problem class and BDDL file)."""
    import robosuite

    kwargs = {
        "bddl_file_name": env.task.bddl_file,
        "suite": env.suite,
        "task_index": env.task.index,
        "task_name": env.task.name,
        "language_instruction": env.instruction,
        "controller": "OSC_POSE",
        "control_freq": CONTROL_FREQ,
        "obs_mode": env.obs_mode,
        "camera_names": list(env.cameras),
    }
    return EnvArgs(env._env.problem_name, env_kwargs=kwargs, env_version=robosuite.__version__)


def record_libero_demos(
    suite: str, task: int | str, seeds: list[int], obs_mode: str = "state", progress: bool = True
) -> tuple[list[RecordedDemo], int, EnvArgs]:
    """Run the scripted expert from each seed (official initial state seed mod 50); returns the successful demos,
    the number of attempts and the env metadata."""
    env = make_libero_env(suite, task, obs_mode)
    kept: list[RecordedDemo] = []
    try:
        for seed in tqdm(seeds, desc=f"expert {env.unwrapped.suite}/{env.unwrapped.task.index}", disable=not progress):
            demo = record_demo(env, libero_expert_for(env.unwrapped.suite, seed), seed)
            if demo.success:
                kept.append(demo)
        return kept, len(seeds), libero_env_args(env.unwrapped)
    finally:
        env.close()


def write_libero_demos(output: str | Path, demos: list[RecordedDemo], env_args: EnvArgs, seed: int = 0) -> Path:
    """Write the demos (robomimic hdf5 layout, with mask/train and mask/valid) atomically to `output`."""
    output = Path(output)
    if output.suffix not in (".hdf5", ".h5"):
        raise ConfigError(f"output={str(output)!r}: expected an .hdf5 file path")
    if not demos:
        raise ConfigError(f"output={str(output)!r}: the expert succeeded in no episode; nothing to write")
    return write_robomimic_hdf5(output, as_robomimic_demos(demos), env_args, seed=seed)
