"""The Python API (dlbench/cli/api.py): the command line's options as keyword arguments, its
path, its files and its messages; Python objects where the command line takes names or paths."""

from __future__ import annotations

import inspect
import os
from dataclasses import MISSING, fields
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from api_helpers import SignSGD, error_rate, make_mlp
from cli_helpers import assert_usage_error, invoke

import dlbench
from dlbench import plugins
from dlbench.cli import objects
from dlbench.cli.commands import COMMANDS
from tests.test_contract import NormalizedSGD  # not elementwise; importable by workers

HELPERS = Path(__file__).resolve().parent / "api_helpers.py"
SMALL = {"dataset": "iris", "epochs": 2, "hidden": "8"}  # a second's training
CV = {**SMALL, "k": 2, "seeds": 2}
OPTIMIZE = {**SMALL, "seeds": 2}


def cli_args(options: dict) -> list[str]:
    """The same options as command-line arguments."""
    return [a for name, value in options.items()
            for a in (f"--{name.replace('_', '-')}", str(value))]


def cli_run(command: str, options: dict, out: Path) -> None:
    result = invoke(command, *cli_args(options), "--out", out)
    assert result.exit_code == 0, result.output


# --- one definition of the options ------------------------------------------------------------


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_function_takes_its_commands_options_with_their_defaults(name):
    params = inspect.signature(getattr(dlbench, name)).parameters
    expected = {f.name: f.default if f.default is not MISSING else f.default_factory()
                for f in fields(COMMANDS[name].options)}
    assert {k: p.default for k, p in params.items() if k != "show"} == expected


def test_an_unknown_keyword_is_refused_with_the_valid_ones_listed(tmp_path):
    with pytest.raises(dlbench.DlbenchError, match="cv\\(\\) has no option 'holdout_seed';"
                                                   " its options: .*holdout_seeds"):
        dlbench.cv(holdout_seed=3, out=tmp_path / "o")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("options, says", [
    ({"protocol": "holdout", "k": 3}, "--k applies to --protocol kfold; drop it"),
    ({"opt": "adam[lr=-1]"}, "lr"),
    ({"dataset": "no-such-data"}, "no-such-data"),
], ids=["not-applicable", "bad-value", "unknown-name"])
def test_a_mistake_raises_the_command_lines_one_line_message_and_writes_nothing(
        tmp_path, options, says):
    out = tmp_path / "o"
    line = assert_usage_error(invoke("cv", *cli_args(options), "--out", out), out)
    with pytest.raises(dlbench.DlbenchError) as raised:
        dlbench.cv(**options, out=out)
    assert f"error: {raised.value}" == line and says in line
    assert not out.exists()


@pytest.mark.parametrize("options, says", [
    ({"epochs": "3"}, "epochs='3': give a whole number"),
    ({"stratify": 1}, "stratify=1: give True or False"),
    ({"out": 3}, "out=3: give a path"),
])
def test_a_value_of_the_wrong_type_is_refused(options, says):
    with pytest.raises(dlbench.DlbenchError, match=f"^{says}$"):
        dlbench.cv(**options)


# --- the same files as the command line --------------------------------------------------------


def test_cv_writes_the_command_lines_scores_csv(tmp_path):
    cli_run("cv", CV, tmp_path / "cli")
    run = dlbench.cv(**CV, out=tmp_path / "api")
    assert (tmp_path / "api" / "scores.csv").read_bytes() == \
        (tmp_path / "cli" / "scores.csv").read_bytes()
    pd.testing.assert_frame_equal(run.scores, pd.read_csv(tmp_path / "cli" / "scores.csv"))
    assert run.out == tmp_path / "api" and run.manifest["command"] == "cv"
    assert set(run.tables) == {"scores", "curves", "splits", "summary"}


def test_optimize_with_a_python_optimizer_writes_the_command_lines_scores_csv(tmp_path):
    """A class handed over as an object trains as its file does on the command line: only
    the name a row shows differs (the object's own name, the file's name and the object's)."""
    cli_run("optimize", {**OPTIMIZE, "opt": f"{HELPERS}:SignSGD[lr=0.05],adam"},
            tmp_path / "cli")
    run = dlbench.optimize(**OPTIMIZE, opt=[(SignSGD, {"lr": 0.05}), "adam"],
                           out=tmp_path / "api")
    cli = (tmp_path / "cli" / "scores.csv").read_text()
    assert "api_helpers.py:SignSGD" in cli
    assert (tmp_path / "api" / "scores.csv").read_text() == \
        cli.replace("api_helpers.py:SignSGD", "SignSGD")
    assert set(run.scores["optimizer"]) == {"SignSGD", "adam"}
    [plugged] = run.manifest["plugins"]
    assert plugged["optimizer"] == "SignSGD" and plugged["python"] == "api_helpers.SignSGD"


