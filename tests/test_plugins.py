"""The user's own optimizer in the --opt grammar (dlbench/plugins.py), through the CLI."""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from api_helpers import SignSGD
from cli_helpers import (
    EXECUTOR_IDS,
    EXECUTORS,
    assert_scores_as_inline,
    assert_suite_entry_as_command_line,
    assert_usage_error,
    invoke,
)

PLUGIN = f'''
import torch


{inspect.getsource(SignSGD)}

class MySGD(torch.optim.SGD):
    elementwise = True


def plain(params, lr=0.1, momentum=0.0):
    return torch.optim.SGD(params, lr=lr, momentum=momentum)


NOT_AN_OPTIMIZER = 3
'''
OPTIMIZE = ["optimize", "--dataset", "iris", "--epochs", "2", "--hidden", "8", "--seeds", "2"]


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    path = tmp_path / "mine" / "opts.py"
    path.parent.mkdir()
    path.write_text(PLUGIN)
    return path


def _run(*args) -> None:
    result = invoke(*args)
    assert result.exit_code == 0, f"{result.output}{result.exception!r}"
    return result


def test_cv_trains_a_plugged_optimizer_and_the_manifest_records_its_file(plugin, tmp_path):
    out = tmp_path / "out"
    _run("cv", "--dataset", "iris", "--epochs", "2", "--hidden", "8", "--k", "2", "--seeds",
         "2", "--opt", f"{plugin}:SignSGD[lr=0.05]", "--out", out)
    scores = pd.read_csv(out / "scores.csv")
    assert set(scores["optimizer"].dropna()) == {"opts.py:SignSGD"}  # readable: no directory
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["plugins"] == [{"optimizer": "opts.py:SignSGD", "file": str(plugin),
                                    "sha256": hashlib.sha256(plugin.read_bytes()).hexdigest()}]


