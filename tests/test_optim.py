"""The optimizer registry and grammar, Newton, schedules, and the point minimiser."""

import math

import numpy as np
import pytest
import torch

from dlbench.data.datasets import DataSpec, load_dataset
from dlbench.engine.members import Member, TrainConfig
from dlbench.engine.stepper import CLOSURE, stacking
from dlbench.engine.trainer import minimize, plan_stacks, train
from dlbench.errors import DlbenchError
from dlbench.nn.models import ModelSpec
from dlbench.optim.optimizers import (
    OPTIMIZERS,
    OptimInfo,
    OptimSpec,
    build_optimizer,
    parse_optimizers,
)
from dlbench.optim.schedules import SCHEDULES, lr_factor


def test_the_grammar_reads_entries_with_their_parameters():
    specs = parse_optimizers("sgd[lr=0.95],momentum[lr=0.1,momentum=0.9],"
                             "adam[lr=0.3,betas=0.9/0.999]")
    assert specs == [OptimSpec("sgd", 0.95), OptimSpec("momentum", 0.1, (("momentum", 0.9),)),
                     OptimSpec("adam", 0.3, (("betas", (0.9, 0.999)),))]
    assert [s.label for s in specs] == ["sgd", "momentum[momentum=0.9]",
                                        "adam[betas=0.9/0.999]"]
    assert parse_optimizers(str(specs[2])) == [specs[2]]  # canonical text round-trips


def test_lr_comes_from_the_entry_then_the_flag_then_the_optimizer():
    specs = parse_optimizers("sgd,adagrad,adam[lr=0.3]", lr=None)
    assert [s.lr for s in specs] == [0.001, 0.01, 0.3]  # torch's defaults
    assert [s.lr for s in parse_optimizers("sgd,adam[lr=0.3]", lr=0.05)] == [0.05, 0.3]
    wd = parse_optimizers("sgd,adamw[weight_decay=0.1]", weight_decay=1e-4)
    assert [dict(s.params)["weight_decay"] for s in wd] == [1e-4, 0.1]


def test_registry_defaults_differ_where_stated():
    assert parse_optimizers("momentum")[0].kwargs()["momentum"] == 0.9
    assert parse_optimizers("nesterov")[0].kwargs()["nesterov"] is True
    assert OPTIMIZERS.get("lbfgs").signature_defaults()["max_iter"] == 1
    assert "fused" not in OPTIMIZERS.get("adam").signature_defaults()


@pytest.mark.parametrize("text, fragment", [
    ("sgd[betas=0.9/0.999]", "takes no parameter 'betas'"),
    ("adam[betas=0.9]", "2 numbers"),
    ("adam[amsgrad=maybe]", "true or false"),
    ("adam[lr=fast]", "lr takes a number"),
    ("adam[betas=1.5/0.9]", "Invalid beta"),
    ("sgd[lr=0.1", "never closed"),
    ("sgd[momentum]", "key=value"),
    ("sgd]", "unbalanced"),
    ("sgd[lr=-1]", "lr must be positive"),
    ("rmsprop,bogus", "choose one of: sgd"),
    (" , ", "names no optimizer"),
])
def test_malformed_entries_are_one_line_errors(text, fragment):
    with pytest.raises(DlbenchError, match=None) as e:
        parse_optimizers(text)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_weight_decay_on_an_optimizer_without_it_is_an_error():
    with pytest.raises(DlbenchError, match="lbfgs has no weight decay"):
        parse_optimizers("lbfgs", weight_decay=0.1)


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_optimizer_lowers_the_loss(name):
    ds = load_dataset(DataSpec("iris"))
    spec = parse_optimizers(name, lr=OPTIMIZERS.get(name).test_lr)[0]
    rows = np.arange(ds.n_samples)
    members = [Member({"seed": s}, s, rows) for s in range(2)]
    results = train(ds, ModelSpec("linear"), TrainConfig(spec, epochs=5, batch_size=16), members)
    for r in results:
        loss = [v for _, split, metric, v in r.curves if (split, metric) == ("train", "loss")]
        assert r.status == "ok" and loss[-1] < 0.8 * loss[0], (name, loss)


def test_an_entry_stacks_only_when_it_says_it_is_elementwise():
    """Stacking an optimizer that reduces across weights would mix members: not by default."""
    assert not OptimInfo("plugged", torch.optim.SGD).elementwise
    stacked = {o.name for o in OPTIMIZERS if o.elementwise}
    assert stacked == {"sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"}
    # L-BFGS and Newton take full batches; L-BFGS on mini-batches trains each member alone,
    # its step asking for a closure (the batch's)
    alone = {o.name for o in OPTIMIZERS if not o.elementwise and not o.full_batch}
    assert alone == {"lbfgs-minibatch"}
    assert stacking(parse_optimizers("lbfgs-minibatch")[0]) is CLOSURE


def test_minibatch_lbfgs_evaluates_batches_and_full_batch_every_row():
    """The two L-BFGS entries differ only in what an evaluation sees: a batch, or every row."""
    ds = load_dataset(DataSpec("iris"))
    members = [Member({"seed": 0}, 0, np.arange(ds.n_samples))]
    rows = {}
    for name in ("lbfgs", "lbfgs-minibatch"):
        config = TrainConfig(parse_optimizers(name)[0], epochs=2, batch_size=32)
        cost = train(ds, ModelSpec("linear"), config, members)[0].cost[-1]
        rows[name] = cost.examples / cost.grad_evals  # rows per gradient evaluation
    assert rows["lbfgs"] == ds.n_samples and rows["lbfgs-minibatch"] <= 32


