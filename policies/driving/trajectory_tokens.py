"""Trajectory tokeniser for WAM-Diff: an (8, 3) ego-frame trajectory (x, y in metres, heading in radians at
0.5 .. 4 s) <-> a sequence of discrete tokens, and back.

Quantisation (docs/methods.md): every value v (x, y and heading alike) is clamped to [-100, 100) and quantised on a
0.01 grid: index i = round((v + 100) / 0.01) in [0, 19999], decoded as -100 + 0.01 i. Inside the range the
round-trip error is at most 0.005 (m or rad); values outside are clamped to the edges.

Each quantised value is written as two tokens, like the leading and trailing digits of a number:
``coarse = i // 10`` (a 0.1 step: COARSE_CLASSES = 2000 classes) then ``fine = i % 10`` (the 0.01 step:
FINE_CLASSES = 10 classes). A model with one 20,000-way softmax per coordinate would spend most of its
output layer on bins no trajectory visits; two small heads keep the exact 0.01 resolution.

Sequence layout (TOKENS = 48 positions, no separators: every position has a fixed meaning):

    position  p * 6 + c * 2 + d     pose p in 0..7 (0.5 s .. 4 s), channel c in 0..2 (x, y, heading),
                                    digit d in 0..1 (coarse, fine)

    [x0c x0f y0c y0f h0c h0f | x1c x1f y1c y1f h1c h1f | ... | x7c x7f y7c y7f h7c h7f]

Token ids live in one shared vocabulary: coarse digits 0 .. 1999, fine digits 2000 .. 2009, and MASK_ID = 2010
for a position not yet decoded (VOCAB = 2011). ``position_is_fine()`` says which positions hold a fine digit;
``valid_class_mask()`` which ids each position may take. Causal order = position order (near poses first);
reverse-causal = far poses first (``pose_of_position`` gives the pose of each position).
"""

from __future__ import annotations

import numpy as np
import torch

from .common import POSES

CHANNELS = 3  # x, y, heading
DIGITS = 2  # coarse, fine
TOKENS = POSES * CHANNELS * DIGITS
RESOLUTION = 0.01
LOW, HIGH = -100.0, 100.0
LEVELS = round((HIGH - LOW) / RESOLUTION)  # 20000 quantisation levels
FINE_CLASSES = 10
COARSE_CLASSES = LEVELS // FINE_CLASSES  # 2000
FINE_OFFSET = COARSE_CLASSES  # fine digit f has id FINE_OFFSET + f
MASK_ID = COARSE_CLASSES + FINE_CLASSES
VOCAB = MASK_ID + 1
MAX_ROUND_TRIP_ERROR = RESOLUTION / 2  # inside [LOW, HIGH - RESOLUTION / 2]


def position_is_fine() -> torch.Tensor:
    """(TOKENS,) bool: True where the position holds a fine (0.01) digit."""
    return torch.arange(TOKENS) % DIGITS == 1


def pose_of_position() -> torch.Tensor:
    """(TOKENS,) long: the pose index 0..7 of each position."""
    return torch.arange(TOKENS) // (CHANNELS * DIGITS)


def valid_class_mask() -> torch.Tensor:
    """(TOKENS, VOCAB - 1) bool: which token ids (MASK excluded) each position may hold."""
    fine = position_is_fine()[:, None]
    ids = torch.arange(VOCAB - 1)[None]
    return torch.where(fine, ids >= FINE_OFFSET, ids < FINE_OFFSET)


def quantize(values: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Any-shape float values -> long indices in [0, LEVELS - 1] (clamped; NaN raises)."""
    v = torch.as_tensor(values, dtype=torch.float64)
    if torch.isnan(v).any():
        raise ValueError("trajectory tokeniser: values hold NaN; expected finite waypoints")
    idx = torch.round((v - LOW) / RESOLUTION)
    return idx.clamp(0, LEVELS - 1).long()


def dequantize(index: torch.Tensor) -> torch.Tensor:
    """Long indices -> float64 values -100 + 0.01 i."""
    return LOW + index.double() * RESOLUTION


def encode(trajectories: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(B, 8, 3) trajectories -> (B, TOKENS) token ids in the layout above."""
    t = torch.as_tensor(trajectories)
    if t.dim() != 3 or tuple(t.shape[1:]) != (POSES, CHANNELS):
        raise ValueError(f"trajectory tokeniser: trajectories have shape {tuple(t.shape)}; expected (B, 8, 3)")
    idx = quantize(t)  # (B, 8, 3)
    digits = torch.stack([idx // FINE_CLASSES, FINE_OFFSET + idx % FINE_CLASSES], -1)  # (B, 8, 3, 2)
    return digits.reshape(len(t), TOKENS)


def decode(tokens: torch.Tensor) -> torch.Tensor:
    """(B, TOKENS) token ids (no MASK left) -> (B, 8, 3) float64 trajectories."""
    tok = torch.as_tensor(tokens).long()
    if tok.dim() != 2 or tok.shape[1] != TOKENS:
        raise ValueError(f"trajectory tokeniser: tokens have shape {tuple(tok.shape)}; expected (B, {TOKENS})")
    valid = valid_class_mask()
    ok = valid[torch.arange(TOKENS)[None].expand_as(tok), tok.clamp(0, VOCAB - 2)] & (tok < MASK_ID) & (tok >= 0)
    if not bool(ok.all()):
        b, p = map(int, (~ok).nonzero()[0])
        raise ValueError(
            f"trajectory tokeniser: token {int(tok[b, p])} at sequence {b}, position {p} is not a valid "
            f"{'fine' if bool(position_is_fine()[p]) else 'coarse'} digit"
        )
    d = tok.view(-1, POSES, CHANNELS, DIGITS)
    idx = d[..., 0] * FINE_CLASSES + (d[..., 1] - FINE_OFFSET)
    return dequantize(idx)
