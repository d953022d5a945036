"""Metrics: a registry of sklearn.metrics wrappers, scoring that never raises, chance baselines.

Each metric also has a weighted form for the bootstrap over evaluation rows: given row counts W
(B, n), entry b is the metric of the resample that repeats row i W[b, i] times, vectorised over B.

The user's own metric, `--metrics path/to/file.py:name` (or package.module:name), is a function
`name(y_true, proba_or_prediction) -> float`: classification gives it the class indices (N,)
and the class probabilities (N, C), regression the targets (N,) and the predictions (N,). It
declares its direction as scikit-learn's make_scorer names it, `name.greater_is_better = True`
(or False); without it the metric is refused. It may declare the values it can take,
`name.bounds = (0.0, 1.0)`, where its intervals are cut. It has no weighted form: each
resample's rows are repeated and it is called on them (`_resampled`), which is what the
weighted forms compute.
"""

from __future__ import annotations

import functools
import math
import numbers
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sklearn
from scipy.stats import rankdata
from sklearn import metrics as skm
from sklearn.dummy import DummyClassifier, DummyRegressor

from dlbench import plugins
from dlbench.data.datasets import Dataset
from dlbench.engine.predictions import Predictions
from dlbench.errors import DlbenchError
from dlbench.registry import Registry

CLASSIFICATION = ("classification",)
REGRESSION = ("regression",)


@dataclass(frozen=True)
class MetricInfo:
    name: str
    tasks: tuple[str, ...]  # ("classification",), ("regression",) or both
    greater_is_better: bool
    fn: Callable[[Predictions], float]
    # (pred, W) -> (B,): fn on each resample that repeats row i W[b, i] times; W is (B, n) counts
    weighted: Callable[[Predictions, np.ndarray], np.ndarray]
    description: str
    bounds: tuple[float, float] = (-math.inf, math.inf)  # the values the metric can take
    # default equivalence margin of `optimize`'s "≈ best": in the metric's units, or "N%" of
    # the best value (for metrics in the data's own units, such as mse)
    margin: str = "0.01"

    def clip(self, low: float, high: float) -> tuple[float, float, bool]:
        """An interval cut to the values the metric can take (a t interval can cross them),
        and whether it was cut."""
        lo, hi = self.bounds
        return max(low, lo), min(high, hi), bool(low < lo or high > hi)


def _labels(pred: Predictions) -> np.ndarray:
    # All C classes, not just those present: scores stay comparable across folds and seeds.
    return np.arange(pred.n_classes)


def _log_loss(pred: Predictions) -> float:
    # sklearn clips probabilities at the dtype's eps, so a confident mistake costs a finite amount.
    return skm.log_loss(pred.y_true, _proba(pred), labels=_labels(pred))


def _roc_auc(pred: Predictions) -> float:
    """One-vs-rest macro ROC AUC (binary: of class 1) as the Mann-Whitney U statistic.

    AUC = (rank sum of the positives - n1(n1+1)/2) / (n1·n0), ties at midranks: the value
    sklearn's roc_auc_score gives (a test holds them equal), but one vectorised ranking for all
    classes instead of a roc_curve per class, which made scoring slower than training.
    """
    proba = _proba(pred)
    if not np.isfinite(proba).all():
        return math.nan
    classes = np.array([1] if pred.n_classes == 2 else range(pred.n_classes))
    ranks = rankdata(proba[:, classes], axis=0)  # (n, classes)
    positive = pred.y_true[:, None] == classes[None, :]
    n1 = positive.sum(0)
    n0 = len(pred.y_true) - n1
    if (n1 == 0).any() or (n0 == 0).any():  # one class present: AUC undefined
        return math.nan
    auc = ((ranks * positive).sum(0) - n1 * (n1 + 1) / 2) / (n1 * n0)
    return float(auc.mean())


def _ap_classes(pred: Predictions) -> list[int]:
    # One-vs-rest classes: binary scores class 1 alone, as roc_auc does.
    return [1] if pred.n_classes == 2 else list(range(pred.n_classes))