def test_optimize_on_a_function_runs_without_cells(tmp_path):
    """The route with no cells (paths on a 2-D function) returns its files as well."""
    run = dlbench.optimize(function="rosenbrock", steps=5, opt=[SignSGD, "adam"],
                           out=tmp_path / "o")
    assert set(run.tables) == {"trajectories", "summary", "scores"}
    assert set(run.summary["optimizer"]) == {"SignSGD", "adam"}


@pytest.mark.parametrize("where", [{"workers": 2}, {"dask_local": 2}], ids=["pool", "dask"])
def test_python_objects_reach_pool_and_dask_workers(tmp_path, where):
    """Registered in this process only: each task carries its objects to the worker."""
    if "dask_local" in where:
        pytest.importorskip("distributed", reason="Dask's distributed is not installed: "
                                                  "pip install 'dlbench[dask]' (make test does)")
    opt = [SignSGD, NormalizedSGD]  # two tasks: a non-elementwise optimizer trains apart
    inline = dlbench.optimize(**OPTIMIZE, opt=opt, out=tmp_path / "inline")
    pooled = dlbench.optimize(**OPTIMIZE, opt=opt, **where, out=tmp_path / "pool")
    assert pooled.manifest["execution"]["executor"] != inline.manifest["execution"]["executor"]
    pd.testing.assert_frame_equal(inline.scores, pooled.scores, rtol=1e-5, atol=1e-6)


def test_nothing_is_printed_unless_asked_then_the_command_lines_table(tmp_path, capsys,
                                                                      monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # the width the command line's runner has
    run = dlbench.cv(**CV, out=tmp_path / "quiet")
    assert capsys.readouterr() == ("", "")
    dlbench.cv(**CV, out=tmp_path / "shown", show=True)
    shown = capsys.readouterr().out.splitlines()
    cli = invoke("cv", *cli_args(CV), "--out", tmp_path / "cli").stdout.splitlines()
    assert shown[:-1] == cli[:-1] and len(shown) > 5  # the last line: its seconds
    assert "members" in shown[-1]
    run.show()
    assert capsys.readouterr().out.splitlines()[:-1] == cli[:-1]


def test_warnings_are_kept_in_the_run_and_said_only_when_shown(tmp_path, capsys):
    too_many = (os.cpu_count() or 1) + 1  # more threads than cores: the command line warns
    run = dlbench.cv(**CV, threads=too_many, out=tmp_path / "quiet")
    assert capsys.readouterr() == ("", "")
    [warning] = run.warnings
    assert f"{too_many} threads on" in warning
    dlbench.cv(**CV, threads=too_many, out=tmp_path / "shown", show=True)
    assert capsys.readouterr().err == f"warning: {warning}\n"


def test_a_run_offers_its_files_as_tables(tmp_path):
    run = dlbench.cv(**CV, out=tmp_path / "o")
    for name, table in run.tables.items():
        pd.testing.assert_frame_equal(table, pd.read_csv(tmp_path / "o" / f"{name}.csv"))
    assert run.summary is run.tables["summary"]
    with pytest.raises(AttributeError, match="its tables: scores, curves, splits, summary"):
        run.scorez  # noqa: B018


# --- compare and suites ------------------------------------------------------------------------


def test_compare_returns_the_verdicts_and_whether_something_regressed(tmp_path):
    a = dlbench.cv(**CV, out=tmp_path / "a").out
    b = dlbench.cv(**CV, out=tmp_path / "b").out
    found = dlbench.compare(a, b, out=tmp_path / "c")
    assert found.regressed is False and len(found.table) > 0
    assert invoke("compare", a, b).exit_code == 0  # the command line agrees
    written = pd.read_csv(tmp_path / "c" / "compare.csv")
    assert list(found.table["verdict"]) == list(written["verdict"])
    scores = pd.read_csv(b / "scores.csv")
    scores[scores["metric"] != "accuracy"].to_csv(tmp_path / "lost.csv", index=False)
    lost = dlbench.compare(a, tmp_path / "lost.csv")  # a metric gone missing fails
    assert lost.regressed is True and invoke("compare", a, tmp_path / "lost.csv").exit_code == 1
    with pytest.raises(dlbench.DlbenchError, match="^--metric applies to --rank; drop it or "
                                                   "add --rank$"):
        dlbench.compare(a, b, metric="accuracy")


def test_run_suite_runs_each_entry_into_its_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # the width the command line's runner has
    suite = tmp_path / "tiny.toml"
    suite.write_text('[entry.iris]\ncommand = "cv"\ndataset = "iris"\nepochs = 2\nk = 2\n'
                     'hidden = "8"\n')
    found = dlbench.run_suite(suite, out=tmp_path / "s")
    assert list(found.entries["entry"]) == ["iris"] and found.out == tmp_path / "s"
    pd.testing.assert_frame_equal(found.runs["iris"].scores,
                                  pd.read_csv(tmp_path / "s" / "iris" / "scores.csv"))
    again = dlbench.run_suite(suite, out=tmp_path / "s", show=True)
    assert list(again.entries["done"]) == ["already finished"]
    shown = capsys.readouterr().out
    assert "suite tiny" in shown
    assert shown == invoke("run", suite, "--out", tmp_path / "s").stdout  # the same table


# --- Python objects as entries -----------------------------------------------------------------


def test_an_entry_with_parameters_is_written_as_the_command_line_writes_it():
    kw, named = objects.converted({"opt": [(SignSGD, {"lr": 0.1, "betas": (0.9, 0.99),
                                                      "foreach": False}), "adam[lr=0.1]"]})
    reference = plugins.register(SignSGD)
    assert kw["opt"] == f"{reference}[lr=0.1,betas=0.9/0.99,foreach=false],adam[lr=0.1]"
    assert named == {"opt"}


@pytest.mark.parametrize("entry, says", [
    ((SignSGD, {"lr": "1,2"}), "parameter lr='1,2' cannot be written"),
    ((SignSGD,), "an entry with parameters is \\(object, \\{name: value\\}\\)"),
    (3.5j, "got a complex"),
])
def test_an_entry_that_cannot_be_written_is_refused(entry, says):
    with pytest.raises(dlbench.DlbenchError, match=says):
        objects.converted({"opt": entry})


def test_a_hyperparameter_the_optimizer_rejects_is_its_own_message(tmp_path):
    with pytest.raises(dlbench.DlbenchError, match="takes no parameter 'momentum'; it takes: lr"):
        dlbench.cv(**CV, opt=(SignSGD, {"momentum": 0.9}), out=tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_arrays_are_named_by_their_contents():
    X, y = np.arange(12.0).reshape(6, 2), np.array([0, 1] * 3)
    first = objects.converted({"data": (X, y)})[0]["data"]
    assert objects.converted({"data": [X.copy(), y.copy()]})[0]["data"] == first
    changed = X.copy()
    changed[0, 0] = -1
    assert objects.converted({"data": (changed, y)})[0]["data"] != first
    loaded = plugins.load(plugins.split(first)[0]).module.arrays()
    np.testing.assert_array_equal(loaded[0], X)


def test_a_dataframe_takes_its_target_column():
    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1, 2, 3, 4], "y": list("ppqq")})
    kw, named = objects.converted({"data": frame, "target": "y"})
    assert "target" not in kw and named == {"data"}
    X, y = plugins.load(plugins.split(kw["data"])[0]).module.arrays()
    np.testing.assert_array_equal(X, frame[["a", "b"]].to_numpy())
    assert list(y) == list("ppqq")
    with pytest.raises(dlbench.DlbenchError, match="needs target='column', one of: a, b, y"):
        objects.converted({"data": frame})
    with pytest.raises(dlbench.DlbenchError, match="column 's' is not numeric"):
        objects.converted({"data": frame.assign(s="x"), "target": "y"})


