"""The CLI end to end through Typer's test runner: result files and their invariants, the exact
config the core receives, every protocol, JSON output, reproducibility, and one-line errors."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from dataclasses import asdict
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from cli_helpers import RUN_FILES, assert_usage_error, invoke, stop_after_config
from typer.testing import Result

from dlbench import __version__
from dlbench.data.datasets import DATASETS, DataSpec, load_dataset
from dlbench.data.splits import SplitConfig
from dlbench.engine import execution
from dlbench.engine.members import TrainConfig
from dlbench.evaluate.metrics import METRICS
from dlbench.nn.models import MODELS, ModelSpec
from dlbench.optim.optimizers import OPTIMIZERS, OptimSpec
from dlbench.runners import cv as cv_runner

FAST = ["--epochs", "1", "--hidden", "8"]
KEY = ["dataset", "model", "optimizer", "lr", "protocol", "repeat", "fold", "seed"]
SCORE_COLUMNS = [*KEY, "split", "metric", "value", "status"]
CURVE_COLUMNS = [*KEY, "epoch", "split", "metric", "value", "grad_evals", "examples", "status"]
SPLIT_COLUMNS = ["repeat", "fold", "sample", "role"]
RESULT_FILES = {"scores.csv", "curves.csv", "splits.csv", "summary.csv", "manifest.json",
                *RUN_FILES}
CLASSIFICATION_METRICS = {"accuracy", "balanced_accuracy", "f1_macro", "log_loss", "roc_auc"}


# ---------------------------------------------------------------- helpers


class Run:
    """One finished `dlbench cv` run: the runner's result and the files it wrote."""

    def __init__(self, result: Result, out: Path):
        self.result, self.out = result, out

    @cached_property
    def scores(self) -> pd.DataFrame:
        return pd.read_csv(self.out / "scores.csv")

    @cached_property
    def curves(self) -> pd.DataFrame:
        return pd.read_csv(self.out / "curves.csv")

    @cached_property
    def splits(self) -> pd.DataFrame:
        return pd.read_csv(self.out / "splits.csv")

    @cached_property
    def summary(self) -> pd.DataFrame:
        return pd.read_csv(self.out / "summary.csv")

    @cached_property
    def manifest(self) -> dict:
        return json.loads((self.out / "manifest.json").read_text())

    @property
    def trained(self) -> pd.DataFrame:
        return self.scores[self.scores.model != cv_runner.CHANCE]

    @property
    def chance(self) -> pd.DataFrame:
        return self.scores[self.scores.model == cv_runner.CHANCE]

    def members(self) -> set[tuple[int, int, int]]:
        return set(self.trained[["repeat", "fold", "seed"]].itertuples(index=False, name=None))



def run_cv(out: Path, *args: str) -> Run:
    """`dlbench cv ARGS --out OUT`, which must succeed."""
    result = invoke("cv", *args, "--out", out)
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.stderr}\n{result.exception!r}"
    return Run(result, out)


def train_and_val(part: pd.DataFrame) -> tuple[set[int], set[int]]:
    return (set(part["sample"][part.role == "train"]), set(part["sample"][part.role == "val"]))


def check_partitions(splits: pd.DataFrame, dev: set[int]) -> None:
    """Per (repeat, fold): train/val disjoint, both non-empty, together the development rows;
    per repeat: every development row validates exactly once (k-fold)."""
    for (repeat, fold), part in splits.groupby(["repeat", "fold"]):
        train, val = train_and_val(part)
        assert train and val, (repeat, fold)
        assert not train & val, f"repeat {repeat} fold {fold}: a row both trains and validates"
        assert train | val == dev
    for repeat, part in splits[splits.role == "val"].groupby("repeat"):
        counts = part["sample"].value_counts()
        assert set(counts.index) == dev and (counts == 1).all(), f"repeat {repeat}"


# ---------------------------------------------------------------- 1. the main happy path

MAIN_ARGS = ["--dataset", "iris", "--epochs", "2", "--hidden", "8", "--k", "3", "--repeats", "2",
             "--seeds", "2", "--seed", "7", "--lr", "0.05"]


@pytest.fixture(scope="module")
def main_run(tmp_path_factory) -> Run:
    """iris, 3-fold × 2 repeats × 2 seeds = 12 members, run as a user would type it."""
    out = tmp_path_factory.mktemp("main") / "run"
    with pytest.MonkeyPatch.context() as mp:  # the manifest records the process's command line
        mp.setattr(sys, "argv", ["dlbench", "cv", *MAIN_ARGS, "--out", str(out)])
        return run_cv(out, *MAIN_ARGS)


def test_cv_writes_every_result_file_and_nothing_else(main_run):
    names = {p.name for p in main_run.out.iterdir()}
    assert names == RESULT_FILES  # no temp files left by the atomic writes


def test_cv_files_have_the_documented_columns(main_run):
    assert list(main_run.scores.columns) == SCORE_COLUMNS
    assert list(main_run.curves.columns) == CURVE_COLUMNS
    assert list(main_run.splits.columns) == SPLIT_COLUMNS


def test_members_are_folds_times_repeats_times_seeds(main_run):
    members = main_run.members()
    assert len(members) == 3 * 2 * 2 == main_run.manifest["members"]
    assert members == {(r, f, s) for r in range(2) for f in range(3) for s in range(2)}
    # every member is scored once on every split and metric
    counts = main_run.trained.groupby(["repeat", "fold", "seed", "split", "metric"]).size()
    assert (counts == 1).all() and len(counts) == 12 * 2 * len(CLASSIFICATION_METRICS)
    assert set(main_run.trained.split) == {"train", "val"}
    assert set(main_run.trained.metric) == CLASSIFICATION_METRICS
    assert set(main_run.trained.status) == {"ok"}
    assert main_run.trained.value.notna().all()
    scores = main_run.scores
    assert set(scores.dataset) == {"iris"} and set(scores.protocol) == {"kfold"}
    assert set(main_run.trained.optimizer) == {"adam"} and set(main_run.trained.lr) == {0.05}


