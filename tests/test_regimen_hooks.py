"""The regimen-hook protocol: a regimen written outside dlbench (one Hook subclass, one REGIMENS
entry) trains through the normal path and keeps the exactness contract; and the weight-decay
convention: the optimizer's own weight_decay never decays a bias or a batch-norm parameter."""

from dataclasses import dataclass
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlbench.data.augment import Augment
from dlbench.engine.members import TrainConfig
from dlbench.engine.regimens import (
    REGIMENS,
    Batch,
    Hook,
    Regimen,
    RegimenInfo,
    Stack,
    build_hooks,
    weight_norm_dims,
)
from dlbench.engine.stepper import Stepper
from dlbench.engine.trainer import plan_stacks, train, train_grid
from dlbench.nn.models import ModelSpec, Shape, build_model
from dlbench.optim.optimizers import OptimSpec, parse_optimizers
from tests.test_regimens import assert_weights, plain_loop
from tests.test_trainer import make_dataset, make_members

SPEC = ModelSpec("mlp", hidden=(12, 8))


@dataclass(frozen=True)
class Smoothed(Regimen):
    smoothing: float = 0.0  # ε: the target puts 1 − ε on its class, ε spread over all classes


class LabelSmoothing(Hook):
    """Label smoothing as a new contributor would add it: (1 − ε)·CE + ε·mean over classes of
    −log p, per member, written as the data loss plus ε·(that mean − CE)."""

    def __init__(self, stack, values):
        super().__init__(stack, values)
        self.eps = torch.tensor([v or 0.0 for v in values], device=stack.device)  # (M,)

    def loss(self, total: torch.Tensor, batch: Batch) -> torch.Tensor:
        uniform = -batch.out.log_softmax(-1).mean(-1)  # (M, B)
        extra = self.eps[:, None] * (uniform - batch.loss) * batch.share
        return total + extra.sum()


@pytest.fixture
def smoothing(monkeypatch):
    """The regimen registered for one test (the registry is restored after it)."""
    info = RegimenInfo("label-smoothing", LabelSmoothing,
                       lambda r: getattr(r, "smoothing", 0.0) or None)
    monkeypatch.setitem(REGIMENS._entries, info.name, info)


def cfg(smoothing: float = 0.0) -> TrainConfig:
    return TrainConfig(OptimSpec("adam", 0.01), epochs=3, batch_size=16,
                       regimen=Smoothed(smoothing=smoothing))


def test_a_regimen_defined_outside_dlbench_trains_each_member_as_its_plain_loop(smoothing):
    ds, members = make_dataset(), make_members()
    smooth, plain = cfg(0.2), cfg(0.0)
    assert len(plan_stacks(members, [plain, smooth])) == 1  # one stack of 6 members
    grid = train_grid(ds, SPEC, [plain, smooth], members)
    for config, results in zip((plain, smooth), grid, strict=True):
        eps = config.regimen.smoothing
        for result, member in zip(results, members, strict=True):
            net, _, _ = plain_loop(ds, SPEC, config, member,
                                   criterion=partial(F.cross_entropy, label_smoothing=eps))
            assert_weights(result, SPEC, ds, net)
    for unsmoothed, smoothed in zip(*grid, strict=True):  # the effect is visible
        assert not torch.allclose(unsmoothed.weights["layers.4.weight"],
                                  smoothed.weights["layers.4.weight"], atol=1e-3)


def test_a_new_regimens_member_alone_equals_it_in_a_stack_of_three(smoothing):
    ds, members = make_dataset(), make_members()
    stacked = train(ds, SPEC, cfg(0.1), members)[0]
    [alone] = train(ds, SPEC, cfg(0.1), members[:1])
    for name, value in alone.weights.items():
        torch.testing.assert_close(stacked.weights[name], value, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stacked.curve("val", "loss"), alone.curve("val", "loss"),
                               rtol=1e-5, atol=1e-6)


def test_an_unregistered_regimen_value_changes_nothing():
    """Without its REGIMENS entry the field is data only: no hook reads it."""
    ds, [member] = make_dataset(), make_members(n_train=(40,))
    [with_value] = train(ds, SPEC, cfg(0.3), [member])
    [without] = train(ds, SPEC, cfg(0.0), [member])
    for name, value in without.weights.items():
        assert torch.equal(with_value.weights[name], value)


def test_a_default_regimen_builds_no_hook_and_each_entry_acts_only_where_asked():
    """Every registered regimen reads None (off) from a default Regimen, so a plain stack runs
    no hook; a member that asks for one gets exactly that entry's hook."""
    ds, members = make_dataset(), make_members()
    model = build_model(SPEC, Shape.of(ds), [m.seed for m in members])
    stack = Stack(model, [slice(0, 3)], [m.seed for m in members], None,
                  {"train": [m.train for m in members]}, 3, torch.device("cpu"), best=False)
    assert build_hooks(stack, [Regimen()] * 3) == []
    asked = {"penalty": Regimen(l2=0.1), "decay": Regimen(decay=0.1),
             "max-norm": Regimen(max_norm=1.0), "snapshots": Regimen(snapshots=2),
             "augment": Regimen(augment=Augment(noise=0.1))}
    for name, regimen in asked.items():
        hooks = build_hooks(stack, [regimen] * 3)
        assert [type(h) for h in hooks] == [REGIMENS.get(name).hook], name


# --- one weight-decay convention ---------------------------------------------------------------


def test_adamw_decays_the_weights_and_never_a_bias_or_batch_norm():
    """`--opt adamw` (its default weight_decay 0.01) on a zero gradient: Adam's own update is 0,
    so what moves is the decay alone: weights shrink by 1 − lr·0.01, biases and batch-norm
    parameters stay exactly as they were."""
    [spec] = parse_optimizers("adamw", lr=0.5)
    model = build_model(ModelSpec("mlp", hidden=(6,), batchnorm=True), Shape(4, None, 3), [0, 1])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    weights = weight_norm_dims(model)
    step = Stepper(list(model.named_parameters()), [(TrainConfig(spec), slice(0, 2))], 1, 1,
                   weights)
    step(lambda: sum((p * 0).sum() for p in model.parameters()))
    assert set(weights) == {"layers.0.weight", "layers.3.weight"}
    assert {n for n in before if "bias" in n or n.startswith("layers.1.")} == \
        set(before) - set(weights)  # biases and the batch norm's scale and shift
    for name, p in model.named_parameters():
        factor = 1 - 0.5 * 0.01 if name in weights else 1.0
        torch.testing.assert_close(p.detach(), before[name] * factor, rtol=0, atol=0)


def test_adamw_trains_as_torchs_adamw_with_biases_in_a_group_without_decay():
    ds, members = make_dataset(), make_members()
    config = TrainConfig(OptimSpec("adamw", 0.05), epochs=3, batch_size=16)
    for result, member in zip(train(ds, SPEC, config, members), members, strict=True):
        expected, everything = (plain_loop(ds, SPEC, config, member, optimizer=partial(
            _adamw, bias_decay=decay))[0] for decay in (0.0, 0.01))
        assert_weights(result, SPEC, ds, expected)
        with pytest.raises(AssertionError):  # decaying the biases too would differ
            assert_weights(result, SPEC, ds, everything)


def _adamw(net, bias_decay):
    weights = [m.weight for m in net.modules() if isinstance(m, torch.nn.Linear)]
    others = [p for p in net.parameters() if all(p is not w for w in weights)]
    return torch.optim.AdamW([{"params": weights, "weight_decay": 0.01},
                              {"params": others, "weight_decay": bias_decay}], lr=0.05)
