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

from dlbench.evaluate import claims
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