def _average_precision(pred: Predictions) -> float:
    """One-vs-rest macro average precision (binary: of class 1) by sklearn's
    average_precision_score, over the classes present in y_true: a class with no rows has no
    recall to step through (sklearn's multiclass form refuses it, its binary form says 0).
    NaN where no scored class is present."""
    proba = _proba(pred)
    if not np.isfinite(proba).all():
        return math.nan
    present = [k for k in _ap_classes(pred) if (pred.y_true == k).any()]
    if not present:
        return math.nan
    return float(np.mean([skm.average_precision_score(pred.y_true == k, proba[:, k])
                          for k in present]))


def _loss(pred: Predictions) -> float:
    """The training objective: cross-entropy in nats, or MSE in units of the target's std."""
    if pred.n_classes > 0:
        return _log_loss(pred)
    residual = np.asarray(pred.y_true, np.float64) - np.asarray(pred.y_pred, np.float64)
    return float(np.mean((residual / pred.y_scale) ** 2))


def _proba(pred: Predictions) -> np.ndarray:
    if pred.proba is None:
        raise ValueError("this metric needs class probabilities")  # score() turns it into NaN
    return pred.proba


# Weighted forms. Row i counts W[b, i] times in resample b, so a row with count 0 is absent: the
# classes present, the rows checked for non-finite values and the row count are those of the
# resample, not of the full data (what sklearn's sample_weight on all rows would give). Each
# equals `score()` on the explicitly repeated rows, NaN where that is NaN (a test holds them equal).


def _counts(pred: Predictions, W: np.ndarray) -> np.ndarray:
    """W as float64 (B, n), checked: the one boundary of the weighted forms."""
    W = np.asarray(W, np.float64)
    if W.ndim != 2 or W.shape[1] != len(pred.y_true):
        raise ValueError(
            f"W has shape {W.shape}; it must be (replicates, n) = (B, {len(pred.y_true)}): "
            "how many times each evaluation row is drawn in each replicate"
        )
    if not (W >= 0).all():  # also rejects NaN
        raise ValueError("W must hold non-negative counts; draw them with rng.multinomial")
    return W


def weighted_mean(pred: Predictions, W: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(B,) mean of per-row values (n,) over each resample; NaN if it is empty or draws a
    non-finite. The weighted form of any metric that is a mean over rows (accuracy, top-k)."""
    W = _counts(pred, W)
    values = np.asarray(values, np.float64)
    bad = ~np.isfinite(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = (W @ np.where(bad, 0.0, values)) / W.sum(1)  # 0 / 0 = NaN for an empty resample
    return np.where(np.isfinite(mean) & (W @ bad == 0), mean, np.nan)


def _residual(pred: Predictions) -> np.ndarray:
    with np.errstate(all="ignore"):  # a diverged model's inf/NaN become NaN scores, not warnings
        return np.asarray(pred.y_true, np.float64) - np.asarray(pred.y_pred, np.float64)


def _weighted_squared_error(pred: Predictions, W: np.ndarray, scale: float = 1.0) -> np.ndarray:
    with np.errstate(over="ignore"):
        return weighted_mean(pred, W, (_residual(pred) / scale) ** 2)


def _weighted_loss(pred: Predictions, W: np.ndarray) -> np.ndarray:
    if pred.n_classes > 0:
        return _weighted_log_loss(pred, W)
    return _weighted_squared_error(pred, W, pred.y_scale)


def _weighted_r2(pred: Predictions, W: np.ndarray) -> np.ndarray:
    """sklearn's r2_score per resample: NaN below two rows; zero variance: 1 if exact, else 0."""
    W = _counts(pred, W)
    y = np.asarray(pred.y_true, np.float64)
    bad = ~(np.isfinite(y) & np.isfinite(np.asarray(pred.y_pred, np.float64)))
    y, residual = np.where(bad, 0.0, y), np.where(bad, 0.0, _residual(pred))
    n, drawn = W.sum(1), W > 0
    # Zero variance decided exactly, not by rounding of the mean: (k·y)/k need not equal y.
    first = y[drawn.argmax(1)]  # (B,) a drawn row's target
    constant = ~((y[None, :] != first[:, None]) & drawn).any(1)
    with np.errstate(all="ignore"):
        mean = (W @ y) / n
        numerator = W @ residual**2
        denominator = np.where(constant, 0.0, (W * (y - mean[:, None]) ** 2).sum(1))
        flat = np.where(numerator == 0, 1.0, 0.0)  # sklearn's force_finite for zero variance
        r2 = np.where(denominator > 0, 1 - numerator / denominator, flat)
    return np.where(np.isfinite(r2) & (n >= 2) & (W @ bad == 0), r2, np.nan)


def _class_counts(pred: Predictions, W: np.ndarray) -> tuple[np.ndarray, ...]:
    """(B, C) each: rows drawn of each class that are right, of each true and predicted class."""
    W = _counts(pred, W)
    classes = np.arange(pred.n_classes)
    true = np.asarray(pred.y_true)[:, None] == classes  # (n, C) one-hot
    predicted = np.asarray(pred.y_pred)[:, None] == classes
    counts = W @ np.hstack([true & predicted, true, predicted])  # one product: (B, 3C)
    return tuple(np.split(counts, 3, axis=1))


def _weighted_balanced_accuracy(pred: Predictions, W: np.ndarray) -> np.ndarray:
    # sklearn drops classes absent from y_true (a NaN recall), so: mean recall over classes drawn.
    right, true, _ = _class_counts(pred, W)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(true > 0, right / true, 0.0)
        return recall.sum(1) / (true > 0).sum(1)


def _weighted_f1_macro(pred: Predictions, W: np.ndarray) -> np.ndarray:
    # sklearn's labels are the classes in y_true or y_pred; F1 = 2tp / (true + predicted).
    right, true, predicted = _class_counts(pred, W)
    both = true + predicted
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(both > 0, 2 * right / both, 0.0)
        return f1.sum(1) / (both > 0).sum(1)


def _weighted_precision_macro(pred: Predictions, W: np.ndarray) -> np.ndarray:
    # Labels as f1_macro: the classes in y_true or y_pred; a class never predicted scores 0.
    right, true, predicted = _class_counts(pred, W)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, right / predicted, 0.0)
        return precision.sum(1) / (true + predicted > 0).sum(1)


