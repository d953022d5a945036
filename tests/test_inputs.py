"""Missing values (--missing) and feature selection (--features): fitted on each member's
training rows only, applied per batch, and exact — a member with them, in a stack with others,
equals its plain one-model loop on inputs that scikit-learn prepared."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.feature_selection import SelectKBest, f_classif, f_regression
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import StandardScaler

from dlbench.data.datasets import Dataset, DataSpec, load_dataset
from dlbench.data.preprocess import IMPUTERS, fit_inputs, indicator_columns
from dlbench.engine import trainer
from dlbench.engine.inputs import StackData
from dlbench.engine.members import TrainConfig
from dlbench.engine.trainer import check_config, train, train_grid
from dlbench.errors import DlbenchError
from dlbench.nn.models import ModelSpec, build_model
from dlbench.optim.optimizers import OptimSpec
from tests.cli_helpers import assert_usage_error, invoke
from tests.test_trainer import (
    assert_results_match_alone,
    make_dataset,
    make_members,
    shape_of,
    to_plain,
)

SPEC = ModelSpec("mlp", hidden=(12,))
HOLES = (1, 3, 6)  # the features with missing values
STRATEGIES = {"zero": {"strategy": "constant", "fill_value": 0.0}, "mean": {"strategy": "mean"},
              "median": {"strategy": "median"}}


def with_holes(ds: Dataset | None = None, share: float = 0.2, seed: int = 3) -> Dataset:
    """A table with about `share` of the values of features HOLES missing (NaN)."""
    ds = ds or make_dataset()
    X = ds.X.copy()
    rng = np.random.default_rng(seed)
    for j in HOLES:
        X[rng.random(len(X)) < share, j] = np.nan
    return replace(ds, X=X, input_shape=None)


def reference_inputs(ds: Dataset, train_rows: np.ndarray, missing: str, k: int = 0) -> np.ndarray:
    """Every row as a member sees it, prepared by scikit-learn from its training rows alone:
    SimpleImputer, one indicator per feature with a missing value, StandardScaler, then the
    features SelectKBest leaves out (with their indicators) set to 0."""
    X = ds.X.astype(np.float64)
    imputer = SimpleImputer(keep_empty_features=True, **STRATEGIES[missing]).fit(X[train_rows])
    filled = imputer.transform(X)
    holes = np.flatnonzero(np.isnan(X).any(0))
    full = np.hstack([filled, np.isnan(X[:, holes])])
    Z = StandardScaler().fit(full[train_rows]).transform(full)
    if k:
        score = f_regression if ds.task == "regression" else f_classif
        keep = SelectKBest(score, k=k).fit(filled[train_rows], ds.y[train_rows]).get_support()
        Z[:, ~np.concatenate([keep, keep[holes]])] = 0.0
    return Z.astype(np.float32)


# --- the fitted pipeline ---------------------------------------------------------------------


@pytest.mark.parametrize("missing", list(IMPUTERS.names()))
def test_fills_equal_simple_imputer_fitted_on_the_training_rows(missing):
    ds, member = with_holes(), make_members()[0]
    X_train = ds.X[member.train].copy()
    X_train[:, 6] = np.nan  # a feature never observed in training: filled with 0
    inputs = fit_inputs(X_train, ds.y[member.train], ds.task, "standardize", missing)
    expected = SimpleImputer(keep_empty_features=True, **STRATEGIES[missing]).fit(X_train)
    np.testing.assert_allclose(inputs.fill, expected.statistics_.astype(float), rtol=1e-6)
    assert inputs.fill[6] == 0.0


def test_evaluation_rows_never_change_a_members_fill_or_its_training():
    ds, members = with_holes(), make_members()
    evaluated = np.setdiff1d(np.arange(ds.n_samples), np.concatenate([m.train for m in members]))
    assert len(evaluated) > 5 and all(np.isin(m.evals["val"], evaluated).any() for m in members)
    X = ds.X.copy()
    X[evaluated] = np.where(np.isnan(X[evaluated]), np.nan, X[evaluated] * 100 + 7)
    moved = replace(ds, X=X)  # the same missing cells, other values on every evaluation row
    cfg = TrainConfig(OptimSpec("adam", 0.01), epochs=2, batch_size=16, missing="mean")
    a, b = (StackData(data, members, [cfg] * 3, torch.device("cpu"))
            for data in (ds, moved))
    for name in ("fill", "scale", "shift"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=0, atol=0)
    for r, s in zip(train(ds, SPEC, cfg, members), train(moved, SPEC, cfg, members), strict=True):
        assert r.curve("train", "running_loss") == s.curve("train", "running_loss")
        assert r.curve("val", "loss") != s.curve("val", "loss")


def test_tables_get_one_indicator_column_per_feature_with_a_missing_value():
    ds = with_holes()
    assert list(ds.missing_features) == list(HOLES)
    assert shape_of(ds).n_inputs == ds.n_features + len(HOLES)
    member = make_members()[0]
    inputs = fit_inputs(ds.X[member.train], ds.y[member.train], ds.task, "none", "zero",
                        indicators=indicator_columns(ds.missing_features, None))
    seen = inputs.transform(ds.X)
    np.testing.assert_array_equal(seen[:, ds.n_features:], np.isnan(ds.X[:, list(HOLES)]))
    np.testing.assert_array_equal(seen[:, :ds.n_features], np.nan_to_num(ds.X, nan=0.0))
    shaped = replace(ds, input_shape=(2, 4))  # sequences and images keep their shape
    assert len(indicator_columns(shaped.missing_features, shaped.input_shape)) == 0
    assert shape_of(shaped).n_inputs == ds.n_features


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_the_kept_features_are_the_k_best_by_f_on_the_training_rows(task):
    ds, member = with_holes(make_dataset(task=task)), make_members()[1]
    rows = member.train
    inputs = fit_inputs(ds.X[rows], ds.y[rows], task, "standardize", "median", features=3)
    filled = SimpleImputer(strategy="median").fit_transform(ds.X[rows])
    score = f_regression if task == "regression" else f_classif
    expected = SelectKBest(score, k=3).fit(filled, ds.y[rows]).get_support()
    np.testing.assert_array_equal(inputs.scale != 0, expected)
    seen = inputs.transform(ds.X)
    assert (seen[:, ~expected] == 0).all() and (seen[:, expected] != 0).any(0).all()


def test_a_zeroed_feature_is_a_removed_input_of_the_first_layer():
    ds, members = make_dataset(), make_members()
    cfg = TrainConfig(OptimSpec("adam", 0.01), epochs=2, batch_size=16, features=2)
    start = build_model(SPEC, shape_of(ds), [m.seed for m in members]).state_dict()
    for m, (member, result) in enumerate(zip(members, train(ds, SPEC, cfg, members),
                                             strict=True)):
        kept = fit_inputs(ds.X[member.train], ds.y[member.train], ds.task,
                          features=2).scale != 0
        moved = (result.weights["layers.0.weight"] != start["layers.0.weight"][m]).any(1)
        np.testing.assert_array_equal(moved.numpy(), kept)  # (in, out): a row per input


# --- in the trainer: exact, whatever shares the stack ----------------------------------------


@pytest.mark.parametrize(("missing", "k"), [("zero", 0), ("mean", 0), ("median", 4)])
def test_a_member_with_missing_values_equals_its_plain_loop_on_sklearn_inputs(missing, k):
    ds, members = with_holes(), make_members()
    cfg = TrainConfig(OptimSpec("adam", 0.01), epochs=2, batch_size=16, missing=missing,
                      features=k)
    for member, result in zip(members, train(ds, SPEC, cfg, members), strict=True):
        assert_results_match_alone(ds, SPEC, cfg, [member], [result],
                                   reference_inputs(ds, member.train, missing, k))


def test_members_of_different_fills_and_feature_counts_share_a_stack_and_equal_alone():
    ds, members = with_holes(), make_members()
    configs = [TrainConfig(OptimSpec("adam", 0.01), epochs=2, batch_size=16, missing=fill,
                           features=k) for fill, k in (("zero", 0), ("mean", 3), ("median", 0))]
    assert len(trainer.plan_stacks(members, configs)) == 1
    grid = train_grid(ds, SPEC, configs, members)
    for cfg, results in zip(configs, grid, strict=True):
        for result, member in zip(results, members, strict=True):
            [alone] = train(ds, SPEC, cfg, [member])
            np.testing.assert_allclose(result.curve("train", "running_loss"),
                                       alone.curve("train", "running_loss"), rtol=1e-5)
            for name, value in alone.weights.items():
                np.testing.assert_allclose(result.weights[name], value, rtol=1e-4, atol=1e-6)


# --- refused ---------------------------------------------------------------------------------


def test_a_nan_never_reaches_training_without_a_fill():
    ds, members = with_holes(), make_members()
    cfg = TrainConfig(OptimSpec("adam", 0.01), epochs=1, batch_size=16)
    with pytest.raises(DlbenchError, match="pass --missing zero, mean or median"):
        check_config(cfg, SPEC, ds)
    with pytest.raises(DlbenchError, match="--missing"):
        train(ds, SPEC, cfg, members)


@pytest.mark.parametrize(("config", "fragment"), [
    (TrainConfig(features=9), "--features 9: toy has 8 features; ask for at most that many"),
    (TrainConfig(missing="mode"), "unknown missing-value fill 'mode'; choose one of: zero, mean, "
                                  "median"),
    (TrainConfig(features=-1), "--features must be positive"),
])
def test_bad_inputs_are_clear_errors_before_training(config, fragment):
    with pytest.raises(DlbenchError, match=fragment):
        check_config(config, SPEC, make_dataset())


def test_a_csv_with_empty_cells_loads_only_with_missing(tmp_path):
    path = tmp_path / "holes.csv"
    path.write_text("a,b,c,label\n1,2,,x\n2,,1,y\n3,4,5,x\n4,5,6,y\n")
    with pytest.raises(DlbenchError, match=r"column\(s\) of holes.csv: b, c; pass --missing"):
        load_dataset(DataSpec(path=str(path), target="label"))
    ds = load_dataset(DataSpec(path=str(path), target="label", missing=True))
    assert np.isnan(ds.X).sum() == 2 and list(ds.missing_features) == [1, 2]
    npz = tmp_path / "holes.npz"
    np.savez(npz, X=np.array([[1.0, np.nan], [2.0, 3.0]]), y=np.array([0, 1]))
    with pytest.raises(DlbenchError, match="missing values \\(NaN\\); pass --missing"):
        load_dataset(DataSpec(path=str(npz)))
    assert np.isnan(load_dataset(DataSpec(path=str(npz), missing=True)).X).sum() == 1


def test_infinite_values_stay_refused_with_missing(tmp_path):
    path = tmp_path / "inf.csv"
    path.write_text("a,b,label\n1,inf,x\n2,,y\n")
    with pytest.raises(DlbenchError, match="infinite values"):
        load_dataset(DataSpec(path=str(path), target="label", missing=True))


def test_to_plain_of_the_wider_model_reads_every_column():
    """The models are built for the indicator columns too (the reference loop relies on it)."""
    ds = with_holes()
    net = to_plain(build_model(SPEC, shape_of(ds), [0]), 0)
    assert net[0].in_features == ds.n_features + len(HOLES)


# --- the commands ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def holes_csv(tmp_path_factory):
    """60 rows, 4 features (b and d with empty cells), a class target."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    frame = pd.DataFrame(X, columns=list("abcd")).assign(y=y)
    frame.loc[rng.random(60) < 0.2, "b"] = np.nan
    frame.loc[rng.random(60) < 0.1, "d"] = np.nan
    path = tmp_path_factory.mktemp("holes") / "holes.csv"
    frame.to_csv(path, index=False)
    return path


