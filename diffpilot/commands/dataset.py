"""`diffpilot dataset <op>`: inspect and edit datasets — info (layout, features, episode lengths, tasks), viz (an mp4
per camera and a PNG of state and action over time, optionally a policy's predicted chunks drawn over them),
split and merge (LeRobot v3 in, valid LeRobot v3 out) and convert (robomimic hdf5 ↔ LeRobot v3)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from diffpilot.errors import ConfigError
from diffpilot.policies.datasets import edit

from .common import clear_output_dir, user_errors

OPS = ("info", "viz", "split", "merge", "convert")


def _as_list(cfg: DictConfig, key: str) -> list:
    value = cfg[key]
    if not OmegaConf.is_list(value):
        raise ConfigError(f"{key}={value!r}: expected a list, e.g. {key}=[0,3]")
    return list(OmegaConf.to_container(value, resolve=True))


def _inputs(cfg: DictConfig) -> list[Path]:
    return [Path(r) for r in _as_list(cfg, "roots")] if cfg.op == "merge" else [Path(cfg.root)]


def _check_output(cfg: DictConfig) -> None:
    """An output is never an input, inside one, or a folder holding one (overwrite=true would delete it)."""
    if not cfg.output:
        raise ConfigError(f"output=null: `dataset {cfg.op}` needs output=<path> for what it writes")
    out = Path(cfg.output).resolve()
    for source in _inputs(cfg):
        source = source.resolve()
        if out == source or out in source.parents or source in out.parents:
            raise ConfigError(f"output={cfg.output!r}: overlaps the input {str(source)!r}; expected a separate path")


def _output(cfg: DictConfig) -> Path:
    """The output path, made free (overwrite=true) or refused if taken."""
    out = Path(cfg.output)
    if out.is_file():
        if not cfg.overwrite:
            raise ConfigError(f"output={str(out)!r} exists; pass overwrite=true to replace it")
        out.unlink()
    else:
        clear_output_dir(out, cfg.overwrite)
    return out


def split(cfg: DictConfig) -> dict:
    from diffpilot.policies.datasets.lerobot_v21 import open_lerobot_dataset

    parts = OmegaConf.to_container(cfg.splits, resolve=True) if cfg.splits is not None else {"train": 0.9, "val": 0.1}
    if not isinstance(parts, dict) or not parts:
        raise ConfigError(f"splits={parts!r}: expected {{part: fraction or [episode, …]}}")
    n = open_lerobot_dataset(cfg.root).num_episodes
    episodes = edit.split_episodes(n, parts, cfg.seed)
    written = edit.split_dataset(cfg.root, episodes, _output(cfg))
    return {name: {"path": str(path), "episodes": len(episodes[name])} for name, path in written.items()}


def merge(cfg: DictConfig) -> dict:
    roots = _as_list(cfg, "roots")
    out = edit.merge_datasets(roots, _output(cfg))
    return edit.summary(out)


def convert(cfg: DictConfig) -> dict:
    from diffpilot.policies.datasets.robomimic_lerobot import lerobot_to_robomimic, robomimic_to_lerobot

    if cfg.to == "lerobot_v3":
        if Path(cfg.root).is_dir():  # a LeRobot v2.1 (or v3) dataset, written anew as v3
            return {"written": str(edit.rewrite_as_v3(cfg.root, _output(cfg)))}
        return {"written": str(robomimic_to_lerobot(cfg.root, _output(cfg)))}
    if cfg.to == "robomimic_hdf5":
        return {"written": str(lerobot_to_robomimic(cfg.root, _output(cfg)))}
    raise ConfigError(f"to={cfg.to!r}: expected lerobot_v3 or robomimic_hdf5")


def viz(cfg: DictConfig) -> dict:
    from diffpilot.envs.video import write_mp4
    from diffpilot.plotting import plot_episode
    from diffpilot.policies.datasets.lerobot_v21 import open_lerobot_dataset

    ds = open_lerobot_dataset(cfg.root)
    out = Path(cfg.output or Path(cfg.root) / "viz")
    episodes = _as_list(cfg, "episodes")
    bad = [e for e in episodes if not isinstance(e, int) or not 0 <= e < ds.num_episodes]
    if bad:
        raise ConfigError(f"episodes={episodes}: episode {bad[0]!r} is not in [0, {ds.num_episodes})")
    frames = edit.all_frames(ds)
    policy = None
    if cfg.policy_path:
        from .common import load_policy

        policy = load_policy(cfg.policy_path, device="cpu")
    written = []
    for e in episodes:
        lo, hi = ds.episode_ranges[e]
        episode = {k: v[lo:hi] for k, v in frames.items()}
        for key in ds.video_keys:
            path = out / f"episode_{e:06d}_{key}.mp4"
            write_mp4(path, list(episode[key]), fps=ds.fps)
            written.append(str(path))
        chunks = predicted_chunks(policy, episode) if policy is not None else None
        path = out / f"episode_{e:06d}.png"
        plot_episode(path, episode, ds.fps, f"{Path(cfg.root).name} episode {e}", chunks)
        written.append(str(path))
    return {"written": written}


def predicted_chunks(policy, episode: dict[str, np.ndarray]) -> list[tuple[int, np.ndarray]]:
    """(start frame, (horizon, A) chunk) of `policy` at every re-planning point of an episode, from its recorded
    observations (the history clipped at the episode start), sampled with fixed noise."""
    import torch

    config = policy.config
    keys = policy.observation_keys
    missing = [k for k in keys if k not in episode]
    if missing:
        raise ConfigError(f"policy_path: the policy reads {missing}, which the dataset does not have")
    n = len(next(iter(episode.values())))
    generator = torch.Generator().manual_seed(0)
    chunks = []
    for t in range(0, n, config.n_action_steps):
        idx = np.clip(np.arange(t - config.n_obs_steps + 1, t + 1), 0, n - 1)
        window = {k: torch.from_numpy(np.ascontiguousarray(episode[k][idx][None])) for k in keys}
        chunk = policy.predict_chunk(window, generator=generator)[0].cpu().numpy()
        chunks.append((t - config.n_obs_steps + 1, chunk))
    return chunks


def run(cfg: DictConfig) -> dict:
    if cfg.op not in OPS:
        raise ConfigError(f"op={cfg.op!r}: expected one of {list(OPS)}")
    if cfg.op in ("split", "merge", "convert"):
        _check_output(cfg)
    try:
        if cfg.op == "info":
            return edit.summary(cfg.root)
        return {"split": split, "merge": merge, "convert": convert, "viz": viz}[cfg.op](cfg)
    except FileNotFoundError as err:
        raise ConfigError(f"root={cfg.root!r}: {err}") from None


@hydra.main(config_path="pkg://diffpilot.configs", config_name="dataset", version_base="1.3")
@user_errors
def _app(cfg: DictConfig) -> None:
    print(json.dumps(run(cfg), indent=2))


def app() -> None:
    """`diffpilot dataset <op> key=value …`: the op comes first, as a word."""
    if len(sys.argv) > 1 and "=" not in sys.argv[1] and not sys.argv[1].startswith("-"):
        sys.argv = [sys.argv[0], f"op={sys.argv[1]}", *sys.argv[2:]]
    _app()