def _weighted_recall_macro(pred: Predictions, W: np.ndarray) -> np.ndarray:
    # Labels as f1_macro: a class predicted but absent from y_true scores 0 (unlike
    # balanced_accuracy, which drops it).
    right, true, predicted = _class_counts(pred, W)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(true > 0, right / true, 0.0)
        return recall.sum(1) / (true + predicted > 0).sum(1)


def _weighted_log_loss(pred: Predictions, W: np.ndarray) -> np.ndarray:
    """As sklearn 1.9's log_loss: NaN if a drawn row is outside [0, 1] or non-finite (it raises),
    otherwise the true class's probability clipped to [eps, 1 - eps] (no renormalising)."""
    if pred.proba is None:
        return np.full(len(_counts(pred, W)), np.nan)
    proba = pred.proba
    eps = np.finfo(proba.dtype).eps
    valid = (np.isfinite(proba) & (proba >= 0) & (proba <= 1)).all(1)
    p_true = proba[np.arange(len(proba)), np.asarray(pred.y_true, np.int64)]
    nll = -np.log(np.clip(np.where(valid, p_true, 1.0), eps, 1 - eps))
    return weighted_mean(pred, W, np.where(valid, nll, np.nan))


def _weighted_roc_auc(pred: Predictions, W: np.ndarray) -> np.ndarray:
    """_roc_auc per resample: U = sum over positives of w · (negative weight scoring lower + half
    the negative weight tied), AUC = U / (W_pos · W_neg). Integer counts keep U exact."""
    W = _counts(pred, W)
    if pred.proba is None:
        return np.full(len(W), np.nan)
    W_rows = np.ascontiguousarray(W.T)  # (n, B): a row's counts are contiguous for the gathers
    classes = [1] if pred.n_classes == 2 else range(pred.n_classes)
    auc = np.stack([_weighted_auc(pred.proba[:, k], pred.y_true == k, W_rows) for k in classes])
    drawn_bad = W @ ~np.isfinite(pred.proba).all(1) > 0
    return np.where(drawn_bad, np.nan, auc.mean(0))


