"""Every Python example in README.md and docs/*.md runs: each block executes in a directory where the paths the docs
use hold small stand-ins (a PushT state policy at runs/demo/…), so a broken example fails CI. The front page stays
a front page, and no file points outside the repository."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from diffpilot.policies.diffusion_policy import DiffusionPolicy

from .conftest import tiny_config

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "checkpoints" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PUSHT_ENV = {
    "env_id": "gym_pusht/PushT-v0",
    "obs_type": "environment_state_agent_pos",
    "keys": {"agent_pos": "observation.state", "environment_state": "observation.environment_state"},
}


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    """A working directory with an untrained PushT state policy where `make demo` leaves its model."""
    root = tmp_path_factory.mktemp("docs")
    torch.manual_seed(0)
    policy = DiffusionPolicy(tiny_config(environment=PUSHT_ENV))
    span = {"min": np.zeros(2), "max": np.full(2, 512.0)}
    policy.load_stats({"observation.state": span, "action": span,
                       "observation.environment_state": {"min": np.zeros(16), "max": np.full(16, 512.0)}})  # fmt: skip
    policy.save_pretrained(root / "runs" / "demo" / "checkpoints" / "last" / "pretrained_model")
    (root / "checkpoints").symlink_to(ROOT / "checkpoints")  # the shipped policies, as in a clone
    return root


EXAMPLES = [(p, i, code) for p in DOCS for i, code in enumerate(python_blocks(p))]


def test_the_docs_have_examples():
    assert len([e for e in EXAMPLES if e[0].name == "README.md"]) >= 2


@pytest.mark.parametrize("path,index,code", EXAMPLES, ids=[f"{p.name}:{i}" for p, i, _ in EXAMPLES])
def test_python_example_runs(path, index, code, sandbox):
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=sandbox, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"{path.name} example {index}:\n{code}\n{proc.stderr[-3000:]}"


def test_readme_is_a_front_page_and_nothing_points_outside_the_repository():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200 and "make demo" in readme[:400] and "make test" in readme[:400]
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    texts = [f for f in tracked if f.endswith((".md", ".py", ".yaml")) and (ROOT / f).is_file()]
    marker = "../" + "shared"  # the workspace beside the checkout, which a clone does not have
    outside = [f for f in texts if marker in (ROOT / f).read_text()]
    assert not outside, outside
    for link in re.findall(r"\]\(([^)#]+)\)", readme):  # every link of the front page leads somewhere
        assert (ROOT / link).exists(), link
