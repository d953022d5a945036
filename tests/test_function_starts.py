"""`optimize --function --starts N`: paths from several starts, their measures in scores.csv
(one row per cell × start × measure, the start's index as the seed), judged as claims; one
start leaves every file of a function run as it was."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from cli_helpers import assert_usage_error, invoke

from dlbench.engine.trainer import minimize
from dlbench.optim.functions import FUNCTIONS
from dlbench.optim.optimizers import parse_optimizers
from dlbench.runners import functions
from dlbench.runners.functions import SCORE_COLUMNS, measures, turns
from dlbench.runners.optimize import OptimizeConfig

BOWL = ["--function", "anisotropic", "--opt", "sgd[lr=0.95],momentum[lr=0.1]"]
SUMMARY_COLUMNS = ["cell", "optimizer", "lr", "x", "y", "f", "grad_evals", "steps_to_tol",
                   "grad_evals_to_tol", "status"]  # a one-start summary's, as before starts


def run(out: Path, *args: str) -> Path:
    result = invoke("optimize", *args, "--out", out)
    assert result.exit_code == 0, f"{result.output}{result.exception!r}"
    return out


def scores(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "scores.csv")


def point_config(**changes) -> SimpleNamespace:
    """What functions.starts reads of an OptimizeConfig."""
    return SimpleNamespace(**({"starts": 1, "seed": 0, "start": None} | changes))


# ---------------------------------------------------------------- one start: as before


def test_one_start_writes_the_files_a_run_without_starts_writes(tmp_path):
    """--starts 1 is the default: the same bytes in every table and figure, and start 0's
    trajectory is the one plain minimize walks from the function's start."""
    plain, one = run(tmp_path / "plain", *BOWL), run(tmp_path / "one", *BOWL, "--starts", "1")
    for name in ("summary.csv", "trajectories.csv", "scores.csv", "trajectories.png"):
        assert (plain / name).read_bytes() == (one / name).read_bytes(), name
    summary = pd.read_csv(plain / "summary.csv")
    assert list(summary.columns) == SUMMARY_COLUMNS
    paths = pd.read_csv(plain / "trajectories.csv")
    info = FUNCTIONS.get("anisotropic")
    for spec in parse_optimizers("sgd[lr=0.95],momentum[lr=0.1]", None, None):
        config = OptimizeConfig().train.__class__(optimizer=spec)
        expected, _ = minimize(info.fn, list(info.start), config, 100)
        walked = paths[paths.optimizer == spec.name][["x", "y", "f", "grad_evals"]]
        np.testing.assert_array_equal(walked.to_numpy(), expected)


