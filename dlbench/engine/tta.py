"""Test-time augmentation: a prediction averaged over deterministic copies of each input.

The copies, in order (a member with n copies uses the first n; copy 0 is always the input):
- images (C, H, W): 0 the input; 1 flipped left-right; then for s = 1, 2, ...: shifted right,
  left, down and up by s pixels, then the flipped image shifted the same four ways (zero-filled,
  as training's augment shifts);
- sequences (C, L): 0 the input; then for s = 1, 2, ...: rolled by +s and by −s steps
  (circular, as training's augment shifts);
- tabular data: none — there is no shift or mirror of a table's columns.
Copies act on preprocessed inputs, as training augmentation does. Class probabilities (regression:
predicted values) are averaged over the copies; curves stay un-augmented.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from dlbench.errors import DlbenchError


def max_copies(input_shape: tuple[int, ...]) -> int:
    """Distinct copies a sample of this shape has (shifts stay below the side / half length)."""
    if len(input_shape) == 3:
        return 2 + 8 * (min(input_shape[1:]) - 1)
    return 1 + 2 * ((input_shape[1] - 1) // 2)


def check(n: int, input_shape: tuple[int, ...] | None) -> None:
    """Raise a one-line DlbenchError when n copies of samples of this shape cannot be made."""
    if n <= 1:
        return
    if input_shape is None:
        raise DlbenchError("tta (test-time augmentation) needs sequences or images; this data "
                           "is a table, whose columns have no shift or mirror; drop tta")
    if len(input_shape) not in (2, 3):
        raise DlbenchError(f"tta needs samples shaped (C, L) or (C, H, W), got "
                           f"{tuple(input_shape)}")
    if n > max_copies(input_shape):
        raise DlbenchError(f"tta n={n}: samples shaped {tuple(input_shape)} have "
                           f"{max_copies(input_shape)} distinct copies; ask for at most that many")


def copy_of(x: torch.Tensor, input_shape: tuple[int, ...], c: int) -> torch.Tensor:
    """Copy c (see the module's list) of x (..., d) flat samples of shape input_shape."""
    if c == 0:
        return x
    lead, d = x.shape[:-1], x.shape[-1]
    if math.prod(input_shape) != d:
        raise ValueError(f"{d} features per sample do not make shape {tuple(input_shape)}")
    x = x.reshape(*lead, *input_shape)
    if len(input_shape) == 2:  # sequences: c = 1, 2, 3, 4, ... -> +1, -1, +2, -2, ...
        s = (c + 1) // 2
        out = torch.roll(x, s if c % 2 else -s, dims=-1)
    else:
        flip, (dy, dx) = _image_copy(c)
        if flip:
            x = torch.flip(x, dims=[-1])
        out = _translate(x, dy, dx)
    return out.reshape(*lead, d)


def _image_copy(c: int) -> tuple[bool, tuple[int, int]]:
    """Image copy c >= 1 -> (flipped, (down, right) pixels)."""
    if c == 1:
        return True, (0, 0)
    s, k = divmod(c - 2, 8)  # 8 copies per shift size: 4 directions, unflipped then flipped
    step = s + 1
    return k >= 4, ((0, step), (0, -step), (step, 0), (-step, 0))[k % 4]


def _translate(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """x (..., H, W) moved down dy and right dx pixels, zero-filled: out[i, j] = x[i-dy, j-dx]."""
    if dy == dx == 0:
        return x
    H, W = x.shape[-2:]
    p = max(abs(dy), abs(dx))
    padded = F.pad(x, (p, p, p, p))
    return padded[..., p - dy:p - dy + H, p - dx:p - dx + W]
