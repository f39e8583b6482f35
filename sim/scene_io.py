"""Scene files: one ``.npz`` per scene (no pickle), written atomically.

Format (``FORMAT_VERSION`` 1): a numpy ``.npz`` archive whose members are the arrays of the scene's
records, named ``<record>.<field>`` (``map.lane_centerlines``, ``agents.poses``, ``ego.history_poses``, ...,
exactly the dataclass field names of :mod:`diffpilot.sim.scene`), plus ``meta.json``: a uint8 array holding
UTF-8 JSON with ``format``, ``version``, ``token``, ``family``, ``seed``, ``dt``, ``num_history``,
``num_future``, ``command``, ``info`` and the enum meanings. Loading uses ``allow_pickle=False`` and validates
the scene, so a malformed file raises SceneError naming the token and the field.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import fields
from pathlib import Path

import numpy as np

from diffpilot.atomic import atomic_write_bytes
from diffpilot.sim.scene import (
    AgentClass,
    Agents,
    AreaKind,
    Command,
    EgoState,
    LightState,
    MapData,
    Scene,
    SceneError,
    validate_scene,
)

FORMAT = "diffpilot.sim.scene"
FORMAT_VERSION = 1
_RECORDS = {"map": MapData, "agents": Agents}
_EGO_ARRAYS = ("history_poses", "history_velocities", "history_accelerations")


def scene_to_bytes(scene: Scene) -> bytes:
    """Serialise a (validated) scene to the bytes of an .npz file."""
    validate_scene(scene)
    arrays: dict[str, np.ndarray] = {}
    for prefix, cls in _RECORDS.items():
        record = getattr(scene, prefix)
        for f in fields(cls):
            arrays[f"{prefix}.{f.name}"] = np.ascontiguousarray(getattr(record, f.name))
    for name in _EGO_ARRAYS:
        arrays[f"ego.{name}"] = np.ascontiguousarray(getattr(scene.ego, name))
    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "token": scene.token,
        "family": scene.family,
        "seed": int(scene.seed),
        "dt": float(scene.dt),
        "num_history": int(scene.num_history),
        "num_future": int(scene.num_future),
        "command": int(scene.ego.command),
        "info": scene.info,
        "enums": {
            "agent_class": {e.name.lower(): int(e) for e in AgentClass},
            "light_state": {e.name.lower(): int(e) for e in LightState},
            "command": {e.name.lower(): int(e) for e in Command},
            "area_kind": {e.name.lower(): int(e) for e in AreaKind},
        },
    }
    arrays["meta.json"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def save_scene(scene: Scene, path: str | os.PathLike) -> Path:
    """Write a scene to `path` (.npz) atomically: temp file beside it, then rename."""
    path = Path(path)
    atomic_write_bytes(path, scene_to_bytes(scene))
    return path


def load_scene(path: str | os.PathLike) -> Scene:
    """Read and validate a scene file; raise SceneError (token and field named) if it is malformed."""
    path = Path(path)
    token = path.stem
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "meta.json" not in npz.files:
                raise SceneError(token, "meta.json", "missing")
            raw_meta = npz["meta.json"]
            try:
                meta = json.loads(raw_meta.tobytes().decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise SceneError(token, "meta.json", f"not valid JSON ({exc})") from exc
            token = str(meta.get("token", token))
            data = {}
            for key in npz.files:
                if key == "meta.json":
                    continue
                try:
                    data[key] = npz[key]
                except ValueError as exc:  # e.g. an object array: pickle is refused
                    raise SceneError(token, key, f"unreadable array ({exc})") from exc
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        if isinstance(exc, SceneError):
            raise
        raise SceneError(token, "file", f"not a readable .npz scene file ({exc})") from exc
    token = str(meta.get("token", token))
    if meta.get("format") != FORMAT:
        raise SceneError(token, "meta.json.format", f"expected {FORMAT!r}, got {meta.get('format')!r}")
    if meta.get("version") != FORMAT_VERSION:
        raise SceneError(token, "meta.json.version", f"unsupported version {meta.get('version')!r}")
    records = {}
    for prefix, cls in _RECORDS.items():
        kwargs = {}
        for f in fields(cls):
            key = f"{prefix}.{f.name}"
            if key not in data:
                raise SceneError(token, key, "missing from file")
            kwargs[f.name] = data[key]
        records[prefix] = cls(**kwargs)
    ego_kwargs = {}
    for name in _EGO_ARRAYS:
        key = f"ego.{name}"
        if key not in data:
            raise SceneError(token, key, "missing from file")
        ego_kwargs[name] = data[key]
    try:
        scene = Scene(
            token=token,
            map=records["map"],
            agents=records["agents"],
            ego=EgoState(command=int(meta["command"]), **ego_kwargs),
            family=str(meta.get("family", "")),
            seed=int(meta.get("seed", -1)),
            dt=float(meta["dt"]),
            num_history=int(meta["num_history"]),
            num_future=int(meta["num_future"]),
            info=dict(meta.get("info", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SceneError(token, "meta.json", f"missing or bad entry ({exc})") from exc
    validate_scene(scene)
    return scene
