"""Regimens: what a member's training adds to plain minimisation of its mean batch loss.

Every value is per config, and a stack holds members of several configs, so members with
different regimens still train as one stack; each piece keeps the exactness contract because it
acts on a member's own slice only:
- a penalty on the weights joins the member's own loss term (its gradient is its own);
- decoupled weight decay and max-norm act on each config's slice after its own gradients;
- early stopping and snapshots are epoch-end hooks that copy or restore a member's slice;
- learning-rate multipliers per parameter (0 freezes it) are parameter groups of each config's
  own optimizer.
"Weights" are the weight tensors of linear and convolution layers: biases and batch-norm
parameters are never penalised, decayed or renormed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from dlbench.data.augment import Augment
from dlbench.errors import DlbenchError
from dlbench.nn.models import StackedConv, StackedLinear


@dataclass(frozen=True)
class Regimen:
    l1: float = 0.0  # λ1·Σ|w| joins the member's loss
    l2: float = 0.0  # λ2·Σw² joins the member's loss (its gradient 2λ2·w)
    decay: float = 0.0  # decoupled weight decay, w ← w·(1 − lr·decay) before each step (AdamW's)
    max_norm: float = 0.0  # > 0: each unit's incoming weight vector clipped to this norm per step
    patience: int = 0  # > 0: stop once the validation loss has not fallen for this many epochs,
    #                    and restore the weights of the epoch with the lowest validation loss
    snapshots: int = 0  # > 0: a cyclic cosine learning rate with this many cycles; predictions
    #                     are the averaged probabilities of the snapshots at the cycles' ends
    augment: Augment = field(default_factory=Augment)  # training batches only
    lr_scales: tuple[tuple[str, float], ...] = ()  # (parameter-name prefix, lr multiplier); the
    #                                               first matching prefix wins; 0 freezes it

    def lr_scale(self, name: str) -> float:
        return next((scale for prefix, scale in self.lr_scales if name.startswith(prefix)), 1.0)

    @property
    def penalised(self) -> bool:
        return bool(self.l1 or self.l2)


def check(regimen: Regimen, epochs: int) -> None:
    """The regimen alone, before anything trains (raises DlbenchError)."""
    for name in ("l1", "l2", "decay", "max_norm"):
        value = getattr(regimen, name)
        if not (math.isfinite(value) and value >= 0):
            raise DlbenchError(f"{name.replace('_', '-')} strength must be a finite number "
                               f">= 0, got {value}")
    if regimen.patience < 0:
        raise DlbenchError(f"early-stop patience must be >= 0 epochs, got {regimen.patience}")
    if not 0 <= regimen.snapshots <= epochs:
        raise DlbenchError(f"snapshot[n={regimen.snapshots}] takes a cycle of at least one "
                           f"epoch per snapshot, and there are {epochs} epochs; raise --epochs "
                           "or lower n")
    for prefix, scale in regimen.lr_scales:
        if not (math.isfinite(scale) and scale >= 0):
            raise DlbenchError(f"learning-rate multiplier of '{prefix}' must be >= 0, got {scale}")


def weight_norm_dims(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """Each penalisable weight's name -> the axes of one unit's incoming weights (stack axis 0).

    Linear weights are (M, in, out): a unit's incoming weights run along `in`; convolution
    weights are (M, out, in, *kernel): along everything after `out`."""
    dims = {}
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(module, StackedLinear):
            dims[f"{prefix}weight"] = (1,)
        elif isinstance(module, StackedConv):
            dims[f"{prefix}weight"] = tuple(range(2, module.weight.dim()))
    return dims


def penalty(weights: list[torch.Tensor], l1: torch.Tensor, l2: torch.Tensor) -> torch.Tensor:
    """Σ over members of λ1_m·Σ|w_m| + λ2_m·Σw_m² (l1, l2: (M,) per-member strengths)."""
    total = torch.zeros((), device=l1.device)
    for w in weights:
        flat = w.flatten(1)
        total = total + l1 @ flat.abs().sum(1) + l2 @ flat.square().sum(1)
    return total


@torch.no_grad()
def renorm(weight: torch.Tensor, dims: tuple[int, ...], max_norm: float) -> None:
    """Clip each unit's incoming weight vector to `max_norm` (Srivastava et al. 2014), in place;
    `weight` keeps its stack axis first (a member's slice or several)."""
    norms = weight.square().sum(dims, keepdim=True).sqrt()
    weight.mul_((max_norm / norms.clamp(min=1e-12)).clamp(max=1.0))


def cyclic_factor(step: int, steps_per_epoch: int, epochs: int, cycles: int) -> float:
    """Snapshot ensembles' schedule: the learning rate anneals from the base rate to 0 by half a
    cosine within each cycle, then restarts; cycle k ends at epoch round(k·epochs/cycles)."""
    ends = cycle_ends(epochs, cycles)
    epoch = step // steps_per_epoch
    k = min(int(np.searchsorted(ends, epoch, side="right")), cycles - 1)  # after the last step:
    #                                                                       still the last cycle
    start = 0 if k == 0 else ends[k - 1]
    length = (ends[k] - start) * steps_per_epoch
    return 0.5 * (1 + math.cos(math.pi * (step - start * steps_per_epoch) / length))


def cycle_ends(epochs: int, cycles: int) -> list[int]:
    """The epochs after which a snapshot is taken (the last one is the final epoch)."""
    return [round(k * epochs / cycles) for k in range(1, cycles + 1)]