def _weighted_auc(scores: np.ndarray, positive: np.ndarray, W_rows: np.ndarray) -> np.ndarray:
    """(B,) one-vs-rest AUC of one class; NaN where a resample lacks positives or negatives."""
    negatives = np.flatnonzero(~positive)
    negatives = negatives[np.argsort(scores[negatives])]
    below = np.zeros((len(negatives) + 1, W_rows.shape[1]))  # [j]: weight of the j lowest
    np.cumsum(W_rows[negatives], axis=0, out=below[1:])
    lower = np.searchsorted(scores[negatives], scores[positive], side="left")
    upper = np.searchsorted(scores[negatives], scores[positive], side="right")  # lower + tied
    w = W_rows[positive]  # (n1, B)
    u = (w * (below[lower] + below[upper])).sum(0) / 2  # lower + half tied, per positive
    n1, n0 = w.sum(0), below[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((n1 > 0) & (n0 > 0), u / (n1 * n0), np.nan)


def _weighted_average_precision(pred: Predictions, W: np.ndarray) -> np.ndarray:
    """_average_precision per resample: the mean over the classes drawn in it of
    AP = sum over thresholds, highest first, of (R_k - R_{k-1}) P_k, ties one threshold."""
    W = _counts(pred, W)
    if pred.proba is None:
        return np.full(len(W), np.nan)
    finite = np.isfinite(pred.proba).all(1)
    proba = np.where(finite[:, None], pred.proba, 0.0)  # bad rows: masked below, NaN if drawn
    W_rows = np.ascontiguousarray(W.T)  # (n, B)
    ap = np.stack([_weighted_ap(proba[:, k], pred.y_true == k, W_rows)
                   for k in _ap_classes(pred)])  # (classes, B), NaN where a class is absent
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all NaN: no class drawn
        mean = np.nanmean(ap, axis=0)
    return np.where(W @ ~finite > 0, np.nan, mean)


def _weighted_ap(scores: np.ndarray, positive: np.ndarray, W_rows: np.ndarray) -> np.ndarray:
    """(B,) average precision of one class; NaN where a resample draws none of it.

    Only thresholds at a positive's score add recall, so the sum runs over those (ties one
    threshold, as sklearn): TP_k from the positives alone, TP_k + FP_k = the weight of all rows
    scoring at least the threshold, from one cumulative sum as in _weighted_auc."""
    if not positive.any():
        return np.full(W_rows.shape[1], np.nan)
    order = np.argsort(scores)
    below = np.zeros((len(order) + 1, W_rows.shape[1]))  # [j]: weight of the j lowest rows
    np.cumsum(W_rows[order], axis=0, out=below[1:])
    rows = np.flatnonzero(positive)
    rows = rows[np.argsort(-scores[rows], kind="stable")]  # positives, highest score first
    thresholds, starts = np.unique(-scores[rows], return_index=True)  # (K,) descending scores
    tp = np.cumsum(np.add.reduceat(W_rows[rows], starts, axis=0), axis=0)  # (K, B)
    at_least = below[-1] - below[np.searchsorted(scores[order], -thresholds, side="left")]
    new_tp = np.diff(tp, axis=0, prepend=0.0)  # R_k - R_{k-1}, times the class's weight
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(new_tp > 0, tp / at_least, 0.0)
        return np.where(tp[-1] > 0, (new_tp * precision).sum(0) / tp[-1], np.nan)


METRICS: Registry[MetricInfo] = Registry("metric")
for _info in (
    MetricInfo(
        name="accuracy",
        tasks=CLASSIFICATION,
        greater_is_better=True,
        fn=lambda p: skm.accuracy_score(p.y_true, p.y_pred),
        weighted=lambda p, W: weighted_mean(p, W, p.y_true == p.y_pred),
        description="fraction of rows whose predicted class is right",
        bounds=(0.0, 1.0),
    ),
    MetricInfo(
        name="balanced_accuracy",
        tasks=CLASSIFICATION,
        greater_is_better=True,
        fn=lambda p: skm.balanced_accuracy_score(p.y_true, p.y_pred),
        weighted=_weighted_balanced_accuracy,
        description="mean per-class recall; chance is 1/C whatever the class balance",
        bounds=(0.0, 1.0),
    ),
    MetricInfo(
        name="f1_macro",
        tasks=CLASSIFICATION,
        greater_is_better=True,
        fn=lambda p: skm.f1_score(p.y_true, p.y_pred, average="macro", zero_division=0),
        weighted=_weighted_f1_macro,
        description="unweighted mean of per-class F1",
        bounds=(0.0, 1.0),
    ),
    MetricInfo(
        name="precision_macro",
        tasks=CLASSIFICATION,
        greater_is_better=True,
        fn=lambda p: skm.precision_score(p.y_true, p.y_pred, average="macro", zero_division=0),
        weighted=_weighted_precision_macro,
        description="unweighted mean of per-class precision (a class never predicted: 0)",
        bounds=(0.0, 1.0),
    ),
    MetricInfo(
        name="recall_macro",
        tasks=CLASSIFICATION,
        greater_is_better=True,
        fn=lambda p: skm.recall_score(p.y_true, p.y_pred, average="macro", zero_division=0),
        weighted=_weighted_recall_macro,
        description="unweighted mean of per-class recall over the classes true or predicted",
        bounds=(0.0, 1.0),
    ),
    MetricInfo(
        name="log_loss",
        tasks=CLASSIFICATION,
        greater_is_better=False,
        fn=_log_loss,
        weighted=_weighted_log_loss,
        description="mean negative log-probability of the true class, in nats",
        bounds=(0.0, math.inf),
    ),
    MetricInfo(
        name="roc_auc",
        tasks=CLASSIFICATION,
        greater_is_better=True,
        fn=_roc_auc,
        weighted=_weighted_roc_auc,
        description="area under the ROC curve (multiclass: one-vs-rest, macro average)",
        bounds=(0.0, 1.0),
    ),
    MetricInfo(
        name="average_precision",
        tasks=CLASSIFICATION,
        greater_is_better=True,
        fn=_average_precision,
        weighted=_weighted_average_precision,
        description="area under the precision-recall curve (multiclass: one-vs-rest, macro)",
        bounds=(0.0, 1.0),
    ),
    MetricInfo(
        name="loss",
        tasks=CLASSIFICATION + REGRESSION,
        greater_is_better=False,
        fn=_loss,
        weighted=_weighted_loss,
        description="the training objective: cross-entropy (nats), or MSE in target-std units",
        bounds=(0.0, math.inf),
    ),
    MetricInfo(
        name="mse",
        tasks=REGRESSION,
        greater_is_better=False,
        fn=lambda p: skm.mean_squared_error(p.y_true, p.y_pred),
        weighted=_weighted_squared_error,
        description="mean squared error, in squared target units",
        bounds=(0.0, math.inf),
        margin="1%",
    ),
    MetricInfo(
        name="mae",
        tasks=REGRESSION,
        greater_is_better=False,
        fn=lambda p: skm.mean_absolute_error(p.y_true, p.y_pred),
        weighted=lambda p, W: weighted_mean(p, W, np.abs(_residual(p))),
        description="mean absolute error, in target units",
        bounds=(0.0, math.inf),
        margin="1%",
    ),
    MetricInfo(
        name="r2",
        tasks=REGRESSION,
        greater_is_better=True,
        fn=lambda p: skm.r2_score(p.y_true, p.y_pred),
        weighted=_weighted_r2,
        description="coefficient of determination: 1 is perfect, 0 is predicting the mean",
        bounds=(-math.inf, 1.0),
    ),
):
    METRICS.add(_info)

# overfit's curve measures (runners/overfit.py), written to scores.csv as metrics of split
# "val" with an empty checkpoint -> greater is better; None: an epoch, neither better nor worse
# (an earlier onset is `overfits-sooner`, evaluate/claims.py). The gaps are how much better a
# member does on its training rows than on validation: smaller is better.
CURVE_MEASURES: dict[str, bool | None] = {"onset_epoch": None, "best_epoch": None,
                                          "gap_final": False, "gap_best": False,
                                          "val_loss_final": False}
# `optimize --function`'s path measures (runners/functions.py), written to scores.csv as
# metrics of split "train", one row per start -> greater is better: all lower-is-better (a
# smaller gap to f*, fewer steps or evaluations to the tolerance, fewer reversals)
PATH_MEASURES: dict[str, bool] = {"f_gap": False, "steps_to_tol": False,
                                  "grad_evals_to_tol": False, "turns": False}

_DEFAULTS = {
    # `loss` (the training objective) is opt-in: for classification it equals log_loss
    "classification": ["accuracy", "balanced_accuracy", "f1_macro", "log_loss", "roc_auc"],
    "regression": ["mse", "mae", "r2"],
}


def default_metrics(task: str) -> list[str]:
    _check_task(task)
    return list(_DEFAULTS[task])


def resolve_metrics(names: Sequence[str] | None, task: str,
                    data: Dataset | None = None) -> list[MetricInfo]:
    """The metrics to score, in the order given; None (or empty) means the task's defaults.
    A plugged metric (a resolved reference) is tried on `data`'s chance predictions, so a
    metric that fails says so before anything trains."""
    _check_task(task)
    valid = [m.name for m in METRICS if task in m.tasks]
    resolved: list[MetricInfo] = []
    for name in dict.fromkeys(names or default_metrics(task)):  # drop repeats, keep order
        if plugins.is_reference(name):
            resolved.append(plugged(name))
            if resolved[-1].name in [m.name for m in resolved[:-1]]:  # rows would mix them
                raise DlbenchError(f"--metrics: two metrics show as {resolved[-1].name}; "
                                   "rename one of them")
            if data is not None:
                _try(resolved[-1], data)
            continue
        if name not in valid:
            why = "does not apply to" if name in METRICS else "is not a metric for"
            raise DlbenchError(f"'{name}' {why} {task}; choose from: {', '.join(valid)}")
        resolved.append(METRICS.get(name))
    return resolved


def metric_info(name: str) -> MetricInfo:
    """A metric by the name its rows show: a built-in, or a plugged one this process resolved."""
    return _plugged[name] if name in _plugged else METRICS.get(name)


# --- the user's own metric (see the module's docstring) --------------------------------------

DIRECTION = "greater_is_better"  # what a plugged metric declares, True or False


def _is_metric(obj: Any) -> bool:
    return callable(obj) and not isinstance(obj, type)


KIND = plugins.Kind("metric", "--metrics", _is_metric,
                    f"a function name(y_true, proba_or_prediction) -> float that declares "
                    f"name.{DIRECTION} = True or False",
                    recorded=lambda fn: {DIRECTION: getattr(fn, DIRECTION, None)})
_plugged: dict[str, MetricInfo] = {}  # the plugged metrics resolved here, by their rows' name


def plugged(reference: str) -> MetricInfo:
    """The entry of a plugged metric, named by its resolved reference; its rows show its
    file's name and its own ('mine.py:top2')."""
    fn = plugins.get(reference, KIND)
    shown = plugins.short(reference)
    direction = getattr(fn, DIRECTION, None)
    if not isinstance(direction, bool):
        name = plugins.split(reference)[1]
        raise DlbenchError(f"--metrics {shown} declares no direction: set {name}.{DIRECTION} "
                           f"= True (higher is better) or False (lower is better) below its "
                           f"definition")
    _plugged[shown] = MetricInfo(
        shown, CLASSIFICATION + REGRESSION, direction, functools.partial(_call, fn),
        functools.partial(_resampled, fn), plugins.summary(fn),
        _bounds(fn, shown),
        margin="1%")  # in units dlbench does not know: 1% of the best value
    return _plugged[shown]


def _bounds(fn: Callable[..., Any], shown: str) -> tuple[float, float]:
    """The values a plugged metric declares it can take (`bounds`), or any."""
    bounds = getattr(fn, "bounds", (-math.inf, math.inf))
    try:
        low, high = (float(_number(b)) for b in bounds)
    except (TypeError, ValueError):
        low = high = math.nan
    if not low < high:
        raise DlbenchError(f"--metrics {shown}: bounds {bounds!r} is no range; declare "
                           f"{plugins.split(shown)[1]}.bounds = (low, high), low < high, or "
                           "drop it")
    return low, high


def _call(fn: Callable[..., Any], pred: Predictions) -> Any:
    """fn(y_true, class probabilities (N, C) | predictions (N,))."""
    return fn(pred.y_true, pred.y_pred if pred.proba is None else pred.proba)


def _resampled(fn: Callable[..., Any], pred: Predictions, W: np.ndarray) -> np.ndarray:
    """(B,) fn on each resample, its rows repeated as W (B, n) counts them; NaN where it
    raises or gives no number (a diverged model's NaN probabilities, a resample of one
    class): undefined, as for the built-ins."""
    W = _counts(pred, W)
    found = np.full(len(W), np.nan)
    for b, counts in enumerate(W.astype(np.int64)):
        rows = np.repeat(np.arange(len(counts)), counts)
        drawn = Predictions(pred.y_true[rows], pred.y_pred[rows],
                            None if pred.proba is None else pred.proba[rows], pred.n_classes,
                            pred.y_scale)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an undefined case is NaN, not noise
            try:
                found[b] = _number(_call(fn, drawn))
            except Exception:  # the user's code may raise anything: undefined here
                continue
    return found


def _number(value: Any) -> float:
    """A real number as float; anything else (text, None, an array of several) raises."""
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"returned {value!r} ({type(value).__name__}), not a number")
    return float(value)


