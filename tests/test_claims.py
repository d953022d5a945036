"""Claims the tool judges itself (evaluate/claims.py): each relation's three verdicts on score
tables built so that the answer must be that one, the power estimate against its normal
approximation, the TOML form's errors, claims.csv through `dlbench run`, and `compare` flagging
a claim whose verdict changed."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from dlbench.evaluate import claims, compare
from dlbench.evaluate.claims import Hypothesis, Side
from dlbench.evaluate.compare import Results
from tests.cli_helpers import assert_usage_error, invoke

A, B = Side("grid", "a"), Side("grid", "b")


def scores(values: dict[str, list[float]], statuses: dict[str, list[str]] | None = None,
           seeds: dict[str, list[int]] | None = None) -> Results:
    """One entry 'grid' whose cells have these validation accuracies, one per seed."""
    rows = [{"cell": cell, "seed": (seeds or {}).get(cell, range(len(v)))[i], "split": "val",
             "metric": metric, "value": x,
             "status": (statuses or {}).get(cell, ["ok"] * len(v))[i]}
            for cell, v in values.items() for i, x in enumerate(v)
            for metric in ("accuracy", "loss")]
    return Results(Path("."), {"grid": pd.DataFrame(rows)})


def paired(difference: np.ndarray, base: float = 0.8) -> Results:
    """Cell a = cell b + `difference`, seed by seed (b varies between seeds on its own)."""
    b = base + np.random.default_rng(1).normal(0, 0.05, len(difference))
    return scores({"a": list(b + difference), "b": list(b)})


def verdict(found: Results, relation: str, margin: float | None = None,
            metric: str = "accuracy") -> dict:
    h = Hypothesis("grid", "", relation, A, B, metric, "val", margin)
    return claims.judge(h, found, {"accuracy": True, "loss": False})


def noise(mean: float, sd: float, n: int, seed: int = 0) -> np.ndarray:
    """n values with exactly this mean and sample SD: the answer is fixed, not drawn."""
    x = np.random.default_rng(seed).normal(size=n)
    return mean + sd * (x - x.mean()) / x.std(ddof=1)


def test_a_difference_of_five_sds_over_ten_seeds_holds_and_its_mirror_fails():
    found = paired(noise(0.05, 0.01, 10))  # t = 5·√10 ≈ 16
    better = verdict(found, "better")
    assert better["verdict"] == "holds" and better["p"] < 1e-6
    assert better["ci_low"] > 0 and "paired over 10 seeds" in better["test"]
    assert math.isclose(better["effect"], 0.05)
    assert verdict(found, "worse")["verdict"] == "fails"
    assert verdict(found, "equivalent", margin=0.01)["verdict"] == "fails"  # beyond ±0.01
    assert verdict(paired(noise(-0.05, 0.01, 10)), "better")["verdict"] == "fails"


def test_a_lower_loss_is_better():
    found = scores({"a": [0.30, 0.31, 0.29, 0.30], "b": [0.50, 0.52, 0.49, 0.51]})
    assert verdict(found, "better", metric="loss")["verdict"] == "holds"
    assert verdict(found, "worse", metric="loss")["verdict"] == "fails"


def test_no_difference_with_a_tiny_spread_is_equivalent_and_fails_a_claimed_difference():
    found = paired(noise(0.0, 1e-4, 10))
    equivalent = verdict(found, "equivalent", margin=0.01)
    assert equivalent["verdict"] == "holds" and equivalent["p"] < claims.ALPHA
    assert verdict(found, "better", margin=0.01)["verdict"] == "fails"  # shown absent
    assert verdict(found, "better")["verdict"] == "inconclusive"  # no margin: not shown


def test_noise_is_inconclusive_and_says_how_many_seeds_would_tell():
    found = paired(noise(0.01, 0.05, 5))  # effect 0.2 SD over 5 seeds
    better = verdict(found, "better")
    assert better["verdict"] == "inconclusive"
    assert better["ci_low"] < 0 < better["ci_high"]
    assert better["seeds_needed"] == claims.seeds_needed(0.01, 0.05) > 5
    assert verdict(found, "equivalent", margin=0.01)["verdict"] == "inconclusive"


def test_a_side_that_diverged_on_every_member_loses_to_one_with_a_model():
    nan = float("nan")
    found = scores({"a": [0.9, 0.91, 0.92], "b": [nan, nan, nan]})
    assert verdict(found, "better")["verdict"] == "holds"
    assert verdict(found, "worse")["verdict"] == "fails"
    assert verdict(found, "equivalent", margin=0.01)["verdict"] == "fails"
    assert "every member of grid · b diverged" in verdict(found, "better")["test"]
    lost = scores({"a": [nan, nan], "b": [nan, nan]})
    assert verdict(lost, "better")["verdict"] == "inconclusive"


def test_unpaired_sides_say_so():
    found = scores({"a": [0.9, 0.91, 0.92], "b": [0.8, 0.81, 0.79]},
                   seeds={"a": [0, 1, 2], "b": [5, 6, 7]})
    better = verdict(found, "better")
    assert "unpaired" in better["test"] and better["verdict"] == "holds"


@pytest.mark.parametrize("relation, status", [("diverges", "diverged"), ("stalls", "stalled")])
def test_a_status_claim_holds_for_all_fails_for_none_else_inconclusive(relation, status):
    h = Hypothesis("grid", "", relation, A, None)
    for given, expected in (([status] * 3, "holds"), (["ok"] * 3, "fails"),
                            ([status, "ok", status], "inconclusive")):
        found = scores({"a": [0.1, 0.1, 0.1]}, {"a": given})
        assert claims.judge(h, found, {})["verdict"] == expected


def test_a_side_naming_several_cells_or_none_is_inconclusive_and_says_why():
    found = scores({"a": [0.9, 0.8], "b": [0.7, 0.6]})
    h = Hypothesis("grid", "", "better", Side("grid"), B)
    assert "2 cells" in claims.judge(h, found, {})["note"]
    h = Hypothesis("grid", "", "better", Side("missing"), B)
    assert "no finished results" in claims.judge(h, found, {})["note"]


@pytest.mark.parametrize("d", [0.2, 0.5, 1.0])
def test_seeds_needed_is_the_normal_approximation_rounded_up_plus_the_t_penalty(d):
    """n ≈ ((z_{1-α/2} + z_{0.8}) / d)²; a t test with n−1 degrees of freedom needs a few
    members more, never fewer; and at that n the power reaches 0.8, one fewer does not."""
    normal = ((sps.norm.ppf(0.975) + sps.norm.ppf(0.8)) / d) ** 2
    n = claims.seeds_needed(d, 1.0)
    assert math.ceil(normal) <= n <= math.ceil(normal) + 3

    def power(k):
        crit = sps.t.ppf(0.975, k - 1)
        return sps.nct.sf(crit, k - 1, d * math.sqrt(k)) + sps.nct.cdf(-crit, k - 1,
                                                                        d * math.sqrt(k))
    assert power(n) >= 0.8 > power(n - 1)
    assert claims.seeds_needed(-d, 1.0) == n  # the sign of the effect does not matter


def test_no_effect_seen_needs_no_number():
    assert math.isnan(claims.seeds_needed(0.0, 0.05))
    assert math.isnan(claims.seeds_needed(0.1, 0.0))


# --- through the command line ------------------------------------------------------------------

SUITE = """\
[entry.opt]
claim = "adam beats sgd on iris"
command = "optimize"
dataset = "iris"
opt = "sgd[lr=0.1],adam"
epochs = 2
seeds = 2
hidden = "8"
{hypothesis}
"""
HYPOTHESIS = """
[entry.opt.hypothesis]
compare = {optimizer = "adam"}
against = {optimizer = "sgd"}
expect = "better"
"""


def write(tmp_path: Path, hypothesis: str = HYPOTHESIS) -> Path:
    path = tmp_path / "suite.toml"
    path.write_text(SUITE.format(hypothesis=hypothesis))
    return path


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("claims")
    result = invoke("run", write(root), "--out", root / "out")
    assert result.exit_code == 0, result.output
    return root / "out", result.stdout


def test_run_writes_claims_csv_and_prints_the_verdict_first(ran):
    out, stdout = ran
    found = pd.read_csv(out / "claims.csv")
    assert list(found.columns) == list(claims.COLUMNS)
    row = found.iloc[0]
    assert (row.entry, row.relation, row.claim) == ("opt", "better", "adam beats sgd on iris")
    assert row.verdict in claims.VERDICTS and "paired over 2 seeds" in row.test
    assert json.loads((out / "suite.json").read_text())["claims"] == "claims.csv"
    header = next(line for line in stdout.splitlines() if line.lstrip().startswith("verdict"))
    assert header.split()[:2] == ["verdict", "claim"]
    assert row.verdict in stdout


def test_the_html_report_shows_the_claims_verdict_first(ran, tmp_path):
    page = tmp_path / "report.html"
    assert invoke("report", ran[0], "--out", page).exit_code == 0
    text = page.read_text()
    verdict = pd.read_csv(ran[0] / "claims.csv").verdict[0]
    assert "<h3>claims</h3><table><thead><tr><th class=left>verdict</th>" in text
    assert f"<td class=left>{verdict}</td><td class=left>opt: adam beats sgd on iris</td>" in text


REACH = '[entry.opt.hypothesis]\nagainst = "opt"\nexpect = "reaches-first"'


@pytest.mark.parametrize("hypothesis, says", [
    ('[entry.opt.hypothesis]\ncompare = {entry = "nope"}\nexpect = "stalls"', "unknown entry"),
    ('[entry.opt.hypothesis]\nexpect = "faster"', "unknown relation 'faster'"),
    ('[entry.opt.hypothesis]\nexpect = "stalls"\nmetric = "acc"', "unknown metric 'acc'"),
    ('[entry.opt.hypothesis]\nexpect = "stalls"\nsplit = "dev"', "unknown split 'dev'"),
    ('[entry.opt.hypothesis]\ncompare = {colour = 1}\nexpect = "stalls"', "coordinate 'colour'"),
    ('[entry.opt.hypothesis]\nagainst = "opt"\nexpect = "equivalent"', "needs a margin"),
    ('[entry.opt.hypothesis]\nagainst = "opt"\nexpect = "diverges"', "takes no against"),
    ('[entry.opt.hypothesis]\nexpect = "better"', "needs against"),
    ('[entry.opt.hypothesis]\nexpect = "stalls"\nwhy = 1', "unknown key 'why'"),
    ('[entry.opt.hypothesis]\ncompare = "rmsprop"\nexpect = "stalls"', "names no cell"),
    ('[entry.opt.hypothesis]\ncompare = {lr = 0.5}\nexpect = "stalls"', "names no cell"),
    ('[entry.opt.hypothesis]\nagainst = "opt"\nexpect = "reaches-first"', "needs a target"),
    (f'{REACH}\ntarget = "high"', "target is a number"),
    (f'{REACH}\ntarget = true', "target is a number"),
    ('[entry.opt.hypothesis]\nagainst = "opt"\nexpect = "better"\ntarget = 0.9',
     'expect = "better" takes no target'),
    ('[entry.opt.hypothesis]\nexpect = "stalls"\nagainst = 0.5', "takes no against"),
    ('[entry.opt.hypothesis]\nexpect = "stalls"\nmargin = 0.1', "takes no margin"),
    ('[entry.opt.hypothesis]\nagainst = 0.5\nexpect = "narrower"', "compares two sides"),
    ('[entry.opt.hypothesis]\nagainst = 0.5\nexpect = "reaches-first"\ntarget = 0.9',
     "compares two sides"),
    (f'{REACH}\ntarget = 0.9\nmetric = "log_loss"', "reads curves.csv"),
    (f'{REACH}\ntarget = 0.9\nsplit = "test"', "no accuracy on test"),
    (f'{REACH}\ntarget = 0.9\nmetric = "running_loss"', "no running_loss on val"),
    (f'{REACH}\ntarget = 0.9\ncost = "seconds"', "unknown cost 'seconds'"),
    ('[entry.opt.hypothesis]\nagainst = "opt"\nexpect = "overfits-sooner"\nmetric = "loss"',
     "takes no metric"),
    ('[entry.opt.hypothesis]\nagainst = "opt"\nexpect = "overfits-sooner"',
     "reads overfit's onset: compare's comes earlier; entry 'opt' runs optimize"),
    ('[entry.opt.hypothesis]\nagainst = "opt"\nexpect = "better"\nmetric = "best_epoch"',
     "neither better nor worse"),
])
def test_a_bad_hypothesis_is_one_line_before_anything_trains(hypothesis, says, tmp_path):
    out = tmp_path / "out"
    message = assert_usage_error(invoke("run", write(tmp_path, hypothesis), "--out", out), out)
    assert says in message and "hypothesis" in message


def _with_verdict(source: Path, to: Path, verdict: str | None) -> Path:
    shutil.copytree(source, to)
    if verdict is None:
        (to / "claims.csv").unlink()
    else:
        found = pd.read_csv(to / "claims.csv")
        found["verdict"] = verdict
        found.to_csv(to / "claims.csv", index=False)
    return to


@pytest.mark.parametrize("before, after, code", [
    ("holds", "fails", 1), ("holds", "inconclusive", 0), ("fails", "holds", 0),
    (None, "fails", 0),  # a baseline without claims.csv: no claims to compare
])
def test_compare_flags_a_claim_whose_verdict_changed(ran, tmp_path, before, after, code):
    base = _with_verdict(ran[0], tmp_path / "base", before)
    now = _with_verdict(ran[0], tmp_path / "now", after)
    result = invoke("compare", base, now)
    assert result.exit_code == code, result.output
    flagged = f"{before} -> {after}" in result.stdout
    assert flagged == (before is not None)
    assert ("REGRESSION" in result.stdout) == (code == 1)
    import dlbench  # the API says what the command line's exit code says

    assert dlbench.compare(base, now).regressed == (code == 1)


def test_the_shipped_hypotheses_name_cells_of_their_entries(tmp_path):
    """textbook.toml's and smoke.toml's hypotheses are read and their cells found in the
    prepared grids; smoke.toml (what `make regress` runs) has at least one."""
    from dlbench.cli import run, suites

    benchmarks = Path(__file__).resolve().parent.parent / "benchmarks"
    for name in ("textbook.toml", "smoke.toml"):
        suite = suites.load(benchmarks / name)
        assert any(e.hypotheses for e in suite.entries), name
        run._check_hypotheses([run._prepared(e, tmp_path / name / e.name)
                               for e in suite.entries if e.hypotheses])


def test_a_hypothesis_may_judge_a_metric_of_the_users_own(tmp_path):
    """Named as its rows name it; its direction comes from the run's manifest: a metric that
    is 1 − accuracy (lower is better) says adam 'better' exactly when accuracy says so."""
    (tmp_path / "mine.py").write_text(
        "def err(y, proba):\n    return float((proba.argmax(1) != y).mean())\n\n\n"
        "err.greater_is_better = False\n")
    metrics = f'metrics = "accuracy,{tmp_path}/mine.py:err"'
    suite = SUITE.replace('hidden = "8"', f'hidden = "8"\n{metrics}')
    both = "".join(HYPOTHESIS.replace("[entry.opt.hypothesis]", "[[entry.opt.hypothesis]]")
                   + extra for extra in ("", 'metric = "mine.py:err"\n'))
    path = tmp_path / "suite.toml"
    path.write_text(suite.format(hypothesis=both))
    result = invoke("run", path, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    found = pd.read_csv(tmp_path / "out" / "claims.csv")
    assert list(found.metric) == ["accuracy", "mine.py:err"]
    assert found.verdict.nunique() == 1 and found.effect.iloc[1] == pytest.approx(
        -found.effect.iloc[0])


def test_the_api_returns_and_shows_the_suites_claims_as_run_does(ran, capsys, monkeypatch):
    import dlbench

    monkeypatch.setenv("COLUMNS", "200")  # the width the command line's runner has
    out, _ = ran
    found = dlbench.run_suite(out / ".." / "suite.toml", out=out, show=True)
    pd.testing.assert_frame_equal(found.claims, claims.read(out))  # claims.csv, as read
    shown = capsys.readouterr().out
    assert shown == invoke("run", out / ".." / "suite.toml", "--out", out).stdout


# --- reaches-first, overfits-sooner, narrower, a number as against ------------------------------


def reach_curves(path: Path, epochs: dict[str, list[float]], last: int = 10,
                 steps: dict[str, int] | None = None) -> Results:
    """Entry 'grid' of `path` whose cells' validation accuracy is 0 until the member's epoch in
    `epochs` (inf: never) and 1 from it on, epochs 0..last; a cell's grad_evals grow by its
    `steps` per epoch (default 1), its examples by 100."""
    rows = [{"phase": "final", "cell": cell, "seed": seed, "epoch": e, "split": "val",
             "metric": metric, "value": float(e >= at) if metric == "accuracy" else 1.0 - (
                 e >= at), "grad_evals": e * (steps or {}).get(cell, 1), "examples": e * 100,
             "status": "ok"}
            for cell, ats in epochs.items() for seed, at in enumerate(ats)
            for e in range(last + 1) for metric in ("accuracy", "loss")]
    (path / "grid").mkdir(exist_ok=True)
    pd.DataFrame(rows).to_csv(path / "grid" / "curves.csv", index=False)
    return Results(path, {})


def reach(found: Results, target: float = 0.5, metric: str = "accuracy", compare: Side = A,
          against: Side = B, cost: str = "epochs") -> dict:
    h = Hypothesis("grid", "", "reaches-first", compare, against, metric, "val",
                   target=target, cost=cost)
    return claims.judge(h, found, {})


def test_reaching_a_target_in_fewer_epochs_holds_and_its_mirror_fails(tmp_path):
    found = reach_curves(tmp_path, {"a": [2, 3, 2, 3, 2], "b": [6, 8, 7, 9, 6]})
    first = reach(found)
    assert first["verdict"] == "holds" and math.isclose(first["effect"], -4.8)
    assert "epochs to reach accuracy >= 0.5 on val" in first["test"]
    assert "paired over 5 seeds" in first["test"] and "censored" not in first["test"]
    assert reach(found, compare=B, against=A)["verdict"] == "fails"
    # a falling metric reaches its target from above: loss is 1 until then, 0 after
    assert reach(found, 0.5, "loss")["effect"] == first["effect"]


def test_reaching_at_the_same_epoch_give_or_take_noise_is_inconclusive(tmp_path):
    found = reach_curves(tmp_path, {"a": [3, 5, 4, 5], "b": [4, 4, 5, 5]})
    judged = reach(found)
    assert judged["verdict"] == "inconclusive" and judged["ci_low"] < 0 < judged["ci_high"]
    assert judged["seeds_needed"] == claims.seeds_needed(-0.25, np.std([-1, 1, -1, 0], ddof=1))


def test_a_member_that_never_reaches_the_target_is_censored_one_epoch_past_its_last(tmp_path):
    inf = math.inf
    found = reach_curves(tmp_path, {"a": [1, 1, 2, 1], "b": [5, inf, 6, inf]}, last=8)
    judged = reach(found)
    assert judged["verdict"] == "holds"
    assert math.isclose(judged["effect"], np.mean([1 - 5, 1 - 9, 2 - 6, 1 - 9]))
    assert "2 of 4 against members never reached the target" in judged["test"]
    nowhere = reach_curves(tmp_path, {"a": [inf, inf], "b": [inf, inf]})
    judged = reach(nowhere)
    assert judged["verdict"] == "inconclusive" and "no member of either side" in judged["note"]


def test_reaching_first_in_epochs_can_cost_more_steps(tmp_path):
    """a reaches the target in fewer epochs, but takes 10 steps an epoch (a small batch) to
    b's 1: in grad_evals it is b that reaches it first; examples follow the epochs."""
    found = reach_curves(tmp_path, {"a": [2, 3, 2, 3], "b": [6, 7, 6, 8]},
                         steps={"a": 10, "b": 1})
    assert reach(found)["verdict"] == "holds"
    steps = reach(found, cost="grad_evals")
    assert steps["verdict"] == "fails" and math.isclose(steps["effect"], 25 - 6.75)
    assert math.isclose(reach(found, cost="examples")["effect"], 100 * reach(found)["effect"])


