"""Estimates of a mean score with the variance they cover, on scipy.stats' Student t.

Three situations, three variances:
- independent values (seeds on fixed data): the plain t, var / J;
- resampled estimates (k-fold, repeated hold-out) share training rows, so they are correlated and
  var / J understates the uncertainty; Nadeau & Bengio (2003) inflate it to
  var * (1/J + n_test/n_train);
- one set of evaluation rows scored by several seeds: the seeds vary (initialisation, batch
  order) *and* the rows are one sample of the population. The variance is the seeds' var / S plus
  the variance of the seed-mean over a bootstrap of the rows (the same resamples for every seed,
  and for every model it is compared with: paired), with Welch–Satterthwaite degrees of freedom.
  More seeds shrink only the first part; a finite test set keeps the second.

An Estimate gives an interval (two-sided), a one-sided or two-sided p-value against 0, and a
TOST equivalence p-value against a margin, all from one (mean, standard error, df).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from dlbench.seeding import ROWS_KEY, derive_seed

CORRECTED_METHOD = "corrected resampled t (Nadeau & Bengio 2003)"
ROW_REPLICATES = 1000  # bootstrap resamples of the evaluation rows
ALTERNATIVES = ("two-sided", "greater", "less")


@dataclass(frozen=True)
class Interval:
    mean: float  # mean of the finite values
    std: float  # sample standard deviation (ddof=1) of the units; NaN below 2 values
    low: float  # lower end of the confidence interval for the mean; NaN when there is none
    high: float  # upper end
    n: int  # how many finite units went in
    method: str  # what the interval covers, in words


@dataclass(frozen=True)
class Estimate:
    """A mean, its standard error and the t degrees of freedom (inf: normal)."""

    mean: float
    se: float  # NaN: no interval can be given
    df: float
    std: float  # the units' sample standard deviation, for reporting
    n: int  # units (seeds, splits, folds)
    method: str

    def interval(self, confidence: float = 0.95) -> Interval:
        if not 0.0 < confidence < 1.0:
            raise ValueError(f"confidence must be strictly between 0 and 1 (got {confidence})")
        half = self._quantile(0.5 + confidence / 2) * self.se
        return Interval(self.mean, self.std, self.mean - half, self.mean + half, self.n,
                        self.method)

    def p_value(self, alternative: str = "two-sided", null: float = 0.0) -> float:
        """p of mean == null against `alternative` (greater: the mean is above null)."""
        if alternative not in ALTERNATIVES:
            raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
        if not math.isfinite(self.se):
            return math.nan
        if self.se == 0.0:  # every unit identical: no noise to weigh the mean against
            side = {"greater": self.mean > null, "less": self.mean < null}.get(
                alternative, self.mean != null)
            return 0.0 if side else 1.0
        t = (self.mean - null) / self.se
        if alternative == "greater":
            return float(sps.t.sf(t, self.df))
        if alternative == "less":
            return float(sps.t.cdf(t, self.df))
        return float(2.0 * sps.t.sf(abs(t), self.df))

    def equivalence_p(self, margin: float) -> float:
        """TOST: p of |mean| >= margin; below α it shows |mean| < margin (Schuirmann 1987),
        the same as the (1 − 2α) interval lying inside ±margin."""
        if not math.isfinite(self.se) or margin <= 0:
            return math.nan
        if self.se == 0.0:
            return 0.0 if abs(self.mean) < margin else 1.0
        lower = sps.t.sf((self.mean + margin) / self.se, self.df)  # H0: mean <= -margin
        upper = sps.t.cdf((self.mean - margin) / self.se, self.df)  # H0: mean >= +margin
        return float(max(lower, upper))

    def _quantile(self, q: float) -> float:
        if not math.isfinite(self.se):
            return math.nan
        return float(sps.norm.ppf(q) if math.isinf(self.df) else sps.t.ppf(q, self.df))


# --- the three estimates ---------------------------------------------------------------------


def seeds_estimate(values: Iterable[float], unit: str = "seeds") -> Estimate:
    """Independent values: the plain t, var / J."""
    x = _finite(values)
    return _t_estimate(x, 1.0 / max(len(x), 1), f"t over {_count(len(x), unit)}")


def corrected_estimate(values: Iterable[float], *, n_train: float, n_test: float) -> Estimate:
    """Nadeau & Bengio's corrected resampled t for J resampled estimates.

    n_train / n_test: rows used to train / evaluate each estimate (their ratio is what matters).
    """
    x = _finite(values)
    return _t_estimate(x, _corrected_factor(len(x), n_train, n_test), CORRECTED_METHOD)


def seeds_and_rows_estimate(per_seed: Iterable[float], replicates: np.ndarray) -> Estimate:
    """The mean over seeds of a score on one set of evaluation rows, covering both.

    per_seed: (S,) each seed's score on all the rows; replicates: (S, B) each seed's score on B
    bootstrap resamples of the rows, the same resamples for every seed. A seed whose score is
    not finite (diverged) is left out; so is a resample where the score is undefined.
    """
    x = np.asarray(list(per_seed), np.float64)
    keep = np.isfinite(x)
    x, reps = x[keep], np.asarray(replicates, np.float64)[keep]
    rows = reps.shape[1] if reps.ndim == 2 else 0
    if len(x) == 0:
        return Estimate(math.nan, math.nan, math.nan, math.nan, 0, "no finite values")
    seed_mean = reps.mean(0)
    seed_mean = seed_mean[np.isfinite(seed_mean)]
    row_var = float(seed_mean.var(ddof=1)) if len(seed_mean) > 1 else math.nan
    std = _std(x) if len(x) > 1 else math.nan
    if len(x) == 1:  # no seed variance to estimate: the rows alone, and said so
        return Estimate(float(x[0]), math.sqrt(row_var), math.inf, std, 1,
                        f"bootstrap over the evaluation rows ({rows} resamples); 1 seed: "
                        "initialisation variance not covered")
    seed_var = std**2 / len(x)
    total = seed_var + row_var
    df = math.inf if seed_var == 0 else total**2 * (len(x) - 1) / seed_var**2
    return Estimate(float(x.mean()), math.sqrt(total), df, std, len(x),
                    f"t over {len(x)} seeds + bootstrap over the evaluation rows "
                    f"({rows} resamples)")


def row_resamples(n_rows: int, seed: int, replicates: int = ROW_REPLICATES) -> np.ndarray:
    """(replicates, n_rows) bootstrap counts: how often each row is drawn in each resample.

    Seeded by the run seed and the row count only, so every model scored on the same rows
    sees the same resamples (paired comparisons) and a rerun gives the same numbers.
    """
    rng = np.random.default_rng(derive_seed(seed, ROWS_KEY, n_rows))
    return rng.multinomial(n_rows, np.full(n_rows, 1.0 / n_rows), size=replicates)


def unpaired_difference(a: Estimate, b: Estimate) -> Estimate:
    """a − b of two independent estimates (nothing shared to pair on): their variances add,
    with Welch–Satterthwaite degrees of freedom; of two plain t estimates, Welch's t test."""
    parts = [(e.se**2, e.df) for e in (a, b) if e.se > 0]  # NaN se fails the test: stays NaN
    variance = a.se**2 + b.se**2
    df = variance**2 / sum(v**2 / d for v, d in parts) if parts else math.inf
    return Estimate(a.mean - b.mean, math.sqrt(variance), df, math.nan, a.n + b.n,
                    f"Welch: {a.method} vs {b.method}, unpaired")


