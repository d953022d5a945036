"""Confidence intervals and paired tests over repeated runs, on scipy.stats' Student t.

Two situations, two variances:
- independent values (seeds on fixed data): the plain t interval, var / J;
- resampled estimates (k-fold, repeated hold-out) share training rows, so they are correlated and
  var / J understates the uncertainty; Nadeau & Bengio (2003) inflate it to
  var * (1/J + n_test/n_train).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

CORRECTED_METHOD = "corrected resampled t (Nadeau & Bengio 2003)"


@dataclass(frozen=True)
class Interval:
    mean: float  # mean of the finite values
    std: float  # sample standard deviation (ddof=1); NaN below 2 values
    low: float  # lower end of the confidence interval for the mean; NaN below 2 values
    high: float  # upper end
    n: int  # how many finite values went in
    method: str  # human-readable name of the interval used


def t_interval(
    values: Iterable[float], confidence: float = 0.95, *, unit: str = "seeds"
) -> Interval:
    """Student t interval for the mean of independent values; `unit` names them in `method`."""
    x = _finite(values)
    return _interval(x, confidence, 1.0 / max(len(x), 1), f"t over {len(x)} {unit}")


def corrected_t_interval(
    values: Iterable[float], *, n_train: float, n_test: float, confidence: float = 0.95
) -> Interval:
    """Nadeau & Bengio's corrected resampled t interval for J resampled estimates.

    n_train / n_test: rows used to train / evaluate each estimate (their ratio is what matters).
    """
    x = _finite(values)
    return _interval(x, confidence, _corrected_factor(len(x), n_train, n_test), CORRECTED_METHOD)


def paired_p_value(
    diffs: Iterable[float], *, n_train: float | None = None, n_test: float | None = None
) -> float:
    """Two-sided p-value of mean(diffs) == 0, over paired differences (same split, same seed).

    With n_train and n_test: the corrected resampled t test; without: the plain paired t test.
    """
    if (n_train is None) != (n_test is None):
        raise ValueError("give both n_train and n_test, or neither")
    x = _finite(diffs)
    if len(x) < 2:
        return math.nan  # one difference says nothing about its spread
    mean, std = float(x.mean()), _std(x)
    if std == 0.0:
        # Every difference identical: no noise to weigh the mean against.
        return 0.0 if mean != 0.0 else 1.0
    factor = 1.0 / len(x) if n_train is None else _corrected_factor(len(x), n_train, n_test)
    t = mean / (std * math.sqrt(factor))
    return float(2.0 * sps.t.sf(abs(t), df=len(x) - 1))


def _interval(x: np.ndarray, confidence: float, factor: float, method: str) -> Interval:
    """mean ± t quantile * sqrt(var * factor), with df = n - 1."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1 (got {confidence})")
    n = len(x)
    mean = float(x.mean()) if n else math.nan
    if n < 2:
        return Interval(mean, math.nan, math.nan, math.nan, n, method)
    std = _std(x)
    quantile = float(sps.t.ppf(0.5 + confidence / 2, df=n - 1))
    half = quantile * std * math.sqrt(factor)
    return Interval(mean, std, mean - half, mean + half, n, method)


def _corrected_factor(j: int, n_train: float, n_test: float) -> float:
    if n_train <= 0 or n_test <= 0:
        raise ValueError(f"n_train and n_test must be positive (got {n_train}, {n_test})")
    return 1.0 / max(j, 1) + n_test / n_train


def _std(x: np.ndarray) -> float:
    # Identical values have exactly zero spread; summation rounding must not invent a tiny one.
    return 0.0 if x.min() == x.max() else float(x.std(ddof=1))


def _finite(values: Iterable[float]) -> np.ndarray:
    # A diverged run scores NaN; it is reported by its status, not averaged in.
    x = np.asarray(values if isinstance(values, np.ndarray) else list(values), np.float64)
    return x[np.isfinite(x)]
