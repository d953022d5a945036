"""Metrics: a registry of sklearn.metrics wrappers, scoring that never raises, chance baselines."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import sklearn
from scipy.stats import rankdata
from sklearn import metrics as skm
from sklearn.dummy import DummyClassifier, DummyRegressor

from dlbench.errors import DlbenchError
from dlbench.registry import Registry

CLASSIFICATION = ("classification",)
REGRESSION = ("regression",)


@dataclass(frozen=True, eq=False)
class Predictions:
    y_true: np.ndarray  # (n,) int class index, or float target
    y_pred: np.ndarray  # (n,) predicted class index, or predicted value (original units)
    proba: np.ndarray | None  # (n, C) class probabilities, classification only
    n_classes: int = 0  # C (classification); 0 for regression
    y_scale: float = 1.0  # regression: training-part std of the target; `loss` is MSE in it

    def __post_init__(self) -> None:
        if self.proba is not None and self.proba.shape != (len(self.y_true), self.n_classes):
            raise ValueError(
                f"proba shape {self.proba.shape} is not (n, n_classes) = "
                f"({len(self.y_true)}, {self.n_classes})"
            )


@dataclass(frozen=True)
class MetricInfo:
    name: str
    tasks: tuple[str, ...]  # ("classification",), ("regression",) or both
    greater_is_better: bool
    fn: Callable[[Predictions], float]
    description: str
    bounds: tuple[float, float] = (-math.inf, math.inf)  # the values the metric can take


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


METRICS: Registry[MetricInfo] = Registry("metric")
METRICS.add(
    MetricInfo(
        name="accuracy",
        tasks=CLASSIFICATION,
        greater_is_better=True,
        fn=lambda p: skm.accuracy_score(p.y_true, p.y_pred),
        description="fraction of rows whose predicted class is right",
        bounds=(0.0, 1.0),
    )
)
METRICS.add(
    MetricInfo(
        name="balanced_accuracy",
        tasks=CLASSIFICATION,
        greater_is_better=True,
        fn=lambda p: skm.balanced_accuracy_score(p.y_true, p.y_pred),
        description="mean per-class recall; chance is 1/C whatever the class balance",
        bounds=(0.0, 1.0),
    )
)
METRICS.add(
    MetricInfo(
        name="f1_macro",
        tasks=CLASSIFICATION,
        greater_is_better=True,
        fn=lambda p: skm.f1_score(p.y_true, p.y_pred, average="macro", zero_division=0),
        description="unweighted mean of per-class F1",
        bounds=(0.0, 1.0),
    )
)
METRICS.add(
    MetricInfo(
        name="log_loss",
        tasks=CLASSIFICATION,
        greater_is_better=False,
        fn=_log_loss,
        description="mean negative log-probability of the true class, in nats",
        bounds=(0.0, math.inf),
    )
)
METRICS.add(
    MetricInfo(
        name="roc_auc",
        tasks=CLASSIFICATION,
        greater_is_better=True,
        fn=_roc_auc,
        description="area under the ROC curve (multiclass: one-vs-rest, macro average)",
        bounds=(0.0, 1.0),
    )
)
METRICS.add(
    MetricInfo(
        name="loss",
        tasks=CLASSIFICATION + REGRESSION,
        greater_is_better=False,
        fn=_loss,
        description="the training objective: cross-entropy (nats), or MSE in target-std units",
        bounds=(0.0, math.inf),
    )
)
METRICS.add(
    MetricInfo(
        name="mse",
        tasks=REGRESSION,
        greater_is_better=False,
        fn=lambda p: skm.mean_squared_error(p.y_true, p.y_pred),
        description="mean squared error, in squared target units",
        bounds=(0.0, math.inf),
    )
)
METRICS.add(
    MetricInfo(
        name="mae",
        tasks=REGRESSION,
        greater_is_better=False,
        fn=lambda p: skm.mean_absolute_error(p.y_true, p.y_pred),
        description="mean absolute error, in target units",
        bounds=(0.0, math.inf),
    )
)
METRICS.add(
    MetricInfo(
        name="r2",
        tasks=REGRESSION,
        greater_is_better=True,
        fn=lambda p: skm.r2_score(p.y_true, p.y_pred),
        description="coefficient of determination: 1 is perfect, 0 is predicting the mean",
        bounds=(-math.inf, 1.0),
    )
)

_DEFAULTS = {
    # `loss` (the training objective) is opt-in: for classification it equals log_loss
    "classification": ["accuracy", "balanced_accuracy", "f1_macro", "log_loss", "roc_auc"],
    "regression": ["mse", "mae", "r2"],
}


def default_metrics(task: str) -> list[str]:
    _check_task(task)
    return list(_DEFAULTS[task])


def resolve_metrics(names: Sequence[str] | None, task: str) -> list[MetricInfo]:
    """The metrics to score, in the order given; None (or empty) means the task's defaults."""
    _check_task(task)
    valid = [m.name for m in METRICS if task in m.tasks]
    resolved: list[MetricInfo] = []
    for name in dict.fromkeys(names or default_metrics(task)):  # drop repeats, keep order
        if name not in valid:
            why = "does not apply to" if name in METRICS else "is not a metric for"
            raise DlbenchError(f"'{name}' {why} {task}; choose from: {', '.join(valid)}")
        resolved.append(METRICS.get(name))
    return resolved


def score(pred: Predictions, metrics: Sequence[MetricInfo]) -> dict[str, float]:
    """{metric name: value}; NaN where a metric is undefined, so a diverged model is a result."""
    # Our inputs are always well-formed arrays: sklearn's per-call parameter validation only
    # costs time (it dominated scoring for many small folds).
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