def test_splits_partition_the_rows_and_repeats_reshuffle(main_run):
    splits = main_run.splits
    assert set(splits.role) == {"train", "val"}
    assert set(zip(splits.repeat, splits.fold, strict=True)) == {(r, f) for r in (0, 1)
                                                                 for f in (0, 1, 2)}
    check_partitions(splits, set(range(150)))
    val = splits[splits.role == "val"]
    fold_sets = [{frozenset(p["sample"]) for _, p in val[val.repeat == r].groupby("fold")}
                 for r in (0, 1)]
    assert fold_sets[0] != fold_sets[1], "repeat 1 did not reshuffle"


def test_chance_rows_cover_the_same_splits(main_run):
    chance, trained = main_run.chance, main_run.trained
    pairs = set(zip(trained.repeat, trained.fold, strict=True))
    assert set(zip(chance.repeat, chance.fold, strict=True)) == pairs
    assert set(chance.seed) == {cv_runner.NA} and set(chance.status) == {"ok"}
    assert chance.optimizer.isna().all() and chance.lr.isna().all()
    assert set(chance.metric) == CLASSIFICATION_METRICS
    val_acc = chance[(chance.split == "val") & (chance.metric == "accuracy")].value
    assert ((val_acc > 0.2) & (val_acc < 0.5)).all()  # iris: 3 balanced classes


def test_curves_have_one_row_per_member_epoch_split_metric(main_run):
    curves = main_run.curves
    assert set(curves.epoch) == {0, 1, 2}  # epoch 0: before any training
    assert set(curves.split) == {"train", "val"}
    assert set(curves.metric) == {"loss", "accuracy", "running_loss", "running_accuracy"}
    counts = curves.groupby(["repeat", "fold", "seed", "epoch", "split", "metric"]).size()
    # every split's loss and accuracy each epoch; the running figures on train from epoch 1
    assert (counts == 1).all() and len(counts) == 12 * (3 * 2 * 2 + 2 * 2)
    running = curves[curves.metric.str.startswith("running")]
    assert set(running.split) == {"train"} and set(running.epoch) == {1, 2}


def test_curves_count_the_cost_of_every_epoch(main_run):
    """Iris 3-fold: 100 training rows a member, batch 32: 4 gradient evaluations an epoch."""
    curves = main_run.curves
    for epoch, part in curves.groupby("epoch"):
        assert set(part.grad_evals) == {4 * epoch} and set(part.examples) == {100 * epoch}


def test_summary_matches_the_scores(main_run):
    summary = main_run.summary.set_index(["split", "metric"])
    assert {(s, m) for s in ("train", "val") for m in CLASSIFICATION_METRICS} == set(summary.index)
    val = main_run.trained[main_run.trained.split == "val"]
    for metric, rows in val.groupby("metric"):
        units = rows.groupby(["repeat", "fold"]).value.mean()  # seeds averaged within a split
        row = summary.loc[("val", metric)]
        assert row.n == 6
        assert math.isclose(row["mean"], units.mean(), rel_tol=1e-9)
        assert row.ci_low <= row["mean"] <= row.ci_high
        chance = main_run.chance
        expected = chance[(chance.split == "val") & (chance.metric == metric)].value.mean()
        assert math.isclose(row.chance, expected, rel_tol=1e-9)


