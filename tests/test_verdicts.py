"""Status words mean one thing each; "≈ best" is shown by an equivalence test, not assumed."""

import math

import numpy as np
import pandas as pd
import pytest

from dlbench.errors import DlbenchError
from dlbench.evaluate import verdicts
from dlbench.evaluate.verdicts import GIVE_BACK, NEAR_CHANCE, RISE, STALLED_FRACTION, Scored, judge
from tests.cli_helpers import invoke


@pytest.mark.parametrize("losses, near_chance, nonfinite, expected", [
    ((2.3, 1.0, 0.2), False, False, "ok"),
    ((2.3, 2.2, 2.25), True, False, "stalled"),  # barely moved, accuracy near chance
    ((2.3, 2.2, 2.25), False, False, "ok"),  # barely moved, but it learned something
    ((2.3, 0.4, 0.0), True, False, "stalled"),  # the criterion fell to 0, accuracy at chance
    ((2.3, 2.2, 2.25), None, False, "stalled"),  # no chance level: the loss barely moved
    ((2.3, 2.3 * STALLED_FRACTION * 0.99), None, False, "ok"),
    ((2.3, 18.7, 13.6, 8.8), False, False, "unstable"),  # finite, far above its start
    ((2.3, 0.2, 1.5), False, False, "unstable"),  # gave back more than half its progress
    ((2.3, 0.2, 0.2 + GIVE_BACK * 2.1 * 0.9), False, False, "ok"),  # gave back less
    ((2.3, 2.3, 2.3 + RISE * 2.3 * 0.5), True, False, "stalled"),  # a rise within noise
    ((2.3, 1e34), False, False, "unstable"),  # huge but finite is no divergence
    ((2.3, 1.0, math.nan), False, False, "diverged"),
    ((2.3, 1.0, math.inf), False, False, "diverged"),
    ((2.3, 0.5, 0.4), False, True, "diverged"),  # the trainer saw NaN/inf during an epoch
])
def test_each_status_means_one_thing(losses, near_chance, nonfinite, expected):
    assert judge(losses, near_chance=near_chance, nonfinite=nonfinite) == expected


def test_a_perceptron_on_xor_is_stalled_though_its_criterion_falls(tmp_path):
    """No line separates XOR: the perceptron's accuracy stays at or below chance (0.5) while
    its own criterion falls; the two-layer network learns it and is ok."""
    out = tmp_path / "out"
    result = invoke("optimize", "--dataset", "xor", "--model", "perceptron,mlp", "--hidden", "8",
                    "--opt", "adam[lr=0.05]", "--epochs", "300", "--seeds", "3", "--out", out)
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(out / "summary.csv").set_index("model")
    assert summary.loc["perceptron", "val_mean"] <= 0.5 + NEAR_CHANCE * 0.5
    curves = pd.read_csv(out / "curves.csv")
    loss = curves[(curves.model == "perceptron") & (curves.split == "train")
                  & (curves.metric == "loss")].groupby("epoch").value.mean()
    assert loss.iloc[-1] < STALLED_FRACTION * loss.iloc[0]  # the criterion did fall
    assert summary.loc["perceptron", "status"] == "stalled"
    assert summary.loc["mlp", "status"] == "ok" and summary.loc["mlp", "val_mean"] == 1.0


def test_summary_of_seeds():
    assert verdicts.summary(["ok", "ok", "unstable"]) == ("ok", "2 ok, 1 unstable")
    assert verdicts.summary(["ok", "diverged"]) == ("diverged", "1 ok, 1 diverged")  # ties: worse


def test_chance_accuracy_is_the_training_majority_on_the_evaluation_rows():
    y_train, y_eval = np.array([0, 0, 1]), np.array([1, 1, 1, 0])
    assert verdicts.chance_accuracy(y_train, y_eval, "classification", 2) == 0.25
    assert verdicts.chance_accuracy(y_train, y_eval, "regression", 0) is None


@pytest.mark.parametrize("text, best, expected", [("0.01", 0.9, 0.01), ("2%", 50.0, 1.0),
                                                  ("2%", -50.0, 1.0)])