def onsets(onset: dict[str, list[float]], statuses: dict[str, list[str]] | None = None,
           epochs: int = 20) -> Results:
    """Entry 'grid', an overfit run of `epochs` epochs whose cells' members overfit from these
    epochs (NaN: never)."""
    rows = [{"cell": cell, "seed": seed, "checkpoint": "", "split": "val",
             "metric": "onset_epoch", "value": value,
             "status": (statuses or {}).get(cell, ["ok"] * len(v))[seed]}
            for cell, v in onset.items() for seed, value in enumerate(v)]
    run = compare.RunInfo("overfit", {"train": {"epochs": epochs}}, None, {})
    return Results(Path("."), {"grid": pd.DataFrame(rows)}, {"grid": run})


def sooner(found: Results, compare_side: Side = A, against: Side = B) -> dict:
    h = Hypothesis("grid", "", "overfits-sooner", compare_side, against, "onset_epoch")
    return claims.judge(h, found, {})


def test_an_earlier_onset_holds_its_mirror_fails_and_noise_is_inconclusive():
    found = onsets({"a": [3, 4, 3, 5, 4], "b": [10, 12, 11, 13, 12]})
    judged = sooner(found)
    assert judged["verdict"] == "holds" and math.isclose(judged["effect"], -7.8)
    assert "overfitting onset" in judged["test"]
    assert sooner(found, B, A)["verdict"] == "fails"
    noisy = sooner(onsets({"a": [3, 9, 5, 8], "b": [6, 5, 7, 6]}))
    assert noisy["verdict"] == "inconclusive" and noisy["seeds_needed"] > 4


