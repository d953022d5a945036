"""The user's own metric, `--metrics path/to/file.py:name` (evaluate/metrics.py): scores,
intervals, compare and --rank, and what is refused."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import assert_usage_error, invoke, run_ok, user_file

from dlbench import plugins
from dlbench.engine.predictions import Predictions
from dlbench.evaluate import metrics

METRICS = '''
import numpy as np


def acc(y_true, proba):
    """Accuracy, by hand."""
    return float(np.mean(np.argmax(proba, axis=1) == y_true))


acc.greater_is_better = True
acc.bounds = (0.0, 1.0)


def err(y_true, proba):
    return 1.0 - acc(y_true, proba)


err.greater_is_better = False


def sq(y_true, prediction):
    """Mean squared error, by hand."""
    return float(np.mean((np.asarray(y_true, float) - prediction) ** 2))


sq.greater_is_better = False


def shapes(y_true, scores):
    return float(scores.ndim * 10 + np.ndim(y_true))


shapes.greater_is_better = True


def undeclared(y_true, proba):
    return 0.0


def says(y_true, proba):
    raise RuntimeError("no such thing")


says.greater_is_better = True


def text(y_true, proba):
    return "high"


text.greater_is_better = True


def wide(y_true, proba):
    return 0.5


wide.greater_is_better = True
wide.bounds = (1, 0)


class NotAFunction:
    greater_is_better = True
'''
CV = ["cv", "--dataset", "iris", "--epochs", "3", "--hidden", "8"]


@pytest.fixture
def mine(tmp_path: Path) -> Path:
    return user_file(tmp_path / "mine.py", METRICS)


def _by_metric(frame: pd.DataFrame, name: str) -> pd.Series:
    keys = [c for c in frame.columns if c not in ("metric", "value", "status")]
    chosen = frame[frame.metric == name]
    return chosen.set_index(keys)["value"].sort_index()


def test_a_metric_by_hand_scores_and_intervals_as_the_builtin(mine, tmp_path):
    """acc is accuracy written by hand: every row, and the hold-out's intervals (the built-in's
    weighted form, the plugged one's resampled rows), are the built-in's."""
    out = tmp_path / "out"
    run_ok(*CV, "--protocol", "holdout", "--seeds", "3", "--metrics",
         f"accuracy,{mine}:acc,{mine}:err", "--out", out)
    scores = pd.read_csv(out / "scores.csv")
    accuracy = _by_metric(scores, "accuracy")
    pd.testing.assert_series_equal(_by_metric(scores, "mine.py:acc"), accuracy,
                                   check_names=False)
    pd.testing.assert_series_equal(_by_metric(scores, "mine.py:err"), 1 - accuracy,
                                   check_names=False, rtol=1e-12, atol=1e-12)
    summary = pd.read_csv(out / "summary.csv").set_index(["split", "metric"])
    columns = ["mean", "ci_low", "ci_high", "p_value"]
    built, plugged = summary.loc[("val", "accuracy"), columns], summary.loc[("val", "mine.py:acc"),
                                                                             columns]
    np.testing.assert_allclose(plugged.to_numpy(float), built.to_numpy(float), rtol=1e-9)
    assert math.isfinite(summary.loc[("val", "mine.py:err"), "ci_low"])
    manifest = json.loads((out / "manifest.json").read_text())
    recorded = {p["metric"]: p["greater_is_better"] for p in manifest["plugins"]}
    assert recorded == {"mine.py:acc": True, "mine.py:err": False}


def test_regression_gets_the_predictions(mine, tmp_path):
    out = tmp_path / "out"
    run_ok("cv", "--dataset", "diabetes", "--epochs", "2", "--hidden", "8", "--k", "2",
         "--metrics", f"mse,{mine}:sq,{mine}:shapes", "--out", out)
    scores = pd.read_csv(out / "scores.csv")
    pd.testing.assert_series_equal(_by_metric(scores, "mine.py:sq"), _by_metric(scores, "mse"),
                                   check_names=False, rtol=1e-5)
    assert set(_by_metric(scores, "mine.py:shapes").dropna()) == {11.0}  # (N,) and (N,)


def test_classification_gets_the_probabilities():
    """Class indices (N,) and probabilities (N, C); a resample repeats rows as W counts them."""
    metric = metrics.plugged(plugins.register(_top, "top-digest"))
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.3, 0.4, 0.3], [0.5, 0.1, 0.4]])
    pred = Predictions(np.array([0, 2, 0, 1]), proba.argmax(1), proba, 3)
    assert metrics.score(pred, [metric]) == {metric.name: _top(pred.y_true, proba)}
    W = np.array([[2, 0, 1, 1], [0, 0, 0, 4]])
    for counts, value in zip(W, metric.weighted(pred, W), strict=True):
        rows = np.repeat(np.arange(4), counts)
        assert value == _top(pred.y_true[rows], proba[rows])


def _top(y_true, proba):
    """Top-2 accuracy."""
    return float(np.mean((np.argsort(proba, 1)[:, -2:] == np.asarray(y_true)[:, None]).any(1)))


_top.greater_is_better = True


def test_compare_judges_a_plugged_metric_in_its_own_direction(mine, tmp_path):
    """The current run is trained less: err rises, which is worse for it (lower is better),
    as accuracy falls; the verdicts agree, and the tolerance's sign must point the worse way."""
    args = [*CV, "--k", "5", "--opt", "adam[lr=0.05]", "--metrics",
            f"accuracy,{mine}:err"]
    run_ok(*args, "--epochs", "40", "--out", tmp_path / "base")
    run_ok(*args, "--epochs", "1", "--out", tmp_path / "now")
    result = invoke("compare", tmp_path / "base", tmp_path / "now", "--format", "json")
    assert result.exit_code == 1, result.output
    rows = pd.DataFrame(json.loads(result.stdout)["rows"]).set_index(["split", "metric"])
    assert rows.loc[("val", "accuracy"), "verdict"] == "regressed"
    assert rows.loc[("val", "mine.py:err"), "verdict"] == "regressed"
    assert rows.loc[("val", "mine.py:err"), "delta"] > 0
    wide = invoke("compare", tmp_path / "base", tmp_path / "now", "--tolerance",
                  "accuracy:-90%,mine.py:err:+10000%")
    assert wide.exit_code == 0, wide.output
    line = assert_usage_error(invoke("compare", tmp_path / "base", tmp_path / "now",
                                     "--tolerance", "mine.py:err:-5%"), tmp_path / "none")
    assert "mine.py:err is worse when it rises" in line


