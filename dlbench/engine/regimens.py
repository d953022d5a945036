"""Regimens: what a member's training adds to plain minimisation of its mean batch loss.

`Regimen` holds a config's values; a hook applies them to a stack. Every value is per config,
and a stack holds members of several configs, so members with different regimens still train
as one stack: each regimen's hook is built once per stack from every member's value, and acts on
a member's own slice only, which keeps the exactness contract:
- a penalty on the weights joins the member's own loss term (its gradient is its own);
- decoupled weight decay and max-norm act on each config's slice around its own step;
- early stopping and snapshots are epoch-end hooks that copy or restore a member's slice;
- augmentation draws each member's noise from its own generator;
- learning-rate multipliers per parameter (0 freezes it) are parameter groups of each config's
  own optimizer (stepper.py), as is the snapshots' cyclic schedule.

The trainer calls a hook (`Hook`) at fixed points of its loop: `batch` (a training batch before
the forward pass), `loss` (the stacked objective: a hook adds each member's own term),
`before_step` / `after_step` (around one config's optimizer step, on its slices),
`after_epoch` (after each epoch's evaluation; may stop a member), and `before_predict` /
`after_predict` (around the final predictions). A new regimen is one Hook subclass and one
`REGIMENS` entry that reads its per-member value from a `Regimen` field (the `--reg` registry in
regularizers.py then sets that field), plus its plain one-model version in
tests/test_contract.py's `PlainRegimen`, which the contract test trains it against.

The weight-decay convention, for every path that decays or penalises: "weights" are the weight
tensors of linear and convolution layers (`weight_norm_dims`; a plugged model's nn.Linear and
nn.ConvNd layers); biases and batch-norm parameters
are never penalised, decayed or renormed. That holds for the optimizer's own `weight_decay`
too (`--weight-decay`, adamw's default 0.01): the weights are one parameter group with it, every
other parameter a group with weight_decay 0 (stepper.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from dlbench.data.augment import Augment, augment_batch, generators
from dlbench.engine.predictions import Predictions, averaged
from dlbench.errors import DlbenchError
from dlbench.nn.models import StackedConv, StackedLinear
from dlbench.nn.plugged import PluggedModel, decayed_weights
from dlbench.registry import Registry

if TYPE_CHECKING:  # stepper.py calls the hooks, so it imports this module
    from dlbench.engine.stepper import Group


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
    weights are (M, out, in, *kernel): along everything after `out`. A plugged model's are its
    nn.Linear and nn.ConvNd weights (nn/plugged.py)."""
    if isinstance(model, PluggedModel):
        return decayed_weights(model)
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


# --- the hook protocol -----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Stack:
    """What a stack's regimen hooks are built from."""

    model: nn.Module  # the stacked model: every parameter and buffer has the stack axis first
    groups: list[slice]  # runs of members that share one config, in stack order
    seeds: list[int]  # each member's seed (its own random draws)
    input_shape: tuple[int, ...] | None  # one sample's shape; None: tabular
    splits: dict[str, list[np.ndarray]]  # every split ("train" first) -> each member's rows
    epochs: int  # every member's epochs (a stack shares them)
    device: torch.device  # where the stack trains
    best: bool  # the caller asks for each member's best epoch and its predictions then


@dataclass(frozen=True, eq=False)
class Batch:
    """One training step as the loss hooks see it; M members, B rows each."""

    out: torch.Tensor  # (M, B, outputs) the model's outputs
    y: torch.Tensor  # (M, B) loss-ready targets
    loss: torch.Tensor  # (M, B) each row's data loss
    share: torch.Tensor  # (M, B) each row's share of its member's batch mean; 0 for padding


@dataclass(frozen=True, eq=False)
class EpochEnd:
    """An epoch's end (epoch 0: before training), after its evaluation."""

    epoch: int  # epochs trained so far
    stats: dict[str, np.ndarray]  # split -> (M, 3) summed loss, correct, rows (eval mode)
    outputs: Callable[[list[np.ndarray]], torch.Tensor]  # eval-mode outputs (M, N, outputs)
    #                                                      on each member's given rows
    stopped: list[int | None]  # member m's last epoch once it stopped: a hook may set it (its
    #                            curve and cost end there; the stack ends when all stopped)