def test_full_batch_optimizers_train_each_member_alone():
    members = [Member({"s": s}, s, np.arange(40)) for s in range(3)]
    for name in ("lbfgs", "newton"):
        cfg = TrainConfig(parse_optimizers(name)[0])
        assert plan_stacks(members, [cfg]) == [[(0, 0)], [(0, 1)], [(0, 2)]]
    adam = TrainConfig(parse_optimizers("adam")[0])
    assert plan_stacks(members, [adam]) == [[(0, 0), (0, 1), (0, 2)]]


def test_newton_solves_a_quadratic_in_one_step():
    A = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    b = torch.tensor([1.0, -2.0], dtype=torch.float64)

    def f(p):
        return 0.5 * p @ A @ p - b @ p

    path, status = minimize(f, [5.0, 5.0], TrainConfig(OptimSpec("newton", 1.0)), steps=1)
    np.testing.assert_allclose(path[1, :2], torch.linalg.solve(A, b), atol=1e-10)
    assert status == "ok"


def test_newton_goes_to_the_saddle():
    path, _ = minimize(lambda p: p[0] ** 2 - p[1] ** 2, [1.0, 0.5],
                       TrainConfig(OptimSpec("newton", 1.0)), steps=1)
    np.testing.assert_allclose(path[1, :3], [0.0, 0.0, 0.0], atol=1e-12)


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam",
                                  "adamw", "lbfgs"])
def test_minimize_equals_direct_torch_optim_steps(name):
    def f(p):
        return p[0] ** 2 / 20 + p[1] ** 2

    spec = parse_optimizers(name, lr=0.1)[0]
    path, status = minimize(f, [-7.0, 2.0], TrainConfig(spec), steps=25)
    point = torch.tensor([-7.0, 2.0], dtype=torch.float64, requires_grad=True)
    opt = spec.info.cls([point], **spec.kwargs())  # plain torch.optim, not fused

    def closure():
        opt.zero_grad()
        loss = f(point)
        loss.backward()
        return loss

    for step in range(1, 26):
        opt.step(closure) if spec.info.full_batch else (closure(), opt.step())
        np.testing.assert_allclose(path[step, :2], point.detach(), rtol=1e-9, atol=1e-12)
    assert status == "ok" and path.shape == (26, 4) and path[0, 2] == f(torch.tensor([-7.0, 2]))


def test_a_diverging_path_stops_with_its_status():
    path, status = minimize(lambda p: p[0] ** 2 + p[1] ** 2, [1.0, 1.0],
                            TrainConfig(OptimSpec("sgd", 5.0)), steps=2000)
    assert status == "diverged" and len(path) < 2001 and not math.isfinite(path[-1, 2])


@pytest.mark.parametrize("name, expected", [
    ("constant", [1, 1, 1, 1]),
    ("step", [1, 1, 0.1, 0.01]),
    ("exponential", [1, 0.1, 0.01, 0.01]),
    ("cosine", [1, 0.5, 0, 0]),
])
def test_schedules_at_known_points(name, expected):
    total = 100
    got = [lr_factor(name, step, total) for step in (0, 50, 99, 100)]
    if name == "step":
        got[1] = lr_factor(name, 40, total)  # 1/3 < 0.4 < 2/3: one decay
        expected[1] = 0.1
    np.testing.assert_allclose(got[:2] + got[3:], expected[:2] + expected[3:], atol=1e-9)
    assert set(SCHEDULES.names()) == {"constant", "step", "exponential", "cosine"}


def test_warmup_ramps_then_hands_over_to_the_schedule():
    assert [lr_factor("constant", s, 100, warmup=4) for s in range(5)] == [0.25, 0.5, 0.75, 1, 1]
    assert lr_factor("cosine", 4, 104, warmup=4) == 1.0
    assert lr_factor("cosine", 104, 104, warmup=4) == pytest.approx(0.0)


def test_the_schedule_sets_the_optimizer_rate_each_step():
    ds = load_dataset(DataSpec("iris"))
    member = Member({"s": 0}, 0, np.arange(150))
    cfg = TrainConfig(OptimSpec("sgd", 0.1), epochs=1, batch_size=150, schedule="step")
    seen = []
    original = torch.optim.SGD.step

    def spy(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    torch.optim.SGD.step = spy
    try:
        train(ds, ModelSpec("linear"), cfg, [member])
    finally:
        torch.optim.SGD.step = original
    assert seen == [0.1]  # one step per epoch at full batch, before any decay
    assert build_optimizer(OptimSpec("sgd", 0.1), [torch.zeros(1, requires_grad=True)])


def test_curvature_wins_on_rosenbrock():
    """60 steps: L-BFGS and Newton reach the minimum; first-order methods crawl the valley."""
    from dlbench.optim.functions import FUNCTIONS

    info = FUNCTIONS.get("rosenbrock")
    final = {}
    for name, lr in [("lbfgs", None), ("newton", None), ("adam", 0.05), ("momentum", 1e-3)]:
        path, status = minimize(info.fn, list(info.start),
                                TrainConfig(parse_optimizers(name, lr=lr)[0]), steps=60)
        assert status == "ok" and path[-1, 2] < path[0, 2], name
        final[name] = path[-1, 2]
    assert final["lbfgs"] < 1e-6 and final["newton"] < 1e-6
    assert final["adam"] > 1 and final["momentum"] > 1