def test_rank_orders_a_lower_is_better_metric_as_its_mirror(tmp_path):
    """err = 1 - acc on every problem: ranked by err (lower better) as by acc (higher)."""
    rng = np.random.default_rng(0)
    problems = [_fakerun_ok(tmp_path / "in", f"p{i}", dict(zip("abc", rng.uniform(0.5, 1, 3),
                                                              strict=True)))
                for i in range(5)]
    ranks = {}
    for name in ("mine.py:acc", "mine.py:err"):
        out = tmp_path / name.replace(":", "_")
        run_ok("compare", "--rank", *problems, "--metric", name, "--out", out)
        ranks[name] = pd.read_csv(out / "ranks.csv")
    pd.testing.assert_series_equal(ranks["mine.py:acc"]["method"], ranks["mine.py:err"]["method"])
    np.testing.assert_allclose(ranks["mine.py:acc"]["mean_rank"],
                               ranks["mine.py:err"]["mean_rank"])
    assert ranks["mine.py:acc"]["mean_score"].is_monotonic_decreasing  # best first
    line = assert_usage_error(invoke("compare", "--rank", *problems, "--metric", "mine.py:nope",
                                     "--out", tmp_path / "no"), tmp_path / "no")
    assert "unknown metric 'mine.py:nope'" in line and "mine.py:err" in line


def _fakerun_ok(root: Path, name: str, scores: dict[str, float]) -> Path:
    """A finished run whose manifest declares two metrics of the user's."""
    run = root / name
    run.mkdir(parents=True)
    rows = [{"dataset": name, "cell": cell, "model": "mlp", "seed": s, "split": "val",
             "metric": metric, "value": v if metric == "mine.py:acc" else 1 - v,
             "status": "ok"}
            for cell, v in scores.items() for s in range(2)
            for metric in ("mine.py:acc", "mine.py:err")]
    pd.DataFrame(rows).to_csv(run / "scores.csv", index=False)
    (run / "manifest.json").write_text(json.dumps({"command": "optimize", "plugins": [
        {"metric": "mine.py:acc", "greater_is_better": True},
        {"metric": "mine.py:err", "greater_is_better": False}]}))
    return run


@pytest.mark.parametrize("entry, says", [
    ("{mine}:undeclared", "mine.py:undeclared declares no direction: set "
                          "undeclared.greater_is_better = True"),
    ("{mine}:says", "mine.py:says raised RuntimeError: no such thing when given class "
                    "indices (N,) and probabilities (N, 3)"),
    ("{mine}:text", "mine.py:text returned 'high' (str), not a number"),
    ("{mine}:wide", "bounds (1, 0) is no range"),
    ("{mine}:NotAFunction", "is a type, not a metric"),
    ("{mine}:lost", "defines no 'lost'; it defines acc, err"),
    ("{dir}/nowhere.py:acc", "no such file"),
])
def test_bad_metrics_are_one_line_before_anything_trains(mine, tmp_path, entry, says):
    out = tmp_path / "out"
    line = assert_usage_error(invoke(*CV, "--metrics",
                                     f"accuracy,{entry.format(mine=mine, dir=tmp_path)}",
                                     "--out", out), out)
    assert says in line, line


def test_two_metrics_that_show_alike_are_refused(mine, tmp_path):
    """Rows name a metric by its file's name: two files of one name would mix their rows."""
    twin = user_file(tmp_path / "other" / "mine.py", METRICS)
    out = tmp_path / "out"
    line = assert_usage_error(invoke(*CV, "--metrics", f"{mine}:acc,{twin}:acc", "--out", out),
                              out)
    assert "two metrics show as mine.py:acc" in line
