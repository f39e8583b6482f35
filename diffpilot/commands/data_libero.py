"""Scripted-expert demonstrations of LIBERO-Object tasks written in robomimic's hdf5 layout (LIBERO's own datasets
use it too), successful episodes only: `env_args` names the LIBERO problem class and carries the BDDL file, the
suite and task so a reader can rebuild the env."""

from __future__ import annotations

import time
from pathlib import Path

from tqdm.auto import tqdm

from diffpilot.envs.experts.libero import libero_expert_for
from diffpilot.envs.experts.robomimic_record import RecordedDemo, record_demo
from diffpilot.envs.libero import CONTROL_FREQ, MIN_STATE_DISTANCE, LiberoEnv, make_libero_env, select_tasks
from diffpilot.errors import ConfigError
from diffpilot.policies.datasets.robomimic_hdf5 import EnvArgs, write_robomimic_hdf5

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
        "initial_states": env.initial_states,
        "min_state_distance": env.min_state_distance,
    }
    return EnvArgs(env._env.problem_name, env_kwargs=kwargs, env_version=robosuite.__version__)


def record_libero_demos(
    suite: str,
    task: int | str,
    seeds: list[int],
    obs_mode: str = "state",
    progress: bool = True,
    keep: int | None = None,
    initial_states: str = "sampled",
    min_state_distance: float = MIN_STATE_DISTANCE,
) -> tuple[list[RecordedDemo], int, EnvArgs]:
    """Run the scripted expert from each seed, stopping once `keep` episodes succeeded (None: every seed); returns
    the successful demos, the number of attempts and the env metadata. Each seed's scene is drawn away from the
    official initial states (`initial_states="sampled"`, see envs/libero.py) or is official state seed mod 50."""
    env = make_libero_env(suite, task, obs_mode, initial_states=initial_states, min_state_distance=min_state_distance)
    kept: list[RecordedDemo] = []
    attempts = 0
    desc = f"expert {env.unwrapped.suite}/{env.unwrapped.task.index}"
    bar = tqdm(total=keep or len(seeds), desc=desc, unit="ep", disable=not progress)
    try:
        for seed in seeds:
            demo = record_demo(env, libero_expert_for(env.unwrapped.suite, seed), seed)
            attempts += 1
            kept += [demo] if demo.success else []
            bar.update(1 if demo.success or keep is None else 0)
            bar.set_postfix(success=f"{len(kept) / attempts:.2f}")
            if keep is not None and len(kept) >= keep:
                break
        for demo in kept:
            demo.official_distance = env.unwrapped.official_distance(demo.states[0])
        return kept, attempts, libero_env_args(env.unwrapped)
    finally:
        bar.close()
        env.close()


def make_libero_demonstrations(
    task_cfg: dict,
    episodes: int,
    seed: int,
    output: str | Path | None = None,
    max_attempts: int | None = None,
    overwrite: bool = False,
) -> dict:
    """`diffpilot data task=libero_object`: for every selected task of the suite (`task.tasks`, null: all), up to
    `episodes` successful expert demonstrations from seeds seed, seed+1, … (at most `max_attempts`, default
    2 × episodes), each task in its own robomimic hdf5 file `<output>/<suite>_task<i>.hdf5` (as LIBERO ships
    its datasets); default output data/libero/<suite>. Tasks whose expert never succeeds are reported, not written."""
    suite = task_cfg.get("suite")
    if not suite:
        raise ConfigError(f"task.suite={suite!r}: env=libero needs a suite, e.g. libero_object")
    if episodes < 1:
        raise ConfigError(f"episodes={episodes}: expected ≥ 1")
    try:
        libero_expert_for(suite)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    tasks = select_tasks(suite, task_cfg.get("tasks"))
    out_dir = Path(output or f"data/libero/{suite}")
    paths = {t.index: out_dir / f"{suite}_task{t.index}.hdf5" for t in tasks}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise ConfigError(f"output={str(out_dir)!r} already holds {existing}; pass overwrite=true to replace them")
    seeds = list(range(seed, seed + (max_attempts or 2 * episodes)))
    obs_mode = task_cfg.get("obs_mode", "state")
    initial_states = task_cfg.get("demo_initial_states", "sampled")
    distance = float(task_cfg.get("demo_min_state_distance", MIN_STATE_DISTANCE))
    start, rows = time.perf_counter(), {}
    for t in tasks:
        demos, attempts, env_args = record_libero_demos(
            suite, t.index, seeds, obs_mode, keep=episodes, initial_states=initial_states, min_state_distance=distance
        )
        if demos:
            write_libero_demos(paths[t.index], demos, env_args, seed=seed)
        nearest = min((d.official_distance for d in demos), default=None)
        rows[t.index] = {"kept": len(demos), "attempts": attempts, "frames": sum(d.length for d in demos),
                         "demo_eval_min_state_distance": nearest}  # fmt: skip
        print(f"{suite} task {t.index} ({t.name}): {len(demos)}/{attempts} successful; nearest evaluation state "
              f"{nearest if nearest is None else round(nearest, 4)} m", flush=True)  # fmt: skip
    kept = sum(r["kept"] for r in rows.values())
    if not kept:
        raise RuntimeError(f"the {suite} expert succeeded in none of the tasks {list(rows)}; nothing written")
    attempts = sum(r["attempts"] for r in rows.values())
    return {
        "episodes": kept,
        "attempts": attempts,
        "expert_success_rate": kept / attempts,
        "frames": sum(r["frames"] for r in rows.values()),
        "seconds": time.perf_counter() - start,
        "output": str(out_dir),
        "tasks": rows,
        "initial_states": initial_states,
        "demo_eval_min_state_distance": min(
            (r["demo_eval_min_state_distance"] for r in rows.values() if r["kept"]), default=None
        ),
    }


def write_libero_demos(output: str | Path, demos: list[RecordedDemo], env_args: EnvArgs, seed: int = 0) -> Path:
    """Write the demos (robomimic hdf5 layout, with mask/train and mask/valid) atomically to `output`."""
    output = Path(output)
    if output.suffix not in (".hdf5", ".h5"):
        raise ConfigError(f"output={str(output)!r}: expected an .hdf5 file path")
    if not demos:
        raise ConfigError(f"output={str(output)!r}: the expert succeeded in no episode; nothing to write")
    return write_robomimic_hdf5(output, as_robomimic_demos(demos), env_args, seed=seed)