def test_a_model_factory_trains_as_its_file_does(tmp_path):
    options = {k: v for k, v in CV.items() if k != "hidden"}  # the factory's own width
    cli_run("cv", {**options, "model": f"{HELPERS}:make_mlp[width=8]"}, tmp_path / "cli")
    run = dlbench.cv(**options, model=(make_mlp, {"width": 8}), out=tmp_path / "api")
    cli = pd.read_csv(tmp_path / "cli" / "scores.csv")
    pd.testing.assert_frame_equal(run.scores.drop(columns="model"), cli.drop(columns="model"))


def test_arrays_train_as_the_same_rows_in_a_file_do(tmp_path):
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    np.savez(tmp_path / "iris.npz", X=X, y=y)
    options = {k: v for k, v in CV.items() if k != "dataset"}
    from_file = dlbench.cv(**options, data=tmp_path / "iris.npz", out=tmp_path / "file")
    from_arrays = dlbench.cv(**options, data=(X, y), out=tmp_path / "arrays")
    frame = pd.DataFrame(X, columns=list("abcd")).assign(label=y)
    from_frame = dlbench.cv(**options, data=frame, target="label", out=tmp_path / "frame")
    values = from_file.scores["value"].to_numpy()
    np.testing.assert_array_equal(from_arrays.scores["value"].to_numpy(), values)
    np.testing.assert_array_equal(from_frame.scores["value"].to_numpy(), values)


def test_a_metric_function_is_scored(tmp_path):
    run = dlbench.cv(**CV, metrics=["accuracy", error_rate], out=tmp_path / "o")
    scores = run.scores.pivot_table("value", ["repeat", "fold", "seed", "split"], "metric")
    np.testing.assert_allclose(scores["error_rate"], 1 - scores["accuracy"], atol=1e-12)
