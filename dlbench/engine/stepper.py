"""Stepping: each config's optimizer and schedule over its members' slices of the stacked
weights, with the regimen hooks around every step.

An optimizer's own weight_decay (`--weight-decay`, adamw's default) follows the weight-decay
convention of regimens.py: its parameter group of weights takes it, every other parameter
(biases, batch-norm) is a group with weight_decay 0.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from dlbench.engine import regimens
from dlbench.engine.members import Member, TrainConfig
from dlbench.engine.regimens import Hook
from dlbench.optim.optimizers import OptimSpec, build_optimizer, step
from dlbench.optim.schedules import build_scheduler

Named = list[tuple[str, torch.Tensor]]  # (name, tensor) pairs, the model's order


def config_groups(pairs: list[tuple[TrainConfig, Member]]) -> list[tuple[TrainConfig, slice]]:
    """Runs of stack members that share a config (plan_stacks keeps them contiguous)."""
    groups: list[tuple[TrainConfig, slice]] = []
    for i, (config, _) in enumerate(pairs):
        if groups and groups[-1][0] is config:
            groups[-1] = (config, slice(groups[-1][1].start, i + 1))
        else:
            groups.append((config, slice(i, i + 1)))
    return groups


@dataclass(eq=False)
class Group:
    """One config's optimizer and schedule over its members' slices of the stacked weights."""

    opt: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR | None  # None: constant, nothing to step
    rows: slice  # its members along the stack axis
    views: list[tuple[torch.nn.Parameter, torch.Tensor]]  # (its slice, the stacked parameter)
    # its trained weights: (tensor, a unit's incoming axes, index of its optimizer param group)
    weights: list[tuple[torch.Tensor, tuple[int, ...], int]]


class Stepper:
    """One optimizer step on an objective, then one schedule step, for every config group.

    With several groups each optimizer owns Parameters that are views into the stacked weights'
    storage: its in-place updates land in the model, and its gradients are its slice of the
    stacked gradient. Closure optimizers (L-BFGS, Newton) re-evaluate the objective as often as
    they need; they are always alone in their stack, so they own the whole tensors. A parameter
    whose learning-rate multiplier is 0 is left out of its group's optimizer (frozen); frozen in
    every group, it needs no gradient at all.

    It counts gradient evaluations (the same for every member of the stack) and, when several
    groups share the stack, times each group's own optimizer and schedule steps.
    """

    def __init__(self, named: Named, groups: list[tuple[TrainConfig, slice]],
                 steps_per_epoch: int, epochs: int, weights: dict[str, tuple[int, ...]],
                 hooks: Sequence[Hook] = (), sync: bool = False):
        """`weights`: the decayed weights' names -> a unit's incoming axes (regimens.py)."""
        self.params, self.hooks = [p for _, p in named], hooks
        self.closure = groups[0][0].optimizer.info.full_batch
        self.evals = 0  # gradient evaluations so far, per member
        self.group_seconds = [0.0] * len(groups)  # each group's own step time (several groups)
        self._timed = len(groups) > 1  # alone, a group's time is all the stack's anyway
        self._sync = sync  # CUDA runs asynchronously: synchronise before reading the clock
        for name, p in named:
            if all(config.regimen.lr_scale(name) == 0 for config, _ in groups):
                p.requires_grad_(False)
        self.groups = [self._group(named, config, rows, len(groups) > 1, weights,
                                   partial(_scheduler, config=config,
                                           steps_per_epoch=steps_per_epoch, epochs=epochs))
                       for config, rows in groups]

    def _group(self, named: Named, config: TrainConfig, rows: slice, shared: bool,
               weights: dict[str, tuple[int, ...]], scheduler: Callable[..., Any]) -> Group:
        """A config's optimizer over its own slices (the whole tensors when it is alone)."""
        own = [torch.nn.Parameter(p.data[rows]) for p in self.params] if shared else self.params
        scales = {name: config.regimen.lr_scale(name) for name, _ in named}
        trained = [(name, mine, full) for (name, full), mine in zip(named, own, strict=True)
                   if scales[name] > 0]
        param_groups = _param_groups(config.optimizer, [(n, p) for n, p, _ in trained], scales,
                                     weights)
        index = {id(p): g for g, group in enumerate(param_groups) for p in group["params"]}
        simple = len(param_groups) == 1 and set(param_groups[0]) == {"params"}
        opt = build_optimizer(config.optimizer,
                              param_groups[0]["params"] if simple else param_groups)
        views = [(mine, full) for _, mine, full in trained] if shared else []
        decayed = [(mine, weights[name], index[id(mine)]) for name, mine, _ in trained
                   if name in weights]
        return Group(opt, scheduler(opt), rows, views, decayed)

    def __call__(self, objective: Callable[[], torch.Tensor]) -> None:
        if self.closure:
            self._closure_step(objective)
        else:
            for p in self.params:
                p.grad = None
            objective().backward()
            self.evals += 1
            for i, group in enumerate(self.groups):
                begin = self._clock() if self._timed else 0.0
                for view, full in group.views:
                    view.grad = None if full.grad is None else full.grad[group.rows]
                self._step(group)
                if self._timed:
                    self.group_seconds[i] += self._clock() - begin

    def _step(self, group: Group, closure: Callable[[], torch.Tensor] | None = None) -> None:
        for hook in self.hooks:
            hook.before_step(group)
        step(group.opt, closure)
        for hook in self.hooks:
            hook.after_step(group)
        if group.scheduler is not None:
            group.scheduler.step()

    def _closure_step(self, objective: Callable[[], torch.Tensor]) -> None:
        group = self.groups[0]

        def closure(backward: bool = True) -> torch.Tensor:
            self.evals += 1
            group.opt.zero_grad(set_to_none=True)
            value = objective()
            if backward:
                value.backward()
            return value

        self._step(group, closure)
        self.evals += getattr(group.opt, "hessian_passes", 0)  # Newton: a pass per Hessian row

    def _clock(self) -> float:
        if self._sync:
            torch.cuda.synchronize()
        return time.perf_counter()


