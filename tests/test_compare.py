"""`dlbench compare`: rows matched on their configuration, a regression only when it is both
beyond the tolerance and significant, and the statistics against their formulas."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from dlbench.errors import DlbenchError
from dlbench.evaluate import compare, stats
from dlbench.output import report
from dlbench.results import sha256
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
    more = {"reseeded": [*CV[:-1], "1", "--epochs", "30"],
            "optimize": ["optimize", "--dataset", "iris", "--epochs", "1"]}
    for name, args in more.items():
        assert invoke(*args, "--out", root / name).exit_code == 0
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


def rerun_with(run: Path, out: Path, keep) -> Path:
    """A copy of `run` as if it had written only the rows `keep` picks (its manifest's checksum
    recomputed: a run of its own, not a damaged copy)."""
    shutil.copytree(run, out)
    scores = pd.read_csv(run / "scores.csv")
    keep(scores).to_csv(out / "scores.csv", index=False)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["sha256"]["scores.csv"] = sha256(out / "scores.csv")
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def test_missing_and_new_rows(runs, tmp_path):
    rerun_with(runs["base"], tmp_path / "less", lambda s: s[s.metric != "roc_auc"])
    missing = invoke("compare", runs["base"], tmp_path / "less")
    assert missing.exit_code == 1 and "missing" in missing.stdout
    new = invoke("compare", tmp_path / "less", runs["base"], "--format", "json")
    assert new.exit_code == 0
    assert "new" in {r["verdict"] for r in json.loads(new.stdout)["rows"]}


def test_a_run_with_fewer_folds_is_missing_and_fails(runs, tmp_path):
    """The current run holds 1 of the baseline's 10 splits (or lost its last lines): the
    members it lacks fail the gate, whatever the remaining ones say."""
    for name, keep in (("one", lambda s: s[(s.fold == 0) & (s.repeat == 0)]),
                       ("lines", lambda s: s.iloc[:len(s) // 4])):  # chance rows last
        rerun_with(runs["base"], tmp_path / name, keep)
        result = invoke("compare", runs["base"], tmp_path / name, "--format", "json")
        assert result.exit_code == 1, result.output
        rows = pd.DataFrame(json.loads(result.stdout)["rows"])
        val = rows[(rows.split == "val") & (rows.metric == "accuracy")].iloc[0]
        assert val.verdict == "missing" and val.current_members < val.baseline_members


def test_another_seed_is_compared_unpaired_and_said(runs):
    result = invoke("compare", runs["base"], runs["reseeded"], "--format", "json")
    found = json.loads(result.stdout)
    assert any("splits differ" in note for note in found["notes"])
    assert any("split.seed 0 → 1" in note for note in found["notes"])
    val = next(r for r in found["rows"] if r["split"] == "val" and r["metric"] == "accuracy")
    assert "unpaired" in val["test"]


def test_other_options_are_named(runs):
    result = invoke("compare", runs["base"], runs["worse"], "--format", "json")
    assert any("train.epochs 30 → 1" in n for n in json.loads(result.stdout)["notes"])


def test_repeated_holdout_runs_are_paired_by_split_and_corrected(tmp_path):
    holdout = ["cv", "--dataset", "iris", "--hidden", "16", "--protocol", "holdout",
               "--holdout-seeds", "5", "--seeds", "2"]
    for name, epochs in (("a", 20), ("b", 2)):
        assert invoke(*holdout, "--epochs", epochs, "--out", tmp_path / name).exit_code == 0
    splits = json.loads((tmp_path / "a" / "manifest.json").read_text())["splits"]
    assert len({s["rows"] for s in splits}) == 5 and {s["n_train"] + s["n_test"]
                                                       for s in splits} == {150}
    result = invoke("compare", tmp_path / "a", tmp_path / "b", "--format", "json")
    val = next(r for r in json.loads(result.stdout)["rows"]
               if r["split"] == "val" and r["metric"] == "accuracy")
    assert val["test"].startswith("corrected resampled t") and val["pairs"] == 5
    assert val["baseline_members"] == 10  # 5 splits × 2 seeds, averaged within each split


def test_runs_record_their_splits_and_a_rerun_the_same(runs):
    cv, again, optimize = (json.loads((runs[n] / "manifest.json").read_text())["splits"]
                           for n in ("base", "again", "optimize"))
    assert cv == again and len({s["rows"] for s in cv}) == 10  # 5 folds × 2 repeats
    for repeat in (0, 1):  # each repeat's folds evaluate every row once
        assert sum(s["n_test"] for s in cv if s["repeat"] == repeat) == 150
    [split] = optimize  # one train/validation/test split for every cell
    assert split["n_train"] > split["n_test"] > 0


def test_forward_chaining_folds_get_no_nadeau_bengio():
    run = kfold_run(4, 100)
    ordered = compare.RunInfo(run.command, run.config, run.fingerprint, run.splits, True)
    base, now = [0.90, 0.92, 0.91, 0.93], [0.86, 0.89, 0.87, 0.90]
    [row] = compare.compare(results(folds(base), ordered), results(folds(now), ordered),
                            {}).to_dict("records")
    d = np.array(now) - np.array(base)
    assert row["test"].startswith("heuristic: plain t over 4 forward-chaining folds")
    expected = sps.ttest_1samp(d, -0.01 * np.mean(base), alternative="less").pvalue
    assert row["p_value"] == pytest.approx(expected)


def test_tiny_deltas_read_in_scientific_notation():
    assert report.plus_minus(-5e-10, 1.1e-9) == "−5.0e−10±1.1e−09"
    assert report.plus_minus(-0.01234, 0.0081) == "−0.0123±0.0081"


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
    (["{base}", "{base}", "--tolerance", "accuracy:-1%,accuracy:-5%"], "names accuracy twice"),
    (["{base}", "{base}", "--metric", "accuracy"], "--metric applies to --rank"),
    (["{base}", "{base}", "--split", "val"], "--split applies to --rank"),
    (["--rank", "{base}", "{base}", "--rope", "0.01"], "--rope does not apply to --rank"),
    (["--rank", "{base}", "{base}", "--tolerance", "accuracy:-1%"],
     "--tolerance does not apply to --rank"),
    (["{base}", "{unfinished}"], "unfinished run (no manifest.json)"),
    (["{base}", "{cut}"], "truncated or damaged (line"),
    (["{base}", "{optimize}"], "the baseline is a run of 'cv' and the current one of 'optimize'"),
    (["{base}", "{damaged}"], "scores.csv is damaged: its sha256 differs from the manifest's"),
    (["{base}", "{shortened}"], "scores.csv is damaged: its sha256 differs from the manifest's"),
])
def test_bad_input_is_exit_2_and_one_line(args, says, runs, tmp_path):
    (tmp_path / "empty").mkdir()
    other = tmp_path / "other"
    assert invoke("cv", "--dataset", "wine", "--k", "2", "--epochs", "1", "--out",
                  other).exit_code == 0
    paths = {"base": runs["base"], "nowhere": tmp_path / "nowhere", "empty": tmp_path / "empty",
             "other": other, "unfinished": tmp_path / "unfinished", "cut": tmp_path / "cut",
             "optimize": runs["optimize"], "damaged": tmp_path / "damaged",
             "shortened": tmp_path / "shortened"}
    (tmp_path / "unfinished").mkdir()  # a run that stopped before its manifest
    shutil.copy(runs["base"] / "scores.csv", tmp_path / "unfinished")
    shutil.copytree(runs["base"], tmp_path / "cut")  # a copy cut inside a line
    text = (runs["base"] / "scores.csv").read_text()
    (tmp_path / "cut" / "scores.csv").write_text(text[:len(text) // 2])
    shutil.copytree(runs["base"], tmp_path / "damaged")  # one digit changed: still a valid CSV
    digit = text.index(",0.") + 3
    changed = text[:digit] + str((int(text[digit]) + 1) % 10) + text[digit + 1:]
    (tmp_path / "damaged" / "scores.csv").write_text(changed)
    shutil.copytree(runs["base"], tmp_path / "shortened")  # cut at a line's end after the run
    (tmp_path / "shortened" / "scores.csv").write_text(text[:text.index("\n", len(text) // 2) + 1])
    result = invoke("compare", *[a.format(**paths) for a in args])
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert says in line, line


# --- the statistics, by hand --------------------------------------------------------------------


def frame(values: dict[int, float], metric: str = "accuracy", **columns) -> pd.DataFrame:
    return pd.DataFrame([{"model": "mlp", "split": "val", "metric": metric, **columns,
                          "seed": str(s), "value": v} for s, v in values.items()])


def results(frame: pd.DataFrame, run: compare.RunInfo | None = None) -> compare.Results:
    return compare.Results(Path("x"), {"": frame}, {"": run} if run else {})


def kfold_run(k: int, n: int, seed: int = 0, fingerprint: str = "data") -> compare.RunInfo:
    """A k-fold run's record: k splits of n rows, each n / k evaluated."""
    records = [{"repeat": 0, "fold": f, "n_train": n - n // k, "n_test": n // k,
                "rows": f"{fingerprint}-{seed}-{f}"} for f in range(k)]
    return compare.RunInfo.of({"command": "cv", "config": {"split": {"seed": seed}},
                               "dataset": {"fingerprint": fingerprint}, "splits": records})