def ok(result):
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.stderr}\n{result.exception!r}"
    return result


def test_cv_fills_and_selects_and_records_both(tmp_path, holes_csv):
    out = tmp_path / "out"
    ok(invoke("cv", "--data", holes_csv, "--target", "y", "--missing", "median", "--features",
              "2", "--epochs", "2", "--hidden", "8", "--k", "2", "--out", out))
    train_config = json.loads((out / "manifest.json").read_text())["config"]["train"]
    assert (train_config["missing"], train_config["features"]) == ("median", 2)
    scores = pd.read_csv(out / "scores.csv")
    assert scores.value.notna().all()


def test_optimize_compares_fills_and_feature_counts_as_grid_axes(tmp_path, holes_csv):
    out = tmp_path / "out"
    ok(invoke("optimize", "--data", holes_csv, "--target", "y", "--missing", "zero,mean",
              "--features", "1,3", "--opt", "adam", "--epochs", "2", "--seeds", "1",
              "--hidden", "8", "--out", out))
    summary = pd.read_csv(out / "summary.csv")
    assert set(zip(summary.missing, summary.features, strict=True)) == {
        ("zero", 1), ("zero", 3), ("mean", 1), ("mean", 3)}
    assert set(summary.cell) == {"zero fill · 1 features", "zero fill · 3 features",
                                 "mean fill · 1 features", "mean fill · 3 features"}
    config = json.loads((out / "manifest.json").read_text())["config"]
    assert (config["missing"], config["features"]) == (["zero", "mean"], [1, 3])
    assert "missing" not in config["train"] and "features" not in config["train"]


