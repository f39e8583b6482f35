"""The layers point down: every import in the package (those inside functions too) is read from the source and
held against the rules — sim uses no other layer; envs use only sim; policies use none of envs, rl, sim; nothing but
the CLI imports diffpilot.commands; samplers and networks never import each other; no import cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# pyproject's package-dir: folder → package
FOLDERS = {
    "diffpilot": "diffpilot",
    "policies": "diffpilot.policies",
    "envs": "diffpilot.envs",
    "rl": "diffpilot.rl",
    "sim": "diffpilot.sim",
    "configs": "diffpilot.configs",
    "serve": "diffpilot.serve",
}
LAYERS = ("policies", "envs", "rl", "sim", "serve", "configs", "commands")
FORBIDDEN = {
    "sim": {"policies", "envs", "rl", "serve", "commands"},
    "envs": {"policies", "rl", "serve", "commands"},
    "policies": {"envs", "rl", "sim", "serve", "commands"},
    "rl": {"serve", "commands"},
    "serve": {"rl", "commands"},
    "floor": {"policies", "envs", "rl", "sim", "serve", "commands"},
    "configs": {"policies", "envs", "rl", "sim", "serve", "commands", "floor"},
}
NEVER_BETWEEN = [
    ("diffpilot.policies.samplers", "diffpilot.policies.nets"),
    ("diffpilot.policies.nets", "diffpilot.policies.samplers"),
]
ROS_MODULES = ("rospy", "rclpy")
ROS_ADAPTERS = {"diffpilot.serve.ros1", "diffpilot.serve.ros2"}
NETWORK_ADAPTERS = {"diffpilot.serve.websocket"}  # the only importer of the websocket library


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT)
    parts = [FOLDERS[rel.parts[0]], *rel.parts[1:]]
    parts[-1] = parts[-1].removesuffix(".py")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """(imported module, line) for every import statement in the file, wherever it stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # `from pkg import module` is an edge to the module
                sub = f"{target}.{alias.name}"
                found.append((sub if sub in known else target, node.lineno))
    return found


def layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "diffpilot":
        return None
    if len(parts) == 1 or parts[1] not in (*LAYERS, "cli"):
        return "floor"
    return "commands" if parts[1] == "cli" else parts[1]


def violations(edges: list[tuple[str, str, int]]) -> list[str]:
    found = []
    for src, dst, line in edges:
        a, b = layer(src), layer(dst)
        if b is not None and b in FORBIDDEN.get(a, set()):
            found.append(f"{src}:{line} imports {dst} ({a} → {b})")
        for x, y in NEVER_BETWEEN:
            if (src == x or src.startswith(x + ".")) and (dst == y or dst.startswith(y + ".")):
                found.append(f"{src}:{line} imports {dst} (samplers and networks never import each other)")
        if dst.split(".")[0] in ROS_MODULES and src not in ROS_ADAPTERS:
            found.append(f"{src}:{line} imports {dst} (only the ROS adapters import ROS)")
        if dst.split(".")[0] == "websockets" and src not in NETWORK_ADAPTERS:
            found.append(f"{src}:{line} imports {dst} (only serve/websocket.py speaks websocket)")
    return found


def cycles(edges: list[tuple[str, str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for src, dst, _ in edges:
        if dst != src:
            graph.setdefault(src, set()).add(dst)
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


@pytest.fixture(scope="module")
def edges() -> list[tuple[str, str, int]]:
    modules = project_modules()
    known = set(modules)
    return [(name, dst, line) for name, path in modules.items() for dst, line in imports_of(name, path, known)]


def test_every_import_points_down(edges):
    assert len({src for src, _, _ in edges}) > 100, "the scan found too few modules to be the package"
    assert not violations(edges), "\n".join(violations(edges))


def test_there_is_no_import_cycle(edges):
    internal = [(s, d, n) for s, d, n in edges if d.startswith("diffpilot")]
    assert not cycles(internal), cycles(internal)


def test_the_rules_catch_what_they_forbid():
    bad = [
        ("diffpilot.envs.libero", "diffpilot.commands.common", 1),
        ("diffpilot.sim.scoring", "diffpilot.policies.checkpoint", 2),
        ("diffpilot.policies.samplers.edm", "diffpilot.policies.nets.mode", 3),
        ("diffpilot.serve.server", "rospy", 4),
        ("diffpilot.errors", "diffpilot.envs.registry", 5),
        ("diffpilot.serve.server", "websockets.sync.server", 6),
    ]
    assert len(violations(bad)) == len(bad)
    assert violations([("diffpilot.rl.dsrl", "diffpilot.envs.registry", 1)]) == []
    assert cycles([("a", "b", 1), ("b", "c", 1), ("c", "a", 1), ("c", "d", 1)]) == [["a", "b", "c"]]


def test_every_package_folder_is_listed_in_pyproject():
    """A wheel holds only the packages pyproject lists: a folder with an __init__.py left out breaks `pip install .`."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join([FOLDERS[folder], *init.parent.relative_to(ROOT / folder).parts])
        for folder in FOLDERS
        for init in (ROOT / folder).rglob("__init__.py")
    }
    assert on_disk - listed == set(), f"packages missing from pyproject.toml: {sorted(on_disk - listed)}"