def folds(values: list[float], seeds: int = 1) -> pd.DataFrame:
    """values[f * seeds + s]: fold f, seed s."""
    return pd.DataFrame([{"model": "mlp", "split": "val", "metric": "accuracy", "repeat": "0",
                          "fold": str(i // seeds), "seed": str(i % seeds), "value": v}
                         for i, v in enumerate(values)])


def test_seeds_are_paired_and_judged_one_sided_against_the_tolerance():
    base = {0: 0.90, 1: 0.92, 2: 0.91, 3: 0.93}
    now = {0: 0.85, 1: 0.88, 2: 0.84, 3: 0.89}
    [row] = compare.compare(results(frame(base)), results(frame(now)), {}).to_dict("records")
    tolerance = 0.01 * np.mean(list(base.values()))
    d = np.array(list(now.values())) - np.array(list(base.values()))
    # H0: the drop is at most the tolerance; H1: it is larger (non-inferiority, one-sided)
    expected = sps.ttest_1samp(d, -tolerance, alternative="less")
    assert row["p_value"] == pytest.approx(expected.pvalue)
    assert row["delta"] == pytest.approx(d.mean())
    assert row["tolerance"] == pytest.approx(tolerance)
    assert row["verdict"] == "regressed"


def test_regressed_exactly_when_the_shown_interval_lies_beyond_the_tolerance():
    """The verdict and the table's 95% interval of Δ never contradict each other: across many
    drops near the tolerance, regressed <=> the whole interval is below -tolerance."""
    rng = np.random.default_rng(0)
    agree = []
    for _ in range(60):
        base = rng.normal(0.9, 0.01, 6)
        now = base + rng.normal(-0.02, 0.015, 6)
        [row] = compare.compare(results(frame(dict(enumerate(base)))),
                                results(frame(dict(enumerate(now)))), {}).to_dict("records")
        agree.append((row["verdict"] == "regressed") == (row["delta_ci_high"] < -row["tolerance"]))
    assert all(agree)


def test_one_unit_a_side_is_untested_never_unchanged():
    """With one seed a side no test exists: a drop of 0.6 must not read "unchanged"."""
    [row] = compare.compare(results(frame({0: 0.9})), results(frame({0: 0.3})), {}).to_dict(
        "records")
    assert row["verdict"] == "untested" and row["test"].startswith("none")


def test_a_drop_not_shown_beyond_the_tolerance_is_not_regressed():
    """Significantly below 0 (two-sided p < 0.05), but the interval holds drops smaller than
    the tolerance: the one-sided test against the tolerance does not call it regressed."""
    base = {0: 0.900, 1: 0.920, 2: 0.910, 3: 0.930, 4: 0.905}
    now = {0: 0.885, 1: 0.915, 2: 0.890, 3: 0.926, 4: 0.895}
    d = np.array(list(now.values())) - np.array(list(base.values()))
    assert sps.ttest_1samp(d, 0).pvalue < 0.05 and d.mean() < -0.01 * 0.913  # the old rule
    [row] = compare.compare(results(frame(base)), results(frame(now)), {}).to_dict("records")
    assert row["delta_ci_high"] > -row["tolerance"]  # the interval holds small drops
    assert row["p_value"] >= 0.05 and row["verdict"] == "unchanged"


def test_k_fold_members_use_the_corrected_resampled_t():
    base = [0.90, 0.92, 0.91, 0.93, 0.90]
    now = [0.88, 0.91, 0.88, 0.92, 0.88]
    run = kfold_run(5, 100)
    [row] = compare.compare(results(folds(base), run), results(folds(now), run),
                            {}).to_dict("records")
    d = np.array(now) - np.array(base)
    se = math.sqrt((1 / len(d) + 20 / 80) * d.var(ddof=1))  # Nadeau & Bengio (2003)
    tolerance = 0.01 * np.mean(base)
    assert row["p_value"] == pytest.approx(sps.t.cdf((d.mean() + tolerance) / se, len(d) - 1))
    assert row["test"].startswith("corrected resampled t") and "paired over 5 splits" in \
        row["test"]


def test_repeated_holdout_uses_the_recorded_split_sizes():
    """5 hold-out splits (fold 0 of repeats 0-4): the correction from n_test / n_train as
    recorded, not the plain t over seeds."""
    records = [{"repeat": r, "fold": 0, "n_train": 90, "n_test": 30, "rows": f"h{r}"}
               for r in range(5)]
    run = compare.RunInfo.of({"command": "cv", "config": {}, "dataset": {"fingerprint": "x"},
                              "splits": records})
    base = [0.90, 0.92, 0.91, 0.93, 0.90]
    now = [0.87, 0.90, 0.88, 0.92, 0.88]
    frames = [folds(v).assign(repeat=[str(r) for r in range(5)], fold="0") for v in (base, now)]
    [row] = compare.compare(results(frames[0], run), results(frames[1], run),
                            {}).to_dict("records")
    d = np.array(now) - np.array(base)
    se = math.sqrt((1 / 5 + 30 / 90) * d.var(ddof=1))
    assert row["p_value"] == pytest.approx(sps.t.cdf((d.mean() + 0.01 * np.mean(base)) / se, 4))
    assert row["test"].startswith("corrected resampled t")


def test_seeds_are_averaged_within_a_split_before_the_test():
    """4 folds × 3 seeds: 4 units (df 3), each a split's seed mean, as cv's own analysis."""
    rng = np.random.default_rng(0)
    base = rng.normal(0.9, 0.01, 12)
    now = base - rng.normal(0.03, 0.01, 12)
    run = kfold_run(4, 100)
    [row] = compare.compare(results(folds(list(base), 3), run),
                            results(folds(list(now), 3), run), {}).to_dict("records")
    d = (now - base).reshape(4, 3).mean(1)
    se = math.sqrt((1 / 4 + 25 / 75) * d.var(ddof=1))
    assert row["pairs"] == 4 and row["baseline_n"] == 4 and row["baseline_members"] == 12
    assert row["delta"] == pytest.approx(d.mean())
    assert row["p_value"] == pytest.approx(
        sps.t.cdf((d.mean() + 0.01 * base.reshape(4, 3).mean(1).mean()) / se, 3))


def test_other_splits_are_not_paired_but_compared_unpaired():
    """Another --seed: fold 0 is other rows. The same fold labels must not pair them."""
    base, now = [0.90, 0.92, 0.91, 0.93], [0.86, 0.88, 0.87, 0.89]
    a, b = kfold_run(4, 100, seed=0), kfold_run(4, 100, seed=1)
    [row] = compare.compare(results(folds(base), a), results(folds(now), b),
                            {}).to_dict("records")
    sides = [stats.corrected_estimate(v, n_train=75, n_test=25) for v in (base, now)]
    se = math.sqrt(sides[0].se ** 2 + sides[1].se ** 2)
    df = se ** 4 / (sides[0].se ** 4 / 3 + sides[1].se ** 4 / 3)  # Welch-Satterthwaite
    tolerance = 0.01 * np.mean(base)
    expected = sps.t.cdf((np.mean(now) - np.mean(base) + tolerance) / se, df)
    assert row["p_value"] == pytest.approx(expected) and "unpaired" in row["test"]
    said = compare.notes(results(folds(base), a), results(folds(now), b))
    assert any("splits differ" in line for line in said)
    assert any("options differ (split.seed 0 → 1)" in line for line in said)


def test_other_data_are_said_and_not_paired():
    base, now = [0.90, 0.92, 0.91, 0.93], [0.90, 0.92, 0.91, 0.93]
    a, b = kfold_run(4, 100), kfold_run(4, 100, fingerprint="shuffled labels")
    [row] = compare.compare(results(folds(base), a), results(folds(now), b),
                            {}).to_dict("records")
    assert "unpaired" in row["test"]
    [line] = compare.notes(results(folds(base), a), results(folds(now), b))
    assert "the data differ" in line and "shuffled labels" in line


def test_a_baseline_without_split_identity_falls_back_to_labels_and_says_so():
    old = compare.RunInfo.of({"command": "cv", "config": {}, "dataset": {"fingerprint": "data"}})
    base, now = [0.90, 0.92, 0.91, 0.93], [0.89, 0.92, 0.90, 0.93]
    [row] = compare.compare(results(folds(base), old), results(folds(now), kfold_run(4, 100)),
                            {}).to_dict("records")
    assert "paired over 4 splits" in row["test"]  # fold labels; k = 4 gives n_test / n_train
    said = compare.notes(results(folds(base), old), results(folds(now), kfold_run(4, 100)))
    assert any("baseline records no split identity" in line for line in said)


def test_fewer_members_than_the_baseline_are_missing():
    run = kfold_run(4, 100)
    base = folds([0.90, 0.92, 0.91, 0.93])
    [row] = compare.compare(results(base, run), results(base.iloc[:1], run),
                            {}).to_dict("records")
    assert row["verdict"] == "missing" and row["missing_members"] == 3
    assert row["baseline_members"] == 4 and row["current_members"] == 1


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


def test_an_option_added_since_with_an_empty_default_is_no_difference():
    """A baseline made before ModelSpec had `params`: its absence and [] are the same model;
    a value that is not empty still differs."""
    base, now = kfold_run(4, 100), kfold_run(4, 100)
    base.config["model"] = {"name": "mlp"}
    now.config["model"] = {"name": "mlp", "params": []}
    scores = folds([0.9, 0.92, 0.91, 0.93])
    assert not any("options differ" in line
                   for line in compare.notes(results(scores, base), results(scores, now)))
    now.config["model"]["params"] = [["width", 8]]
    said = compare.notes(results(scores, base), results(scores, now))
    assert any("options differ (model.params None → [['width', 8]])" in line for line in said)
