"""Nested stacked models (residual blocks) and the model-side regularizers (stochastic depth,
DropConnect, fractional max pooling) initialise, mask and train exactly like a model alone."""

import math

import numpy as np
import pytest
import torch
from test_models import one_member
from test_trainer import assert_member_matches_alone, make_dataset, make_members

from dlbench.data.datasets import Dataset, DataSpec, load_dataset
from dlbench.engine.members import TrainConfig
from dlbench.engine.trainer import check_model_fits, train
from dlbench.errors import DlbenchError
from dlbench.nn.models import (
    FractionalMaxPool,
    Lambda,
    MemberRandom,
    ModelSpec,
    Shape,
    StackedLinear,
    StackedResidual,
    build_model,
    check_spec,
    normalize,
)
from dlbench.optim.optimizers import OptimSpec

ADAM = TrainConfig(OptimSpec("adam", 0.01), epochs=3, batch_size=16)


def make_images(n=150, side=8, classes=3, seed=0) -> Dataset:
    """Noisy 1×side×side images whose class lights up a patch of its own."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    X = rng.normal(size=(n, side, side))
    for c in range(classes):
        X[y == c, 2 * c:2 * c + 3, 2 * c:2 * c + 3] += 2.0
    return Dataset("toy-images", X.reshape(n, -1).astype(np.float32), y.astype(np.int64),
                   "classification", classes=tuple(str(c) for c in range(classes)),
                   input_shape=(1, side, side))


# --- initialisation and seeds reach every nested layer -----------------------------------------


def test_every_nested_weight_is_drawn_from_its_members_generator():
    spec = ModelSpec("resmlp", hidden=(32, 32, 32), dropout=0.2, stochastic_depth=0.2,
                     dropconnect=0.2)
    shape = Shape(20, None, 3)
    model = build_model(spec, shape, [7, 8, 9])
    linears = [m for m in model.modules() if isinstance(m, StackedLinear)]
    assert len(linears) == 5  # input projection, three blocks, head
    for layer in linears:  # torch's default U(±1/sqrt(fan_in)), never left as torch.empty
        bound = 1 / math.sqrt(layer.fan_in)
        for p in (layer.weight, layer.bias):
            assert torch.isfinite(p).all() and (p != 0).all() and (p.abs() <= bound).all()
        assert layer.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.2)
    again = build_model(spec, shape, [7, 8, 9]).state_dict()
    alone = build_model(spec, shape, [8]).state_dict()
    for name, value in model.state_dict().items():
        assert torch.equal(value, again[name])
        torch.testing.assert_close(value[1], alone[name][0], rtol=0, atol=0)
        if value.dtype.is_floating_point and value.std() > 0:
            assert not torch.equal(value[0], value[1])
    random = [m for m in model.modules() if isinstance(m, MemberRandom)]
    assert len(random) == 10  # 3 dropouts, 3 stochastic depths, 4 DropConnects (not the head)
    seeds = [s for m in random for s in m.seeds]
    assert len(set(seeds)) == len(seeds) == 30  # every layer and member draws its own numbers


def test_the_padding_mask_reaches_nested_batch_norm():
    model = build_model(ModelSpec("resmlp", hidden=(5, 5), batchnorm=True), Shape(4, None, 3),
                        [1, 2])
    model.train()
    x = torch.randn(2, 6, 4)
    padded = torch.cat([x, 100 + torch.randn(2, 4, 4)], dim=1)  # padding far off the real rows
    mask = torch.cat([torch.ones(2, 6), torch.zeros(2, 4)], dim=1)
    with torch.no_grad():
        real = model(x)
        torch.testing.assert_close(model(padded, mask)[:, :6], real)
        assert not torch.allclose(model(padded)[:, :6], real, atol=1e-2)  # the test can fail


# --- stacked equals alone ----------------------------------------------------------------------


# Each model and each regularizer alone (resmlp, stochastic depth, DropConnect on an MLP,
# fractional pooling) is swept in test_contract.py; these are the combinations it does not make.
@pytest.mark.parametrize("spec", [
    ModelSpec("resmlp", hidden=(8, 8), batchnorm=True, activation="tanh", init="he"),
    ModelSpec("resmlp", hidden=(8, 8), batchnorm=True, stochastic_depth=0.3, dropconnect=0.3),
    ModelSpec("cnn1d", channels=(4, 6), dropconnect=0.3),
], ids=["resmlp-batchnorm", "resmlp-all", "cnn1d-dropconnect"])
def test_nested_and_regularized_members_equal_alone(spec):
    assert_member_matches_alone(make_dataset(), spec, ADAM, make_members())


def test_fractional_pooling_with_batchnorm_and_dropconnect_members_equal_alone():
    spec = ModelSpec("cnn2d", channels=(3, 4), pool="fractional", batchnorm=True,
                     dropconnect=0.2)
    assert_member_matches_alone(make_images(), spec, ADAM, make_members())


def test_regularizers_change_training():
    """Each regularizer draws in training, so the equalities above compare real draws."""
    ds, members = make_dataset(), make_members()[:1]
    base = train(ds, ModelSpec("resmlp", hidden=(8, 8)), ADAM, members)[0].weights
    for field, value in (("stochastic_depth", 0.5), ("dropconnect", 0.5)):
        spec = ModelSpec("resmlp", hidden=(8, 8), **{field: value})
        weights = train(ds, spec, ADAM, members)[0].weights
        assert not np.allclose(weights["layers.0.weight"], base["layers.0.weight"])


# --- what each regularizer does ----------------------------------------------------------------


def test_stochastic_depth_drops_whole_rows_in_training_and_none_at_evaluation():
    block = StackedResidual([Lambda(torch.ones_like)], drop=0.5)  # x + 1, unless dropped
    block.drop.seeds = [3, 4]
    added = block(torch.zeros(2, 200, 5))  # training: per row, 0 (dropped) or 1 / (1 - p) = 2
    assert torch.equal(added, added[..., :1].expand_as(added))  # the whole row, every feature
    torch.testing.assert_close(added.unique(), torch.tensor([0.0, 2.0]))
    assert 0.35 < (added[..., 0] == 0).float().mean() < 0.65
    block.eval()
    x = torch.randn(2, 200, 5)
    torch.testing.assert_close(block(x), x + 1)


def test_stochastic_depth_at_evaluation_is_the_deterministic_residual_net():
    shape, x = Shape(6, None, 3), torch.randn(2, 50, 6)
    plain = build_model(ModelSpec("resmlp", hidden=(8, 8)), shape, [1, 2])
    dropping = build_model(ModelSpec("resmlp", hidden=(8, 8), stochastic_depth=0.5), shape,
                           [1, 2])
    with torch.no_grad():
        torch.testing.assert_close(dropping.eval()(x), plain.eval()(x), rtol=0, atol=0)
        assert not torch.allclose(dropping.train()(x), plain(x))


def test_dropconnect_drops_weights_once_per_pass_and_is_the_identity_at_evaluation():
    layer = StackedLinear(2, 5, 4, bias=False, dropconnect=0.5)
    torch.nn.init.uniform_(layer.weight, 1, 2)
    layer.drop.seeds = [3, 4]
    x = torch.eye(5).repeat(2, 2, 1)  # (2, 10, 5): row i of each half reads weight row i
    with torch.no_grad():
        first, second = layer(x), layer(x)
        w = layer.weight
        assert torch.equal(first[:, :5], first[:, 5:])  # one mask for the whole batch
        assert torch.equal((first[:, :5] == 0) | (first[:, :5] == 2 * w), torch.ones_like(w,
                                                                                         dtype=bool))
        assert 0.3 < (first == 0).float().mean() < 0.7
        assert not torch.equal(first, second)  # a new mask for the next mini-batch
        layer.eval()
        assert torch.equal(layer(x)[:, :5], w)


def test_fractional_pooling_shrinks_each_side_by_root_two_and_fixes_its_regions_at_evaluation():
    assert FractionalMaxPool([8, 8]).size == (5, 5)
    assert FractionalMaxPool([1, 2]).size == (1, 1)  # a side of 1 or 2 still pools to 1
    model = build_model(ModelSpec("cnn2d", channels=(2, 3, 3), pool="fractional"),
                        Shape(64, (1, 8, 8), 4), [0, 1])
    assert model.layers[-1].fan_in == 3 * 2 * 2  # 8 -> 5 -> 3 -> 2: the head follows
    x = torch.randn(2, 9, 64)
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))  # training: new regions every pass
        model.eval()
        assert torch.equal(model(x), model(x))


def test_fractional_pooling_learns_digits():
    ds = load_dataset(DataSpec("digits"))
    ds = Dataset(ds.name, ds.X[:400], ds.y[:400], ds.task, ds.classes, ds.input_shape)
    cfg = TrainConfig(OptimSpec("adam", 0.01), epochs=4, batch_size=32)
    spec = ModelSpec("cnn2d", channels=(4, 8), pool="fractional")
    [result] = train(ds, spec, cfg, [one_member(ds)])
    losses = [v for _, split, metric, v in result.curves if (split, metric) == ("train", "loss")]
    assert result.status == "ok" and losses[-1] < 0.5 * losses[0]


# --- specs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec, task, fragment", [
    (ModelSpec("resmlp", stochastic_depth=1.0), "classification",
     r"--stochastic-depth must be in \[0, 1\), got 1.0"),
    (ModelSpec("resmlp", stochastic_depth=-0.1), "classification", "--stochastic-depth must"),
    (ModelSpec("mlp", dropconnect=1.0), "classification", r"--dropconnect must be in \[0, 1\)"),
    (ModelSpec("mlp", stochastic_depth=0.2), "classification",
     "--stochastic-depth 0.2 .drops residual blocks. does not apply to model mlp; "
     "use --model resmlp"),
    (ModelSpec("linear", dropconnect=0.2), "classification",
     "use --model mlp, resmlp, cnn1d or cnn2d"),
    (ModelSpec("cnn1d", pool="fractional"), "classification", "use --model cnn2d"),
    (ModelSpec("cnn2d", pool="avg"), "classification", "unknown pool 'avg'.*max, fractional"),
    (ModelSpec("adaline"), "regression", "adaline is for classification"),
])
def test_bad_regularizer_specs_are_one_line_errors(spec, task, fragment):
    with pytest.raises(DlbenchError, match=fragment) as error:
        check_spec(spec, task)
    assert "\n" not in str(error.value)


def test_resmlp_needs_equal_widths_before_anything_trains():
    with pytest.raises(DlbenchError, match="resmlp needs equal hidden widths, e.g. --hidden "
                                           "64,64,64 .got --hidden 16,8.") as error:
        check_model_fits(ModelSpec("resmlp", hidden=(16, 8)), make_dataset())
    assert "\n" not in str(error.value)


def test_normalize_resets_the_regularizers_a_model_does_not_have():
    spec = ModelSpec("mlp", stochastic_depth=0.3, dropconnect=0.2, pool="fractional")
    assert normalize(spec) == ModelSpec("mlp", dropconnect=0.2)
    assert normalize(ModelSpec("adaline", hidden=(3,), dropconnect=0.1)) == ModelSpec("adaline")
    kept = ModelSpec("resmlp", hidden=(8, 8), stochastic_depth=0.3, dropconnect=0.1)
    assert normalize(kept) == kept
    assert normalize(ModelSpec("cnn2d", pool="fractional", stochastic_depth=0.1)) == \
        ModelSpec("cnn2d", pool="fractional")


def test_size_estimates_count_each_layer_of_nested_and_dropconnect_models_once():
    from dlbench.engine import sizes

    shape = Shape(8, None, 3)
    plain = sizes._per_model(ModelSpec("mlp", hidden=(8, 8)), shape)
    assert sizes._per_model(ModelSpec("mlp", hidden=(8, 8), dropconnect=0.3), shape) == plain
    params, macs, _ = sizes._per_model(ModelSpec("resmlp", hidden=(8, 8)), shape)
    assert macs == 8 * 8 + 2 * 8 * 8 + 8 * 3  # input projection, two blocks, head


def test_dropout_zeroes_units_in_training_and_is_the_identity_at_evaluation():
    from dlbench.nn.models import StackedDropout

    layer = StackedDropout(0.5)
    layer.seeds = [1, 2]
    x = torch.ones(2, 400, 8)
    layer.train()
    y = layer(x)
    kept = y != 0
    assert 0.4 < kept.float().mean() < 0.6  # about half the units dropped
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 2.0))  # kept ones scaled 1/(1-p)
    assert not torch.equal(kept[0], kept[1])  # each member its own mask
    layer.eval()
    assert torch.equal(layer(x), x)