# --- the plain helpers, as intervals and p-values ---------------------------------------------


def t_interval(values: Iterable[float], confidence: float = 0.95, *,
               unit: str = "seeds") -> Interval:
    """Student t interval for the mean of independent values; `unit` names them in `method`."""
    return seeds_estimate(values, unit).interval(confidence)


def corrected_t_interval(values: Iterable[float], *, n_train: float, n_test: float,
                         confidence: float = 0.95) -> Interval:
    return corrected_estimate(values, n_train=n_train, n_test=n_test).interval(confidence)


def paired_p_value(diffs: Iterable[float], *, n_train: float | None = None,
                   n_test: float | None = None, alternative: str = "two-sided") -> float:
    """p-value of mean(diffs) == 0 over paired differences (same split, same seed).

    With n_train and n_test: the corrected resampled t test; without: the plain paired t test.
    """
    if (n_train is None) != (n_test is None):
        raise ValueError("give both n_train and n_test, or neither")
    estimate = seeds_estimate(diffs) if n_train is None else \
        corrected_estimate(diffs, n_train=n_train, n_test=n_test)
    return estimate.p_value(alternative)


def _t_estimate(x: np.ndarray, factor: float, method: str) -> Estimate:
    """mean, sqrt(var * factor), df = n - 1."""
    n = len(x)
    mean = float(x.mean()) if n else math.nan
    if n < 2:
        return Estimate(mean, math.nan, math.nan, math.nan, n, method)
    std = _std(x)
    return Estimate(mean, std * math.sqrt(factor), n - 1, std, n, method)


def _corrected_factor(j: int, n_train: float, n_test: float) -> float:
    if n_train <= 0 or n_test <= 0:
        raise ValueError(f"n_train and n_test must be positive (got {n_train}, {n_test})")
    return 1.0 / max(j, 1) + n_test / n_train


def _count(n: int, unit: str) -> str:
    return f"{n} {unit.removesuffix('s') if n == 1 else unit}"


def _std(x: np.ndarray) -> float:
    # Identical values have exactly zero spread; summation rounding must not invent a tiny one.
    return 0.0 if x.min() == x.max() else float(x.std(ddof=1))


def _finite(values: Iterable[float]) -> np.ndarray:
    # A diverged run scores NaN; it is reported by its status, not averaged in.
    x = np.asarray(values if isinstance(values, np.ndarray) else list(values), np.float64)
    return x[np.isfinite(x)]
