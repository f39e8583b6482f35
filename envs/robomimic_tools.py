"""robomimic 0.3's own scripts and utilities, run beside diffpilot on the project's files:

    python -m diffpilot.envs.robomimic_tools playback_dataset --dataset lift.hdf5 --use-actions
    python -m diffpilot.envs.robomimic_tools get_dataset_info --dataset lift.hdf5

robomimic is installed without its dependencies (its torch / torchvision pins fight the project's torch), so two
of its imports need a stand-in, installed only when the real package is missing:
- `mujoco_py` (`enable_robomimic_env_utils`): robosuite 1.4 runs on the official `mujoco` bindings;
- `torchvision`: no CPU build loads beside the pinned torch. robomimic's model modules import it at import time
  (`file_utils` imports them), but its file, env and dataset utilities and the playback / dataset-info /
  states-to-obs scripts never use it. The stand-in imports; using any of its names raises ImportError.
"""

from __future__ import annotations

import importlib.util
import runpy
import sys
import types

from .robomimic import enable_robomimic_env_utils

TORCHVISION_MODULES = (
    "torchvision",
    "torchvision.transforms",
    "torchvision.transforms.functional",
    "torchvision.models",
)


class _Unavailable:
    """A torchvision name that exists for imports only."""

    def __init__(self, name: str):
        self._name = name

    def __call__(self, *args, **kwargs):
        raise ImportError(f"{self._name}: torchvision is not installed (robomimic's tools run with an import stand-in)")

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Unavailable(f"{self._name}.{attr}")


def _stand_in_module(name: str) -> types.ModuleType:
    module = types.ModuleType(name)

    def attribute(attr: str):
        if attr.startswith("__"):  # introspection (inspect, pickle) must see an ordinary module
            raise AttributeError(f"module {name!r} has no attribute {attr!r}")
        return sys.modules.get(f"{name}.{attr}") or _Unavailable(f"{name}.{attr}")

    module.__getattr__ = attribute
    return module


def enable_robomimic_tools() -> None:
    """Make robomimic's utilities importable: the mujoco_py and (when missing) torchvision stand-ins."""
    enable_robomimic_env_utils()
    if "torchvision" in sys.modules or importlib.util.find_spec("torchvision") is not None:
        return
    for name in TORCHVISION_MODULES:
        sys.modules[name] = _stand_in_module(name)
    sys.modules["torchvision"].__path__ = []  # a package, so `import torchvision.transforms.functional` resolves


def run_robomimic_script(name: str, argv: list[str]) -> None:
    """Run `robomimic/scripts/<name>.py` as its own command line would, with `argv` as its arguments."""
    module = f"robomimic.scripts.{name}"
    if importlib.util.find_spec(module) is None:
        raise SystemExit(f"script={name!r}: not among robomimic's scripts (e.g. playback_dataset, get_dataset_info)")
    enable_robomimic_tools()
    sys.argv = [f"{name}.py", *argv]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(
            "usage: python -m diffpilot.envs.robomimic_tools SCRIPT [ARGS…]  (SCRIPT: playback_dataset, …)"
        )
    run_robomimic_script(sys.argv[1], sys.argv[2:])