def test_a_member_that_never_overfits_is_censored_at_the_budget_and_a_diverged_one_dropped():
    nan = float("nan")
    found = onsets({"a": [3, 4, 3, 5], "b": [10, nan, 12, nan]},
                   {"b": ["ok", "ok", "ok", "diverged"]}, epochs=20)
    judged = sooner(found)
    # seed 1 never overfit: 21; seed 3 diverged: no onset to pair
    assert math.isclose(judged["effect"], np.mean([3 - 10, 4 - 21, 3 - 12]))
    assert "1 of 4 against members never overfit: censored at the epoch budget + 1" \
        in judged["test"]
    assert "t over 3 seeds" in judged["test"]  # the diverged seed has no difference
    never = sooner(onsets({"a": [nan, nan], "b": [nan, nan]}))
    assert never["verdict"] == "inconclusive" and "overfit" in never["note"]


def spread(compare_values: list[list[float]], against_values: list[float]) -> Results:
    """Entry 'kfold' (cv rows: each repeat's folds) and entry 'holdout' (one seed each)."""
    kfold = [{"repeat": r, "fold": f, "seed": 0, "split": "val", "metric": "accuracy",
              "value": v, "status": "ok"}
             for r, folds in enumerate(compare_values) for f, v in enumerate(folds)]
    holdout = [{"seed": s, "split": "val", "metric": "accuracy", "value": v, "status": "ok"}
               for s, v in enumerate(against_values)]
    return Results(Path("."), {"kfold": pd.DataFrame(kfold), "holdout": pd.DataFrame(holdout)})


