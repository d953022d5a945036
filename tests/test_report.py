"""What users read fits 80 columns without losing a value, and says what its numbers mean."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest
from typer.testing import CliRunner

from dlbench.cli.app import app
from dlbench.evaluate.verdicts import STATUSES
from dlbench.output import report

NARROW = CliRunner(env={"COLUMNS": "80"})


def run80(*args, tmp_path=None) -> str:
    extra = ["--out", str(tmp_path / "out")] if tmp_path is not None else []
    result = NARROW.invoke(app, [*map(str, args), *extra])
    assert result.exit_code == 0, result.stderr
    return result.stdout


def table_lines(stdout: str) -> list[str]:
    """The table: the lines before the first note (notes are free text that may wrap)."""
    lines = stdout.splitlines()
    rule = next(i for i, line in enumerate(lines) if set(line.strip()) == {"─"})
    end = next((i for i, line in enumerate(lines[rule:], rule)
                if re.match(r"[a-z±≈*]", line) and i > rule + 1
                and line.strip() not in ("val", "test")), len(lines))  # cv: split sections
    return lines[:end]


def assert_fits(stdout: str) -> None:
    for line in stdout.splitlines():  # the table, and the notes wrapped at words
        assert len(line.rstrip()) <= 80, line


@pytest.fixture(scope="module")
def long_labels(tmp_path_factory) -> tuple[str, pd.DataFrame]:
    out = tmp_path_factory.mktemp("wide") / "out"
    result = NARROW.invoke(app, ["optimize", "--dataset", "digits", "--init", "std1,xavier",
                                 "--activation", "sigmoid,tanh", "--batchnorm", "on,off",
                                 "--opt", "sgd[lr=0.1],adam[lr=1],sgd[lr=50]", "--epochs", "2",
                                 "--seeds", "2", "--hidden", "16,16",
                                 "--target-accuracy", "0.5", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    return result.stdout, pd.read_csv(out / "summary.csv")


def ranked_rows(stdout: str, summary: pd.DataFrame):
    """(summary row, its first table line), in the table's order (the summary's)."""
    lines = [line for line in table_lines(stdout) if re.match(r"\s*\d+[≈?!]?\s", line)]
    assert len(lines) == len(summary)
    return zip(summary.itertuples(), lines, strict=True)


def test_the_optimize_table_fits_and_keeps_every_value(long_labels):
    stdout, summary = long_labels
    assert_fits(stdout)
    text = " ".join(stdout.split())
    for r, row in ranked_rows(stdout, summary):
        assert r.status in STATUSES
        assert re.match(rf"\s*{r.rank}[≈?!]?\s", row)
        assert re.search(rf"\b{r.status}~?\s*$", row), row  # the word whole, never "stalle"
        for value in (report.number(r.val_mean), report.number(r.test_mean)):
            assert value in row
    assert "to 0.5" in stdout  # the header whole, never "to 0."
    assert len(set(summary.status)) >= 2, "the grid should show more than one status"
    assert "seeds differ" in text or not summary.statuses.str.contains(",").any()


def test_the_table_and_the_csv_give_seconds_in_one_unit(long_labels):
    stdout, summary = long_labels
    assert "s/model" in stdout and "seconds_per_model" in summary.columns
    for r, row in ranked_rows(stdout, summary):
        assert report._seconds(r.seconds_per_model) in row


@pytest.mark.parametrize("args", [
    ["cv", "--dataset", "iris", "--epochs", "2", "--hidden", "8", "--k", "3"],
    ["cv", "--dataset", "series", "--epochs", "2", "--hidden", "8", "--k", "3", "--time-order"],
    ["cv", "--dataset", "breast-cancer", "--epochs", "2", "--hidden", "8", "--protocol",
     "holdout", "--seeds", "3", "--test-fraction", "0.2"],
    ["optimize", "--function", "rosenbrock", "--opt", "sgd[lr=5],lbfgs,adam[lr=0.05]"],
    ["optimize", "--dataset", "diabetes", "--opt", "lbfgs[lr=100],newton[lr=10]", "--hidden",
     "4", "--epochs", "3"],
], ids=["cv-kfold", "cv-time-order", "cv-one-split", "functions", "huge-regression-values"])
def test_other_tables_fit(tmp_path, args):
    stdout = run80(*args, tmp_path=tmp_path)
    assert_fits(stdout)
    for line in table_lines(stdout)[3:]:  # a status word is never cut ("sta", "uns")
        assert not re.search(r"\s(sta|uns|div|stal|unst|diver)\s*$", line), line
    assert "—–—" not in stdout and "1 repeats" not in stdout and "1 seeds" not in stdout


@pytest.mark.parametrize("command", ["datasets", "models", "optimizers"])
def test_listings_fit_and_split_no_word(command):
    stdout = run80(command)
    for line in stdout.splitlines():
        assert len(line.rstrip()) <= 80, line
    assert "classifi" not in stdout.replace("classification", "")  # never "classifi/cation"
    assert "…" not in stdout


@pytest.mark.parametrize("mean, half, text", [(-0.01234, 0.0081, "−0.0123±0.0081"),
                                              (0.5, 0.23, "+0.50±0.23"),
                                              (-0.845, 0.048, "−0.845±0.048"),
                                              (0.1, math.nan, "0.1"),
                                              (1.114e10, 2.5e10, "+1.1e+10±2.5e+10")])
def test_plus_minus_shows_the_mean_to_the_intervals_precision(mean, half, text):
    assert report.plus_minus(mean, half) == text


def test_plurals_and_missing_values():
    assert report.plural(1, "seed") == "1 seed" and report.plural(3, "seed") == "3 seeds"
    assert report.interval(math.nan, math.nan) == "—"
    assert report._passes(2.5) == "2.5"  # a median of 2.5 passes is not "2"


def test_status_notes_speak_of_accuracy_only_for_classification(tmp_path):
    regression = run80("optimize", "--dataset", "diabetes", "--hidden", "4", "--epochs", "1",
                       "--opt", "sgd[lr=1e-6]", "--seeds", "2", tmp_path=tmp_path / "r")
    assert "accuracy" not in regression.split("status:")[1].split("\n\n")[0]
    classes = run80("optimize", "--dataset", "iris", "--hidden", "4", "--epochs", "1",
                    "--opt", "sgd[lr=1e-6]", "--seeds", "2", tmp_path=tmp_path / "c")
    assert "accuracy stayed near chance" in " ".join(classes.split())


def test_one_seed_compares_no_cell_with_the_best(tmp_path):
    stdout = run80("optimize", "--dataset", "iris", "--hidden", "4", "--epochs", "2",
                   "--opt", "sgd[lr=0.1],adam[lr=0.01]", "--seeds", "1", tmp_path=tmp_path)
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert set(summary.vs_best) == {"best", "too few seeds"}
    assert summary.p_vs_best.isna().all()  # no test without the seeds' variance
    text = " ".join(stdout.split())
    assert "1 seed: the seed variance cannot be estimated" in text
    assert "variance is barely estimated" not in text
    assert not re.search(r"^\s*\d+[≈?!]", stdout, re.M)  # no verdict marks


def test_tied_cells_list_the_best_first(tmp_path):
    run80("optimize", "--dataset", "xor", "--hidden", "8", "--epochs", "300", "--batch-size",
          "4", "--opt", "adam[lr=0.05],adam[lr=0.1]", "--seeds", "2", tmp_path=tmp_path)
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert summary["rank"].tolist() == [1, 1]  # both fit xor perfectly
    assert summary.vs_best.iloc[0] == "best"


@pytest.mark.parametrize("epoch, seeds, text", [(4.0, 1, "4 (1 of 3)"), (4.5, 2, "4.5 (2 of 3)"),
                                                (7.0, 3, "7")])
def test_an_onset_never_reads_as_a_fraction(epoch, seeds, text):
    """The median onset over the seeds that had one, and how many did, in words: "4 1/3" read
    as four and a third."""
    row = pd.Series({"onset_epoch": epoch, "onset_seeds": seeds, "seeds": 3})
    shown = report._onset(row)
    assert shown == text
    assert not re.search(r"\d \d+/\d", shown)


@pytest.mark.parametrize("command", ["optimizers", "datasets", "regularizers", "models"])
def test_listings_at_80_columns_cut_no_word(command):
    """Every word of the unwrapped listing is whole at 80 columns; only a word wider than its
    column may break, and then after a separator (`inverted|` `reversed|` `permuted`)."""
    narrow = run80(command)
    wide = CliRunner(env={"COLUMNS": "1000"}).invoke(app, [command]).stdout
    assert_fits(narrow)
    found = set(narrow.split())
    for word in set(wide.split()) - {"─" * n for n in range(2000)}:
        pieces = re.findall(r"[^|,/=]*[|,/=]?", word)
        assert word in found or all(any(p in t for t in found) for p in pieces if p), word
    if command == "optimizers":  # the examples: whole
        assert {"decoupled_weight_decay=false", "initial_accumulator_value=0,"} <= found
