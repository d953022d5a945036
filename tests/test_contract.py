"""The exactness contract, swept over every registry entry (DESIGN: "the contract is tested
black-box for every entry"): every model, activation and init, every optimizer and every
regularizer, through the public engine path the runners take (`train`, `train_grid`, `Member`).

For each entry:
- stacking: member 0 trained alone (a stack of one) ends with the same curves, weights and
  predictions as member 0 in a stack of four — beside a member of other seed and other rows
  under its own config (so one optimizer steps both), and two members of other
  hyperparameters (their own optimizer over their slice);
- reference: member 0 equals an ordinary one-model PyTorch loop (plain nn.Module layers from
  tests/plain_layers.py, torch.optim, the same initial weights, batch order and
  hyperparameters), `plain_run` below.
The entries are read from the registries, so an entry added later is swept without an edit
here; an entry that cannot be swept fails and says what it must declare. The last tests show
that the check itself fails on a model that leaks across the stack and on a per-tensor-norm
optimizer falsely marked elementwise.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from test_trainer import decay_groups, to_plain
from torch import nn

from dlbench.data.augment import augment_batch
from dlbench.data.augment import generators as augment_generators
from dlbench.data.preprocess import fit_affine
from dlbench.engine import trainer
from dlbench.engine.contract import (  # the contract's core, shared with `dlbench check`
    BATCH,
    EPOCHS,
    Case,
    assert_same_member,
    check_stacking,
    halved_lr,
    make_data,
    make_members,
)
from dlbench.engine.losses import LOSSES
from dlbench.engine.members import Member, MemberResult, TrainConfig, epoch_order, model_shape
from dlbench.engine.regimens import Regimen
from dlbench.engine.regularizers import REGULARIZERS, parse_regularizers
from dlbench.engine.stepper import trains_alone, wants_closure
from dlbench.engine.trainer import plan_stacks, train
from dlbench.errors import DlbenchError
from dlbench.nn.models import (
    ACTIVATIONS,
    INITS,
    MODELS,
    Lambda,
    ModelInfo,
    ModelSpec,
    StackedLinear,
    build_model,
    model_info,
    normalize,
)
from dlbench.nn.plugged import PLUGGED_KEY
from dlbench.optim.optimizers import OPTIMIZERS, OptimInfo, OptimSpec
from dlbench.seeding import derive_seed

# The plain loop computes x·Wᵀ with F.linear where the stack uses baddbmm on W stored
# transposed, and (full batch) sums its rows in another order: float32 rounding of
# a different summation, through an optimizer that may divide by small second moments.
PLAIN_TOL = {"rtol": 1e-4, "atol": 1e-5}
REG_EPOCHS = 5  # snapshot's default n=5 takes a cycle of at least one epoch per snapshot
IMAGES = (1, 8, 8)  # regularizers: shaped data, so tta and augment's shifts apply
# The optimizers' model: convex, so full-batch second-order steps are well-posed (a Newton step
# on a small MLP's indefinite Hessian raised its loss and amplified float32 rounding to 1% of
# the weights within two steps), and 21 parameters keep Newton's Hessian cheap. Stacked
# weights of every layer kind are swept with the models.
OPTIMIZER_MODEL = ModelSpec("linear")


def adam(epochs: int = EPOCHS) -> TrainConfig:
    return TrainConfig(OptimSpec("adam", OPTIMIZERS.get("adam").test_lr), epochs=epochs,
                       batch_size=BATCH)


def checked(case: Case, what: str, fix: str) -> Case:
    """The case, after the checks a runner makes before training; an entry that fails them
    cannot be swept, and the failure says what the entry must declare."""
    try:
        trainer.check_config(case.config, case.spec, case.data)
        trainer.check_config(case.other, case.spec, case.data)
    except DlbenchError as e:
        pytest.fail(f"{what} cannot be swept by the contract test ({e}); {fix}")
    return case


# --- the cases: one per registry entry ---------------------------------------------------------


def model_case(info: ModelInfo, **fields) -> Case:
    """A model entry at its declared test build (ModelInfo.test_fields, test_input)."""
    return checked(Case(make_data(info.test_input), tiny_spec(info, **fields), adam(),
                        halved_lr(adam())),
                   f"model {info.name}", "declare the ModelSpec fields and the input shape its "
                   "test needs in its MODELS entry (test_fields, test_input)")


def optimizer_case(info: OptimInfo) -> Case:
    """An optimizer entry at its declared test_lr, on OPTIMIZER_MODEL."""
    if info.test_lr is None:
        pytest.fail(f"optimizer {info.name} declares no test_lr; give its OPTIMIZERS entry "
                    "the learning rate its tests train with (test_lr=...)")
    config = TrainConfig(OptimSpec(info.name, info.test_lr), epochs=EPOCHS, batch_size=BATCH)
    return checked(Case(make_data(), OPTIMIZER_MODEL, config, halved_lr(config)),
                   f"optimizer {info.name}", "declare test_lr in its OPTIMIZERS entry")


def regularizer_case(name: str) -> Case:
    """A regularizer entry at its test parameters (RegularizerInfo.test_params), turned
    into a model and training as the overfit runner does (`Regularizer.apply`), on the first
    registered model it changes (dropout: the first with hidden layers; stochastic depth:
    resmlp; ...); an entry that changes no model (none, ensemble) on the first model. Its
    neighbours train without it where the model allows (members of other regimens share a
    stack), else at half the rate."""
    info = REGULARIZERS.get(name)
    [reg] = parse_regularizers(name)
    reg = replace(reg, params=tuple(sorted({**dict(reg.params), **info.test_params}.items())))
    tries = [(tiny_spec(info), *reg.apply(tiny_spec(info), adam(REG_EPOCHS), shaped=True))
             for info in MODELS]  # (model, regularized model, regularized training)
    acts = [t for t in tries if normalize(t[1]) != normalize(t[0]) or t[2] != adam(REG_EPOCHS)]
    base, spec, config = (acts or tries)[0]
    other = halved_lr(adam(REG_EPOCHS) if spec == base else config)
    return checked(Case(make_data(IMAGES), spec, config, other), f"regularizer {name}",
                   "its defaults must act on a registered model trained on 8×8 images")


def tiny_spec(info: ModelInfo, **fields) -> ModelSpec:
    """A model entry's tiny build for its tests (ModelInfo.test_fields), fields changed."""
    return ModelSpec(info.name, **{**info.test_fields, **fields})


