"""Optimizers that are not elementwise share a stack through per-member leaf views
(engine/stepper.py): each sees only its member's unstacked weights and gradients, so its norms,
trust ratios, clipping, closures and train/eval switch are the member's own. Each is checked by
the contract's own helpers: member 0 alone equals member 0 in a stack of four (one stack, as
plan_stacks forms it), and equals an ordinary one-model PyTorch loop."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from test_contract import (
    BATCH,
    EPOCHS,
    OPTIMIZER_MODEL,
    NormalizedSGD,
    assert_same_member,
    check_plain,
    check_stacking,
    make_data,
    make_members,
    optimizer_case,
)

from dlbench.engine.members import TrainConfig, model_shape
from dlbench.engine.regimens import Regimen
from dlbench.engine.trainer import plan_stacks, train, train_grid
from dlbench.errors import DlbenchError
from dlbench.nn.models import ModelSpec, build_model
from dlbench.optim.optimizers import OPTIMIZERS, OptimInfo, OptimSpec


def _params(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for group in opt.param_groups for p in group["params"] if p.grad is not None]


class TrustRatioSGD(torch.optim.Optimizer):
    """LARS: each tensor's step scaled by ‖w‖ / ‖g + wd·w‖, a ratio of norms over the tensor."""

    def __init__(self, params, lr: float = 0.1, weight_decay: float = 1e-3):
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                update = p.grad + group["weight_decay"] * p
                w, u = p.norm(), update.norm()
                trust = torch.where((w > 0) & (u > 0), w / u.clamp(min=1e-12), 1.0)
                p.sub_(group["lr"] * trust * update)


class ClippedSGD(torch.optim.Optimizer):
    """SGD with the gradient clipped to a global norm over every parameter it steps."""

    def __init__(self, params, lr: float = 0.1, max_norm: float = 0.2):
        super().__init__(params, {"lr": lr, "max_norm": max_norm})

    @torch.no_grad()
    def step(self, closure=None):
        params = _params(self)
        total = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
        scale = (self.defaults["max_norm"] / total.clamp(min=1e-12)).clamp(max=1.0)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.sub_(group["lr"] * scale * p.grad)


class SAM(torch.optim.Optimizer):
    """Sharpness-aware SGD: the gradient at w + ρ·g/‖g‖ (‖g‖ over every parameter), taken by
    the closure it requires."""

    def __init__(self, params, lr: float = 0.1, rho: float = 0.05):
        super().__init__(params, {"lr": lr, "rho": rho})

    @torch.no_grad()
    def step(self, closure):
        params = _params(self)
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
        shifts = [self.defaults["rho"] * p.grad / norm.clamp(min=1e-12) for p in params]
        for p, e in zip(params, shifts, strict=True):
            p.add_(e)
        with torch.enable_grad():
            closure()
        for p, e in zip(params, shifts, strict=True):
            p.sub_(e)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.sub_(group["lr"] * p.grad)