def test_overfit_takes_missing_and_features(tmp_path, holes_csv):
    out = tmp_path / "out"
    ok(invoke("overfit", "--data", holes_csv, "--target", "y", "--missing", "mean",
              "--features", "3", "--reg", "none,l2", "--epochs", "2", "--seeds", "2",
              "--hidden", "8", "--out", out))
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary.missing) == {"mean"} and set(summary.features) == {3}
    assert list(summary.vs_none) == ["baseline", summary.vs_none[1]] and summary.vs_none[1]


BAD = [
    ("cv", ["--missing", "mode"], "unknown --missing 'mode'; choose one of: zero, mean, median"),
    ("cv", ["--missing", "mean,median"], "cv trains one configuration: give one --missing"),
    ("cv", ["--features", "2,3"], "give one --features value"),
    ("cv", ["--features", "0"], "--features values must be positive"),
    ("cv", ["--missing", "zero", "--features", "5"], "--features 5: holes.csv has 4 features"),
    ("cv", [], "pass --missing zero, mean or median"),
    ("optimize", ["--missing", "mean,bogus"], "unknown --missing 'bogus'"),
    ("optimize", ["--missing", "zero", "--features", "2,9"],
     "--features 9: holes.csv has 4 features"),
    ("optimize", ["--missing", "mean", "--init", "he"], "--init records activations"),
    ("overfit", ["--missing", "mean", "--reg", "none,tta[n=2]"], "tta (test-time augmentation)"
                                                                  " needs sequences or images"),
    ("overfit", ["--features", "0"], "--features values must be positive"),
]


@pytest.mark.parametrize(("command", "args", "fragment"), BAD)
def test_bad_missing_features_and_tta_are_one_line_errors(tmp_path, holes_csv, command, args,
                                                          fragment):
    out = tmp_path / "out"
    result = invoke(command, "--data", holes_csv, "--target", "y", "--epochs", "1", *args,
                    "--out", out)
    assert fragment in assert_usage_error(result, out)


def test_a_function_run_refuses_missing(tmp_path):
    out = tmp_path / "out"
    result = invoke("optimize", "--function", "rosenbrock", "--missing", "mean", "--out", out)
    assert "--missing applies to networks" in assert_usage_error(result, out)
