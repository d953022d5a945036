"""compare --rank: ranks, Friedman, Nemenyi, Wilcoxon and performance profiles against their
published formulas on small hand-made tables."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from dlbench.evaluate import ranking
from tests.cli_helpers import assert_usage_error, invoke

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# 5 problems × 3 methods (accuracy, higher is better); ranks per row worked out by hand
SCORES = pd.DataFrame({"a": [0.90, 0.80, 0.70, 0.95, 0.60],
                       "b": [0.85, 0.82, 0.65, 0.90, 0.55],
                       "c": [0.80, 0.75, 0.60, 0.90, 0.50]},
                      index=[f"p{i}" for i in range(5)])
RANKS = {"a": (1 + 2 + 1 + 1 + 1) / 5, "b": (2 + 1 + 2 + 2.5 + 2) / 5,
         "c": (3 + 3 + 3 + 2.5 + 3) / 5}


def test_mean_ranks_give_rank_1_to_the_best_and_share_ties():
    ranked = ranking.rank(SCORES, "accuracy")
    assert ranked.ranks.to_dict() == pytest.approx(RANKS)
    assert list(ranked.ranks.index) == ["a", "b", "c"]
    lower = ranking.rank(-SCORES, "log_loss")  # lower is better: the same order
    assert lower.ranks.to_dict() == pytest.approx(RANKS)


def test_friedman_is_the_textbook_statistic():
    """Friedman (1937) as in Demšar (2006), eq. 1, with scipy's tie correction."""
    ranked = ranking.rank(SCORES, "accuracy")
    n, k = SCORES.shape
    r = np.array(list(RANKS.values()))
    chi2 = 12 * n / (k * (k + 1)) * (np.sum(r ** 2) - k * (k + 1) ** 2 / 4)
    ties = 1 - (2 ** 3 - 2) / (n * (k ** 3 - k))  # one tie of two in problem p3
    assert ranked.friedman[0] == pytest.approx(chi2 / ties)
    assert ranked.friedman[1] == pytest.approx(sps.chi2.sf(chi2 / ties, k - 1))


def test_nemenyi_critical_difference_is_demsars():
    """CD = q_α sqrt(k(k+1)/(6N)), q_0.05 = 2.343 for k = 3 (Demšar 2006, table 5a)."""
    ranked = ranking.rank(SCORES, "accuracy")
    assert ranked.critical_difference == pytest.approx(2.343 * math.sqrt(3 * 4 / 30), abs=1e-3)
    # a pair differs when its mean ranks are further apart than CD, and only then
    for a in "abc":
        for b in "abc":
            if a != b:
                apart = abs(RANKS[a] - RANKS[b]) > ranked.critical_difference
                assert (ranked.nemenyi.loc[a, b] < 0.05) == apart, (a, b)


def test_two_methods_get_wilcoxon_and_no_friedman():
    ranked = ranking.rank(SCORES[["a", "c"]], "accuracy")
    assert math.isnan(ranked.friedman[1]) and ranked.nemenyi is None
    expected = sps.wilcoxon(SCORES["a"], SCORES["c"])
    assert ranked.wilcoxon == pytest.approx((expected.statistic, expected.pvalue))


def test_performance_profiles_by_hand():
    costs = pd.DataFrame({"fast": [100, 200, np.nan], "slow": [150, 100, 300]},
                         index=["p0", "p1", "p2"])
    found = ranking.profiles(costs, np.array([1.0, 1.5, 2.0, 4.0]))
    # ratios to the best: fast 1, 2, unsolved; slow 1.5, 1, 1
    assert found["fast"].tolist() == pytest.approx([1 / 3, 1 / 3, 2 / 3, 2 / 3])
    assert found["slow"].tolist() == pytest.approx([2 / 3, 1, 1, 1])


# --- the command ---------------------------------------------------------------------------------


def fake_run(root: Path, name: str, scores: dict[str, float], costs: dict[str, float]) -> Path:
    """A finished results directory with what --rank reads: scores.csv (2 seeds a cell),
    summary.csv and a manifest."""
    run = root / name
    run.mkdir(parents=True)
    rows = [{"dataset": name, "phase": "final", "cell": cell, "model": "mlp", "seed": s,
             "split": "val", "metric": "accuracy", "value": v + 0.001 * s, "status": "ok"}
            for cell, v in scores.items() for s in range(2)]
    pd.DataFrame(rows).to_csv(run / "scores.csv", index=False)
    pd.DataFrame({"cell": list(costs), "grad_evals_to_target": list(costs.values())}).to_csv(
        run / "summary.csv", index=False)
    (run / "manifest.json").write_text('{"command": "optimize"}')  # a finished run
    return run


@pytest.fixture
def problems(tmp_path) -> list[Path]:
    return [fake_run(tmp_path / "in", p, SCORES.loc[p].to_dict(),
                     {"a": 100 + i, "b": 150, "c": 500}) for i, p in enumerate(SCORES.index)]


