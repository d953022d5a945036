"""Every registered model, dataset, activation and init trains through the one trainer."""

import numpy as np
import pytest
import torch

from dlbench.data.datasets import DATASETS, DataSpec, load_dataset
from dlbench.engine.members import Member, TrainConfig
from dlbench.engine.trainer import train
from dlbench.errors import DlbenchError
from dlbench.nn.models import (
    ACTIVATIONS,
    INITS,
    MODELS,
    ModelSpec,
    Shape,
    batch_statistics,
    build_model,
    check_spec,
)
from dlbench.optim.optimizers import OptimSpec


def one_member(ds, n_train=None, seed=0):
    rows = np.random.default_rng(seed).permutation(ds.n_samples)
    cut = n_train or max(2, int(0.75 * len(rows)))
    train_rows = rows[:cut] if cut < len(rows) else rows
    val_rows = rows[cut:] if cut < len(rows) else rows
    return Member({"m": 0}, seed, np.sort(train_rows), {"val": np.sort(val_rows)})


def dataset_for(model: str):
    """Real data of the shape the model entry declares for its tests: digits' 8×8 images, or
    a table (wine)."""
    needs = MODELS.get(model).test_input
    ds = load_dataset(DataSpec("wine" if needs is None else "digits"))
    assert ds.input_shape == needs, f"no dataset here is shaped {needs} for model {model}"
    return ds


@pytest.mark.parametrize("model", MODELS.names())
def test_every_model_trains_and_its_loss_falls(model):
    ds = dataset_for(model)
    if ds.n_samples > 600:  # keep the test quick: a subset of rows is plenty to see learning
        ds = type(ds)(ds.name, ds.X[:600], ds.y[:600], ds.task, ds.classes, ds.input_shape)
    cfg = TrainConfig(OptimSpec("adam", 0.01), epochs=4, batch_size=32)
    [result] = train(ds, ModelSpec(model, **MODELS.get(model).test_fields), cfg,
                     [one_member(ds)])
    losses = [v for _, split, metric, v in result.curves if (split, metric) == ("train", "loss")]
    assert result.status == "ok" and len(losses) == 5  # epoch 0 (the start) and 4 epochs
    assert losses[-1] < losses[0]
    proba = result.predictions["val"].proba
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-6)


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_dataset_trains_one_epoch(name):
    ds = load_dataset(DataSpec(name))
    [result] = train(ds, ModelSpec("mlp", hidden=(8,)), TrainConfig(epochs=1),
                     [one_member(ds)])
    assert result.status == "ok"
    pred = result.predictions["val"]
    assert pred.y_pred.shape == pred.y_true.shape and np.isfinite(pred.y_pred).all()


@pytest.mark.parametrize("activation", ACTIVATIONS.names())
@pytest.mark.parametrize("batchnorm", [False, True])
def test_mlp_options_train(activation, batchnorm):
    ds = load_dataset(DataSpec("iris"))
    spec = ModelSpec("mlp", hidden=(6, 6), activation=activation, batchnorm=batchnorm,
                     dropout=0.2)
    [result] = train(ds, spec, TrainConfig(epochs=2, batch_size=16), [one_member(ds)])
    assert result.status == "ok"


@pytest.mark.parametrize("init", INITS.names())
def test_inits_draw_the_documented_scale(init):
    fan_in, width = 400, 300
    model = build_model(ModelSpec("mlp", hidden=(width,), init=init), Shape(fan_in, None, 10),
                        [0, 1])
    w, b = model.layers[0].weight.detach(), model.layers[0].bias.detach()
    expected_std = {
        "default": 1 / np.sqrt(3 * fan_in),  # U(±1/sqrt(fan_in))
        "xavier": np.sqrt(2) * np.sqrt(2 / (fan_in + width)),  # relu gain
        "he": np.sqrt(2) / np.sqrt(fan_in),
        "std1": 1.0,
        "std0.01": 0.01,
    }[init]
    assert w.std().item() == pytest.approx(expected_std, rel=0.05)
    assert (b == 0).all().item() == INITS.get(init).zero_bias


def test_batchnorm_layers_have_no_bias_before_them():
    model = build_model(ModelSpec("mlp", hidden=(5,), batchnorm=True), Shape(3, None, 2), [0])
    assert model.layers[0].bias is None and model.layers[-1].bias is not None


def test_output_shapes():
    x = torch.randn(3, 7, 64)  # (M, B, d) with digits' 8×8 images flattened
    for info in MODELS:
        model = build_model(ModelSpec(info.name, **info.test_fields), Shape(64, (1, 8, 8), 10),
                            [0, 1, 2])
        assert model(x).shape == (3, 7, 10)


@pytest.mark.parametrize("spec, task, fragment", [
    (ModelSpec("perceptron"), "regression", "perceptron is for classification"),
    (ModelSpec("mlp", activation="swish"), "classification", "relu"),
    (ModelSpec("mlp", init="orthogonal"), "classification", "xavier"),
    (ModelSpec("mlp", dropout=1.0), "classification", "--dropout"),
    (ModelSpec("mlp", hidden=(0,)), "classification", "--hidden"),
])
def test_bad_model_specs_are_clear_errors(spec, task, fragment):
    with pytest.raises(DlbenchError, match=fragment):
        check_spec(spec, task)


def test_cnn2d_needs_images():
    with pytest.raises(DlbenchError, match="image"):
        build_model(ModelSpec("cnn2d"), Shape(13, None, 3), [0])


def test_batch_statistics_normalise_at_init_without_touching_running_estimates():
    model = build_model(ModelSpec("mlp", hidden=(16,), batchnorm=True), Shape(5, None, 3), [0])
    model.eval()
    x = 50 + 10 * torch.randn(1, 200, 5)
    bn = model.layers[1]
    hidden = model.layers[0](x)
    with torch.no_grad():
        plain = bn(hidden)  # running estimates 0 and 1 at init: batch norm is the identity
        with batch_statistics(model):
            normalised = bn(hidden)
    torch.testing.assert_close(plain, hidden, rtol=1e-4, atol=1e-5)  # only /sqrt(1 + eps)
    torch.testing.assert_close(normalised.mean(1), torch.zeros(1, 16), atol=1e-4, rtol=0)
    assert torch.equal(bn.running_mean, torch.zeros(1, 16)) and not bn.batch_stats
