"""The exactness contract: a stacked member trains exactly like that model alone."""

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from plain_layers import (
    PlainDropConnect,
    PlainDropout,
    PlainFractionalPool,
    PlainResidual,
    PlainStochasticDepth,
)
from torch import nn

from dlbench.data.datasets import Dataset
from dlbench.data.preprocess import fit_affine
from dlbench.engine.inference import TRAIN_CURVE_ROWS, train_sample
from dlbench.engine.loop import own_seconds
from dlbench.engine.members import Member, TrainConfig, epoch_order, model_shape
from dlbench.engine.trainer import plan_stacks, train, train_grid
from dlbench.nn.models import (
    FractionalMaxPool,
    Lambda,
    ModelSpec,
    Shape,
    StackedBatchNorm,
    StackedConv,
    StackedDropout,
    StackedLinear,
    StackedResidual,
    StackedSequential,
    build_model,
)
from dlbench.nn.plugged import PluggedModel
from dlbench.optim.optimizers import OPTIMIZERS, OptimSpec, build_optimizer
from dlbench.optim.schedules import build_scheduler


def make_dataset(n=150, d=8, classes=3, task="classification", seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(n, d)) * rng.uniform(0.5, 5, d) + rng.normal(size=d)).astype(np.float32)
    if task == "regression":
        y = (X @ rng.normal(size=d) + 50).astype(np.float32)
        return Dataset("toy-reg", X, y, task)
    y = (X[:, :classes] + rng.normal(size=(n, classes))).argmax(1).astype(np.int64)
    return Dataset("toy", X, y, task, classes=tuple(str(c) for c in range(classes)),
                   input_shape=(2, d // 2))


def make_members(n_train=(40, 39, 41), n_val=30) -> list[Member]:
    """Training sets of different sizes, same number of 16-row steps, so one stack."""
    rng = np.random.default_rng(1)
    members = []
    for i, n in enumerate(n_train):
        rows = rng.permutation(150)
        members.append(Member({"i": i}, seed=100 + i, train=np.sort(rows[:n]),
                              evals={"val": np.sort(rows[n:n + n_val])}))
    return members


def to_plain(stacked: nn.Module, m: int, batchnorm: type[nn.Module] = nn.BatchNorm1d) -> nn.Module:
    """Member m of a stacked model (or layer) as an ordinary torch network with the same weights
    and, for its random layers, generators seeded as member m's, so it draws the same numbers.
    A plugged model's member is the user's own module with member m's tensors; it draws from
    torch's global generator, which test_contract.plain_run seeds as member m's."""
    if isinstance(stacked, PluggedModel):
        plain = copy.deepcopy(stacked.template)
        plain.load_state_dict({k: v[m].clone() for k, v in stacked.state_dict().items()})
        shape = stacked.input_shape
        return plain if len(shape) == 1 else nn.Sequential(nn.Unflatten(1, shape), plain)
    if isinstance(stacked, StackedSequential):
        shape = getattr(stacked, "input_shape", None)  # the whole model: conv nets unflatten
        if shape is not None and len(shape) == 3:
            batchnorm = nn.BatchNorm2d
        layers = [to_plain(layer, m, batchnorm) for layer in stacked.layers]
        return nn.Sequential(*([nn.Unflatten(1, shape)] if shape else []), *layers)
    if isinstance(stacked, StackedResidual):
        drop = stacked.drop
        return PlainResidual(to_plain(stacked.body, m, batchnorm),
                             None if drop is None else PlainStochasticDepth(drop.p, drop.seeds[m]))
    if isinstance(stacked, StackedLinear):
        plain = nn.Linear(stacked.fan_in, stacked.fan_out, bias=stacked.bias is not None)
        plain.weight.data = stacked.weight[m].T.clone(memory_format=torch.contiguous_format)
        if stacked.bias is not None:
            plain.bias.data = stacked.bias[m, 0].clone()
    elif isinstance(stacked, StackedConv):
        w = stacked.weight[m]
        conv = nn.Conv1d if w.dim() == 3 else nn.Conv2d
        plain = conv(w.shape[1], w.shape[0], w.shape[2], padding=stacked.padding,
                     bias=stacked.bias is not None)
        plain.weight.data = w.clone()
        if stacked.bias is not None:
            plain.bias.data = stacked.bias[m].clone()
    elif isinstance(stacked, StackedBatchNorm):
        plain = batchnorm(stacked.weight.shape[1])
        plain.weight.data, plain.bias.data = stacked.weight[m].clone(), stacked.bias[m].clone()
        plain.running_mean.data = stacked.running_mean[m].clone()
        plain.running_var.data = stacked.running_var[m].clone()
    elif isinstance(stacked, FractionalMaxPool):
        return PlainFractionalPool(stacked.kernel, stacked.size, stacked.seeds[m])
    elif isinstance(stacked, StackedDropout):
        return PlainDropout(stacked.p, stacked.seeds[m])
    elif isinstance(stacked, Lambda):  # activation, pooling or flatten: shapes shift by one axis
        return Lambda(lambda x, fn=stacked.fn: fn(x.unsqueeze(0)).squeeze(0))
    else:
        raise AssertionError(f"unexpected layer {stacked}")
    if not isinstance(stacked, StackedBatchNorm) and stacked.drop is not None:  # DropConnect
        return PlainDropConnect(plain, stacked.drop.p, stacked.drop.seeds[m])
    return plain


def shape_of(ds: Dataset) -> Shape:
    return model_shape(ds)


def decay_groups(net: nn.Module) -> list[dict]:
    """The weight-decay convention written out: the optimizer's own weight_decay acts on the
    weights of linear and convolution layers; biases and batch-norm parameters get 0."""
    weights = [m.weight for m in net.modules() if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d)]
    others = [p for p in net.parameters() if all(p is not w for w in weights)]
    return [{"params": weights}] + ([{"params": others, "weight_decay": 0.0}] if others else [])


def train_alone(ds: Dataset, spec: ModelSpec, cfg: TrainConfig, member: Member,
                inputs: np.ndarray | None = None):
    """A plain one-model loop: same initial weights, batch order and hyperparameters.
    `inputs`: every row as the model sees it (default: the preprocessing's affine)."""
    net = to_plain(build_model(spec, shape_of(ds), [member.seed]), 0)
    opt = build_optimizer(cfg.optimizer, decay_groups(net))
    total = cfg.epochs * math.ceil(len(member.train) / cfg.batch_size)
    scheduler = build_scheduler(opt, cfg.schedule, total, cfg.warmup)
    if inputs is None:
        scale, shift = fit_affine(cfg.preprocess, ds.X[member.train])
        inputs = ds.X * scale + shift
    X = torch.as_tensor(inputs, dtype=torch.float32)
    y = torch.as_tensor(ds.y)
    if ds.task == "regression":
        y_train = ds.y[member.train].astype(np.float64)
        y = (y - y_train.mean()) / y_train.std()
    losses = []
    for epoch in range(1, cfg.epochs + 1):
        net.train()
        rows = member.train[epoch_order(member.seed, epoch, len(member.train))]
        seen = 0.0
        for s in range(0, len(rows), cfg.batch_size):
            r = torch.as_tensor(rows[s:s + cfg.batch_size])
            out = net(X[r])
            if ds.task == "regression":
                loss = F.mse_loss(out.squeeze(-1), y[r].float())
            else:
                loss = F.cross_entropy(out, y[r])
            opt.zero_grad()
            loss.backward()
            opt.step()
            scheduler.step()
            seen += loss.item() * len(r)
        losses.append(seen / len(rows))
    return net, losses


def assert_member_matches_alone(ds, spec, cfg, members):
    assert_results_match_alone(ds, spec, cfg, members, train(ds, spec, cfg, members))


def assert_results_match_alone(ds, spec, cfg, members, results, inputs=None):
    for result, member in zip(results, members, strict=True):
        net, losses = train_alone(ds, spec, cfg, member, inputs)
        curve = [v for epoch, split, metric, v in result.curves
                 if (split, metric) == ("train", "running_loss")]
        np.testing.assert_allclose(curve, losses, rtol=1e-4, atol=1e-6)
        stacked = build_model(spec, shape_of(ds), [0])
        stacked.load_state_dict({k: v.unsqueeze(0) for k, v in result.weights.items()})
        expected = to_plain(stacked, 0).state_dict()
        for name, value in net.state_dict().items():
            if "num_batches" not in name:
                np.testing.assert_allclose(expected[name], value, rtol=1e-4, atol=1e-5)


ELEMENTWISE = [o.name for o in OPTIMIZERS if o.elementwise]


@pytest.mark.parametrize("optimizer", ELEMENTWISE)
def test_stacked_mlp_equals_alone_for_every_optimizer(optimizer):
    """On an MLP with coupled weight decay where the optimizer takes one (tests/test_contract.py
    sweeps every entry on a linear model)."""
    info = OPTIMIZERS.get(optimizer)
    decay = (("weight_decay", 1e-3),) if "weight_decay" in info.signature_defaults() else ()
    spec = OptimSpec(optimizer, info.test_lr, decay)
    cfg = TrainConfig(optimizer=spec, epochs=3, batch_size=16)
    assert_member_matches_alone(make_dataset(), ModelSpec("mlp", hidden=(16, 8)), cfg,
                                make_members())


@pytest.mark.parametrize("spec", [
    ModelSpec("mlp", hidden=(12,), batchnorm=True, activation="tanh", init="xavier"),
    ModelSpec("cnn1d", channels=(4, 6), batchnorm=True),
    ModelSpec("linear", init="he"),
], ids=["mlp-batchnorm", "cnn1d-batchnorm", "linear"])
def test_stacked_models_equal_alone(spec):
    cfg = TrainConfig(OptimSpec("adam", 0.01), epochs=3, batch_size=16, preprocess="minmax")
    assert_member_matches_alone(make_dataset(), spec, cfg, make_members())


def test_regression_member_equals_alone():
    cfg = TrainConfig(OptimSpec("momentum", 0.01), epochs=3, batch_size=16)
    assert_member_matches_alone(make_dataset(task="regression"), ModelSpec("mlp", hidden=(8,)),
                                cfg, make_members())


def test_member_init_does_not_depend_on_its_stack():
    shape = Shape(8, None, 3)
    together = build_model(ModelSpec("mlp", hidden=(5,)), shape, [7, 8, 9])
    alone = build_model(ModelSpec("mlp", hidden=(5,)), shape, [8])
    for a, b in zip(together.parameters(), alone.parameters(), strict=True):
        torch.testing.assert_close(a[1], b[0])
        assert not torch.equal(a[0], a[1])


def test_members_group_into_stacks_by_steps_per_epoch():
    members = make_members(n_train=(32, 31, 33, 64))
    stacks = plan_stacks(members, [TrainConfig(batch_size=16)])
    assert sorted(sorted(i for _, i in stack) for stack in stacks) == [[0, 1], [2], [3]]


def test_an_optimizer_grid_shares_one_stack():
    members = make_members()
    configs = [TrainConfig(OptimSpec(name, lr), batch_size=16)
               for name, lr in (("sgd", 0.1), ("adam", 0.01), ("momentum", 0.05))]
    configs.append(TrainConfig(OptimSpec("lbfgs", 1.0), batch_size=16))
    stacks = plan_stacks(members, configs)
    assert stacks[0] == [(c, i) for c in range(3) for i in range(3)]  # 9 members, one stack
    assert stacks[1:] == [[(3, 0)], [(3, 1)], [(3, 2)]]  # L-BFGS: each member alone


def test_every_member_of_an_optimizer_grid_equals_alone():
    """One stack, one optimizer per config over its slice: each member still trains alone."""
    ds, members = make_dataset(), make_members()
    spec = ModelSpec("mlp", hidden=(8,), batchnorm=True)
    configs = [TrainConfig(OptimSpec("sgd", 0.1), epochs=3, batch_size=16),
               TrainConfig(OptimSpec("adam", 0.01, (("weight_decay", 1e-3),)), epochs=3,
                           batch_size=16, schedule="cosine", warmup=2, preprocess="minmax"),
               TrainConfig(OptimSpec("momentum", 0.05), epochs=3, batch_size=16,
                           schedule="step")]
    grid = train_grid(ds, spec, configs, members)
    for config, results in zip(configs, grid, strict=True):
        assert_results_match_alone(ds, spec, config, members, results)


def test_each_member_sees_each_training_row_once_per_epoch():
    member = make_members()[2]
    for epoch in (1, 2):
        order = epoch_order(member.seed, epoch, len(member.train))
        assert sorted(order) == list(range(len(member.train)))
    assert not np.array_equal(epoch_order(member.seed, 1, 41), epoch_order(member.seed, 2, 41))


def test_a_diverging_member_is_a_result_and_leaves_the_others_exact():
    ds = make_dataset()
    X = ds.X.copy()
    X[0] = np.inf  # row 0 poisons the first member only
    ds = Dataset(ds.name, X, ds.y, ds.task, ds.classes)
    members = make_members()
    members[0] = Member({"i": 0}, 100, np.union1d(members[0].train[1:], [0]), members[0].evals)
    for m in members[1:]:
        assert 0 not in m.train and 0 not in m.evals["val"]
    cfg = TrainConfig(OptimSpec("sgd", 0.1), epochs=3, batch_size=16, preprocess="none")
    spec = ModelSpec("mlp", hidden=(8,))
    results = train(ds, spec, cfg, members)
    assert results[0].status == "diverged" and results[0].diverged_epoch == 1
    assert [r.status for r in results[1:]] == ["ok", "ok"]
    assert_member_matches_alone(ds, spec, cfg, members[1:])


def test_same_seeds_give_identical_results():
    ds, members = make_dataset(), make_members()
    spec, cfg = ModelSpec("mlp", hidden=(8,), dropout=0.3), TrainConfig(epochs=2, batch_size=16)
    a, b = train(ds, spec, cfg, members), train(ds, spec, cfg, members)
    for ra, rb in zip(a, b, strict=True):
        assert ra.curves == rb.curves
        np.testing.assert_array_equal(ra.predictions["val"].proba, rb.predictions["val"].proba)


def test_dropout_members_equal_their_plain_loops_short_last_batches_included():
    """40, 39 and 41 rows in 16-row batches: each last batch is padded in the stack, and a
    member draws its masks for its real rows only, as the plain loop does."""
    cfg = TrainConfig(OptimSpec("adam", 0.01), epochs=3, batch_size=16)
    assert_member_matches_alone(make_dataset(), ModelSpec("mlp", hidden=(16, 8), dropout=0.3),
                                cfg, make_members())


def test_dropout_masks_are_a_members_own_whatever_its_stack():
    """A cell's numbers never depend on the grid around it, dropout included."""
    ds, members = make_dataset(), make_members()
    spec = ModelSpec("mlp", hidden=(16, 8), dropout=0.3)
    cfg = TrainConfig(OptimSpec("adam", 0.01), epochs=2, batch_size=16)
    stacked = train(ds, spec, cfg, members)[1]
    alone = train(ds, spec, cfg, [members[1]])[0]
    gridded = train_grid(ds, spec, [TrainConfig(OptimSpec("sgd", 0.1), epochs=2, batch_size=16),
                                    cfg], members)[1][1]
    for other in (alone, gridded):
        for mine, theirs in zip(other.curves, stacked.curves, strict=True):
            assert mine[:3] == theirs[:3] and mine[3] == pytest.approx(theirs[3], rel=1e-5)
        for name, value in stacked.weights.items():
            np.testing.assert_allclose(other.weights[name], value, rtol=1e-5, atol=1e-6)
    no_dropout = train(ds, ModelSpec("mlp", hidden=(16, 8)), cfg, [members[1]])[0]
    assert not np.allclose(no_dropout.weights["layers.0.weight"], alone.weights["layers.0.weight"])


# --- cost: counted per member, the same whatever shares its stack ----------------------------


def test_a_cells_counted_cost_is_the_same_alone_and_in_a_grid():
    ds, members = make_dataset(), make_members()
    spec, adam = ModelSpec("mlp", hidden=(8,)), TrainConfig(OptimSpec("adam", 0.01), epochs=3,
                                                            batch_size=16)
    alone = train(ds, spec, adam, members)
    grid = train_grid(ds, spec, [TrainConfig(OptimSpec("sgd", 0.1), epochs=3, batch_size=16),
                                 adam, TrainConfig(OptimSpec("rmsprop", 1e-3), epochs=3,
                                                   batch_size=16)], members)[1]
    for a, g, member in zip(alone, grid, members, strict=True):
        counts = [(c.grad_evals, c.examples) for c in a.cost]
        assert counts == [(c.grad_evals, c.examples) for c in g.cost]
        steps = math.ceil(len(member.train) / 16)  # one gradient evaluation per minibatch
        assert counts == [(e * steps, e * len(member.train)) for e in range(4)]


def test_lbfgs_counts_every_line_search_evaluation():
    """The trainer's count equals the closure calls of torch's own L-BFGS on the plain model."""
    ds, [member] = make_dataset(), make_members(n_train=(40,))
    spec, cfg = ModelSpec("mlp", hidden=(6,)), TrainConfig(OptimSpec("lbfgs", 1.0), epochs=4)
    [result] = train(ds, spec, cfg, [member])
    net = to_plain(build_model(spec, shape_of(ds), [member.seed]), 0)
    opt = build_optimizer(cfg.optimizer, net.parameters())
    scale, shift = fit_affine(cfg.preprocess, ds.X[member.train])
    X = torch.as_tensor(ds.X[member.train] * scale + shift)
    y = torch.as_tensor(ds.y[member.train])
    calls = []

    def closure():
        calls.append(1)
        opt.zero_grad()
        loss = F.cross_entropy(net(X), y)
        loss.backward()
        return loss

    counts = [0]
    for _ in range(cfg.epochs):
        opt.step(closure)
        counts.append(len(calls))
    assert [c.grad_evals for c in result.cost] == counts
    assert counts[-1] > cfg.epochs  # the line search evaluates more than once per iteration
    assert [c.examples for c in result.cost] == [n * 40 for n in counts]


def test_newton_counts_a_backward_pass_per_hessian_row():
    ds, [member] = make_dataset(), make_members(n_train=(40,))
    spec = ModelSpec("linear")
    [result] = train(ds, spec, TrainConfig(OptimSpec("newton", 1.0), epochs=2), [member])
    n_params = 8 * 3 + 3
    assert [c.grad_evals for c in result.cost] == [0, 1 + n_params, 2 * (1 + n_params)]


def test_own_seconds_split_shared_work_evenly_and_each_step_over_its_members():
    class Step:
        group_seconds = [3.0, 1.0]

    groups = [(None, slice(0, 3)), (None, slice(3, 4))]
    seconds = own_seconds(12.0, Step(), groups, 4)
    assert seconds == pytest.approx([2.0 + 1.0, 2.0 + 1.0, 2.0 + 1.0, 2.0 + 1.0])
    assert sum(seconds) == pytest.approx(12.0)  # every second is someone's
    Step.group_seconds = [0.0, 4.0]
    assert own_seconds(12.0, Step(), groups, 4) == pytest.approx([2, 2, 2, 6])


def test_every_members_seconds_grow_every_epoch_in_a_grid():
    ds, members = make_dataset(), make_members()
    configs = [TrainConfig(OptimSpec(name, 0.01), epochs=2, batch_size=16)
               for name in ("sgd", "adam")]
    grid = train_grid(ds, ModelSpec("mlp", hidden=(8,)), configs, members)
    for results in grid:
        for r in results:
            seconds = [c.seconds for c in r.cost]
            assert all(b > a > 0 for a, b in zip(seconds, seconds[1:], strict=False))


def test_train_curves_are_eval_mode_like_validation():
    """With dropout the running minibatch loss differs from the eval-mode training loss; the
    curve's train loss is the eval-mode one, the same figure the final predictions give."""
    ds, members = make_dataset(), make_members()
    spec = ModelSpec("mlp", hidden=(32,), dropout=0.7)
    results = train(ds, spec, TrainConfig(OptimSpec("adam", 0.01), epochs=3, batch_size=16),
                    members)
    for r in results:
        final = {metric: v for e, split, metric, v in r.curves if e == 3 and split == "train"}
        assert set(final) == {"loss", "accuracy", "running_loss", "running_accuracy"}
        pred = r.predictions["train"]
        expected = F.cross_entropy(torch.as_tensor(np.log(pred.proba)),
                                   torch.as_tensor(pred.y_true)).item()
        assert final["loss"] == pytest.approx(expected, rel=1e-4)
        assert final["running_loss"] != pytest.approx(final["loss"], rel=0.02)


def test_curves_sample_at_most_1024_training_rows_and_never_score_test():
    ds = make_dataset(n=1600)
    rows = np.random.default_rng(3).permutation(1600)
    member = Member({"i": 0}, 5, np.sort(rows[:1300]), {"val": np.sort(rows[1300:1450]),
                                                         "test": np.sort(rows[1450:])})
    [result] = train(ds, ModelSpec("mlp", hidden=(8,)), TrainConfig(epochs=2, batch_size=64),
                     [member])
    assert {split for _, split, _, _ in result.curves} == {"train", "val"}  # test: once
    assert set(result.predictions) == {"train", "val", "test"}
    sample = train_sample(member)
    assert len(sample) == TRAIN_CURVE_ROWS and set(sample) <= set(member.train)
    assert np.array_equal(sample, train_sample(member))  # the same rows every epoch
    final = [v for e, split, metric, v in result.curves
             if (e, split, metric) == (2, "train", "loss")][0]
    pred = result.predictions["train"]  # every training row, in member.train's order
    picked = np.isin(member.train, sample)
    expected = -np.mean(np.log(pred.proba[picked, pred.y_true[picked]]))
    assert final == pytest.approx(expected, rel=1e-4)