def _param_groups(spec: OptimSpec, trained: Named, scales: dict[str, float],
                  weights: dict[str, tuple[int, ...]]) -> list[dict[str, Any]]:
    """A config's optimizer parameter groups: one per learning-rate multiplier and, when the
    optimizer decays, per decayed or not (the weights keep its weight_decay, the rest get 0).
    A lone group at the base rate with nothing to split is just its parameters."""
    decay = weight_decay(spec)
    keyed: dict[tuple[float, bool], list[torch.Tensor]] = {}
    for name, p in trained:
        keyed.setdefault((scales[name], bool(decay) and name in weights), []).append(p)
    if list(keyed) == [(1.0, False)] and not decay:
        return [{"params": keyed[(1.0, False)]}]
    groups = []
    for (scale, decayed), params in keyed.items():
        group: dict[str, Any] = {"params": params, "lr": spec.lr * scale}
        if decay:
            group["weight_decay"] = decay if decayed else 0.0
        groups.append(group)
    return groups


def weight_decay(spec: OptimSpec) -> float:
    """The optimizer's own weight_decay as it will run: the entry's, else the class default
    (adamw: 0.01); 0 for one without any."""
    return float({**spec.info.signature_defaults(), **dict(spec.params)}.get("weight_decay")
                 or 0.0)


def _scheduler(opt: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int,
               epochs: int) -> torch.optim.lr_scheduler.LambdaLR | None:
    """The config's schedule (snapshot ensembles: their cycles); None when constant."""
    cycles = config.regimen.snapshots
    if cycles:
        return torch.optim.lr_scheduler.LambdaLR(opt, partial(
            regimens.cyclic_factor, steps_per_epoch=steps_per_epoch, epochs=epochs,
            cycles=cycles))
    if config.schedule == "constant" and not config.warmup:
        return None
    return build_scheduler(opt, config.schedule, steps_per_epoch * epochs, config.warmup)
