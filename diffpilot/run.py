"""What every long run shares: TensorBoard scalars under one directory name."""

from __future__ import annotations

import os

TENSORBOARD_DIR = "tensorboard"


def log_scalars(logdir: str | os.PathLike, values: dict[str, float | None], step: int, prefix: str = "eval") -> None:
    """Append scalars (e.g. an evaluation summary) to the TensorBoard log in `logdir`; None values are skipped."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(logdir)) as writer:
        for name, value in values.items():
            if value is None:  # a measure the task does not have (e.g. coverage on robomimic)
                continue
            writer.add_scalar(f"{prefix}/{name}", value, step)