@dataclass(frozen=True, eq=False)
class Finish:
    """The end of training, for hooks that change what a member delivers."""

    predict: Callable[[], list[dict[str, Predictions]]]  # each member's predictions on every
    #                                                       split with the weights as they are
    predictions: list[dict[str, Predictions]]  # what each member delivers (a hook may replace)
    to_predictions: Callable[[np.ndarray, int, str], Predictions]  # member m's outputs (n,
    #                                                   outputs) on a split -> its predictions
    extras: list[dict[str, Any]]  # more MemberResult fields per member (best_epoch, at_best)


class Hook:
    """A regimen applied to one stack, from every member's value (None: not that member's).

    Each method is called at its point of the training loop and acts on each member's own slice
    only; the defaults do nothing."""

    def __init__(self, stack: Stack, values: list[Any]):
        self.stack = stack
        self.values = values  # member m's value, in stack order

    @classmethod
    def build(cls, stack: Stack, values: list[Any]) -> Hook | None:
        """The stack's hook; None when no member has a value (the regimen changes nothing)."""
        return cls(stack, values) if any(v is not None for v in values) else None

    def batch(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """A training batch x (M, B, d) before the forward pass; weight (M, B): 1 real row,
        0 padding (which comes last)."""
        return x

    def loss(self, total: torch.Tensor, batch: Batch) -> torch.Tensor:
        """The stacked objective, a sum over members: add each member's own term."""
        return total

    def before_step(self, group: Group) -> None:
        """Before one config's optimizer step, on its members' slices."""

    def after_step(self, group: Group) -> None:
        """After one config's optimizer step, before its schedule steps."""

    def after_epoch(self, end: EpochEnd) -> None:
        """After each epoch's evaluation, epoch 0 included."""

    def before_predict(self) -> None:
        """Before the final predictions and weights are taken."""

    def after_predict(self, finish: Finish) -> None:
        """After the final predictions and weights are taken."""


@dataclass(frozen=True)
class RegimenInfo:
    name: str  # registry name
    hook: type[Hook]  # applies the regimen to a stack
    value: Callable[[Regimen], Any]  # a member's value from its config's regimen; None: off


REGIMENS: Registry[RegimenInfo] = Registry("regimen")


def build_hooks(stack: Stack, regimens: list[Regimen]) -> list[Hook]:
    """Every registered regimen's hook that acts on some member of the stack, in registry
    order (the order in which the loop calls them)."""
    hooks = (info.hook.build(stack, [info.value(r) for r in regimens]) for info in REGIMENS)
    return [hook for hook in hooks if hook is not None]


def per_group(stack: Stack, values: list[Any]) -> list[tuple[slice, Any]]:
    """(members, value) of each config group with a value: a group's members share it."""
    return [(rows, values[rows.start]) for rows in stack.groups
            if values[rows.start] is not None]


# --- the built-in regimens -------------------------------------------------------------------


class Augmentation(Hook):
    """Training batches augmented, each member's real rows from its own generator."""

    def __init__(self, stack: Stack, values: list[Augment | None]):
        super().__init__(stack, values)
        self._groups = [(rows, spec, generators(stack.seeds[rows], stack.device))
                        for rows, spec in per_group(stack, values)]

    def batch(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        for rows, spec, member_generators in self._groups:
            real = weight[rows].sum(1).int().tolist()
            x[rows] = augment_batch(x[rows], self.stack.input_shape, spec, member_generators,
                                    real)
        return x


class Penalty(Hook):
    """λ1·Σ|w| + λ2·Σw² over the weights joins each member's loss."""

    def __init__(self, stack: Stack, values: list[tuple[float, float] | None]):
        super().__init__(stack, values)
        self.l1, self.l2 = (torch.tensor([(v or (0.0, 0.0))[k] for v in values],
                                         device=stack.device) for k in (0, 1))  # (M,) each
        params = dict(stack.model.named_parameters())
        self.weights = [params[name] for name in weight_norm_dims(stack.model)]

    def loss(self, total: torch.Tensor, batch: Batch) -> torch.Tensor:
        return total + penalty(self.weights, self.l1, self.l2)


class Decay(Hook):
    """Decoupled weight decay at the current rate, before the step (as AdamW does)."""

    @torch.no_grad()
    def before_step(self, group: Group) -> None:
        decay = self.values[group.rows.start]
        if decay is not None:
            for w, _, g in group.weights:
                w.mul_(1 - group.opt.param_groups[g]["lr"] * decay)


class MaxNorm(Hook):
    """Each unit's incoming weights clipped to a norm after every step."""

    def after_step(self, group: Group) -> None:
        max_norm = self.values[group.rows.start]
        if max_norm is not None:
            for w, dims, _ in group.weights:
                renorm(w, dims, max_norm)


class BestEpoch(Hook):
    """Each member's epoch of lowest validation loss, with a copy of its weights then; members
    with early-stopping patience stop after that many epochs without a new low and deliver the
    best epoch's weights. Built too when the caller asks for best-epoch scores."""

    def __init__(self, stack: Stack, values: list[int | None]):
        super().__init__(stack, values)
        if "val" not in stack.splits:
            raise DlbenchError("early stopping and best-epoch scores watch a validation split, "
                               "and these members have none")
        members = len(values)
        self.lowest = [math.inf] * members
        self.epoch: list[int | None] = [None] * members
        self.weights: list[dict[str, torch.Tensor] | None] = [None] * members

    @classmethod
    def build(cls, stack: Stack, values: list[Any]) -> Hook | None:
        return cls(stack, values) if stack.best else super().build(stack, values)

    def after_epoch(self, end: EpochEnd) -> None:
        state = self.stack.model.state_dict()
        for m, (loss, _, count) in enumerate(end.stats["val"]):
            if end.stopped[m] is not None:
                continue
            if loss / count < self.lowest[m]:  # NaN never is
                self.lowest[m], self.epoch[m] = loss / count, end.epoch
                self.weights[m] = {k: v[m].clone() for k, v in state.items()}
            waited = end.epoch - (self.epoch[m] or 0)
            patience = self.values[m]
            if patience and (waited >= patience or end.epoch == self.stack.epochs):
                end.stopped[m] = end.epoch

    def before_predict(self) -> None:
        self._restore([m for m, patience in enumerate(self.values) if patience])

    def after_predict(self, finish: Finish) -> None:
        """Every member scored with its best epoch's weights too (`MemberResult.at_best`)."""
        self._restore(range(len(self.values)))
        at_best = finish.predict()
        for m, extras in enumerate(finish.extras):
            extras.update(best_epoch=self.epoch[m], at_best=at_best[m])

    @torch.no_grad()
    def _restore(self, members) -> None:
        """Those members' weights back to their best epoch's."""
        state = self.stack.model.state_dict()
        for m in members:
            if self.weights[m] is not None:
                for k, v in self.weights[m].items():
                    state[k][m].copy_(v)


class Snapshots(Hook):
    """Snapshot ensembles: at each cycle's end, member m's outputs on every split; it delivers
    their averaged probabilities (regression: predictions). The cyclic learning rate is its
    config's schedule (stepper.py)."""

    def __init__(self, stack: Stack, values: list[int | None]):
        super().__init__(stack, values)
        self.ends = [set(cycle_ends(stack.epochs, n)) if n else set() for n in values]
        self.outputs: list[dict[str, list[np.ndarray]]] = [{} for _ in values]

    def after_epoch(self, end: EpochEnd) -> None:
        takers = [m for m, ends in enumerate(self.ends) if end.epoch in ends]
        if not takers:
            return
        for split, rows in self.stack.splits.items():
            out = end.outputs(rows).double().cpu().numpy()
            for m in takers:
                self.outputs[m].setdefault(split, []).append(out[m, : len(rows[m])])

    def after_predict(self, finish: Finish) -> None:
        for m, outputs in enumerate(self.outputs):
            for split, outs in outputs.items():
                finish.predictions[m][split] = averaged(
                    [finish.to_predictions(out, m, split) for out in outs])


for _info in (
    RegimenInfo("augment", Augmentation, lambda r: r.augment if r.augment.active else None),
    RegimenInfo("penalty", Penalty, lambda r: (r.l1, r.l2) if r.penalised else None),
    RegimenInfo("decay", Decay, lambda r: r.decay or None),
    RegimenInfo("max-norm", MaxNorm, lambda r: r.max_norm or None),
    RegimenInfo("early-stop", BestEpoch, lambda r: r.patience or None),
    RegimenInfo("snapshots", Snapshots, lambda r: r.snapshots or None),
):
    REGIMENS.add(_info)