def _try(metric: MetricInfo, data: Dataset) -> None:
    """Call a plugged metric once on the chance predictor's predictions of every row, before
    anything trains: one that raises or gives no number is refused, saying what it did."""
    pred = chance_predictions(data.y, data.y, task=data.task, n_classes=data.n_classes)
    given = (f"class indices (N,) and probabilities (N, {data.n_classes})"
             if data.task == "classification" else "targets (N,) and predictions (N,)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = metric.fn(pred)
    except Exception as e:  # the user's code may raise anything: say what, where
        raise DlbenchError(f"--metrics {metric.name} raised {type(e).__name__}: "
                           f"{' '.join(str(e).split())} when given {given} of {data.name}'s "
                           "chance predictor; fix it") from None
    try:
        _number(value)
    except TypeError as e:
        raise DlbenchError(f"--metrics {metric.name} {e} when given {given} of {data.name}'s "
                           "chance predictor; return a float") from None


def score(pred: Predictions, metrics: Sequence[MetricInfo]) -> dict[str, float]:
    """{metric name: value}; NaN where a metric is undefined, so a diverged model is a result.

    Computed by each metric's vectorised form with every row once: the same code as the
    bootstrap resamples, and a test holds it equal to the scikit-learn function (`fn`, see
    reference_score) for every metric. scikit-learn's per-call input checks cost more than
    the training of a small fold stack.
    """
    ones = np.ones((1, len(pred.y_true)))
    return {m.name: float(m.weighted(pred, ones)[0]) for m in metrics}


def reference_score(pred: Predictions, metrics: Sequence[MetricInfo]) -> dict[str, float]:
    """score() by the scikit-learn functions themselves (`fn`): the definition it must equal."""
    # Our inputs are always well-formed arrays: sklearn's per-call parameter validation only
    # costs time.
    with warnings.catch_warnings(), sklearn.config_context(skip_parameter_validation=True):
        # Undefined cases (one class present, r2 of one row) are reported as NaN, not as noise.
        warnings.simplefilter("ignore")
        return {m.name: _safe(m.fn, pred) for m in metrics}


def _safe(fn: Callable[[Predictions], float], pred: Predictions) -> float:
    try:
        value = float(fn(pred))
    except ValueError:  # sklearn's answer to NaN/inf input or an undefined score
        return math.nan
    return value if math.isfinite(value) else math.nan


def chance_predictions(
    y_train: np.ndarray, y_eval: np.ndarray, *, task: str, n_classes: int
) -> Predictions:
    """What a model that ignores the features scores: the baseline every result should beat."""
    _check_task(task)
    y_train, y_eval = np.asarray(y_train), np.asarray(y_eval)
    X_train, X_eval = np.zeros((len(y_train), 1)), np.zeros((len(y_eval), 1))
    if task == "classification":
        model = DummyClassifier(strategy="prior").fit(X_train, y_train)
        # sklearn only has columns for classes seen in training; the others get probability 0.
        proba = np.zeros((len(y_eval), n_classes))
        proba[:, model.classes_.astype(np.int64)] = model.predict_proba(X_eval)
        return Predictions(y_eval, model.predict(X_eval), proba, n_classes)
    model = DummyRegressor(strategy="mean").fit(X_train, y_train)
    std = float(np.std(y_train))
    return Predictions(y_eval, model.predict(X_eval), None, 0, std if std > 0 else 1.0)


def _check_task(task: str) -> None:
    if task not in _DEFAULTS:
        raise DlbenchError(f"unknown task '{task}'; choose one of: {', '.join(_DEFAULTS)}")