def narrower(found: Results, compare_side: str = "kfold", against: str = "holdout") -> dict:
    h = Hypothesis("kfold", "", "narrower", Side(compare_side), Side(against))
    return claims.judge(h, found, {})


def test_steadier_estimates_are_narrower_by_brown_forsythe_and_the_mirror_fails():
    repeats = [list(m + np.array([-0.05, 0.05])) for m in noise(0.9, 0.002, 8)]
    holdout = list(noise(0.9, 0.03, 8, seed=1))
    judged = narrower(spread(repeats, holdout))
    means = np.mean(repeats, axis=1)  # the unit: each repeat's mean over its folds
    assert judged["verdict"] == "holds"
    assert math.isclose(judged["effect"], np.std(means, ddof=1) / 0.03)
    assert math.isclose(judged["p"], sps.levene(means, holdout, center="median").pvalue)
    assert judged["ci_low"] < judged["effect"] < judged["ci_high"] < 1
    assert "8 repeats vs 8 members" in judged["test"]
    mirror = Hypothesis("kfold", "", "narrower", Side("holdout"), Side("kfold"))
    assert claims.judge(mirror, spread(repeats, holdout), {})["verdict"] == "fails"


def test_a_like_spread_is_inconclusive_and_says_how_many_units_would_tell():
    repeats = [[v] for v in noise(0.9, 0.02, 6)]
    judged = narrower(spread(repeats, list(noise(0.9, 0.025, 6, seed=2))))
    assert judged["verdict"] == "inconclusive"
    assert judged["seeds_needed"] == claims.spread_units_needed(0.8) > 6
    assert math.isnan(claims.spread_units_needed(1.0))
    lone = narrower(spread([[0.9, 0.8]], [0.9, 0.8, 0.85]))  # one repeat: one estimate
    assert lone["verdict"] == "inconclusive" and "fewer than 2" in lone["note"]


