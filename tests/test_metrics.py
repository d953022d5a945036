"""Metrics equal sklearn's, point the right way, turn undefined cases into NaN; chance baselines."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from dlbench.errors import DlbenchError
from dlbench.evaluate.metrics import (
    METRICS,
    Predictions,
    chance_predictions,
    default_metrics,
    reference_score,
    resolve_metrics,
    score,
)

TASKS = ("classification", "regression")


def random_classification(n_classes: int, n: int = 200, seed: int = 0) -> Predictions:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, n_classes, n)
    logits = rng.normal(size=(n, n_classes)) + 1.5 * np.eye(n_classes)[y_true]  # better than chance
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return Predictions(y_true, proba.argmax(axis=1), proba, n_classes)


def random_regression(n: int = 200, seed: int = 0, y_scale: float = 2.0) -> Predictions:
    rng = np.random.default_rng(seed)
    y_true = rng.normal(3.0, 2.0, n)
    return Predictions(y_true, y_true + rng.normal(0.0, 1.0, n), None, 0, y_scale)


def sklearn_reference(p: Predictions) -> dict[str, float]:
    """The direct sklearn calls (and the one formula sklearn lacks) that each metric must equal."""
    if p.n_classes == 0:
        return {
            "mse": skm.mean_squared_error(p.y_true, p.y_pred),
            "mae": skm.mean_absolute_error(p.y_true, p.y_pred),
            "r2": skm.r2_score(p.y_true, p.y_pred),
            "loss": float(np.mean(((p.y_true - p.y_pred) / p.y_scale) ** 2)),
        }
    labels = list(range(p.n_classes))
    log_loss = skm.log_loss(p.y_true, p.proba, labels=labels)
    if p.n_classes == 2:
        roc_auc = skm.roc_auc_score(p.y_true, p.proba[:, 1])
        average_precision = skm.average_precision_score(p.y_true, p.proba[:, 1])
    else:
        roc_auc = skm.roc_auc_score(p.y_true, p.proba, multi_class="ovr", labels=labels)
        average_precision = skm.average_precision_score(p.y_true, p.proba, average="macro")
    return {
        "accuracy": skm.accuracy_score(p.y_true, p.y_pred),
        "balanced_accuracy": skm.balanced_accuracy_score(p.y_true, p.y_pred),
        "f1_macro": skm.f1_score(p.y_true, p.y_pred, average="macro"),
        "precision_macro": skm.precision_score(p.y_true, p.y_pred, average="macro"),
        "recall_macro": skm.recall_score(p.y_true, p.y_pred, average="macro"),
        "log_loss": log_loss,
        "roc_auc": roc_auc,
        "average_precision": average_precision,
        "loss": log_loss,
    }


CASES = {
    "binary": random_classification(2),
    "multiclass": random_classification(4),
    "regression": random_regression(),
}


def task_of(pred: Predictions) -> str:
    return "classification" if pred.n_classes else "regression"


@pytest.mark.parametrize("case", CASES)
def test_every_metric_equals_the_direct_sklearn_call(case):
    pred = CASES[case]
    expected = sklearn_reference(pred)
    metrics = [m for m in METRICS if task_of(pred) in m.tasks]
    assert sorted(m.name for m in metrics) == sorted(expected)  # a new metric needs a reference
    got = score(pred, metrics)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-12), name


def test_classification_loss_is_cross_entropy_in_nats():
    pred = CASES["multiclass"]
    nll = -np.mean(np.log(pred.proba[np.arange(len(pred.y_true)), pred.y_true]))
    assert score(pred, resolve_metrics(["loss"], "classification"))["loss"] == pytest.approx(nll)


def perfect(pred: Predictions) -> Predictions:
    proba = None if pred.proba is None else np.eye(pred.n_classes)[pred.y_true]
    return Predictions(pred.y_true, pred.y_true.copy(), proba, pred.n_classes, pred.y_scale)


def worse(pred: Predictions, seed: int = 1) -> Predictions:
    rng = np.random.default_rng(seed)
    if pred.n_classes == 0:
        return Predictions(pred.y_true, rng.permutation(pred.y_pred), None, 0, pred.y_scale)
    proba = rng.dirichlet(np.ones(pred.n_classes), len(pred.y_true))
    return Predictions(pred.y_true, proba.argmax(axis=1), proba, pred.n_classes)


@pytest.mark.parametrize("case", CASES)
def test_greater_is_better_points_the_right_way(case):
    pred = CASES[case]
    for metric in (m for m in METRICS if task_of(pred) in m.tasks):
        good = score(perfect(pred), [metric])[metric.name]
        bad = score(worse(pred), [metric])[metric.name]
        assert (good > bad) == metric.greater_is_better, metric.name


def score_quietly(pred: Predictions) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither an exception nor a warning may escape
        task = task_of(pred)
        return score(pred, [m for m in METRICS if task in m.tasks])  # every metric of the task


def test_roc_auc_is_nan_when_one_class_is_present():
    pred = CASES["binary"]
    ones = pred.y_true == 1
    only_ones = Predictions(pred.y_true[ones], pred.y_pred[ones], pred.proba[ones], 2)
    scores = score_quietly(only_ones)
    assert math.isnan(scores["roc_auc"])
    assert math.isfinite(scores["accuracy"]) and math.isfinite(scores["log_loss"])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_probabilities_score_nan(bad):
    pred = CASES["multiclass"]
    proba = pred.proba.copy()
    proba[3] = bad  # one diverged row is enough
    scores = score_quietly(Predictions(pred.y_true, pred.y_pred, proba, pred.n_classes))
    for name in ("log_loss", "roc_auc", "loss"):
        assert math.isnan(scores[name]), name
    assert math.isfinite(scores["accuracy"])  # class predictions still exist


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_regression_predictions_score_nan(bad):
    pred = CASES["regression"]
    y_pred = pred.y_pred.copy()
    y_pred[0] = bad
    scores = score_quietly(Predictions(pred.y_true, y_pred, None, 0, pred.y_scale))
    assert all(math.isnan(v) for v in scores.values()) and len(scores) == 4


def test_metrics_needing_probabilities_score_nan_without_them():
    pred = CASES["binary"]
    scores = score_quietly(Predictions(pred.y_true, pred.y_pred, None, 2))
    assert math.isnan(scores["roc_auc"]) and math.isnan(scores["log_loss"])
    assert scores["accuracy"] == skm.accuracy_score(pred.y_true, pred.y_pred)


def test_chance_classifier_predicts_majority_with_training_priors():
    y_train = np.array([0, 0, 0, 2, 2, 3])  # class 1 never trains
    y_eval = np.array([1, 0, 2, 3])
    pred = chance_predictions(y_train, y_eval, task="classification", n_classes=4)
    assert np.array_equal(pred.y_true, y_eval)
    assert np.array_equal(pred.y_pred, [0, 0, 0, 0])
    assert pred.proba.shape == (4, 4)
    assert np.allclose(pred.proba, [0.5, 0.0, 2 / 6, 1 / 6])
    assert pred.n_classes == 4
    scores = score_quietly(pred)
    assert scores["accuracy"] == 0.25 and scores["roc_auc"] == 0.5


def test_chance_regressor_predicts_the_training_mean():
    y_train = np.array([1.0, 2.0, 3.0, 6.0])
    pred = chance_predictions(y_train, np.array([0.0, 4.0]), task="regression", n_classes=0)
    assert np.allclose(pred.y_pred, 3.0)
    assert pred.proba is None and pred.n_classes == 0
    assert pred.y_scale == pytest.approx(np.std(y_train))
    flat = chance_predictions(np.full(3, 5.0), np.array([5.0]), task="regression", n_classes=0)
    assert flat.y_scale == 1.0


def test_chance_regression_loss_is_about_one():
    # Predicting the mean costs one variance, i.e. 1 in units of the target's std.
    y = np.random.default_rng(0).normal(10.0, 3.0, 4000)
    pred = chance_predictions(y[:2000], y[2000:], task="regression", n_classes=0)
    assert score_quietly(pred)["loss"] == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("task", TASKS)
def test_defaults_are_registered_for_their_task(task):
    infos = resolve_metrics(None, task)
    assert [m.name for m in infos] == default_metrics(task)
    assert all(task in m.tasks for m in infos)
    assert "loss" not in default_metrics(task)  # opt-in: for classification it is log_loss


def test_resolve_keeps_order_and_drops_repeats():
    infos = resolve_metrics(["roc_auc", "accuracy", "roc_auc"], "classification")
    assert [m.name for m in infos] == ["roc_auc", "accuracy"]


@pytest.mark.parametrize(
    "names,task,listed,not_listed",
    [
        (["r2"], "classification", "balanced_accuracy", "mae"),
        (["accuracy"], "regression", "mae", "roc_auc"),
        (["accuracy", "nope"], "classification", "roc_auc", "mse"),
    ],
)
def test_resolve_rejects_names_and_lists_the_task_s_metrics(names, task, listed, not_listed):
    with pytest.raises(DlbenchError) as caught:
        resolve_metrics(names, task)
    message = str(caught.value)
    assert "\n" not in message and names[-1] in message
    assert listed in message and not_listed not in message


@pytest.mark.parametrize(
    "call",
    [
        lambda: default_metrics("ranking"),
        lambda: resolve_metrics(None, "ranking"),
        lambda: chance_predictions([0], [0], task="ranking", n_classes=1),
    ],
)
def test_unknown_task_is_a_one_line_error(call):
    with pytest.raises(DlbenchError, match="classification, regression"):
        call()


@pytest.mark.parametrize("n_classes", [2, 3, 10])
def test_roc_auc_equals_sklearn_with_heavy_ties(n_classes):
    rng = np.random.default_rng(n_classes)
    y = rng.integers(0, n_classes, 300)
    y[:n_classes] = np.arange(n_classes)  # every class present
    proba = np.round(rng.dirichlet(np.ones(n_classes), 300), 1)  # many tied scores
    proba /= proba.sum(1, keepdims=True)
    pred = Predictions(y, proba.argmax(1), proba, n_classes)
    expected = (skm.roc_auc_score(y, proba[:, 1]) if n_classes == 2 else
                skm.roc_auc_score(y, proba, multi_class="ovr", labels=range(n_classes)))
    assert score(pred, [METRICS.get("roc_auc")])["roc_auc"] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("n_classes", [2, 3, 10])
def test_average_precision_equals_sklearn_with_heavy_ties(n_classes):
    rng = np.random.default_rng(n_classes)
    y = rng.integers(0, n_classes, 300)
    y[:n_classes] = np.arange(n_classes)  # every class present: sklearn's multiclass form works
    proba = np.round(rng.dirichlet(np.ones(n_classes), 300), 1)  # many tied scores
    pred = Predictions(y, proba.argmax(1), proba, n_classes)
    expected = (skm.average_precision_score(y, proba[:, 1]) if n_classes == 2 else
                skm.average_precision_score(y, proba, average="macro"))
    got = score(pred, [METRICS.get("average_precision")])["average_precision"]
    assert got == pytest.approx(expected, abs=1e-12)


def test_average_precision_averages_the_classes_present():
    # sklearn's multiclass form refuses a class absent from y_true; ours leaves it out.
    pred = CASES["multiclass"]
    keep = pred.y_true != 2
    absent = Predictions(pred.y_true[keep], pred.y_pred[keep], pred.proba[keep], 4)
    per_class = [skm.average_precision_score(absent.y_true == k, absent.proba[:, k])
                 for k in (0, 1, 3)]
    scores = score_quietly(absent)
    assert scores["average_precision"] == pytest.approx(np.mean(per_class), rel=1e-12)
    assert math.isnan(scores["roc_auc"])  # which, by contrast, needs every class


def test_average_precision_of_one_class_present():
    pred = CASES["binary"]
    for label, expected in [(1, 1.0), (0, math.nan)]:  # binary scores class 1: all or none
        rows = pred.y_true == label
        alone = Predictions(pred.y_true[rows], pred.y_pred[rows], pred.proba[rows], 2)
        assert score_quietly(alone)["average_precision"] == pytest.approx(expected, nan_ok=True)
    multi = CASES["multiclass"]
    rows = multi.y_true == 3
    alone = Predictions(multi.y_true[rows], multi.y_pred[rows], multi.proba[rows], 4)
    assert score_quietly(alone)["average_precision"] == 1.0  # every row is a positive


def test_macro_precision_and_recall_use_the_classes_true_or_predicted():
    # Class 3 never occurs nor is predicted: left out. Class 2 is predicted, never true: its
    # precision and recall are 0 (recall by zero_division; balanced_accuracy drops it instead).
    y_true = np.array([0, 0, 1, 1, 1])
    y_pred = np.array([0, 1, 1, 1, 2])
    pred = Predictions(y_true, y_pred, None, 4)
    scores = score_quietly(pred)
    assert scores["precision_macro"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert scores["recall_macro"] == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)
    assert scores["balanced_accuracy"] == pytest.approx((1 / 2 + 2 / 3) / 2)


# Weighted forms: entry b is the metric of the resample that repeats row i W[b, i] times.


def repeat_rows(pred: Predictions, counts: np.ndarray) -> Predictions:
    """The resample itself, built row by row: what each weighted entry must score like."""
    counts = counts.astype(np.int64)
    proba = None if pred.proba is None else np.repeat(pred.proba, counts, axis=0)
    return Predictions(np.repeat(pred.y_true, counts), np.repeat(pred.y_pred, counts), proba,
                       pred.n_classes, pred.y_scale)


def tied(pred: Predictions) -> Predictions:
    # Probabilities to one decimal: many tied scores (roc_auc) and zeros (log_loss's clip).
    return Predictions(pred.y_true, pred.y_pred, np.round(pred.proba, 1), pred.n_classes)


def diverged(pred: Predictions, bad: float, row: int = 5) -> Predictions:
    """One invalid row: resamples that draw it score NaN where score() does, the rest do not."""
    if pred.n_classes == 0:
        y_pred = pred.y_pred.copy()
        y_pred[row] = bad
        return Predictions(pred.y_true, y_pred, None, 0, pred.y_scale)
    proba = pred.proba.copy()
    proba[row] = bad
    return Predictions(pred.y_true, pred.y_pred, proba, pred.n_classes)


def quarters(pred: Predictions) -> Predictions:
    # Targets on a grid of 1/4: a resample of one row repeated has a mean sklearn gets exactly, so
    # its zero variance is zero (r2 then follows sklearn's convention, not rounding noise).
    return Predictions(np.round(pred.y_true * 4) / 4, pred.y_pred, None, 0, pred.y_scale)


def resample_counts(pred: Predictions, seed: int = 0) -> np.ndarray:
    """(B, n) counts: the data, bootstrap draws, sparse draws and the edge cases."""
    n = len(pred.y_true)
    rng = np.random.default_rng(seed)
    first_absent = np.ones(n)
    first_absent[pred.y_true == pred.y_true[0]] = 0  # class 0 (or one target value) drops out
    single = np.zeros((3, n))
    single[0, 7] = 1  # one row: roc_auc and r2 undefined
    single[1, 7] = 3  # one row, three times: r2 of zero variance
    return np.vstack([
        np.ones(n),  # the data itself
        rng.multinomial(n, np.full(n, 1 / n), size=6),  # ordinary bootstrap draws
        rng.poisson(8 / n, (6, n)) * rng.integers(1, 4, (6, n)),  # a few rows: classes drop out
        first_absent,
        single,  # and the empty resample
    ])


WEIGHTED_CASES = {
    "binary": tied(random_classification(2)),
    "multiclass": tied(random_classification(4)),
    "ten_classes": tied(random_classification(10, n=60)),
    "nan_probabilities": diverged(tied(random_classification(3)), np.nan),
    "probability_above_one": diverged(tied(random_classification(3)), 1.5),  # log_loss refuses it
    "no_probabilities": Predictions(CASES["binary"].y_true, CASES["binary"].y_pred, None, 2),
    "regression": quarters(random_regression()),
    "diverged_regressor": diverged(quarters(random_regression()), np.inf),
}
WEIGHTED_PAIRS = [(case, m.name) for case, p in WEIGHTED_CASES.items()
                  for m in METRICS if task_of(p) in m.tasks]


@pytest.mark.parametrize("case,metric", WEIGHTED_PAIRS)
def test_weighted_form_equals_score_of_the_repeated_rows(case, metric):
    pred, info = WEIGHTED_CASES[case], METRICS.get(metric)
    W = resample_counts(pred).astype(np.int64)  # as rng.multinomial draws them
    expected = [reference_score(repeat_rows(pred, counts), [info])[metric] for counts in W]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # like score(): neither an exception nor a warning escapes
        got = info.weighted(pred, W)
    assert got.shape == (len(W),) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)  # NaN only where NaN


@pytest.mark.parametrize("case,metric", [(c, m.name) for c, p in CASES.items()
                                         for m in METRICS if task_of(p) in m.tasks])
def test_weighted_form_of_unit_counts_is_score(case, metric):
    pred, info = CASES[case], METRICS.get(metric)
    got = info.weighted(pred, np.ones((2, len(pred.y_true))))
    assert got == pytest.approx([reference_score(pred, [info])[metric]] * 2, rel=1e-12,
                                abs=1e-12)


def test_weighted_r2_of_one_repeated_row_is_sklearn_s_zero_variance_value():
    # Decided exactly: (k·y)/k is not always y, and a rounded mean would make 1 - num/tiny.
    y = np.random.default_rng(0).normal(3.0, 2.0, 50)
    miss = Predictions(y, y + 1.0, None, 0)
    hit = Predictions(y, y.copy(), None, 0)
    W = 3.0 * np.eye(50)[:, :, None] * np.arange(1, 8)  # row i alone, drawn 3, 6, ..., 21 times
    W = W.transpose(0, 2, 1).reshape(-1, 50)
    assert (METRICS.get("r2").weighted(miss, W) == 0.0).all()
    assert (METRICS.get("r2").weighted(hit, W) == 1.0).all()


def test_resamples_are_not_sample_weights_on_all_rows():
    # The cases above reach what sets a resample apart: an absent class leaves f1's labels
    # (sample_weight on all rows keeps it, scoring 0) and can make roc_auc undefined.
    pred = WEIGHTED_CASES["ten_classes"]
    W = resample_counts(pred)
    f1 = METRICS.get("f1_macro").weighted(pred, W)
    drawn = W.sum(1) > 0
    weighted_f1 = [skm.f1_score(pred.y_true, pred.y_pred, average="macro", sample_weight=w,
                                zero_division=0) for w in W[drawn]]
    assert not np.allclose(f1[drawn], weighted_f1)
    roc_auc = METRICS.get("roc_auc").weighted(pred, W)
    assert np.isnan(roc_auc).any() and np.isfinite(roc_auc).any()
    assert np.isnan(METRICS.get("log_loss").weighted(pred, W[-1:]))  # nothing drawn


@pytest.mark.parametrize("case", ["binary", "multiclass", "ten_classes"])
def test_weighted_average_precision_equals_sklearn_sample_weight(case):
    # A second oracle: per class drawn, sklearn's AP with the counts as sample weights.
    pred = WEIGHTED_CASES[case]
    W = resample_counts(pred, seed=1)
    got = METRICS.get("average_precision").weighted(pred, W)
    classes = [1] if pred.n_classes == 2 else range(pred.n_classes)
    for w, value in zip(W, got, strict=True):
        drawn = [k for k in classes if w[pred.y_true == k].sum() > 0]
        per_class = [skm.average_precision_score(pred.y_true == k, pred.proba[:, k],
                                                 sample_weight=w) for k in drawn]
        assert value == pytest.approx(np.mean(per_class) if drawn else math.nan, rel=1e-12,
                                      nan_ok=True)


@pytest.mark.parametrize("metric", METRICS.names())
@pytest.mark.parametrize("W", [np.ones(200), np.ones((3, 199)), -np.ones((3, 200))],
                         ids=["one_dimensional", "wrong_n", "negative"])
def test_weighted_forms_reject_counts_that_are_not_a_resample(metric, W):
    pred = CASES["regression" if "regression" in METRICS.get(metric).tasks else "multiclass"]
    with pytest.raises(ValueError, match="W "):
        METRICS.get(metric).weighted(pred, W)
