"""The two LIBERO evaluation protocols in use, each as its own code defines it; every LIBERO result names one.

- `libero`: LIBERO's lifelong-learning evaluation (`libero/lifelong/metric.py: evaluate_one_task_success`, settings
  from `libero/configs/eval/default.yaml` and `config/data/default.yaml`): 20 episodes per task from initial states
  0–19, `env.reset()`, `set_init_state`, 5 settle steps of the all-zero action (the observation after them is the
  policy's first), at most 600 policy steps, cameras at 128×128 as robosuite renders them (rows bottom-up: LIBERO
  never flips the policy's images), the instruction from the task's file name (`benchmark/__init__.py:
  grab_language_from_filename`), success latched from the env's `done` (the BDDL goal).
- `openvla`: OpenVLA's LIBERO evaluation (`experiments/robot/libero/run_libero_eval.py: eval_libero`,
  `libero_utils.py`): 50 episodes per task from initial states 0–49, 10 wait steps of [0, 0, 0, 0, 0, 0, −1]
  (gripper open), at most the suite's step limit after them (spatial 220, object 280, goal 300, libero_10 520,
  libero_90 400: the longest training demonstration, rounded up), cameras rendered at 256×256, rotated 180°, JPEG
  encoded and decoded and resized to 224×224 with Lanczos-3 (`get_libero_image`; OpenVLA uses TensorFlow's ops,
  here Pillow's at the same quality 95 and filter, equal to within JPEG's rounding), the file-name instruction, and
  the episode ends at the first `done`.

Both use the same 50 official initial states per task; only the count differs. Per-episode policy noise is seeded by
diffpilot's evaluation seed (LIBERO seeds its global RNGs with 10000, OpenVLA with 7; neither changes a scene).
LIBERO-PRO's perturbed suites are evaluated on their own initial states, and their instruction is the BDDL text:
the language and task perturbations exist only there (a perturbed task keeps its base task's file name).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from diffpilot.errors import ConfigError

# OpenVLA's per-suite step limits (run_libero_eval.py), keyed by base suite.
OPENVLA_MAX_STEPS = dict(libero_spatial=220, libero_object=280, libero_goal=300, libero_10=520, libero_90=400)


@dataclass(frozen=True)
class LiberoProtocol:
    """One evaluation protocol: episodes per task, step limit, settle phase and what the policy's cameras see."""

    name: str
    source: str
    episodes: int
    max_steps: int | dict[str, int]  # policy steps after the settle phase (per base suite when a dict)
    settle_steps: int
    settle_gripper: float  # the settle action is zero motion with this gripper command (−1: open)
    camera_size: int  # robosuite's render resolution
    image_size: int  # what the policy receives
    rotate_jpeg_resize: bool  # OpenVLA's 180° rotation, JPEG round trip and Lanczos resize; else the raw render

    def steps(self, base_suite: str) -> int:
        return self.max_steps[base_suite] if isinstance(self.max_steps, dict) else self.max_steps

    def settle_action(self) -> np.ndarray:
        action = np.zeros(7)
        action[-1] = self.settle_gripper
        return action

    def camera_image(self, raw: np.ndarray) -> np.ndarray:
        """(camera_size, camera_size, 3) uint8 as robosuite renders it → (image_size, image_size, 3) uint8."""
        if not self.rotate_jpeg_resize:
            return np.ascontiguousarray(raw)
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(raw[::-1, ::-1])).save(buffer, format="JPEG", quality=95)
        image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
        return np.asarray(image.resize((self.image_size, self.image_size), Image.Resampling.LANCZOS), np.uint8)

    def describe(self) -> dict:
        return {"protocol": self.name, "protocol_source": self.source, "settle_steps": self.settle_steps,
                "settle_action": self.settle_action().tolist(), "camera_size": self.camera_size,
                "image_size": self.image_size}  # fmt: skip


PROTOCOLS = {
    "libero": LiberoProtocol(
        "libero", "LIBERO libero/lifelong/metric.py: evaluate_one_task_success (configs/eval/default.yaml)",
        episodes=20, max_steps=600, settle_steps=5, settle_gripper=0.0, camera_size=128, image_size=128,
        rotate_jpeg_resize=False,
    ),
    "openvla": LiberoProtocol(
        "openvla", "OpenVLA experiments/robot/libero/run_libero_eval.py: eval_libero (libero_utils.py)",
        episodes=50, max_steps=OPENVLA_MAX_STEPS, settle_steps=10, settle_gripper=-1.0, camera_size=256,
        image_size=224, rotate_jpeg_resize=True,
    ),
}  # fmt: skip


def get_protocol(name: str) -> LiberoProtocol:
    """The protocol called `name`, or a ConfigError naming the choices."""
    if name not in PROTOCOLS:
        raise ConfigError(f"task.protocol={name!r}: expected one of {sorted(PROTOCOLS)}")
    return PROTOCOLS[name]
