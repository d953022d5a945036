"""Cell labels and coordinates."""

from dlbench.engine.cells import Cell, labels
from dlbench.engine.members import TrainConfig
from dlbench.nn.models import ModelSpec
from dlbench.optim.optimizers import OptimSpec


def cell(opt: str, lr: float, **model) -> Cell:
    return Cell(ModelSpec(**model), TrainConfig(OptimSpec(opt, lr)))


def test_labels_name_only_what_varies():
    assert labels([cell("sgd", 0.1), cell("adam", 0.001)]) == ["sgd lr=0.1", "adam lr=0.001"]
    assert labels([cell("adam", 0.1), cell("adam", 0.01)]) == ["adam lr=0.1", "adam lr=0.01"]
    assert labels([cell("adam", 0.01, init="he"), cell("adam", 0.01, init="xavier")]) == [
        "he", "xavier"]  # one optimizer for all: the table's title names it
    two = labels([cell("adam", 0.01, hidden=(8,), batchnorm=True),
                  cell("adam", 0.01, hidden=(8, 8), batchnorm=False)])
    assert two == ["hidden 8 · bn", "hidden 8,8 · no bn"]
    assert labels([cell("adam", 0.01)]) == ["adam lr=0.01"]  # nothing varies: the optimizer


def test_coords_are_one_column_per_axis():
    coords = cell("momentum", 0.05, activation="tanh").coords()
    assert coords == {"model": "mlp", "hidden": "128", "init": "default", "activation": "tanh",
                      "batchnorm": False, "preprocess": "standardize", "missing": "",
                      "features": "", "regularizer": "", "strategy": "", "similarity": "",
                      "target_size": "", "train_fraction": "", "batch_size": 32,
                      "loss": "default",
                      "optimizer": "momentum", "lr": 0.05}


def test_a_new_axis_is_a_registry_entry_and_runner_values_are_tags():
    from dataclasses import replace

    from dlbench.engine.cells import AXES

    base = cell("adam", 0.01)
    tagged = [replace(base, tags=(("regularizer", "none"), ("train_fraction", f)))
              for f in (0.25, 1.0)]
    assert labels(tagged) == ["25% train", "100% train"]
    assert tagged[0].coords()["regularizer"] == "none"
    assert [a.name for a in AXES][-2:] == ["optimizer", "lr"]
    sizes = [Cell(base.model, replace(base.train, batch_size=b)) for b in (16, 256)]
    assert labels(sizes) == ["batch 16", "batch 256"]


def test_fills_and_feature_counts_are_axes_blank_when_unused():
    from dataclasses import replace

    base = cell("adam", 0.01)
    grid = [Cell(base.model, replace(base.train, missing=m, features=k))
            for m, k in (("none", 0), ("mean", 0), ("mean", 4))]
    assert [(c.coords()["missing"], c.coords()["features"]) for c in grid] == [
        ("", ""), ("mean", ""), ("mean", 4)]
    varied = [Cell(base.model, replace(base.train, missing=m, features=k))
              for m, k in (("zero", 2), ("median", 4))]
    assert labels(varied) == ["zero fill · 2 features", "median fill · 4 features"]


def test_an_axis_a_model_ignores_does_not_count_as_varying():
    cells = [cell("adam", 0.05, name="perceptron"), cell("adam", 0.05, hidden=(8,))]
    assert labels(cells) == ["perceptron", "mlp"]


def test_an_axis_a_regularizer_sets_is_not_repeated_in_its_label():
    from dataclasses import replace

    base = cell("adam", 0.01)
    none = replace(base, tags=(("regularizer", "none"),))
    bn = Cell(replace(base.model, batchnorm=True), base.train, (("regularizer", "batchnorm"),))
    assert labels([none, bn]) == ["none", "batchnorm"]
    wide = Cell(replace(base.model, hidden=(64,)), base.train, (("regularizer", "none"),))
    assert labels([none, bn, wide]) == ["hidden 128 · none", "hidden 128 · batchnorm",
                                        "hidden 64 · none"]