def test_manifest_records_what_reproduces_the_run(main_run):
    m = main_run.manifest
    assert m["command"] == "cv"
    assert m["command_line"] == ["dlbench", "cv", *MAIN_ARGS, "--out", str(main_run.out)]
    assert m["seed"] == 7 and m["config"]["split"]["seed"] == 7
    assert m["config"]["seeds"] == 2 and m["config"]["split"]["k"] == 3
    assert m["versions"]["dlbench"] == __version__
    assert m["versions"]["torch"] == torch.__version__
    assert {"numpy", "pandas", "scikit-learn", "python"} <= set(m["versions"])
    assert m["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    data = m["dataset"]
    assert re.fullmatch(r"[0-9a-f]{16}", data["fingerprint"])
    assert data["fingerprint"] == load_dataset(DataSpec("iris")).fingerprint()
    assert (data["name"], data["samples"], data["features"], data["classes"]) == ("iris", 150, 4, 3)
    assert isinstance(m["seconds"], float) and m["seconds"] > 0
    dup = m["duplicates"]
    assert len(dup["per_split"]) == 6 and dup["train_val"] == sum(dup["per_split"])
    assert dup["train_val"] > 0 and dup["dev_test"] == 0  # iris has duplicate rows


def test_stdout_is_the_table_and_stderr_only_warnings_and_the_path(main_run):
    out, err = main_run.result.stdout, main_run.result.stderr
    assert "cv · iris · mlp · adam lr=0.05 · 3-fold × 2 repeats · 2 seeds" in out
    for metric in CLASSIFICATION_METRICS:
        assert metric in out
    assert "12 members" in out
    assert err.splitlines()[-1] == f"results: {main_run.out}"
    assert all(line.startswith(("warning: ", "results: ")) for line in err.splitlines())
    assert "duplicate a training row" in err and "--dedupe" in err


# ---------------------------------------------------------------- 2. the config the core receives


@pytest.fixture
def captured(monkeypatch) -> list:
    """Replaces the runner's prepare(): records the config, then stops the run (exit 2)."""
    return stop_after_config(monkeypatch, cv_runner)


CONFIG_CASES = [
    pytest.param([], cv_runner.CVConfig(), id="defaults-are-the-config-defaults"),
    pytest.param(
        ["--dataset", "wine", "--hidden", "16,8", "--activation", "tanh", "--opt", "sgd", "--lr",
         "0.1", "--k", "3", "--repeats", "2", "--seeds", "2", "--preprocess", "minmax"],
        cv_runner.CVConfig(
            data=DataSpec("wine"),
            model=ModelSpec("mlp", hidden=(16, 8), activation="tanh"),
            train=TrainConfig(OptimSpec("sgd", 0.1), preprocess="minmax"),
            split=SplitConfig(k=3, repeats=2),
            seeds=2),
        id="model-optimizer-split"),
    pytest.param(
        ["--data", "d.csv", "--target", "y", "--group", "g", "--time", "t", "--dedupe",
         "--model", "cnn1d", "--channels", "4,8", "--batchnorm", "--dropout", "0.2", "--init",
         "he", "--opt", "adamw", "--lr", "3e-4", "--weight-decay", "0.01", "--epochs", "7",
         "--batch-size", "16", "--schedule", "cosine", "--warmup", "5", "--protocol",
         "holdout", "--val-fraction", "0.3",
         "--holdout-seeds", "4", "--no-stratify", "--test-fraction", "0.2", "--metrics",
         "accuracy, log_loss", "--seed", "11", "--device", "cpu"],
        cv_runner.CVConfig(
            data=DataSpec(None, "d.csv", "y", "g", "t", True),
            model=ModelSpec("cnn1d", (128,), (4, 8), "relu", True, 0.2, "he"),
            train=TrainConfig(OptimSpec("adamw", 3e-4, (("weight_decay", 0.01),)), 7, 16,
                              "standardize", "cosine", 5, "cpu"),
            split=SplitConfig("holdout", 4, 1, 0.3, 4, False, False, 11),
            seeds=1, test_fraction=0.2, metrics=("accuracy", "log_loss")),
        id="every-option"),
    pytest.param(["--dataset", "series", "--time-order", "--k", "5"],
                 cv_runner.CVConfig(data=DataSpec("series"),
                                    split=SplitConfig(k=5, time_order=True)),
                 id="time-order"),
]


@pytest.mark.parametrize(("args", "expected"), CONFIG_CASES)
def test_options_build_exactly_this_config(captured, tmp_path, args, expected):
    out = tmp_path / "out"
    result = invoke("cv", *args, "--out", out)
    assert "stopped by the test" in assert_usage_error(result, out)
    assert captured == [expected]


def test_manifest_config_is_the_config_built(tmp_path):
    run = run_cv(tmp_path / "out", "--dataset", "xor", "--hidden", "6,4", "--activation", "tanh",
                 "--opt", "sgd", "--lr", "0.5", "--epochs", "2", "--k", "2", "--seed", "3",
                 "--preprocess", "minmax", "--metrics", "accuracy")
    expected = cv_runner.CVConfig(
        data=DataSpec("xor"), model=ModelSpec("mlp", hidden=(6, 4), activation="tanh"),
        train=TrainConfig(OptimSpec("sgd", 0.5), epochs=2, preprocess="minmax"),
        split=SplitConfig(k=2, seed=3), metrics=("accuracy",))
    assert run.manifest["config"] == json.loads(json.dumps(asdict(expected)))
    assert set(run.scores.metric) == {"accuracy"}


# ---------------------------------------------------------------- 3. protocols


def test_holdout_repeats_the_split_over_shuffle_seeds(tmp_path):
    run = run_cv(tmp_path / "out", "--dataset", "iris", *FAST, "--protocol", "holdout",
                 "--holdout-seeds", "3", "--val-fraction", "0.2")
    splits, y = run.splits, load_dataset(DataSpec("iris")).y
    assert set(splits.repeat) == {0, 1, 2} and set(splits.fold) == {0}
    assert run.members() == {(r, 0, 0) for r in range(3)} and run.manifest["members"] == 3
    assert set(run.scores.protocol) == {"holdout"}
    vals = []
    for _, part in splits.groupby("repeat"):
        train, val = train_and_val(part)
        assert len(val) == 30 and len(train) == 120 and not train & val  # 0.2 × 150
        assert np.bincount(y[sorted(val)]).tolist() == [10, 10, 10]  # stratified
        vals.append(frozenset(val))
    assert len(set(vals)) == 3, "the shuffle seeds gave identical validation sets"
    assert "hold-out 0.2 × 3 shuffles · 1 seed" in run.result.stdout


def test_test_fraction_sets_rows_aside_and_refits_on_them(tmp_path):
    run = run_cv(tmp_path / "out", "--dataset", "iris", *FAST, "--k", "3", "--seeds", "2",
                 "--test-fraction", "0.25")
    splits = run.splits
    assert set(splits.role) == {"train", "val", "test"}
    tests = {frozenset(p["sample"][p.role == "test"]) for _, p in splits.groupby(["repeat",
                                                                                  "fold"])}
    assert len(tests) == 1, "the test rows changed between folds"
    test = set(next(iter(tests)))
    assert len(test) == math.ceil(0.25 * 150)
    assert not test & set(splits["sample"][splits.role != "test"])  # never train or validate
    check_partitions(splits[splits.role != "test"], set(range(150)) - test)
    refit = run.trained[(run.trained.repeat == -1) & (run.trained.fold == -1)]
    assert set(refit.seed) == {0, 1} and set(refit.split) == {"train", "test"}
    assert set(run.trained.split[run.trained.repeat >= 0]) == {"train", "val"}
    assert len(run.members()) == 3 * 2 + 2 == run.manifest["members"]
    chance_test = run.chance[run.chance.split == "test"]
    assert set(zip(chance_test.repeat, chance_test.fold, strict=True)) == {(-1, -1)}
    assert "test" in set(run.summary.split) and "test" in run.result.stdout


def test_mnist1d_uses_its_fixed_test_split(tmp_path):
    run = run_cv(tmp_path / "out", "--dataset", "mnist1d", *FAST, "--k", "2",
                 "--batch-size", "500")  # few steps: 2000 training rows a member
    test = set(run.splits["sample"][run.splits.role == "test"])
    assert test == set(range(4000, 5000))
    check_partitions(run.splits[run.splits.role != "test"], set(range(4000)))
    refit = run.trained[run.trained.split == "test"]
    assert set(zip(refit.repeat, refit.fold, refit.seed, strict=True)) == {(-1, -1, 0)}
    assert run.manifest["members"] == 2 + 1


def test_time_order_validates_only_on_the_future(tmp_path):
    run = run_cv(tmp_path / "out", "--dataset", "series", *FAST, "--k", "3", "--time-order")
    splits = run.splits
    assert set(splits.repeat) == {0} and set(splits.fold) == {0, 1, 2}
    last_val = -1
    for fold, part in splits.groupby("fold"):
        train, val = train_and_val(part)
        assert max(train) < min(val), f"fold {fold} validates on the past"
        assert train == set(range(min(val))), "forward chaining trains on everything before"
        assert min(val) > last_val  # folds march forward in time
        last_val = max(val)


def test_time_order_cannot_be_repeated(tmp_path):
    out = tmp_path / "out"
    result = invoke("cv", "--dataset", "series", *FAST, "--time-order", "--repeats", "2",
                    "--out", out)
    assert "--repeats 1" in assert_usage_error(result, out)


@pytest.fixture
def grouped_csv(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    n = 60
    frame = pd.DataFrame({"f1": rng.normal(size=n), "f2": rng.normal(size=n),
                          "patient": rng.permutation(np.repeat(np.arange(12), 5)),
                          "y": rng.integers(0, 2, n)})
    path = tmp_path / "grouped.csv"
    frame.to_csv(path, index=False)
    return path


def test_group_kfold_keeps_each_group_on_one_side(tmp_path, grouped_csv):
    run = run_cv(tmp_path / "out", "--data", grouped_csv, "--target", "y", "--group", "patient",
                 *FAST, "--k", "3")
    groups = pd.read_csv(grouped_csv).patient.to_numpy()
    check_partitions(run.splits, set(range(60)))
    for (repeat, fold), part in run.splits.groupby(["repeat", "fold"]):
        train, val = train_and_val(part)
        shared = set(groups[sorted(train)]) & set(groups[sorted(val)])
        assert not shared, f"repeat {repeat} fold {fold}: groups {shared} on both sides"
    assert run.manifest["dataset"]["features"] == 2  # the group column is no feature


@pytest.fixture
def duplicated_csv(tmp_path) -> Path:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 3))
    frame = pd.DataFrame(X, columns=["a", "b", "c"]).assign(y=(X[:, 0] > 0).astype(int))
    path = tmp_path / "duplicated.csv"
    pd.concat([frame, frame], ignore_index=True).to_csv(path, index=False)  # every row twice
    return path