@pytest.mark.parametrize("n", [5, 20])
def test_the_spread_units_needed_reach_the_power_and_one_fewer_does_not(n):
    """At the SD ratio that the F test tells with 80% power at n units, n is what it says."""
    def power(k, ratio):
        f = sps.f(k - 1, k - 1)
        return f.sf(f.ppf(0.975) / ratio**2) + f.cdf(f.ppf(0.025) / ratio**2)
    ratio = next(r for r in np.linspace(0.99, 0.05, 2000) if power(n, r) >= 0.8)
    needed = claims.spread_units_needed(ratio)
    assert power(needed, ratio) >= 0.8 > power(needed - 1, ratio) and needed <= n


def test_a_number_as_against_is_a_one_sample_test():
    found = scores({"a": list(noise(0.9, 0.01, 10))})

    def against(value: float, relation: str = "better", margin: float | None = None) -> dict:
        h = Hypothesis("grid", "", relation, A, value, "accuracy", "val", margin)
        return claims.judge(h, found, {"accuracy": True})

    above = against(0.88)  # t = 0.02 / (0.01 / √10) ≈ 6.3
    assert above["verdict"] == "holds" and math.isclose(above["effect"], 0.02)
    assert "one-sample against 0.88" in above["test"]
    assert math.isclose(above["p"], sps.ttest_1samp(noise(0.9, 0.01, 10), 0.88).pvalue)
    assert against(0.95)["verdict"] == "fails"
    assert against(0.88, "worse")["verdict"] == "fails"
    assert against(0.9, "equivalent", margin=0.02)["verdict"] == "holds"
    assert against(0.899)["verdict"] == "inconclusive"
    assert claims._row(Hypothesis("grid", "", "better", A, 0.88), above)["against"] == "0.88"