# --- the check ---------------------------------------------------------------------------------


def check_plain(case: Case, result: MemberResult) -> None:
    """Member 0's result against its plain one-model loop: running losses and final weights."""
    member = make_members()[0]
    net, losses = plain_run(case, member)
    np.testing.assert_allclose(result.curve("train", "running_loss"), losses,
                               err_msg="running loss", **PLAIN_TOL)
    stacked = build_model(case.spec, model_shape(case.data), [0])
    stacked.load_state_dict({k: v.unsqueeze(0) for k, v in result.weights.items()})
    expected = to_plain(stacked, 0).state_dict()
    for name, value in net.state_dict().items():
        if "num_batches" not in name:
            np.testing.assert_allclose(expected[name], value.detach(), err_msg=name,
                                       **PLAIN_TOL)


# --- the reference: one model, one ordinary PyTorch loop ------------------------------------


class PlainRegimen:
    """A Regimen written out by hand for one plain model (regimens.py's definitions, read
    independently): the penalty joins the loss, decoupled decay before the step, max-norm after
    it (torch.renorm), snapshots' cyclic rate (torch's CosineAnnealingWarmRestarts), augmented
    batches, and early stopping's restore of the best epoch's weights."""

    KNOWN = {"l1", "l2", "decay", "max_norm", "patience", "snapshots", "augment"}

    def __init__(self, regimen: Regimen, net: nn.Module, seed: int, input_shape):
        unknown = [f.name for f in dataclasses.fields(regimen)  # a subclass's fields too
                   if getattr(regimen, f.name) != getattr(type(regimen)(), f.name)
                   and f.name not in self.KNOWN]
        if unknown:
            pytest.fail(f"{type(regimen).__name__}.{unknown[0]} has no plain counterpart; write "
                        "one in "
                        "tests/test_contract.py's PlainRegimen")
        self.r, self.input_shape = regimen, input_shape
        self.weights = [m.weight for m in net.modules()
                        if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d)]
        self.generators = augment_generators([seed], "cpu")
        self.best: tuple[float, int, dict] = (math.inf, 0, copy.deepcopy(net.state_dict()))

    def penalty(self) -> torch.Tensor | float:
        return sum(self.r.l1 * w.abs().sum() + self.r.l2 * w.square().sum()
                   for w in self.weights)

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        if not self.r.augment.active:
            return x
        return augment_batch(x[None], self.input_shape, self.r.augment, self.generators)[0]

    @torch.no_grad()
    def step(self, opt: torch.optim.Optimizer, closure=None) -> None:
        for w in self.weights:
            w.mul_(1 - opt.param_groups[0]["lr"] * self.r.decay)
        opt.step(closure)
        for w in self.weights if self.r.max_norm else ():  # (out, in, ...): a unit per row
            w.copy_(torch.renorm(w, 2, 0, self.r.max_norm))

    def scheduler(self, opt, steps: int, epochs: int):
        if not self.r.snapshots:
            return None
        assert epochs % self.r.snapshots == 0, "torch's restarts need cycles of equal length"
        return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
            opt, steps * epochs // self.r.snapshots)

    def stopped(self, epoch: int, val_loss: float, net: nn.Module, epochs: int) -> bool:
        """Early stopping after an epoch; True once it stops (the best weights then restored).
        Epoch 0 is scored in eval mode, which the trainer's batch statistics at epoch 0 match
        only without batch norm (early-stop's test model has none)."""
        if not self.r.patience:
            return False
        if val_loss < self.best[0]:
            self.best = (val_loss, epoch, copy.deepcopy(net.state_dict()))
        if epoch - self.best[1] >= self.r.patience or epoch == epochs:
            net.load_state_dict(self.best[2])
            return True
        return False


