"""The regression gate (`make regress`): each suite run afresh against its kept baseline
(`make baseline`: each entry's scores and manifest, the suite's claims.csv and suite.json).
A claim that held and now fails, or that is no longer judged, fails the gate; one that is no
longer shown to hold (inconclusive) is said plainly without failing it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from dlbench.cli import suites
from dlbench.evaluate import claims, compare
from tests import test_claims as claims_suite
from tests.cli_helpers import invoke

ROOT = Path(__file__).resolve().parent.parent
# test_claims's suite with a second hypothesis, and paths on a function (its starts' scores)
SUITE = claims_suite.SUITE.format(hypothesis=claims_suite.HYPOTHESIS.replace(
    "[entry.opt.hypothesis]", "[[entry.opt.hypothesis]]") + """
[[entry.opt.hypothesis]]
compare = {optimizer = "sgd"}
expect = "diverges"

[entry.bowl]
command = "optimize"
function = "anisotropic"
steps = 5
""")


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gate")
    (root / "suite.toml").write_text(SUITE)
    result = invoke("run", root / "suite.toml", "--quick", "--out", root / "out")
    assert result.exit_code == 0, result.output
    return root / "out"


def keep_baseline(run: Path, baseline: Path) -> None:
    """`make keep-baseline`, as `make baseline` calls it, on a copy of `run`."""
    copy = baseline.parent / f"{baseline.name}.new"
    shutil.copytree(run, copy)
    subprocess.run(["make", "-s", "-C", str(ROOT), "keep-baseline", f"RUN={copy}",
                    f"BASELINE={baseline}"], check=True, capture_output=True)
    assert not copy.exists()


def test_the_kept_baseline_is_what_compare_reads_and_nothing_more(ran, tmp_path):
    baseline = tmp_path / "baseline"
    keep_baseline(ran, baseline)
    assert sorted(str(p.relative_to(baseline)) for p in baseline.rglob("*") if p.is_file()) == [
        "bowl/manifest.json", "bowl/scores.csv", "claims.csv", "opt/manifest.json",
        "opt/scores.csv", "suite.json"]
    assert json.loads((baseline / "suite.json").read_text())["profile"] == "quick"
    result = invoke("compare", baseline, ran)
    assert result.exit_code == 0, result.output
    assert compare.claim_changes(baseline, ran).empty  # its claims were read, and agree


def _claims_of(source: Path, to: Path, change) -> Path:
    shutil.copytree(source, to)
    found = pd.read_csv(to / "claims.csv")
    change(found).to_csv(to / "claims.csv", index=False)
    return to


@pytest.mark.parametrize("base, now, says, code", [
    (lambda f: f.assign(verdict="holds"), lambda f: f.iloc[1:], "holds -> missing — REGRESSION",
     1),
    (lambda f: f.iloc[1:], lambda f: f, "new -> ", 0),
    (lambda f: f.assign(verdict="holds"), lambda f: f.assign(verdict="inconclusive"),
     "holds -> inconclusive — NO LONGER SHOWN TO HOLD", 0),
    (lambda f: f.assign(verdict="holds"), lambda f: f.assign(verdict="fails"),
     "holds -> fails — REGRESSION", 1),
])
def test_each_change_of_a_claim_is_said_and_the_lost_ones_fail_the_gate(ran, tmp_path, base,
                                                                       now, says, code):
    before = _claims_of(ran, tmp_path / "base", base)
    after = _claims_of(ran, tmp_path / "now", now)
    result = invoke("compare", before, after)
    assert result.exit_code == code, result.output
    assert says in result.stdout
    import dlbench  # the API says what the exit code says

    assert dlbench.compare(before, after).regressed == (code == 1)


BASELINE = ROOT / "results" / "baseline-textbook"


@pytest.mark.skipif(not BASELINE.exists(), reason="results/baseline-textbook is made by `make "
                    "baseline` and committed with the textbook suite")
def test_the_textbook_baseline_is_the_quick_profile_of_the_suite_as_it_is(tmp_path):
    """Every hypothesis of textbook.toml is in the kept claims.csv and nothing else is: a
    hypothesis added, dropped or changed without `make baseline` is caught here, before
    `make regress` reads it as a claim gone missing."""
    suite = suites.load(ROOT / "benchmarks" / "textbook.toml")
    assert json.loads((BASELINE / "suite.json").read_text())["profile"] == "quick"
    kept = pd.read_csv(BASELINE / "claims.csv", dtype=str, keep_default_na=False)
    # the rows claims.csv would hold for the declared hypotheses, written and read as it is
    rows = pd.DataFrame([claims._row(h, {}) for e in suite.entries for h in e.hypotheses])
    rows.to_csv(tmp_path / "declared.csv", index=False)
    declared = pd.read_csv(tmp_path / "declared.csv", dtype=str, keep_default_na=False)
    key = list(compare.CLAIM_KEY)
    assert set(kept[key].itertuples(index=False, name=None)) == \
        set(declared[key].itertuples(index=False, name=None))