def test_scores_hold_each_path_measure_once_per_cell_and_the_manifest_its_digest(tmp_path):
    out = run(tmp_path / "o", *BOWL)
    found = scores(out)
    assert list(found.columns) == SCORE_COLUMNS
    assert set(found.split) == {"train"} and set(found.seed) == {0}
    assert found.groupby(["cell", "metric"]).size().eq(1).all()
    assert set(found.metric) == set(functions.MEASURES)
    summary = pd.read_csv(out / "summary.csv").set_index("optimizer")
    by = found.pivot(index="optimizer", columns="metric", values="value")
    # start 0's measures are its summary's: the gap at its last point, its steps to tol
    np.testing.assert_allclose(by["f_gap"], summary.loc[by.index, "f"], rtol=0, atol=0)
    np.testing.assert_array_equal(by["steps_to_tol"], summary.loc[by.index, "steps_to_tol"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert "scores.csv" in manifest["sha256"]


# ---------------------------------------------------------------- several starts


def test_n_starts_give_n_rows_per_cell_and_measure_start_zero_the_functions(tmp_path):
    one = scores(run(tmp_path / "one", *BOWL))
    many = scores(run(tmp_path / "many", *BOWL, "--starts", "5", "--seed", "3"))
    for key, rows in many.groupby(["cell", "metric"]):
        assert sorted(rows.seed) == list(range(5)), key
    first = many[many.seed == 0].reset_index(drop=True)
    pd.testing.assert_frame_equal(first, one)  # start 0: the function's own, whatever N
    summary = pd.read_csv(tmp_path / "many" / "summary.csv")
    assert list(summary.columns[:len(SUMMARY_COLUMNS)]) == SUMMARY_COLUMNS
    assert (summary.starts == 5).all()
    means = many.groupby(["cell", "metric"]).value.mean().unstack()
    for m in functions.MEASURES:
        np.testing.assert_allclose(summary.set_index("cell")[f"{m}_mean"], means[m].loc[
            summary.cell], rtol=1e-12)


def test_drawn_starts_lie_in_the_window_and_follow_the_seed():
    for info in FUNCTIONS:
        points = functions.starts(point_config(starts=50, seed=7), info)
        assert points[0] == list(info.start) and len(points) == 50
        xmin, xmax, ymin, ymax = info.window
        drawn = np.array(points[1:])
        assert ((drawn[:, 0] >= xmin) & (drawn[:, 0] <= xmax)).all(), info.name
        assert ((drawn[:, 1] >= ymin) & (drawn[:, 1] <= ymax)).all(), info.name
        # spread over the window, not bunched in a corner
        assert drawn[:, 0].max() - drawn[:, 0].min() > 0.5 * (xmax - xmin), info.name
    bowl = FUNCTIONS.get("anisotropic")
    again = functions.starts(point_config(starts=50, seed=7), bowl)
    assert again == functions.starts(point_config(starts=50, seed=7), bowl)
    assert functions.starts(point_config(starts=5, seed=7), bowl) == again[:5]  # prefix
    assert functions.starts(point_config(starts=5, seed=8), bowl)[1:] != again[1:5]
    assert functions.starts(point_config(starts=3, start=(1.0, 2.0)), bowl)[0] == [1.0, 2.0]


def test_each_starts_scores_are_its_own_paths(tmp_path):
    """Start k's row is the path walked from the k-th drawn point, reproducible with --seed."""
    args = [*BOWL, "--starts", "4", "--seed", "11", "--steps", "30"]
    out, again = run(tmp_path / "a", *args), run(tmp_path / "b", *args)
    assert (out / "scores.csv").read_bytes() == (again / "scores.csv").read_bytes()
    other = scores(run(tmp_path / "c", *BOWL, "--starts", "4", "--seed", "12", "--steps", "30"))
    found = scores(out)
    assert not np.array_equal(found[found.seed > 0].value, other[other.seed > 0].value)
    info = FUNCTIONS.get("anisotropic")
    points = functions.starts(point_config(starts=4, seed=11), info)
    [sgd] = parse_optimizers("sgd[lr=0.95]", None, None)
    train = OptimizeConfig().train.__class__(optimizer=sgd)
    for k, point in enumerate(points):
        path, _ = minimize(info.fn, point, train, 30)
        row = found[(found.optimizer == "sgd") & (found.seed == k)].set_index("metric").value
        assert row["f_gap"] == path[-1, 2] and row["turns"] == turns(path[:, :2])


# ---------------------------------------------------------------- the measures


def test_turns_counts_the_steps_that_reverse():
    zigzag = np.array([[0, 1], [1, -1], [2, 1], [3, -1], [4, 1]], float)
    assert turns(zigzag) == 1.0  # each step points back against the last
    assert turns(np.array([[0, 0], [1, 1], [3, 3], [4, 4]], float)) == 0.0  # straight
    assert turns(np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)) == 0.0  # 90°: no turn back
    half = np.array([[0, 0], [1, 0], [0, 0], [-1, 0], [-1, 0], [-2, 0]], float)
    assert turns(half) == pytest.approx(1 / 3)  # one reversal in 3 pairs; the stop skipped
    assert math.isnan(turns(np.array([[0, 0], [1, 0], [1, 0]], float)))  # one moving step


def _path(fs: list[float], evals: list[int]) -> np.ndarray:
    return np.array([[0.0, float(i), f, e] for i, (f, e) in enumerate(zip(fs, evals, strict=True))])


def test_a_path_that_never_arrives_is_censored_one_step_past_its_last():
    info, config = FUNCTIONS.get("anisotropic"), SimpleNamespace(tol=1e-3, steps=3)
    never = measures(_path([4.0, 2.0, 1.0, 0.5], [0, 3, 7, 12]), "ok", info, config)
    assert never["steps_to_tol"] == 4  # steps + 1
    assert never["grad_evals_to_tol"] == 12 + 5  # its evaluations plus its last step's
    assert never["f_gap"] == 0.5
    there = measures(_path([4.0, 2.0, 1e-4, 1e-5], [0, 3, 7, 12]), "ok", info, config)
    assert (there["steps_to_tol"], there["grad_evals_to_tol"]) == (2, 7)
    lost = measures(_path([4.0, math.inf], [0, 1]), "diverged", info, config)
    assert all(math.isnan(v) for v in lost.values()) and set(lost) == set(functions.MEASURES)
    saddle = measures(_path([0.0, -1.0, -4.0], [0, 1, 2]), "ok", FUNCTIONS.get("saddle"),
                      config)
    assert set(saddle) == {"turns"}  # unbounded below: no f* to measure a gap to


def test_a_run_that_never_arrives_writes_censored_rows_and_a_diverged_one_nans(tmp_path):
    out = run(tmp_path / "o", "--function", "anisotropic", "--steps", "400",
              "--opt", "sgd[lr=1e-6],sgd[lr=5]")
    found = scores(out).set_index(["lr", "metric"])
    assert found.loc[(1e-6, "steps_to_tol"), "value"] == 401
    assert found.loc[(1e-6, "grad_evals_to_tol"), "value"] == 401
    assert found.loc[1e-6, "status"].eq("stalled").all()
    assert found.loc[5.0, "value"].isna().all() and found.loc[5.0, "status"].eq("diverged").all()


# ---------------------------------------------------------------- claims and compare


SUITE = """\
[entry.bowl]
claim = "SGD zig-zags where momentum does not"
command = "optimize"
function = "anisotropic"
opt = "sgd[lr=0.95],momentum[lr=0.1]"
steps = 60
starts = {starts}

[entry.bowl.hypothesis]
compare = {{optimizer = "{name}"}}
against = {{optimizer = "sgd"}}
metric = "turns"
split = "train"
expect = "better"
"""


@pytest.mark.parametrize(("starts", "verdict"), [(8, "holds"), (1, "inconclusive")])
def test_a_claim_on_a_function_is_judged_over_its_starts(tmp_path, starts, verdict):
    """Momentum turns back less than SGD at 0.95 from every start: 8 starts, paired start by
    start, show it; one start (one path each, one unit) cannot."""
    suite = tmp_path / "suite.toml"
    suite.write_text(SUITE.format(starts=starts, name="momentum"))
    result = invoke("run", suite, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    [row] = pd.read_csv(tmp_path / "out" / "claims.csv").itertuples()
    assert row.verdict == verdict and row.metric == "turns" and row.effect < 0, row
    assert f"over {starts} start" in row.test and "seed" not in row.test  # its units: starts
    if starts == 1:
        assert "fewer than 2 units" in row.note


def test_a_claim_naming_no_optimizer_of_the_function_entry_is_refused_before_it_runs(tmp_path):
    suite = tmp_path / "suite.toml"
    suite.write_text(SUITE.format(starts=6, name="nesterov"))
    line = assert_usage_error(invoke("run", suite, "--out", tmp_path / "out"),
                              tmp_path / "out")
    assert "names no cell" in line and "momentum" in line


def test_compare_pairs_two_function_runs_start_by_start(tmp_path):
    args = [*BOWL, "--starts", "6", "--steps", "40"]
    a, b = run(tmp_path / "a", *args), run(tmp_path / "b", *args)
    result = invoke("compare", a, b, "--all")
    assert result.exit_code == 0, result.output
    for metric in functions.MEASURES:
        assert f"train {metric}" in result.stdout
    assert "split identity" not in result.stdout  # a function has no data to split
    shorter = run(tmp_path / "c", *BOWL, "--starts", "6", "--steps", "10")
    worse = invoke("compare", a, shorter)  # 10 steps end further from f* than 40 on every start
    assert worse.exit_code == 1 and "regressed" in worse.stdout, worse.stdout


# ---------------------------------------------------------------- the table
# (bad --starts, --seed without them: test_optimize.py's tables of usage errors)


def test_the_table_and_its_json_say_how_many_starts(tmp_path):
    text = invoke("optimize", *BOWL, "--starts", "3", "--seed", "2", "--out", tmp_path / "t")
    assert text.exit_code == 0 and "3 starts: the table is start 0's path" in text.stdout
    assert "--seed 2" in text.stdout
    one = invoke("optimize", *BOWL, "--out", tmp_path / "one")
    assert "starts:" not in one.stdout
    shown = invoke("optimize", *BOWL, "--starts", "3", "--format", "json", "--out",
                   tmp_path / "j")
    payload = json.loads(shown.stdout)
    assert payload["run"]["starts"] == 3
    assert all(row["starts"] == 3 for row in payload["summary"])