def plain_run(case: Case, member: Member) -> tuple[nn.Module, list[float]]:
    """The member as one ordinary PyTorch model -> (its network after training, the mean
    training loss of each epoch as the optimizer saw it)."""
    config, data = case.config, case.data
    try:
        net = to_plain(build_model(case.spec, model_shape(data), [member.seed]), 0)
    except AssertionError as e:
        pytest.fail(f"model {case.spec.name} has no plain counterpart ({e}); add its layer to "
                    "tests/plain_layers.py and test_trainer.to_plain")
    # a plugged model draws its training randomness from torch's global generator, seeded
    # from the member's seed (nn/plugged.py); the built-in plain layers have their own
    torch.manual_seed(derive_seed(member.seed, PLUGGED_KEY))
    spec = config.optimizer
    decays = {**spec.info.signature_defaults(), **spec.kwargs()}.get("weight_decay")
    params = decay_groups(net) if decays else net.parameters()  # the decay convention
    opt = spec.info.cls(params, **spec.kwargs())  # torch's own, never fused
    scale, shift = fit_affine(config.preprocess, data.X[member.train])
    X, y = torch.as_tensor(data.X * scale + shift), torch.as_tensor(data.y)
    regimen = PlainRegimen(config.regimen, net, member.seed, data.input_shape)
    size = len(member.train) if spec.info.full_batch else config.batch_size
    scheduler = regimen.scheduler(opt, math.ceil(len(member.train) / size), config.epochs)
    loss_of = _plain_loss(case.spec)
    val = torch.as_tensor(member.evals["val"])
    switch(opt, "eval")
    regimen.stopped(0, _val_loss(net, loss_of, X[val], y[val]), net, config.epochs)
    losses = []
    for epoch in range(1, config.epochs + 1):
        net.train()
        switch(opt, "train")
        rows = member.train[epoch_order(member.seed, epoch, len(member.train))]
        seen = 0.0
        for s in range(0, len(rows), size):
            r = torch.as_tensor(rows[s:s + size])
            seen += len(r) * _plain_step(net, opt, regimen, loss_of, X[r], y[r],
                                         spec.info.full_batch)
            if scheduler is not None:
                scheduler.step()
        losses.append(seen / len(rows))
        switch(opt, "eval")
        if regimen.stopped(epoch, _val_loss(net, loss_of, X[val], y[val]), net, config.epochs):
            break
    return net, losses