def overfit_dir(root: Path, gaps: dict[str, list[float]]) -> Path:
    """A finished overfit run 'grid' in suite directory `root` whose cells have these
    gap_final values (its scores as overfit writes its curve measures)."""
    rows = [{"cell": cell, "seed": seed, "checkpoint": "", "split": "val", "metric": metric,
             "value": value, "status": "ok"}
            for cell, v in gaps.items() for seed, value in enumerate(v)
            for metric in ("gap_final", "best_epoch")]
    (root / "grid").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(root / "grid" / "scores.csv", index=False)
    (root / "grid" / "manifest.json").write_text(json.dumps({"command": "overfit"}))
    return root


def test_a_smaller_gap_is_better(tmp_path):
    root = overfit_dir(tmp_path, {"a": [0.10, 0.12, 0.11, 0.10], "b": [0.30, 0.33, 0.31, 0.32]})
    hypotheses = [Hypothesis("grid", "", relation, A, B, "gap_final")
                  for relation in ("better", "worse")]
    judged = claims.judge_suite(root, hypotheses)
    assert list(judged.verdict) == ["holds", "fails"] and judged.effect[0] < 0
    from dlbench.evaluate.metrics import CURVE_MEASURES

    assert CURVE_MEASURES["gap_final"] is False and CURVE_MEASURES["gap_best"] is False
    same = claims.judge_suite(root, [Hypothesis("grid", "", "equivalent", A, B, "best_epoch",
                                                margin=0.5)])
    assert same.verdict[0] == "holds"  # best_epoch has no direction; equivalence reads it