def test_rank_writes_its_tables_and_figures(problems, tmp_path):
    out = tmp_path / "out"
    result = invoke("compare", "--rank", *problems, "--cost", "grad_evals", "--out", out)
    assert result.exit_code == 0, result.output
    ranks = pd.read_csv(out / "ranks.csv")
    assert ranks.method.tolist() == ["a", "b", "c"]
    assert ranks.mean_rank.tolist() == pytest.approx(list(RANKS.values()))
    for png in ("critical_difference.png", "profiles.png"):
        assert (out / png).read_bytes()[:8] == PNG_MAGIC
    profiles = pd.read_csv(out / "profiles.csv")
    assert profiles["a"].iloc[0] == 1.0 and profiles["c"].iloc[-1] == 0.0  # c: 4.8-5× the best
    assert "Friedman: chi²" in result.stdout


def test_rank_as_json(problems, tmp_path):
    result = invoke("compare", "--rank", *problems, "--out", tmp_path / "o", "--format", "json")
    found = json.loads(result.stdout)
    assert [r["method"] for r in found["ranks"]] == ["a", "b", "c"]


@pytest.mark.parametrize("args, says", [
    (["--metric", "nope"], "--metric: unknown metric 'nope'"),
    (["--cost", "nope"], "--cost: unknown cost 'nope'"),
    (["--split", "test"], "needs at least 2 problems"),
])
def test_rank_bad_input_is_one_line(args, says, problems, tmp_path):
    out = tmp_path / "out"
    result = invoke("compare", "--rank", *problems, *args, "--out", out)
    assert result.exit_code == 2 and says in result.stderr, result.output
    assert not out.exists()


def test_rank_options_without_rank_are_refused(problems):
    result = invoke("compare", *problems[:2], "--metric", "log_loss")
    assert result.exit_code == 2 and "--metric applies to --rank" in result.stderr
    three = invoke("compare", *problems[:3])
    assert three.exit_code == 2 and "BASELINE CURRENT (2 paths), got 3" in three.stderr


# 6 problems × 5 methods where Friedman does not reject (p 0.063) but Nemenyi alone would call
# a pair (columns 2 and 4) different (p 0.049): a random search over rank tables found it
UNREJECTED = pd.DataFrame([[1, 4, 2, 3, 0], [3, 2, 0, 4, 1], [4, 2, 0, 1, 3], [0, 3, 1, 2, 4],
                           [2, 4, 1, 3, 0], [1, 4, 0, 3, 2]], columns=list("vwxyz"),
                          index=[f"q{i}" for i in range(6)], dtype=float)


def test_no_post_hoc_test_unless_friedman_rejects():
    ranked = ranking.rank(UNREJECTED, "accuracy")
    assert ranked.friedman[1] > ranking.ALPHA
    assert ranked.nemenyi is None  # Demšar (2006): the post-hoc test follows a rejection only
    assert ranking.rank(SCORES, "accuracy").friedman[1] < ranking.ALPHA  # the contrast
    assert ranking.rank(SCORES, "accuracy").nemenyi is not None


def test_rank_says_inconclusive_when_friedman_does_not_reject(tmp_path):
    runs = [fake_run(tmp_path / "in", p, UNREJECTED.loc[p].to_dict(), {}) for p in
            UNREJECTED.index]
    result = invoke("compare", "--rank", *runs, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "significantly different" not in result.stdout
    assert "inconclusive" in result.stdout and "no post-hoc test" in result.stdout
    assert not (tmp_path / "out" / "nemenyi.csv").exists()


def with_manifest(run: Path, data: str, **config) -> Path:
    (run / "manifest.json").write_text(json.dumps({
        "command": "optimize", "config": {"epochs": 15, "seed": 0, **config},
        "dataset": {"name": data, "fingerprint": "f" + data}}))
    return run


def test_a_problem_given_twice_is_refused(problems, tmp_path):
    rerun = tmp_path / "rerun"
    shutil.copytree(problems[0].parent, rerun)  # the same runs under another directory
    out = tmp_path / "out"
    line = assert_usage_error(invoke("compare", "--rank", *problems, rerun / problems[0].name,
                                     "--out", out), out)
    assert f"{problems[0].name} and {problems[0].name} are the same problem" in line


def test_the_same_configuration_with_another_seed_is_the_same_problem(problems, tmp_path):
    for run in problems:
        with_manifest(run, run.name)
    data = problems[0].name
    twin = with_manifest(shutil.copytree(problems[0], tmp_path / "twin"), data, seed=7)
    out = tmp_path / "out"
    assert "same problem" in assert_usage_error(
        invoke("compare", "--rank", *problems, twin, "--out", out), out)
    other = with_manifest(shutil.copytree(problems[0], tmp_path / "longer"), data, epochs=30)
    assert invoke("compare", "--rank", *problems, other, "--out", out).exit_code == 0