class ScheduleFreeSGD(torch.optim.Optimizer):
    """Schedule-free SGD (Defazio et al.): gradients at y = (1−β)z + βx, the model x (the
    running average of z) only in eval mode, so the weights change at every switch."""

    def __init__(self, params, lr: float = 0.1, beta: float = 0.9):
        super().__init__(params, {"lr": lr, "beta": beta})
        self.training = True

    def _each(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p in self.state:
                    yield p, self.state[p]

    @torch.no_grad()
    def eval(self):
        if self.training:
            for p, state in self._each():
                p.copy_(state["x"])
        self.training = False

    @torch.no_grad()
    def train(self):
        if not self.training:
            beta = self.defaults["beta"]
            for p, state in self._each():
                p.copy_((1 - beta) * state["z"] + beta * state["x"])
        self.training = True

    @torch.no_grad()
    def step(self, closure=None):
        assert self.training, "stepped in eval mode"
        beta = self.defaults["beta"]
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(z=p.clone(), x=p.clone(), k=0)
                state["k"] += 1
                state["z"].sub_(group["lr"] * p.grad)
                state["x"].lerp_(state["z"], 1 / state["k"])
                p.copy_((1 - beta) * state["z"] + beta * state["x"])


class RebindingSGD(torch.optim.Optimizer):
    """SGD that gives each parameter new storage instead of updating it in place."""

    def __init__(self, params, lr: float = 0.1):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for p in _params(self):
            p.data = p.data - self.defaults["lr"] * p.grad


class ShapeRecorder(NormalizedSGD):
    """NormalizedSGD that records the shape of every tensor it steps."""

    seen: set[tuple[int, ...]] = set()

    def step(self, closure=None):
        ShapeRecorder.seen.update(tuple(p.shape) for p in _params(self))
        return super().step(closure)


@pytest.fixture
def register(monkeypatch):
    """An optimizer entry, not elementwise, registered for one test."""
    def add(name: str, cls: type, test_lr: float = 0.05) -> OptimInfo:
        info = OptimInfo(name, cls, test_lr=test_lr)
        monkeypatch.setitem(OPTIMIZERS._entries, name, info)
        return info

    return add


@pytest.mark.parametrize("name, cls", [
    ("normalized-sgd", NormalizedSGD), ("trust-ratio", TrustRatioSGD),
    ("clipped-sgd", ClippedSGD), ("sam", SAM), ("schedule-free", ScheduleFreeSGD)])
def test_an_optimizer_across_weights_shares_a_stack_and_stays_exact(register, name, cls):
    """check_stacking asserts the one stack, then member 0 alone == in the stack; check_plain
    that both are the ordinary loop (which calls the closure and train()/eval() itself)."""
    case = optimizer_case(register(name, cls))
    check_plain(case, check_stacking(case))


def test_a_closure_optimizer_trains_alone_and_stays_exact_with_dropout(register):
    """A closure re-evaluates the loss: in a stack it would return the stack's objective and
    draw the neighbours' dropout masks again, so SAM's members train alone, and member 0 with
    dropout is the same alone as among others (its masks are its own)."""
    case = optimizer_case(register("sam", SAM))
    members = make_members()
    assert all(len(s) == 1 for s in plan_stacks(members, [case.config, case.other]))
    check_stacking(replace(case, spec=ModelSpec("mlp", hidden=(5,), dropout=0.3)))


def test_a_closure_optimizer_counts_its_own_evaluations(register):
    """SAM evaluates twice a step for its member."""
    case = optimizer_case(register("sam", SAM))
    results = train_grid(case.data, case.spec, [case.config, case.other], make_members())
    steps = 3 * EPOCHS  # 40 and 39 rows in batches of 16
    assert {r.cost[-1].grad_evals for rs in results for r in rs} == {2 * steps}


def test_the_optimizer_sees_each_member_without_the_stack_axis(register):
    case = optimizer_case(register("recorder", ShapeRecorder))
    ShapeRecorder.seen = set()
    train_grid(case.data, case.spec, [case.config, case.other], make_members())
    model = build_model(case.spec, model_shape(case.data), [0, 1])
    assert ShapeRecorder.seen == {tuple(p.shape[1:]) for p in model.parameters()}


def test_regimen_hooks_act_on_each_member_s_leaves(register):
    """Decoupled decay before each step and max-norm after it (its unit axes without the
    stack axis) on the leaves, as the plain loop applies them."""
    case = optimizer_case(register("normalized-sgd", NormalizedSGD))
    regimen = Regimen(decay=0.5, max_norm=0.3)
    case = replace(case, config=replace(case.config, regimen=regimen),
                   other=replace(case.other, regimen=regimen))
    check_plain(case, check_stacking(case))


def test_a_frozen_parameter_stays_at_its_start(register):
    info = register("normalized-sgd", NormalizedSGD)
    config = TrainConfig(OptimSpec(info.name, 0.05), epochs=EPOCHS, batch_size=BATCH,
                         regimen=Regimen(lr_scales=(("layers.0.bias", 0.0),)))
    members = make_members()
    grid = [config, TrainConfig(OptimSpec("adam", 0.02), epochs=EPOCHS, batch_size=BATCH)]
    assert len(plan_stacks(members, grid)) == 1
    frozen, moved = (r[0].weights for r in train_grid(make_data(), OPTIMIZER_MODEL, grid, members))
    start = build_model(OPTIMIZER_MODEL, model_shape(make_data()), [members[0].seed]).state_dict()
    torch.testing.assert_close(frozen["layers.0.bias"], start["layers.0.bias"][0])
    assert not torch.allclose(moved["layers.0.bias"], start["layers.0.bias"][0])
    assert not torch.allclose(frozen["layers.0.weight"], start["layers.0.weight"][0])


def test_an_elementwise_optimizer_on_leaves_equals_it_stacked(register):
    """Adam registered without the flag steps per member: the same numbers as adam stacked."""
    register("adam-leaves", torch.optim.Adam, test_lr=0.02)
    members = make_members()
    configs = [TrainConfig(OptimSpec(name, 0.02), epochs=EPOCHS, batch_size=BATCH)
               for name in ("adam-leaves", "adam")]
    leaves, stacked = train_grid(make_data(), OPTIMIZER_MODEL, configs, members)
    for a, b in zip(leaves, stacked, strict=True):
        assert_same_member(a, b)


def test_an_optimizer_that_replaces_storage_is_refused(register):
    register("rebinding-sgd", RebindingSGD)
    config = TrainConfig(OptimSpec("rebinding-sgd", 0.05), epochs=EPOCHS, batch_size=BATCH)
    with pytest.raises(DlbenchError, match="^optimizer rebinding-sgd replaced a parameter's "
                                           "storage .*must update parameters in place"):
        train(make_data(), OPTIMIZER_MODEL, config, make_members())
