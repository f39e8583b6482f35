"""Samples that are rows of arrays (a leading sample axis), e.g. driving demonstrations: one scene's agent input and
its expert trajectory per row. Batched by index, as the BC trainer reads any dataset."""

from __future__ import annotations

import numpy as np


class ArrayDataset:
    """The numeric arrays of `arrays` (string columns such as scene tokens are left out), all with `len` rows."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = {k: np.asarray(v) for k, v in arrays.items() if np.asarray(v).dtype.kind in "fiub"}
        lengths = {k: len(v) for k, v in self.arrays.items()}
        if not lengths or len(set(lengths.values())) != 1:
            raise ValueError(f"arrays have {lengths} rows; expected one common (non-zero) number of rows")
        self.length = next(iter(lengths.values()))

    def __len__(self) -> int:
        return self.length

    def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return {k: v[indices] for k, v in self.arrays.items()}
