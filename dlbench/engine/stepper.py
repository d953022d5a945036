"""Stepping: each config's optimizer and schedule over its members' slices of the stacked
weights, with the regimen hooks around every step.

Leaf views: an optimizer that is neither elementwise nor full batch (a per-tensor norm, a trust
ratio, a matrix preconditioner, global clipping, SAM, a schedule-free optimizer: anything that is
not a function of each weight's own gradient history) never sees the stacked tensors. It gets,
for each member, its own instance over one leaf Parameter per stacked parameter that shares
storage with the member's slice (no stack axis), the member's slice of the stacked gradient as
each leaf's grad. The forward and backward stay stacked; only the steps are per member. Such an
optimizer must update its parameters in place (the first step checks that each leaf still
shares the stack's storage). One whose `step` has a `closure` parameter without a default
(SAM-like: it re-evaluates the loss) trains each member alone, as full-batch ones do: in a
stack, its closure's value would be the whole stack's objective, and each re-evaluation would
draw its neighbours' dropout masks too; alone, the closure is the member's own. An optimizer
with callable `train()` and `eval()` methods (schedule-free) is switched to eval before every
evaluation and prediction, and back to train before training.

An optimizer that draws random numbers (PSGD Kron's preconditioner updates, a random initial
state) draws them from torch's and numpy's global generators. A member's own optimizer (leaf
views, or a member alone) steps with those generators set to a stream of its own, derived from
the member's seed (seeding.OPTIMIZER_KEY) and carried from step to step, and then restored: its
draws are the same alone and in any stack, run after run, and no one else's draws move.

An optimizer's own weight_decay (`--weight-decay`, adamw's default) follows the weight-decay
convention of regimens.py: its parameter group of weights takes it, every other parameter
(biases, batch-norm) is a group with weight_decay 0.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch

from dlbench import plugins
from dlbench.engine import regimens
from dlbench.engine.members import Member, TrainConfig
from dlbench.engine.regimens import Hook
from dlbench.errors import DlbenchError
from dlbench.optim import collection
from dlbench.optim.optimizers import OptimInfo, OptimSpec, build_optimizer, step
from dlbench.optim.schedules import build_scheduler
from dlbench.seeding import OPTIMIZER_KEY, derive_seed

Named = list[tuple[str, torch.Tensor]]  # (name, tensor) pairs, the model's order


@dataclass(frozen=True)
class Stacking:
    """How an optimizer's members train: the one rule that the trainer, the task planner, the
    cost estimate and `dlbench optimizers` all read (`stacking`)."""

    label: str  # what `dlbench optimizers` shows in its "stacked" column
    alone: bool  # each member trains in a stack of its own
    leaves: bool  # each member's optimizer steps its own leaf views (never the stacked tensors)
    means: str  # the same in words, for `dlbench check`


# elementwise: one optimizer steps the stacked slices
STACKED = Stacking("yes", False, False, "stacked, one optimizer on the stacked tensors")
LEAVES = Stacking("yes, per member", False, True,  # any other minibatch optimizer
                  "stacked, an optimizer per member on its leaf views")
# a minibatch step that re-evaluates a closure (SAM): in a stack the closure would be the whole
# stack's objective, so alone, still over its leaf views
CLOSURE = Stacking("alone", True, True, "each member alone: its step re-evaluates a closure")
FULL_BATCH = Stacking("alone, full batch", True, False,  # owns the whole tensors
                      "each member alone: full batch")


def stacking(spec: OptimSpec) -> Stacking:
    """How `spec`'s members train: full batch (declared), else elementwise (declared), else
    per member on leaf views, alone when its step asks for a closure — which the class says,
    or (a plugged factory shows its class only when called) an instance built for `spec`."""
    info = spec.info
    if info.full_batch:
        return FULL_BATCH
    if info.elementwise:
        return STACKED
    cls = info.cls if isinstance(info.cls, type) else _built_class(spec)
    return CLOSURE if wants_closure(cls) else LEAVES


@functools.cache
def _built_class(spec: OptimSpec) -> type:
    return type(build_optimizer(spec, [torch.nn.Parameter(torch.zeros(1))]))


def entry_stacking(info: OptimInfo) -> Stacking | None:
    """`stacking` of an entry at its defaults (listings); None for a factory that cannot be
    built at its defaults (no default lr): its instance would tell."""
    lr = info.signature_defaults().get("lr")
    if not isinstance(info.cls, type) and not isinstance(lr, int | float):
        return None
    try:
        return stacking(OptimSpec(info.name, float(lr or 1e-3)))
    except Exception:  # the user's factory may raise anything at its defaults: not known
        return None


def wants_closure(opt: torch.optim.Optimizer | type[torch.optim.Optimizer]) -> bool:
    """A minibatch optimizer (or its class) asks for a closure by a `closure` parameter without
    a default (or, in pytorch-optimizer, by raising its NoClosureError without one)."""
    return _class_wants_closure(opt if isinstance(opt, type) else type(opt))


@functools.cache
def _class_wants_closure(cls: type) -> bool:  # asked per config and member: once per class
    found = inspect.signature(cls.step).parameters.get("closure")
    return (found is not None and found.default is inspect.Parameter.empty) or \
        collection.asks_closure(cls)


def trains_alone(spec: OptimSpec) -> bool:
    """Whether each member of this optimizer trains in a stack of its own (`stacking`)."""
    return stacking(spec).alone


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
    at: slice | int  # what indexes its part of a stacked tensor: rows, or one member (leaves)
    views: list[tuple[torch.nn.Parameter, torch.Tensor]]  # (its slice, the stacked parameter)
    # its trained weights: (tensor, a unit's incoming axes, index of its optimizer param group)
    weights: list[tuple[torch.Tensor, tuple[int, ...], int]]
    config: int  # its config's index among the stack's config groups
    name: str  # its optimizer as result rows show it, for errors
    closure: bool  # a per-member optimizer whose step needs a closure
    # one member's optimizer: its own state of the global generators it may draw from (None:
    # several members' optimizer, or the point of minimize)
    rng: Rng | None = None
    plugged: bool = False  # the user's optimizer (plugins.is_plugged): its errors are one line
    checked: bool = False  # its views were found to share the stack's storage after a step


class Stepper:
    """One optimizer step on an objective, then one schedule step, for every optimizer group.

    With several groups each optimizer owns Parameters that are views into the stacked weights'
    storage: its in-place updates land in the model, and its gradients are its slice of the
    stacked gradient. A config of an elementwise optimizer is one group over its members'
    slices; one of any other minibatch optimizer is a group per member over that member's leaf
    views (the module docstring). Closure optimizers (L-BFGS, Newton) re-evaluate the objective
    as often as they need; they are always alone in their stack, so they own the whole tensors.
    A parameter whose learning-rate multiplier is 0 is left out of its group's optimizer
    (frozen); frozen in every group, it needs no gradient at all.

    It counts gradient evaluations (the same for every member of the stack) and, when several
    configs share the stack, times each config's own optimizer and schedule steps.
    """

    def __init__(self, named: Named, groups: list[tuple[TrainConfig, slice]],
                 steps_per_epoch: int, epochs: int, weights: dict[str, tuple[int, ...]],
                 hooks: Sequence[Hook] = (), sync: bool = False, stacked: bool = True,
                 seeds: Sequence[int] = ()):
        """`weights`: the decayed weights' names -> a unit's incoming axes (regimens.py);
        `stacked`: the tensors have the stack axis (minimize's point has none); `seeds`: the
        members' seeds along it (their optimizers' own random streams)."""
        self.params, self.hooks = [p for _, p in named], hooks
        self.closure = groups[0][0].optimizer.info.full_batch
        self.evals = 0  # gradient evaluations so far, per member
        self.group_seconds = [0.0] * len(groups)  # each config's own step time (several)
        self._timed = len(groups) > 1  # alone, a config's time is all the stack's anyway
        self._sync = sync  # CUDA runs asynchronously: synchronise before reading the clock
        self._evaluating: bool | None = None  # the train()/eval() switch (None: not yet set)
        self._position = {id(p): i for i, p in enumerate(self.params)}
        for name, p in named:
            if all(config.regimen.lr_scale(name) == 0 for config, _ in groups):
                p.requires_grad_(False)
        shared = len(groups) > 1
        config_of = [config for config, _ in groups]
        self.groups = [self._group(named, (c, rows), config, at, weights,
                                   partial(_scheduler, config=config,
                                           steps_per_epoch=steps_per_epoch, epochs=epochs))
                       for c, (config, rows) in enumerate(groups)
                       for at in (_parts(config, rows, shared) if stacked else [None])]
        for group in self.groups:  # one member's own optimizer: a stream of its own; an
            # elementwise one steps stacked members with no stream of theirs, so alone neither
            # (and no generator state is swapped around every step of adam on a lone member)
            if seeds and not config_of[group.config].optimizer.info.elementwise and \
                    group.rows.stop - (group.rows.start or 0) == 1:
                group.rng = Rng(derive_seed(seeds[group.rows.start or 0], OPTIMIZER_KEY))

    def _group(self, named: Named, where: tuple[int, slice], config: TrainConfig,
               at: slice | int | None, weights: dict[str, tuple[int, ...]],
               scheduler: Callable[..., Any]) -> Group:
        """A config's optimizer over its own slices (`at`; None: the whole tensors, alone);
        `where`: the config's index and rows among the stack's config groups."""
        own = self.params if at is None else [torch.nn.Parameter(p.data[at])
                                              for p in self.params]
        scales = {name: config.regimen.lr_scale(name) for name, _ in named}
        trained = [(name, mine, full) for (name, full), mine in zip(named, own, strict=True)
                   if scales[name] > 0]
        param_groups = _param_groups(config.optimizer, [(n, p) for n, p, _ in trained], scales,
                                     weights)
        index = {id(p): g for g, group in enumerate(param_groups) for p in group["params"]}
        simple = len(param_groups) == 1 and set(param_groups[0]) == {"params"}
        opt = build_optimizer(config.optimizer,
                              param_groups[0]["params"] if simple else param_groups)
        views = [] if at is None else [(mine, full) for _, mine, full in trained]
        shift = 1 if isinstance(at, int) else 0  # a leaf has no stack axis
        decayed = [(mine, tuple(d - shift for d in weights[name]), index[id(mine)])
                   for name, mine, _ in trained if name in weights]
        c, rows = where
        return Group(opt, scheduler(opt), slice(at, at + 1) if isinstance(at, int) else rows,
                     slice(None) if at is None else at, views, decayed, c,
                     config.optimizer.shown,
                     isinstance(at, int) and wants_closure(opt),
                     plugged=plugins.is_plugged(config.optimizer.name))

    def __call__(self, objective: Callable[[], torch.Tensor]) -> None:
        if self.closure:
            self._closure_step(objective)
            return
        for p in self.params:
            p.grad = None
        objective().backward()
        grads = [p.grad for p in self.params]  # kept: a member's closure replaces p.grad
        extra = 0  # the most evaluations a member's closure made this step
        for group in self.groups:
            begin = self._clock() if self._timed else 0.0
            for view, full in group.views:
                view.grad = _part(grads[self._position[id(full)]], group.at)
            extra = max(extra, self._group_step(group, objective))
            if self._timed:
                self.group_seconds[group.config] += self._clock() - begin
        self.evals += 1 + extra

    def _group_step(self, group: Group, objective: Callable[[], torch.Tensor]) -> int:
        """The group's step (with a closure when its optimizer asks) -> closure evaluations."""
        calls = [0]

        def closure() -> torch.Tensor:
            calls[0] += 1
            with torch.enable_grad():
                for p in self.params:
                    p.grad = None
                value = objective()
                value.backward()
            for view, full in group.views:
                view.grad = _part(full.grad, group.at)
            return value.detach()

        self._step(group, closure if group.closure else None)
        if not group.checked:
            _check_storage(group)
        return calls[0]

    def eval(self) -> None:
        """Every optimizer with a train()/eval() switch to eval (before an evaluation)."""
        self._switch(True)

    def train(self) -> None:
        """Every optimizer with a train()/eval() switch back to train (before training)."""
        self._switch(False)

    def _switch(self, evaluating: bool) -> None:
        if evaluating == self._evaluating:
            return  # a switch is not idempotent for every optimizer: only real changes call it
        if evaluating and not self.evals:
            # before the first step the weights are the initial ones in either mode, and some
            # eval() read state that only a step creates (pytorch-optimizer's SPlus)
            return
        self._evaluating = evaluating
        for group in self.groups:
            train, evaluate = getattr(group.opt, "train", None), getattr(group.opt, "eval", None)
            if callable(train) and callable(evaluate):
                (evaluate if evaluating else train)()

    def _step(self, group: Group, closure: Callable[[], torch.Tensor] | None = None) -> None:
        for hook in self.hooks:
            hook.before_step(group)
        try:
            if group.rng is None:
                step(group.opt, closure)
            else:
                with group.rng:
                    step(group.opt, closure)
        except Exception as e:  # the user's optimizer may need what no stack gives: say so
            if not group.plugged or isinstance(e, DlbenchError):
                raise
            raise DlbenchError(f"optimizer {group.name} failed in its step: "
                               f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                               "; it cannot train here as given") from None
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