SOONER = """\
[entry.opt]
command = "optimize"
dataset = "iris"
opt = "sgd[lr=0.001],adam[lr=0.05]"
epochs = 4
seeds = 2
hidden = "8"

[entry.opt.hypothesis]
compare = {optimizer = "adam"}
against = {optimizer = "sgd"}
expect = "reaches-first"
target = 0.7

[entry.wide]
command = "overfit"
dataset = "iris"
hidden = "64,64"
reg = "none"
lr = 0.05
epochs = 12
seeds = 3
train-rows = 30

[[entry.wide.hypothesis]]
against = "narrow"
expect = "overfits-sooner"

[[entry.wide.hypothesis]]
against = "narrow"
metric = "gap_final"
expect = "better"

[entry.narrow]
command = "overfit"
dataset = "iris"
hidden = "2"
reg = "none"
lr = 0.05
epochs = 12
seeds = 3
train-rows = 30
"""


def test_reaches_first_and_overfits_sooner_through_dlbench_run(tmp_path):
    """claims.csv's effects are what the entries' own files say: each adam seed's first epoch
    at validation accuracy >= 0.7 less sgd's (never: one past the last), and each wide seed's
    onset less narrow's (never: the budget + 1)."""
    path = tmp_path / "suite.toml"
    path.write_text(SOONER)
    result = invoke("run", path, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    found = pd.read_csv(tmp_path / "out" / "claims.csv")
    assert list(found.relation) == ["reaches-first", "overfits-sooner", "better"]
    assert list(found.metric) == ["accuracy", "onset_epoch", "gap_final"]
    assert set(found.verdict) <= set(claims.VERDICTS)

    curves = pd.read_csv(tmp_path / "out" / "opt" / "curves.csv")
    curves = curves[(curves.split == "val") & (curves.metric == "accuracy")]
    first = {(opt, seed): min(g.epoch[g.value >= 0.7], default=g.epoch.max() + 1)
             for (opt, seed), g in curves.groupby(["optimizer", "seed"])}
    effect = np.mean([first["adam", s] - first["sgd", s] for s in (0, 1)])
    assert found.effect[0] == pytest.approx(effect)
    assert "epochs to reach accuracy >= 0.7 on val" in found.test[0]

    onset = {}
    for entry in ("wide", "narrow"):
        rows = pd.read_csv(tmp_path / "out" / entry / "scores.csv")
        onset[entry] = rows[rows.metric == "onset_epoch"].set_index("seed").value.fillna(13)
    assert found.effect[1] == pytest.approx((onset["wide"] - onset["narrow"]).mean())
    assert "overfitting onset" in found.test[1] and "paired over 3 seeds" in found.test[2]


@pytest.mark.parametrize("n, shown", [(3, "inconclusive"), (5, "inconclusive"), (6, "holds")])
def test_the_same_difference_on_every_unit_is_weighed_by_the_exact_sign_test(n, shown):
    """Discrete counts (epochs to a target, censored members) often differ by the same amount
    on every seed: a t test would call that certain (its spread is 0); n units on one side
    are what the sign test says they are, 2·0.5ⁿ two-sided."""
    found = scores({"a": [0.9] * n, "b": [0.8] * n})
    better = verdict(found, "better")
    assert better["verdict"] == shown and math.isclose(better["p"], 2 * 0.5 ** n)
    assert "exact sign test over" in better["test"]
    assert verdict(found, "worse")["verdict"] == ("fails" if shown == "holds" else shown)
    same = verdict(scores({"a": [0.8] * n, "b": [0.8] * n}), "equivalent", margin=0.01)
    assert same["verdict"] == ("holds" if 0.5 ** n < claims.ALPHA else "inconclusive")


def test_a_side_may_name_the_chance_baseline_and_is_paired_with_it_fold_by_fold():
    """cv's chance rows (model chance, no seed) are read only where a side names them."""
    rows = [{"model": model, "repeat": "0", "fold": str(f), "seed": seed, "split": "val",
             "metric": "accuracy", "value": value, "status": "ok"}
            for f in range(5) for model, seed, value in
            (("mlp", "0", 0.9 + 0.01 * f), ("chance", "-1", 0.5 + 0.02 * (f % 2)))]
    found = Results(Path("."), {"cv": pd.DataFrame(rows)})
    model, chance = Side("cv", "", (("model", "mlp"),)), Side("cv", "", (("model", "chance"),))
    h = Hypothesis("cv", "", "better", model, chance)
    judged = claims.judge(h, found, {"accuracy": True})
    assert judged["verdict"] == "holds"
    expected = np.mean([0.9 + 0.01 * f - 0.5 - 0.02 * (f % 2) for f in range(5)])
    assert math.isclose(judged["effect"], expected)
    # a side that does not name the baseline never reads its rows
    h = Hypothesis("cv", "", "better", Side("cv"), chance)
    assert math.isclose(claims.judge(h, found, {"accuracy": True})["effect"], expected)


def test_claims_differing_only_in_target_are_two_claims_and_an_older_file_still_reads(tmp_path):
    """compare keys a claim by its target too; a claims.csv written before target and cost
    existed reads them as blank."""
    row = dict.fromkeys(claims.COLUMNS, "") | {
        "entry": "bn", "relation": "reaches-first", "compare": "bn · on", "against": "bn · off",
        "metric": "accuracy", "split": "train", "cost": "epochs"}
    base, now, old = (tmp_path / n for n in ("base", "now", "old"))
    for path, verdicts in ((base, ("holds", "holds")), (now, ("holds", "fails"))):
        path.mkdir()
        pd.DataFrame([row | {"target": t, "verdict": v} for t, v in
                      zip((0.5, 0.9), verdicts, strict=True)]).to_csv(path / "claims.csv")
    changes = compare.claim_changes(base, now)
    assert changes[["baseline", "current"]].values.tolist() == [["holds", "fails"]]
    assert changes.regression.tolist() == [True]
    old.mkdir()
    older = {k: v for k, v in row.items() if k not in ("target", "cost")} | {"verdict": "holds"}
    pd.DataFrame([older]).to_csv(old / "claims.csv")
    assert compare.claim_changes(old, old).empty