def switch(opt: torch.optim.Optimizer, mode: str) -> None:
    """A schedule-free optimizer's own train()/eval() switch, as its users call it: eval
    before every evaluation, train before training."""
    if callable(getattr(opt, "train", None)) and callable(getattr(opt, "eval", None)):
        getattr(opt, mode)()


def _plain_loss(spec: ModelSpec):
    """The model entry's training loss on one model's (B, outputs) outputs -> the batch mean.
    The per-sample formulas are the models' definitions (engine.losses.LOSSES); stacking is what is
    under test."""
    kind = model_info(spec.name).loss
    per_sample = LOSSES["cross_entropy" if kind == "default" else kind]
    return lambda out, y: per_sample(out[None], y[None])[0].mean()


@torch.no_grad()
def _val_loss(net: nn.Module, loss_of, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    return float(loss_of(net(x), y))


def _plain_step(net, opt, regimen: PlainRegimen, loss_of, x, y, full_batch: bool) -> float:
    """One optimizer step on a batch -> its mean data loss as the step first saw it (a closure
    optimizer evaluates the batch again in its line search or Hessian)."""
    x, seen = regimen.augment(x), []

    def closure(backward: bool = True) -> torch.Tensor:
        opt.zero_grad()
        loss = loss_of(net(x), y)
        seen.append(loss.item())
        total = loss + regimen.penalty()
        if backward:
            total.backward()
        return total

    if full_batch:  # the optimizer evaluates as often as it needs
        regimen.step(opt, closure)
    else:  # a minibatch optimizer that asks for a closure (SAM) gets one after the gradient
        closure()
        regimen.step(opt, closure if wants_closure(opt) else None)
    return seen[0]


# --- the sweeps --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_keeps_the_contract(name):
    case = model_case(MODELS.get(name))
    check_plain(case, check_stacking(case))


@pytest.mark.parametrize("field, value", [*(("activation", a) for a in ACTIVATIONS.names()),
                                          *(("init", i) for i in INITS.names())])
def test_every_activation_and_init_keeps_the_contract(field, value):
    case = model_case(MODELS.get("mlp"), **{field: value})
    check_plain(case, check_stacking(case))


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_optimizer_keeps_the_contract(name):
    case = optimizer_case(OPTIMIZERS.get(name))
    check_plain(case, check_stacking(case))


@pytest.mark.parametrize("name", REGULARIZERS.names())
def test_every_regularizer_keeps_the_contract(name):
    """Weights and running losses against the plain loop; what changes predictions only (tta's
    averaged copies, snapshots' averaged probabilities) is held by the stacking check, whose
    predictions member 0 alone computes the same way — a plain counterpart would copy it."""
    case = regularizer_case(name)
    result = check_stacking(case)
    check_plain(case, result)
    assert_it_acts(name, case, result)


def assert_it_acts(name: str, case: Case, result: MemberResult) -> None:
    """An entry that changes the model or the training must change member 0's numbers, or the
    checks above could not tell it from none (an entry that changes neither, such as none or
    ensemble, which only adds members, is exempt)."""
    base = tiny_spec(MODELS.get(case.spec.name))
    if (case.spec, case.config) == (base, adam(REG_EPOCHS)):
        return
    [without] = train(case.data, base, adam(REG_EPOCHS), make_members()[:1])
    try:
        assert_same_member(result, without)
    except AssertionError:
        return
    pytest.fail(f"regularizer {name} at its test values changes nothing on its test case, so "
                "the contract test cannot tell it from none; declare test values that act "
                "(its entry's test_params)")


# --- the check can fail ------------------------------------------------------------------------


@pytest.fixture
def register(monkeypatch):
    """Adds an entry to a registry for one test."""
    def add(registry, entry):
        monkeypatch.setitem(registry._entries, entry.name, entry)
        return entry

    return add


def _build_leaky(spec, members, shape):
    """A linear layer whose outputs then get the mean over the stack axis added: alone that
    mean is the member's own output (no plain loop can tell), in a stack it mixes members."""
    return [StackedLinear(members, shape.n_inputs, shape.n_outputs),
            Lambda(lambda x: x + x.mean(0, keepdim=True))], None


class NormalizedSGD(torch.optim.Optimizer):
    """Steps of length lr along each tensor's gradient: a norm over the whole tensor, which in
    a stack spans every member's slice."""

    def __init__(self, params, lr: float = 0.1):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.sub_(group["lr"] * p.grad / p.grad.norm().clamp(min=1e-12))


def test_the_check_catches_a_model_that_leaks_across_the_stack(register):
    info = register(MODELS, ModelInfo("leaky", "adds the stack's mean", ("classification",),
                                      ("init",), _build_leaky))
    case = model_case(info)
    [alone] = train(case.data, case.spec, case.config, make_members()[:1])
    check_plain(case, alone)  # alone, the leak is invisible: the stack check must find it
    with pytest.raises(AssertionError, match="Not equal to tolerance"):
        check_stacking(case)


def test_the_check_catches_a_per_tensor_norm_optimizer_marked_elementwise(register):
    info = register(OPTIMIZERS, OptimInfo("normalized-sgd", NormalizedSGD, elementwise=True,
                                          test_lr=0.05))
    with pytest.raises(AssertionError, match="Not equal to tolerance"):
        check_stacking(optimizer_case(info))


def test_an_optimizer_without_the_flag_steps_each_member_on_its_own_and_stays_exact(register):
    """In one stack (check_stacking asserts it), but each member's optimizer over its own
    leaf views (engine/stepper.py)."""
    info = register(OPTIMIZERS, OptimInfo("normalized-sgd", NormalizedSGD, test_lr=0.05))
    case = optimizer_case(info)
    check_plain(case, check_stacking(case))


def test_an_optimizer_neither_elementwise_nor_full_batch_is_listed_and_sized_as_minibatch(
        register, monkeypatch):
    """Not elementwise is not full batch: such an optimizer steps each member on its own, but
    on minibatches, one gradient evaluation a step, and takes per-layer rates."""
    from dlbench.cli import listings
    from dlbench.engine import sizes
    from dlbench.output import report

    register(OPTIMIZERS, OptimInfo("normalized-sgd", NormalizedSGD, test_lr=0.05))
    listed = {}
    monkeypatch.setattr(report, "listing", lambda title, rows, *a, **k: listed.update(
        {row["name"]: row["stacked"] for row in rows} if title == "optimizers" else {}))
    listings.optimizers()
    assert (listed["normalized-sgd"], listed["sgd"], listed["lbfgs"]) == (
        "yes, per member", "yes", "alone, full batch")

    def size(name: str) -> sizes.Size:
        config = TrainConfig(OptimSpec(name, 0.05), epochs=EPOCHS, batch_size=BATCH)
        job = sizes.Job(OPTIMIZER_MODEL, (config,), members=2, n_train=40, n_eval=60)
        return sizes.estimate(make_data(), [job], torch.device("cpu"))

    normalized, sgd = size("normalized-sgd"), size("sgd")
    assert normalized.flops == sgd.flops  # the same minibatch steps, no line search
    assert normalized.group_steps == 2 * sgd.group_steps  # but each of 2 members alone
    paths = [sizes.check_paths([OptimSpec(name, 0.05)], 100, False)
             for name in ("normalized-sgd", "sgd", "lbfgs")]
    assert paths[0] == paths[1] < paths[2]
    trainer.check_train(TrainConfig(OptimSpec("normalized-sgd", 0.05),
                                    regimen=Regimen(lr_scales=(("layers.0.", 0.1),))))


def test_an_entry_that_cannot_be_swept_says_what_it_must_declare(register):
    untested = register(OPTIMIZERS, OptimInfo("untested", torch.optim.SGD, elementwise=True))
    with pytest.raises(pytest.fail.Exception, match="untested declares no test_lr"):
        optimizer_case(untested)
    images = register(MODELS, replace(MODELS.get("cnn2d"), name="cnn2d-bare", test_input=None))
    with pytest.raises(pytest.fail.Exception, match="needs image data.*test_input"):
        model_case(images)


class ClosureSGD(NormalizedSGD):
    """Its step asks for a closure (as SAM's does) and calls it once."""

    def step(self, closure):
        with torch.enable_grad():
            closure()
        return super().step()


def closure_sgd(params, lr: float = 0.1):
    """A factory: its class shows only once it is called."""
    return ClosureSGD(params, lr)


@pytest.mark.parametrize("cls, label, alone, leaves", [
    (torch.optim.SGD, "yes", False, False),  # elementwise (sgd's entry says so)
    (NormalizedSGD, "yes, per member", False, True),
    (ClosureSGD, "alone", True, True),
    (closure_sgd, "alone", True, True),  # a factory: an instance says it asks for a closure
    (torch.optim.LBFGS, "alone, full batch", True, False),
])
def test_one_stacking_rule_for_the_trainer_the_planner_and_the_listing(
        register, monkeypatch, cls, label, alone, leaves):
    from dlbench.cli import listings
    from dlbench.engine.stepper import stacking
    from dlbench.output import report

    info = register(OPTIMIZERS, OptimInfo("probe", cls, elementwise=cls is torch.optim.SGD,
                                          full_batch=cls is torch.optim.LBFGS, test_lr=0.05))
    spec = OptimSpec(info.name, 0.05)
    listed = {}
    monkeypatch.setattr(report, "listing", lambda title, rows, *a, **k: listed.update(
        {row["name"]: row["stacked"] for row in rows} if title == "optimizers" else {}))
    listings.optimizers()
    assert listed["probe"] == label
    assert (stacking(spec).alone, stacking(spec).leaves, trains_alone(spec)) == (
        alone, leaves, alone)
    config = TrainConfig(spec, epochs=EPOCHS, batch_size=BATCH)
    stacks = plan_stacks(make_members(), [config, halved_lr(config)])
    assert len(stacks) == (4 if alone else 1)


class NoisySGD(NormalizedSGD):
    """Gradient noise drawn from torch's and numpy's global generators (as PSGD Kron draws its
    preconditioner updates): in a stack, neighbours' draws would shift member 0's."""

    @torch.no_grad()
    def step(self, closure=None):
        for p in (p for group in self.param_groups for p in group["params"]):
            p.grad.add_(0.1 * torch.randn_like(p) + 0.1 * float(np.random.random()))
        return super().step()


def test_an_optimizer_drawing_from_the_global_generators_draws_its_members_own(register):
    """Member 0 draws the same numbers alone and in a stack (check_stacking), run after run
    whatever the global state was, and the global generators are left as they were."""
    case = optimizer_case(register(OPTIMIZERS, OptimInfo("noisy", NoisySGD, test_lr=0.05)))
    torch.manual_seed(1)
    np.random.seed(1)
    before = torch.get_rng_state(), np.random.get_state()[1].copy()
    first = check_stacking(case)
    assert torch.equal(torch.get_rng_state(), before[0])
    np.testing.assert_array_equal(np.random.get_state()[1], before[1])
    torch.manual_seed(2)
    np.random.seed(2)
    assert_same_member(first, check_stacking(case))