def test_a_subclass_of_sgd_scores_as_sgd_does(plugin, tmp_path):
    """The same class under another name, stacked with the built-in: the same numbers."""
    out = tmp_path / "out"
    _run(*OPTIMIZE, "--opt", f"{plugin}:MySGD[lr=0.1],sgd[lr=0.1],{plugin}:plain",
         "--out", out)
    scores = pd.read_csv(out / "scores.csv")
    keys = ["phase", "seed", "split", "metric"]
    by = {name: frame.set_index(keys)["value"].sort_index()
          for name, frame in scores.groupby("optimizer")}
    assert set(by) == {"opts.py:MySGD", "sgd", "opts.py:plain"}
    pd.testing.assert_series_equal(by["opts.py:MySGD"], by["sgd"], rtol=1e-5, atol=1e-6)
    pd.testing.assert_series_equal(by["opts.py:plain"], by["sgd"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("executor", EXECUTORS, ids=EXECUTOR_IDS)
def test_workers_load_the_file_themselves_and_score_as_inline(plugin, tmp_path, executor):
    entries = f"{plugin}:SignSGD[lr=0.05],{plugin}:plain"
    assert_scores_as_inline([*OPTIMIZE, "--opt", entries], tmp_path, executor)


def test_an_edited_file_retrains_its_cells_on_resume(plugin, tmp_path):
    out = tmp_path / "out"
    # plain is not elementwise: it trains in a task of its own, which alone is retrained
    args = [*OPTIMIZE, "--opt", f"{plugin}:plain,sgd[lr=0.1]", "--out", out]
    _run(*args)
    plugin.write_text(PLUGIN + "\n# edited\n")
    result = _run(*args, "--resume")
    execution = json.loads((out / "manifest.json").read_text())["execution"]
    assert execution["cells_trained"] == 1 and execution["cells_resumed"] == 1  # sgd kept
    assert f"{plugin} has changed since they were trained" in result.stderr
    assert json.loads((out / "manifest.json").read_text())["plugins"][0]["sha256"] == \
        hashlib.sha256(plugin.read_bytes()).hexdigest()


def test_optimizers_from_lists_what_a_file_offers(plugin):
    result = _run("optimizers", "--from", plugin)
    for name in ("opts.py:SignSGD", "opts.py:MySGD", "opts.py:plain"):
        assert name in result.stdout
    assert "NOT_AN_OPTIMIZER" not in result.stdout
    assert "lr=0.01, weight_decay=0" in result.stdout  # SignSGD's defaults, from its signature


@pytest.mark.parametrize(("entry", "says"), [
    ("{dir}/missing.py:SignSGD", "no such file"),
    ("{bad}:SignSGD", "bad.py, line 2"),
    ("{plugin}:Nope", "defines no 'Nope'; it defines SignSGD, MySGD, plain"),
    ("{plugin}:NOT_AN_OPTIMIZER", "is a int, not an optimizer"),
    ("{plugin}:SignSGD[lr=2]", "SignSGD wants lr <= 1, got 2"),  # its constructor's own words
    ("{plugin}:SignSGD[beta=2]", "takes no parameter 'beta'; it takes: lr, weight_decay"),
])
def test_bad_plugins_are_one_line_errors(plugin, tmp_path, entry, says):
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\ndef broken(:\n")
    out = tmp_path / "out"
    result = invoke(*OPTIMIZE, "--opt", entry.format(dir=tmp_path, bad=bad, plugin=plugin),
                    "--out", out)
    assert says in assert_usage_error(result, out)


def test_lr_grid_sweeps_a_plugged_optimizer(plugin, tmp_path):
    out = tmp_path / "out"
    _run(*OPTIMIZE, "--opt", f"{plugin}:SignSGD", "--lr-grid", "1e-3:1e-1:3", "--out", out)
    scores = pd.read_csv(out / "scores.csv")
    assert set(scores["optimizer"]) == {"opts.py:SignSGD"}
    assert sorted(scores["lr"].unique()) == pytest.approx([1e-3, 1e-2, 1e-1])


def test_a_suite_entry_runs_a_plugged_optimizer_as_its_command_line_does(plugin, tmp_path):
    opt = f"{plugin}:SignSGD[lr=0.05]"
    assert_suite_entry_as_command_line(tmp_path, {
        "command": "optimize", "dataset": "iris", "epochs": 2, "hidden": "8", "seeds": 2,
        "opt": opt}, *OPTIMIZE, "--opt", opt)


def test_a_package_module_is_named_by_its_dotted_path(tmp_path, monkeypatch):
    package = tmp_path / "site" / "myopts"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "signs.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    out = tmp_path / "out"
    _run(*OPTIMIZE, "--opt", "myopts.signs:MySGD[lr=0.1],sgd[lr=0.1]", "--out", out)
    scores = pd.read_csv(out / "scores.csv")
    assert set(scores["optimizer"]) == {"myopts.signs:MySGD", "sgd"}
    [record] = json.loads((out / "manifest.json").read_text())["plugins"]
    assert record == {"optimizer": "myopts.signs:MySGD", "module": "myopts.signs",
                      "package": "myopts", "version": None}  # not installed: no version


def test_optimizers_from_a_missing_file_is_a_one_line_error(tmp_path):
    result = invoke("optimizers", "--from", tmp_path / "nope.py")
    assert "--from" in assert_usage_error(result, tmp_path / "out")


def test_a_worker_refuses_a_file_that_changed_since_the_keys_were_made(plugin):
    from dlbench import plugins
    from dlbench.errors import DlbenchError

    plugins.pin(str(plugin), hashlib.sha256(plugin.read_bytes()).hexdigest())  # as planned
    with pytest.raises(DlbenchError, match="changed while the run was under way"):
        plugins.pin(str(plugin), "0" * 64)


def test_a_run_trains_the_code_it_planned_though_the_file_changes_meanwhile(plugin):
    """Within one invocation a file is read once: an edit during the run is not imported into
    it (its cells keep the keys they trained under); a fresh process (a worker) refuses the
    edited file, and the next invocation reads the new one."""
    from dlbench import plugins
    from dlbench.errors import DlbenchError

    plugins.refresh()
    where = str(plugin.resolve())
    planned = plugins.load(where)
    plugin.write_text(PLUGIN + "\n# edited during the run\n")
    assert plugins.load(where) is planned
    plugins.pin(where, planned.digest)  # this process still holds the planned code
    plugins.refresh()  # as a worker process starts
    with pytest.raises(DlbenchError, match="changed while the run was under way"):
        plugins.pin(where, planned.digest)
    plugins.refresh()  # the next invocation
    assert plugins.load(where).digest != planned.digest


def test_a_function_run_records_its_plugged_optimizer(plugin, tmp_path):
    _run("optimize", "--function", "anisotropic", "--steps", "5", "--opt",
         f"{plugin}:SignSGD[lr=0.1],sgd", "--out", tmp_path / "out")
    [record] = json.loads((tmp_path / "out" / "manifest.json").read_text())["plugins"]
    assert record["sha256"] == hashlib.sha256(plugin.read_bytes()).hexdigest()


def test_a_listing_shows_an_objects_own_docstring_never_its_base_classes():
    from dlbench import plugins

    class Quiet(torch.optim.SGD):
        pass

    assert torch.optim.SGD.__doc__ and plugins.summary(Quiet) == ""
    assert plugins.summary(SignSGD) == ("SGD on the sign of the gradient: each weight on its "
                                        "own, so it may share the stack.")
