"""Data augmentation of training batches, per member and exactly reproducible.

Member m draws from generators[m] alone, so its augmentation is the same whatever else shares
its stack, and exactly as when it trains alone (the convention of models.StackedDropout).
Per member and batch the draws come in a fixed order: the shifts (if shift > 0), then the noise
(if noise > 0); an inactive spec draws nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dlbench.errors import DlbenchError
from dlbench.seeding import AUGMENT_KEY, derive_seed


@dataclass(frozen=True)
class Augment:
    noise: float = 0.0  # std of Gaussian noise added to every input feature, preprocessed units
    # sequences (C, L): circular shift by up to ±shift steps; images (C, H, W): translation by up
    # to ±shift pixels along each axis, zero-filled; tabular data: must be 0
    shift: int = 0

    @property
    def active(self) -> bool:
        return self.noise > 0 or self.shift > 0


def check(spec: Augment, input_shape: tuple[int, ...] | None) -> None:
    """Raise a one-line DlbenchError if spec cannot augment samples of this shape."""
    if not (math.isfinite(spec.noise) and spec.noise >= 0):
        raise DlbenchError(f"augment noise must be a finite std >= 0, got {spec.noise}")
    if isinstance(spec.shift, bool) or not isinstance(spec.shift, int) or spec.shift < 0:
        raise DlbenchError(f"augment shift must be a whole number of steps >= 0, got {spec.shift}")
    if spec.shift == 0:
        return
    if input_shape is None:
        raise DlbenchError(
            "augment shift needs sequences or images; use augment[noise=...] on tabular data"
        )
    if len(input_shape) not in (2, 3):
        raise DlbenchError(
            f"augment shift needs samples shaped (C, L) or (C, H, W), got {tuple(input_shape)}"
        )
    size = min(input_shape[1:])  # a shift of the full length is the identity (or all zeros)
    if spec.shift >= size:
        what = "sequence length" if len(input_shape) == 2 else "image height and width"
        raise DlbenchError(f"augment shift {spec.shift} must be below the {what} ({size})")


def generators(seeds: list[int], device: torch.device | str) -> list[torch.Generator]:
    """One augmentation generator per member, seeded from the member's own seed."""
    return [torch.Generator(device=device).manual_seed(derive_seed(seed, AUGMENT_KEY))
            for seed in seeds]


def augment_batch(x: torch.Tensor, input_shape: tuple[int, ...] | None, spec: Augment,
                  generators: list[torch.Generator], real: list[int] | None = None
                  ) -> torch.Tensor:
    """x (M, B, d) flat features, augmented: member m's draws come from generators[m] only.

    d = prod(input_shape); input_shape None is tabular data (noise only). Shifts come first,
    then noise on every feature (zero-filled pixels included). Returns x itself if inactive.
    `real[m]`: member m's real rows, first in its batch (the rest is padding, left as is):
    drawing for those only advances its generator exactly as a batch of just those rows would,
    so a short last batch (padded in a stack) stays exact.
    """
    check(spec, input_shape)
    if not spec.active:
        return x
    M, B, d = x.shape
    if len(generators) != M:
        raise ValueError(f"{len(generators)} generators for a stack of {M} members")
    if input_shape is not None and math.prod(input_shape) != d:
        raise ValueError(f"{d} features per sample do not make shape {tuple(input_shape)}")
    real = [B] * M if real is None else real
    if spec.shift > 0:
        assert input_shape is not None  # check() refuses a shift on tabular data
        axes = len(input_shape) - 1  # 1: (dx,) for sequences; 2: (dy, dx) for images
        shifts = torch.zeros((M, B, axes), dtype=torch.long, device=x.device)  # padding stays
        for m, (g, n) in enumerate(zip(generators, real, strict=True)):  # steps in ±shift
            shifts[m, :n] = torch.randint(-spec.shift, spec.shift + 1, (n, axes), generator=g,
                                          device=x.device)
        x = x.reshape(M, B, *input_shape)
        x = _roll(x, shifts[..., 0]) if axes == 1 else _translate(x, shifts, spec.shift)
        x = x.reshape(M, B, d)
    if spec.noise > 0:
        noise = torch.zeros_like(x)  # (M, B, d)
        for m, (g, n) in enumerate(zip(generators, real, strict=True)):
            noise[m, :n] = torch.randn((n, d), generator=g, device=x.device, dtype=x.dtype)
        x = x + spec.noise * noise
    return x


def _roll(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """x (M, B, C, L) with sample (m, b) rolled circularly by shifts[m, b], as torch.roll does:
    out[..., j] = x[..., (j - s) mod L]."""
    L = x.shape[-1]
    index = (torch.arange(L, device=x.device) - shifts[..., None]) % L  # (M, B, L)
    return x.gather(-1, index[:, :, None, :].expand_as(x))


def _translate(x: torch.Tensor, shifts: torch.Tensor, pad: int) -> torch.Tensor:
    """x (M, B, C, H, W) with sample (m, b) moved down shifts[m, b, 0] and right shifts[m, b, 1]
    pixels, zero-filled: out[..., i, j] = x[..., i - dy, j - dx], 0 outside the image."""
    M, B, C, H, W = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))  # (M, B, C, H + 2p, W + 2p), zeros around
    rows = torch.arange(H, device=x.device) - shifts[..., 0:1] + pad  # (M, B, H)
    cols = torch.arange(W, device=x.device) - shifts[..., 1:2] + pad  # (M, B, W)
    padded = padded.gather(3, rows[:, :, None, :, None].expand(M, B, C, H, W + 2 * pad))
    return padded.gather(4, cols[:, :, None, None, :].expand(M, B, C, H, W))