def test_margins_absolute_or_relative_to_the_best(text, best, expected):
    assert verdicts.parse_margin(text).of(best) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["0", "-1", "abc", "nan", "inf", "%"])
def test_a_bad_margin_is_refused(text):
    with pytest.raises(DlbenchError, match="--margin"):
        verdicts.parse_margin(text)


def scored(per_seed, spread, seed=0, rows=400):
    """Seeds' scores with a row-resampling spread: replicates = score + shared row noise."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, spread, 1000)  # the same resamples move every seed alike
    per_seed = np.asarray(per_seed, float)
    return Scored(per_seed, per_seed[:, None] + noise[None, :])


def test_a_lack_of_evidence_is_no_tie():
    """2 seeds trailing by 0.39 and 0.65 are not 'equivalent' (the old ≈ said so)."""
    best = scored([0.9, 0.95], 0.01)
    far = scored([0.51, 0.30], 0.01)
    diff, verdict = verdicts.versus_best(far, best, 0.01, greater_is_better=True)
    assert verdict == "inconclusive" and diff.mean == pytest.approx(-0.52)


def test_equivalence_needs_the_interval_inside_the_margin():
    rng = np.random.default_rng(1)
    base = rng.normal(0.9, 0.01, 10)
    best, same = scored(base, 0.002), scored(base - 0.001, 0.002)  # paired: same seeds
    assert verdicts.versus_best(same, best, 0.01, True)[1] == "equivalent"
    assert verdicts.versus_best(same, best, 0.0005, True)[1] != "equivalent"


def test_a_clear_gap_is_worse_and_one_seed_is_too_few():
    rng = np.random.default_rng(2)
    base = rng.normal(0.9, 0.01, 8)
    best, worse = scored(base, 0.002), scored(base - 0.05, 0.002)
    assert verdicts.versus_best(worse, best, 0.01, True)[1] == "worse"
    assert verdicts.versus_best(scored([0.85], 0.01), scored([0.9], 0.01), 0.01,
                                True)[1] == "too few seeds"


def test_a_diverged_seed_is_left_out_of_the_pairs():
    best = scored([0.9, 0.91, 0.92, math.nan], 0.001)
    other = scored([0.89, 0.9, 0.91, 0.5], 0.001)
    diff, _ = verdicts.versus_best(other, best, 0.05, True)
    assert diff.n == 3 and diff.mean == pytest.approx(-0.01)


def test_advice_agrees_only_when_shown_against_each_other_and_a_diverged_one_is_beaten():
    advised = scored([0.80, 0.81, 0.79], 0.001)
    clearly_worse, diverged = scored([0.5, 0.52, 0.49], 0.001), scored([math.nan] * 3, 0.001)
    outcomes = verdicts.advised_versus_each(advised, {"b": clearly_worse, "a": diverged}, 0.01,
                                            greater_is_better=True)
    assert list(outcomes) == ["a", "b"]  # by name, whatever order they came in
    assert [shown for _, shown in outcomes.values()] == ["better", "better"]
    assert verdicts.agreement(["better", "equivalent"]) == "agrees"
    assert verdicts.agreement(["better", "inconclusive"]) == "inconclusive"
    assert verdicts.agreement(["equivalent", "worse", "inconclusive"]) == "disagrees"
    assert verdicts.agreement([]) == "inconclusive"  # nothing compared, nothing shown
    gone = verdicts.advised_versus_each(diverged, {"b": clearly_worse}, 0.01, True)
    assert verdicts.agreement([shown for _, shown in gone.values()]) == "diverged"


def test_an_advised_strategy_that_diverged_on_some_seeds_does_not_agree():
    """Its 2 finite seeds equal the other's, but it lost 3 of 5 where the other did not: the
    pairs over the seeds left must not make it "equivalent"."""
    other = scored([0.80, 0.81, 0.79, 0.80, 0.81], 0.001)
    advised = scored([0.80, 0.81, math.nan, math.nan, math.nan], 0.001)
    [(_, shown)] = verdicts.advised_versus_each(advised, {"b": other}, 0.05, True).values()
    assert shown == "diverged more" and verdicts.agreement([shown]) == "inconclusive"