class Rng:
    """A member's own state of the global generators (torch's CPU and current CUDA device's,
    numpy's): `with rng:` makes it current, and on leaving keeps where it got to and puts the
    others' state back."""

    def __init__(self, seed: int):
        with torch.random.fork_rng(devices=_cuda()):
            torch.manual_seed(seed)
            self.torch = torch.get_rng_state()
            self.cuda = torch.cuda.get_rng_state() if _cuda() else None
        self.numpy = np.random.RandomState(seed).get_state()
        self._saved: tuple[Any, Any, Any] | None = None

    def __enter__(self) -> None:
        self._saved = (torch.get_rng_state(), torch.cuda.get_rng_state() if _cuda() else None,
                       np.random.get_state())
        torch.set_rng_state(self.torch)
        if self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda)
        np.random.set_state(self.numpy)

    def __exit__(self, *exc: object) -> None:
        self.torch, self.numpy = torch.get_rng_state(), np.random.get_state()
        if self.cuda is not None:
            self.cuda = torch.cuda.get_rng_state()
        saved_torch, saved_cuda, saved_numpy = self._saved
        torch.set_rng_state(saved_torch)
        if saved_cuda is not None:
            torch.cuda.set_rng_state(saved_cuda)
        np.random.set_state(saved_numpy)


def _cuda() -> list[int]:
    """The CUDA device whose generator an optimizer's CUDA tensors draw from (none on CPU);
    asked without initialising CUDA where it was not."""
    return [torch.cuda.current_device()] if torch.cuda.is_initialized() else []


def _parts(config: TrainConfig, rows: slice, shared: bool) -> list[slice | int | None]:
    """What each of a config's optimizer groups steps: every member alone for a per-member
    optimizer, else its members' slices, or the whole tensors (None) when it is alone."""
    if stacking(config.optimizer).leaves:
        return list(range(rows.start, rows.stop))
    return [rows] if shared else [None]


def _part(grad: torch.Tensor | None, at: slice | int) -> torch.Tensor | None:
    return None if grad is None else grad[at]


def _check_storage(group: Group) -> None:
    """A step that gave a view new storage (`p.data = ...`) left the model behind: refused."""
    for view, full in group.views:
        if view.data_ptr() != full.data[group.at].data_ptr():
            raise DlbenchError(f"optimizer {group.name} replaced a parameter's storage "
                               "(p.data = ...); it must update parameters in place "
                               "(p.add_, p.copy_, ...)")
    group.checked = True


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