def test_duplicates_are_warned_about_and_dedupe_drops_them(tmp_path, duplicated_csv):
    run = run_cv(tmp_path / "dup", "--data", duplicated_csv, "--target", "y", *FAST, "--k", "2")
    warning = [line for line in run.result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "--dedupe" in warning[0]
    count = run.manifest["duplicates"]["train_val"]
    assert count > 0 and f" {count} times over 2 splits" in warning[0]
    assert run.manifest["dataset"]["samples"] == 80

    deduped = run_cv(tmp_path / "dedupe", "--data", duplicated_csv, "--target", "y", *FAST,
                     "--k", "2", "--dedupe")
    assert "warning" not in deduped.result.stderr
    assert deduped.manifest["duplicates"]["train_val"] == 0
    assert deduped.manifest["dataset"]["samples"] == 40
    assert set(deduped.splits["sample"]) == set(range(40))


def test_regression_scores_mse_mae_r2(tmp_path):
    run = run_cv(tmp_path / "out", "--dataset", "diabetes", *FAST, "--k", "2")
    assert set(run.trained.metric) == {"mse", "mae", "r2"} == set(run.chance.metric)
    assert run.trained.value.notna().all()
    chance_r2 = run.chance[(run.chance.metric == "r2") & (run.chance.split == "train")].value
    assert np.allclose(chance_r2, 0.0, atol=1e-12)  # the mean predictor on its own rows
    assert (run.trained[run.trained.metric.isin(["mse", "mae"])].value >= 0).all()
    assert run.manifest["dataset"]["task"] == "regression"
    for metric in ("mse", "mae", "r2"):
        assert metric in run.result.stdout


# ---------------------------------------------------------------- 4. JSON output


def test_format_json_puts_only_json_on_stdout(tmp_path):
    out = tmp_path / "out"
    result = invoke("cv", "--dataset", "iris", *FAST, "--k", "2", "--format", "json",
                    "--out", out)
    assert result.exit_code == 0, result.stderr

    def no_nan(constant):
        raise AssertionError(f"{constant} is not JSON")

    payload = json.loads(result.stdout, parse_constant=no_nan)  # the whole of stdout
    assert set(payload) == {"summary", "run"}
    rows = pd.DataFrame(payload["summary"])
    assert set(rows.split) == {"train", "val"} and set(rows.metric) == CLASSIFICATION_METRICS
    assert payload["run"]["members"] == 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert payload["run"]["dataset"] == manifest["dataset"]
    assert "results:" in result.stderr and "results:" not in result.stdout


# ---------------------------------------------------------------- 5. reproducibility

REPRO_ARGS = ["--dataset", "wine", "--epochs", "2", "--hidden", "8", "--k", "3", "--seeds", "2",
              "--dropout", "0.2"]


def test_same_command_and_seed_give_identical_files(tmp_path):
    first = run_cv(tmp_path / "a", *REPRO_ARGS, "--seed", "5")
    second = run_cv(tmp_path / "b", *REPRO_ARGS, "--seed", "5")
    for name in ("scores.csv", "curves.csv", "splits.csv", "summary.csv"):
        assert (first.out / name).read_bytes() == (second.out / name).read_bytes(), name
    timing = {"seconds", "time", "elapsed", "wall"}
    assert not timing & (set(first.scores.columns) | set(first.curves.columns))


def test_another_seed_gives_other_splits_and_scores(tmp_path):
    first = run_cv(tmp_path / "a", *REPRO_ARGS, "--seed", "5")
    other = run_cv(tmp_path / "b", *REPRO_ARGS, "--seed", "6")
    assert not first.splits.equals(other.splits)
    assert not np.allclose(first.trained.value.to_numpy(), other.trained.value.to_numpy())


# ---------------------------------------------------------------- 6. bad input


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Small bad (and one good) data files for the error cases."""
    d = tmp_path_factory.mktemp("files")
    (d / "ok.csv").write_text("a,b,y\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n")
    (d / "empty.csv").write_text("")
    (d / "header_only.csv").write_text("a,b,y\n")
    (d / "malformed.csv").write_text('a,b,y\n1,2,0\n3,4,1,5,6\n"unterminated\n')
    (d / "text.csv").write_text("a,b,y\nx,2,0\nz,4,1\n")
    (d / "missing.csv").write_text("a,b,y\n,2,0\n3,4,1\n")
    np.savez(d / "no_xy.npz", A=np.zeros((4, 2)), B=np.zeros(4))
    (d / "no_idx").mkdir()
    (d / "no_idx" / "readme.txt").write_text("no IDX files here")
    return d


IRIS = ["--dataset", "iris"]
# (id, arguments after `cv` and FAST, fragment the message must contain)
BAD_INPUT = [
    ("unknown-dataset", ["--dataset", "nope"], "unknown dataset 'nope'"),
    ("unknown-model", [*IRIS, "--model", "nope"], "unknown model 'nope'"),
    ("unknown-optimizer", [*IRIS, "--opt", "nope"], "unknown optimizer 'nope'"),
    ("unknown-metric", [*IRIS, "--metrics", "accuracy,nope"], "'nope'"),
    ("metric-of-other-task", ["--dataset", "diabetes", "--metrics", "accuracy"], "regression"),
    ("unknown-activation", [*IRIS, "--activation", "nope"], "unknown activation 'nope'"),
    ("unknown-protocol", [*IRIS, "--protocol", "nope"], "unknown protocol 'nope'"),
    ("unknown-device", [*IRIS, "--device", "tpu"], "unknown device 'tpu'"),
    ("unknown-preprocess", [*IRIS, "--preprocess", "nope"], "'nope'"),
    ("unknown-init", [*IRIS, "--init", "nope"], "unknown init 'nope'"),
    ("unknown-format", [*IRIS, "--format", "xml"], "unknown format 'xml'"),
    ("unknown-class-subset", ["--dataset", "iris[0,7]"], "unknown class '7'"),
    ("k-below-2", [*IRIS, "--k", "1"], "--k"),
    ("k-above-rows", ["--dataset", "xor", "--k", "5"], "--k 5"),
    ("k-above-smallest-class", ["--dataset", "xor", "--k", "3"], "smallest class"),
    ("k-not-an-integer", [*IRIS, "--k", "abc"], "--k"),
    ("lr-zero", [*IRIS, "--lr", "0"], "--lr"),
    ("lr-negative", [*IRIS, "--lr", "-0.1"], "--lr"),
    ("epochs-zero", [*IRIS, "--epochs", "0"], "--epochs"),
    ("batch-size-zero", [*IRIS, "--batch-size", "0"], "--batch-size"),
    ("seeds-zero", [*IRIS, "--seeds", "0"], "--seeds"),
    ("repeats-zero", [*IRIS, "--repeats", "0"], "--repeats"),
    ("holdout-seeds-zero", [*IRIS, "--protocol", "holdout", "--holdout-seeds", "0"],
     "--holdout-seeds"),
    ("seed-negative", [*IRIS, "--seed", "-1"], "--seed"),
    ("hidden-zero", [*IRIS, "--hidden", "0"], "--hidden"),
    ("hidden-not-integers", [*IRIS, "--hidden", "abc"], "--hidden"),
    ("hidden-empty-item", [*IRIS, "--hidden", "8,,8"], "--hidden"),
    ("channels-zero", [*IRIS, "--channels", "0"], "--channels"),
    ("dropout-one", [*IRIS, "--dropout", "1"], "--dropout"),
    ("weight-decay-negative", [*IRIS, "--weight-decay", "-1"], "--weight-decay"),
    ("val-fraction-zero", [*IRIS, "--protocol", "holdout", "--val-fraction", "0"],
     "--val-fraction"),
    ("val-fraction-one", [*IRIS, "--protocol", "holdout", "--val-fraction", "1"],
     "--val-fraction"),
    ("val-fraction-above-one", [*IRIS, "--val-fraction", "1.5"], "--val-fraction"),
    ("test-fraction-zero", [*IRIS, "--test-fraction", "0"], "--test-fraction"),
    ("test-fraction-one", [*IRIS, "--test-fraction", "1"], "--test-fraction"),
    ("test-fraction-negative", [*IRIS, "--test-fraction", "-0.2"], "--test-fraction"),
    ("test-fraction-on-fixed-test", ["--dataset", "mnist1d", "--test-fraction", "0.2"],
     "fixed test split"),
    ("data-missing-file", ["--data", "{files}/nope.csv", "--target", "y"], "does not exist"),
    ("csv-empty", ["--data", "{files}/empty.csv", "--target", "y"], "empty"),
    ("csv-header-only", ["--data", "{files}/header_only.csv", "--target", "y"], "no data rows"),
    ("csv-malformed", ["--data", "{files}/malformed.csv", "--target", "y"], "cannot read"),
    ("csv-without-target", ["--data", "{files}/ok.csv"], "--target"),
    ("csv-unknown-target", ["--data", "{files}/ok.csv", "--target", "zz"], "'zz'"),
    ("csv-unknown-group", ["--data", "{files}/ok.csv", "--target", "y", "--group", "zz"],
     "'zz'"),
    ("csv-text-feature", ["--data", "{files}/text.csv", "--target", "y"], "non-numeric"),
    ("csv-missing-values", ["--data", "{files}/missing.csv", "--target", "y"],
     "missing values in feature column(s) of missing.csv: a; pass --missing zero, mean or "
     "median"),
    ("target-without-csv", [*IRIS, "--target", "y"], "--target"),
    ("npz-without-X-y", ["--data", "{files}/no_xy.npz"], "'X' and 'y'"),
    ("directory-without-idx", ["--data", "{files}/no_idx"], "train-images-idx3-ubyte"),
    ("time-order-repeats", ["--dataset", "series", "--time-order", "--repeats", "2"],
     "--repeats 1"),
    ("time-order-group", ["--data", "{files}/ok.csv", "--target", "y", "--group", "b",
                          "--time-order"], "group"),
    ("cnn2d-on-tabular", ["--dataset", "wine", "--model", "cnn2d"], "cnn2d"),
    ("perceptron-on-regression", ["--dataset", "diabetes", "--model", "perceptron"],
     "perceptron"),
    ("unknown-option", [*IRIS, "--bogus"], "--bogus"),
    # options that do not apply are refused, never silently ignored
    ("k-with-holdout", [*IRIS, "--protocol", "holdout", "--k", "7"],
     "--k applies to --protocol kfold"),
    ("repeats-with-holdout", [*IRIS, "--protocol", "holdout", "--repeats", "2"],
     "--repeats applies to --protocol kfold"),
    ("holdout-seeds-with-kfold", [*IRIS, "--holdout-seeds", "5"],
     "--holdout-seeds applies to --protocol holdout"),
    ("data-and-dataset", ["--data", "{files}/ok.csv", "--target", "y", "--dataset", "wine"],
     "--data and --dataset"),
    ("hidden-on-linear", [*IRIS, "--model", "linear"], "--hidden does not apply to model linear"),
    ("stratify-with-time-order", ["--dataset", "series", "--time-order", "--stratify"],
     "--stratify does not apply to --time-order"),
    ("lr-an-entry-sets", [*IRIS, "--opt", "adam[lr=0.1]", "--lr", "0.01"], "--lr fills"),
    ("repeated-grammar-key", [*IRIS, "--opt", "adam[lr=1e-3,lr=2e-3]"], "given twice"),
    ("empty-metric-item", [*IRIS, "--metrics", "accuracy,,f1_macro"], "empty item"),
    ("nan-dropout", [*IRIS, "--dropout", "nan"], "--dropout must be a finite number"),
    ("inf-weight-decay", [*IRIS, "--weight-decay", "inf"], "finite"),
    ("inf-lr", [*IRIS, "--lr", "inf"], "finite"),
    ("too-large", ["--dataset", "digits", "--seeds", "100000"], "--allow-large"),
    ("model-too-large", [*IRIS, "--hidden", "99999999"], "--allow-large"),
]


@pytest.mark.parametrize(("args", "fragment"),
                         [pytest.param(a, f, id=i) for i, a, f in BAD_INPUT])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(files, tmp_path, args, fragment):
    out = tmp_path / "out"
    args = [a.format(files=files) for a in args]
    message = assert_usage_error(invoke("cv", *FAST, *args, "--out", out), out)
    assert fragment in message


@pytest.mark.parametrize(("option", "registry"), [
    ("--dataset", DATASETS.names()), ("--model", MODELS.names()),
    ("--opt", OPTIMIZERS.names()),
    ("--metrics", [m.name for m in METRICS if "classification" in m.tasks])])
def test_unknown_names_list_the_valid_ones(tmp_path, option, registry):
    out = tmp_path / "out"
    base = [] if option == "--dataset" else IRIS
    message = assert_usage_error(invoke("cv", *FAST, *base, option, "nope", "--out", out), out)
    listed = [name for name in registry if re.search(rf"\b{re.escape(name)}\b", message)]
    assert len(listed) >= 2 and len(listed) == len(registry), message


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_device_cuda_without_cuda_is_a_usage_error(tmp_path):
    out = tmp_path / "out"
    message = assert_usage_error(invoke("cv", *FAST, *IRIS, "--device", "cuda", "--out", out), out)
    assert "cuda" in message and "--device" in message


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("command", [
    ["cv", *FAST, *IRIS],
    ["optimize", "--dataset", "digits", "--epochs", "2", "--opt", "sgd,adam,lbfgs"],
    ["overfit", "--dataset", "digits", "--epochs", "3", "--width", "16",
     "--reg", "none,dropout,early-stop,snapshot"],
    ["transfer", "--source", "digits[0-4]", "--target", "digits[5-9]", "--model", "mlp",
     "--source-epochs", "2", "--epochs", "2", "--target-size", "50"],
], ids=["cv", "optimize", "overfit", "transfer"])
def test_every_command_runs_on_cuda_and_agrees_with_the_cpu(command, tmp_path):
    """The stacked trainer end to end on a GPU: the same accuracies as on the CPU, to the
    float tolerance of different kernels."""
    runs = {}
    for device in ("cuda", "cpu"):
        result = invoke(*command, "--device", device, "--out", tmp_path / device)
        assert result.exit_code == 0, result.output
        runs[device] = pd.read_csv(tmp_path / device / "scores.csv")
    assert json.loads((tmp_path / "cuda" / "manifest.json").read_text())["device"] == "cuda"
    accuracy = [r[r.metric == "accuracy"]["value"].to_numpy() for r in runs.values()]
    assert np.allclose(*accuracy, atol=0.05, equal_nan=True)


def test_out_inside_a_file_fails_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    out = blocker / "run"
    message = assert_usage_error(invoke("cv", *FAST, *IRIS, "--out", out), out)
    assert str(blocker) in message
    assert blocker.read_text() == "keep me"


def test_out_that_is_a_file_is_left_alone(tmp_path):
    out = tmp_path / "file"
    out.write_text("keep me")
    result = invoke("cv", *FAST, *IRIS, "--out", out)
    assert result.exit_code == 2 and result.stderr.startswith("error: ")
    assert len(result.stderr.splitlines()) == 1 and out.read_text() == "keep me"


@pytest.mark.parametrize("out", ["/proc/dlbench-test/run", "/tmp/" + "x" * 300 + "/run"],
                         ids=["proc", "name-too-long"])
def test_an_out_that_cannot_be_created_fails_before_training(out, monkeypatch):
    trained = []
    monkeypatch.setattr(execution, "run_task", lambda *a, **k: trained.append(1))
    result = invoke("cv", *FAST, *IRIS, "--out", out)
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("error: cannot") and "Traceback" not in result.output
    assert trained == [], "training started before --out was checked"


def test_a_run_that_fails_midway_leaves_no_directory(tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(execution, "run_task", crash)
    out = tmp_path / "new" / "run"
    result = invoke("cv", *FAST, *IRIS, "--out", out)
    assert result.exit_code != 0
    assert not (tmp_path / "new").exists(), "the directories a failed run made must go again"


def test_default_out_dir_is_made_only_by_a_finished_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    failed = invoke("cv", *FAST, "--dataset", "nope")
    assert failed.exit_code == 2 and not (tmp_path / "results").exists()
    done = invoke("cv", *FAST, "--dataset", "xor", "--k", "2")
    assert done.exit_code == 0, done.stderr
    (run_dir,) = (tmp_path / "results").iterdir()
    assert re.fullmatch(r"cv-\d{8}-\d{6}", run_dir.name)
    assert {p.name for p in run_dir.iterdir()} == RESULT_FILES
    assert done.stderr.splitlines()[-1] == f"results: {Path('results') / run_dir.name}"


# ---------------------------------------------------------------- 7, 8. listings, version, help


def test_datasets_lists_every_registered_dataset():
    result = invoke("datasets")
    assert result.exit_code == 0 and result.stderr == ""
    for info in DATASETS:
        assert re.search(rf"\b{re.escape(info.name)}\b", result.stdout), info.name
    [line] = [line for line in result.stdout.splitlines() if line.startswith("mnist1d ")]
    assert "10 classes" in line and "fixed" in line  # its fixed test split
    [line] = [line for line in result.stdout.splitlines() if line.startswith("diabetes ")]
    assert "regression" in line and "0 classes" not in line


def test_models_lists_every_registered_model():
    result = invoke("models")
    assert result.exit_code == 0 and result.stderr == ""
    for info in MODELS:
        assert re.search(rf"\b{re.escape(info.name)}\b", result.stdout), info.name
        for option in info.options.split():
            assert option in result.stdout, (info.name, option)


def test_models_listing_shows_descriptions_verbatim():
    lines = invoke("models").stdout.splitlines()
    start = lines[1].index("description")  # the column, read down, wrapped lines joined
    column = " ".join(" ".join(line[start:] for line in lines[3:]).split())
    for info in MODELS:
        assert info.description in column, info.description


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout == f"dlbench {__version__}\n"


def test_help_and_bare_command_exit_0_and_list_the_commands():
    for args in (["--help"], []):
        result = invoke(*args)
        assert result.exit_code == 0, args
        for command in ("cv", "datasets", "models"):
            assert re.search(rf"^\s+{command}\s", result.stdout, re.MULTILINE), (args, command)


def test_cv_help_lists_the_options():
    result = invoke("cv", "--help")
    assert result.exit_code == 0
    for option in ("--dataset", "--opt", "--k", "--test-fraction", "--time-order", "--out",
                   "--format"):
        assert option in result.stdout


def test_help_does_not_import_torch():
    code = ("import sys; from typer.testing import CliRunner; from dlbench.cli.app import app; "
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0; "
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "False"


def test_python_dash_m_dlbench_version(tmp_path):
    done = subprocess.run([sys.executable, "-m", "dlbench", "--version"], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"dlbench {__version__}\n"


def test_the_program_exits_with_its_output_flushed_and_its_code(tmp_path):
    """main() skips the interpreter's teardown: the JSON on stdout must still arrive whole
    through a pipe, and the exit codes stay those of the command."""
    run = [sys.executable, "-m", "dlbench", "cv", *FAST, *IRIS, "--format", "json"]
    done = subprocess.run([*run, "--out", tmp_path / "a"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["summary"]
    bad = subprocess.run([*run, "--k", "1"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")


def test_a_run_never_imports_torch_dynamo(tmp_path):
    """torch.optim's wrappers import torch._dynamo (a second of start-up) only to mark code as
    not compilable; dlbench steps without them. The optimizers, a schedule and a closure
    optimizer all run here."""
    code = ("import atexit, sys; atexit.register(lambda: print('torch._dynamo' in sys.modules)); "
            "from dlbench.cli.app import main; sys.argv[1:] = ['optimize', '--dataset', 'iris', "
            "'--hidden', '4', '--epochs', '2', '--seeds', '1', '--opt', 'sgd,adam,lbfgs,newton',"
            f" '--schedule', 'cosine', '--out', {str(tmp_path / 'out')!r}]; main()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"


# ---------------------------------------------------------------- 9. divergence is a result


def test_divergence_is_recorded_not_a_crash(tmp_path):
    run = run_cv(tmp_path / "out", "--dataset", "badly-scaled", *FAST, "--k", "2", "--opt", "sgd",
                 "--lr", "1e6", "--preprocess", "none")
    trained = run.trained
    assert set(trained.status) == {"diverged"}
    assert trained.value.isna().all(), "a diverged member's scores must be NaN, not argmax(NaN)"
    assert set(run.chance.status) == {"ok"} and run.chance.value.notna().all()
    assert run.manifest["statuses"] == {"diverged": 2} and run.manifest["members"] == 2
    trained_curves = run.curves[run.curves.epoch > 0]
    assert set(run.curves.status) == {"diverged"} and trained_curves.value.isna().all()
    assert run.curves[run.curves.epoch == 0].value.notna().all()  # the start was measured
    assert re.search(r"2 of 2 members\s+diverged", run.result.stdout)


# ---------------------------------------------------------------- 10. what intervals cover


@pytest.fixture(scope="module")
def one_split(tmp_path_factory) -> Run:
    """The issue's case: one hold-out split, 10 seeds, 114 test rows."""
    return run_cv(tmp_path_factory.mktemp("one") / "out", "--dataset", "breast-cancer",
                  "--protocol", "holdout", "--seeds", "10", "--test-fraction", "0.2",
                  "--epochs", "3", "--hidden", "8", "--lr", "0.01")


def test_one_split_intervals_cover_the_evaluation_rows_not_only_the_seeds(one_split):
    summary = one_split.summary.set_index(["split", "metric"])
    rows = {"val": 114, "test": 114}  # 0.25 of 455 development rows; 0.2 of 569
    for split, n in rows.items():
        row = summary.loc[(split, "accuracy")]
        half = (row.ci_high - row.ci_low) / 2
        sampling = 1.96 * math.sqrt(row["mean"] * (1 - row["mean"]) / n)  # the rows alone
        assert half > 0.7 * sampling, (split, half, sampling)
        assert row.unit == "seeds" and row.n == 10
        assert "seeds" in row.interval and "evaluation rows" in row.interval
        seeds = one_split.trained[(one_split.trained.split == split)
                                  & (one_split.trained.metric == "accuracy")].value
        assert (row["min"], row["max"]) == (seeds.min(), seeds.max())  # the seeds' range
    assert "over the 10 seeds on the one split" in one_split.result.stdout


def test_train_rows_are_resubstitution_without_interval_or_test(one_split):
    train = one_split.summary[one_split.summary.split == "train"]
    assert train.ci_low.isna().all() and train.p_value.isna().all()
    assert train.beats_chance.isna().all() and set(train.interval.str[:4]) == {"none"}


def test_beats_chance_is_a_named_one_sided_test(main_run):
    summary = main_run.summary.set_index(["split", "metric"])
    val = main_run.trained[main_run.trained.split == "val"]
    chance = main_run.chance[main_run.chance.split == "val"]
    for metric, better in (("accuracy", "higher"), ("log_loss", "lower")):
        row = summary.loc[("val", metric)]
        assert row.p_test.startswith(f"one-sided, H1: model {better} than chance")
        ours = val[val.metric == metric].groupby(["repeat", "fold"]).value.mean()
        base = chance[chance.metric == metric].set_index(["repeat", "fold"]).value
        diffs = (ours - base.reindex(ours.index)).to_numpy()
        from dlbench.evaluate.stats import paired_p_value
        expected = paired_p_value(diffs, n_train=100, n_test=50,
                                  alternative="greater" if better == "higher" else "less")
        assert row.p_value == pytest.approx(expected)


def test_forward_chaining_folds_get_no_nadeau_bengio_and_show_the_last_fold(tmp_path):
    run = run_cv(tmp_path / "out", "--dataset", "series", "--time-order", "--k", "4",
                 "--epochs", "3", "--hidden", "8")
    val = run.summary[run.summary.split == "val"].set_index("metric")
    assert set(val.unit) == {"folds"}
    assert val.interval.str.startswith("heuristic").all() and not val.interval.str.contains(
        "Nadeau").any()
    mse = run.trained[(run.trained.split == "val") & (run.trained.metric == "mse")]
    assert val.loc["mse", "last"] == pytest.approx(mse[mse.fold == 3].value.mean())
    out = run.result.stdout
    assert "4 forward-chaining folds" in out and "last fold" in out
    assert "per fold (trained on 200, 400, 600, 800 rows)" in out
    assert "not exchangeable" in out


def test_a_time_ordered_hold_out_interval_is_labelled_heuristic(tmp_path):
    run = run_cv(tmp_path / "out", "--dataset", "series", "--time-order", "--protocol",
                 "holdout", "--seeds", "3", "--test-fraction", "0.2", *FAST)
    shown = run.summary[run.summary.split != "train"]
    assert shown.interval.str.startswith("heuristic").all()  # autocorrelated rows


def test_titles_say_what_ran(tmp_path, grouped_csv):
    run = run_cv(tmp_path / "g", "--data", grouped_csv, "--target", "y", "--group", "patient",
                 "--k", "2", *FAST)
    title = " ".join(run.result.stdout.split("metric")[0].split())  # the title may wrap
    assert title.endswith("2-fold, grouped by patient · 1 seed") and "repeat" not in title


def test_manifest_names_no_builtin_dataset_for_user_data(tmp_path, grouped_csv):
    run = run_cv(tmp_path / "g", "--data", grouped_csv, "--target", "y", "--k", "2", *FAST)
    assert run.manifest["config"]["data"]["name"] is None
    assert run.manifest["config"]["data"]["path"] == str(grouped_csv)
    assert run.manifest["dataset"]["name"] == grouped_csv.name


def test_the_refit_is_no_unit_of_the_train_estimate(tmp_path):
    run = run_cv(tmp_path / "out", "--dataset", "iris", "--protocol", "holdout",
                 "--holdout-seeds", "3", "--test-fraction", "0.2", *FAST)
    summary = run.summary.set_index(["split", "metric"])
    assert summary.loc[("train", "accuracy"), "n"] == 3
    assert summary.loc[("test", "accuracy"), "n"] == 1
