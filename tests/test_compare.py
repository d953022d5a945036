"""`dlbench compare`: rows matched on their configuration, a regression only when it is both
beyond the tolerance and significant, and the statistics against their formulas."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from dlbench import compare
from dlbench.errors import DlbenchError
from tests.cli_helpers import invoke

CV = ["cv", "--dataset", "iris", "--k", "5", "--repeats", "2", "--hidden", "16", "--seed", "0"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A baseline, its rerun, and a deliberately worse run of the same configuration (too few
    epochs: no configuration column changes, only the numbers)."""
    root = tmp_path_factory.mktemp("compare")
    made = {}
    for name, epochs in (("base", 30), ("again", 30), ("worse", 1)):
        result = invoke(*CV, "--epochs", epochs, "--out", root / name)
        assert result.exit_code == 0, result.output
        made[name] = root / name
    return made


def test_a_rerun_is_unchanged_and_exits_0(runs):
    result = invoke("compare", runs["base"], runs["again"], "--format", "json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["counts"]["unchanged"] == len(found["rows"]) > 0
    assert {row["verdict"] for row in found["rows"]} == {"unchanged"}


def test_a_worse_run_regresses_and_exits_1(runs):
    result = invoke("compare", runs["base"], runs["worse"], "--format", "json")
    assert result.exit_code == 1, result.output
    rows = pd.DataFrame(json.loads(result.stdout)["rows"])
    val = rows[(rows.split == "val") & (rows.metric == "accuracy")].iloc[0]
    assert val.verdict == "regressed" and val.delta < -val.tolerance and val.p_value < 0.05
    assert val.test.startswith("corrected resampled t")  # k-fold members: Nadeau & Bengio
    # the other way round, the same change is an improvement, and nothing fails
    back = invoke("compare", runs["worse"], runs["base"], "--format", "json")
    assert back.exit_code == 0
    assert "improved" in {r["verdict"] for r in json.loads(back.stdout)["rows"]}


def test_a_wide_tolerance_forgives_what_is_significant(runs):
    result = invoke("compare", runs["base"], runs["worse"], "--tolerance",
                    "accuracy:-90%,balanced_accuracy:-90%,f1_macro:-90%,log_loss:+1000%,"
                    "roc_auc:-90%,loss:+1000%", "--format", "json")
    assert result.exit_code == 0, result.output
    assert {r["verdict"] for r in json.loads(result.stdout)["rows"]} == {"unchanged"}


def test_missing_and_new_rows(runs, tmp_path):
    scores = pd.read_csv(runs["base"] / "scores.csv")
    (tmp_path / "less").mkdir()
    scores[scores.metric != "roc_auc"].to_csv(tmp_path / "less" / "scores.csv", index=False)
    missing = invoke("compare", runs["base"], tmp_path / "less")
    assert missing.exit_code == 1 and "missing" in missing.stdout
    new = invoke("compare", tmp_path / "less", runs["base"], "--format", "json")
    assert new.exit_code == 0
    assert "new" in {r["verdict"] for r in json.loads(new.stdout)["rows"]}


def test_markdown_is_a_table_for_a_ci_summary(runs):
    result = invoke("compare", runs["base"], runs["worse"], "--format", "markdown")
    lines = result.stdout.splitlines()
    assert lines[0].startswith("### compare ")
    assert lines[2] == "| setting | metric | baseline | current | Δ ±95% | p | verdict |"
    assert any(line.endswith("| regressed |") for line in lines)


@pytest.mark.parametrize("args, says", [
    (["{base}", "{nowhere}"], "does not exist"),
    (["{base}", "{empty}"], "holds no results"),
    (["{base}", "{base}", "--tolerance", "accuracy:+1%"], "accuracy is worse when it falls"),
    (["{base}", "{base}", "--tolerance", "nope:-1%"], "unknown metric 'nope'"),
    (["{base}", "{base}", "--tolerance", "accuracy=1"], "write METRIC:-N%"),
    (["{base}", "{base}", "--rope", "-1"], "--rope must be a positive number"),
    (["{base}", "{base}", "--format", "html"], "unknown format 'html'"),
    (["{base}", "{other}"], "share no configuration"),
])
def test_bad_input_is_exit_2_and_one_line(args, says, runs, tmp_path):
    (tmp_path / "empty").mkdir()
    other = tmp_path / "other"
    assert invoke("cv", "--dataset", "wine", "--k", "2", "--epochs", "1", "--out",
                  other).exit_code == 0
    paths = {"base": runs["base"], "nowhere": tmp_path / "nowhere", "empty": tmp_path / "empty",
             "other": other}
    result = invoke("compare", *[a.format(**paths) for a in args])
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert says in line, line


# --- the statistics, by hand --------------------------------------------------------------------


def frame(values: dict[int, float], metric: str = "accuracy", **columns) -> pd.DataFrame:
    return pd.DataFrame([{"model": "mlp", "split": "val", "metric": metric, **columns,
                          "seed": str(s), "value": v} for s, v in values.items()])


def results(frame: pd.DataFrame, ratio: float | None = None) -> compare.Results:
    return compare.Results(Path("x"), {"": frame}, {"": ratio})


def test_seeds_are_paired_and_judged_by_the_paired_t():
    base = {0: 0.90, 1: 0.92, 2: 0.91, 3: 0.93}
    now = {0: 0.85, 1: 0.88, 2: 0.84, 3: 0.89}
    [row] = compare.compare(results(frame(base)), results(frame(now)), {}).to_dict("records")
    expected = sps.ttest_rel(list(now.values()), list(base.values()))
    assert row["p_value"] == pytest.approx(expected.pvalue)
    assert row["delta"] == pytest.approx(np.mean(list(now.values())) - np.mean(list(base.values())))
    assert row["tolerance"] == pytest.approx(0.01 * np.mean(list(base.values())))
    assert row["verdict"] == "regressed"


def test_k_fold_members_use_the_corrected_resampled_t():
    base = {0: 0.90, 1: 0.92, 2: 0.91, 3: 0.93, 4: 0.90}
    now = {0: 0.88, 1: 0.91, 2: 0.88, 3: 0.92, 4: 0.88}
    ratio = 1 / 4  # 5-fold: each split evaluates on a quarter as many rows as it trains on
    [row] = compare.compare(results(frame(base), ratio), results(frame(now), ratio),
                            {}).to_dict("records")
    d = np.array(list(now.values())) - np.array(list(base.values()))
    se = math.sqrt((1 / len(d) + ratio) * d.var(ddof=1))  # Nadeau & Bengio (2003)
    assert row["p_value"] == pytest.approx(2 * sps.t.sf(abs(d.mean() / se), len(d) - 1))


def test_the_rope_probability_is_the_posterior_mass_within_it():
    base = {0: 0.90, 1: 0.92, 2: 0.91, 3: 0.93}
    now = {0: 0.905, 1: 0.918, 2: 0.915, 3: 0.932}
    [row] = compare.compare(results(frame(base)), results(frame(now)), {},
                            rope=0.01).to_dict("records")
    d = np.array(list(now.values())) - np.array(list(base.values()))
    posterior = sps.t(len(d) - 1, loc=d.mean(), scale=d.std(ddof=1) / math.sqrt(len(d)))
    assert row["p_equivalent"] == pytest.approx(posterior.cdf(0.01) - posterior.cdf(-0.01))
    assert row["verdict"] == "unchanged"


def test_a_lower_is_better_metric_regresses_upwards():
    base = {0: 0.30, 1: 0.32, 2: 0.31}
    now = {0: 0.40, 1: 0.43, 2: 0.41}
    [row] = compare.compare(results(frame(base, "log_loss")), results(frame(now, "log_loss")),
                            compare.parse_tolerance("log_loss:+5%")).to_dict("records")
    assert row["verdict"] == "regressed"
    [row] = compare.compare(results(frame(now, "log_loss")), results(frame(base, "log_loss")),
                            {}).to_dict("records")
    assert row["verdict"] == "improved"


def test_tolerances_parse_relative_and_absolute():
    found = compare.parse_tolerance("accuracy:-1%, loss:+0.05")
    assert found["accuracy"] == compare.Tolerance(0.01, True)
    assert found["loss"] == compare.Tolerance(0.05, False)
    assert found["accuracy"].allowed(0.9) == pytest.approx(0.009)
    with pytest.raises(DlbenchError, match="loss is worse when it rises"):
        compare.parse_tolerance("loss:-5%")


# --- wall time, only when asked ------------------------------------------------------------------


def timed(base: list[float], now: list[float]) -> tuple[compare.Results, compare.Results]:
    scores = frame({0: 0.9, 1: 0.91})
    return (compare.Results(Path("a"), {"e": scores}, {"e": None}, {"e": np.array(base)}),
            compare.Results(Path("b"), {"e": scores}, {"e": None}, {"e": np.array(now)}))


def test_time_is_compared_only_when_asked_by_welch_on_log_seconds():
    base, now = [1.0, 1.1, 0.95, 1.05], [1.5, 1.6, 1.45, 1.55]
    sides = timed(base, now)
    assert "seconds" not in set(compare.compare(*sides, {}).metric)
    found = compare.compare(*sides, compare.parse_tolerance("seconds:+20%"))
    [row] = found[found.metric == "seconds"].to_dict("records")
    expected = sps.ttest_ind(np.log(now), np.log(base), equal_var=False).pvalue
    assert row["p_value"] == pytest.approx(expected) and row["verdict"] == "regressed"
    assert row["current_mean"] == pytest.approx(math.exp(np.mean(np.log(now))))
    lenient = compare.compare(*sides, compare.parse_tolerance("seconds:+60%"))
    assert lenient[lenient.metric == "seconds"].verdict.item() == "unchanged"  # 1.46× < 1.6×
    faster = compare.compare(*timed(now, base), compare.parse_tolerance("seconds:+20%"))
    assert faster[faster.metric == "seconds"].verdict.item() == "improved"


def test_time_needs_repeated_timings_and_a_relative_slower_tolerance():
    scores = frame({0: 0.9, 1: 0.91})
    bare = compare.Results(Path("a"), {"e": scores}, {"e": None})
    with pytest.raises(DlbenchError, match="dlbench run --timings N"):
        compare.compare(bare, bare, compare.parse_tolerance("seconds:+20%"))
    for bad in ("seconds:-20%", "seconds:+2"):
        with pytest.raises(DlbenchError, match="write seconds:\\+"):
            compare.parse_tolerance(bad)


def test_members_that_diverged_only_now_are_a_regression():
    base = frame({0: 0.90, 1: 0.92, 2: 0.91})
    now = frame({0: math.nan, 1: math.nan, 2: math.nan})
    [row] = compare.compare(results(base), results(now), {}).to_dict("records")
    assert row["verdict"] == "regressed" and row["diverged_more"] == 3
    one = frame({0: 0.90, 1: math.nan, 2: 0.91})
    [row] = compare.compare(results(base), results(one), {}).to_dict("records")
    assert row["verdict"] == "regressed"
