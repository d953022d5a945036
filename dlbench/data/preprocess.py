"""Feature preprocessing, fitted on a member's training rows only and applied as x·scale + shift.

Both scalers are affine per feature, so the trainer keeps one (scale, shift) pair per member and
applies it to each batch: no per-member copy of the data, and evaluation rows never reach fit().
Missing values are filled (and flagged) and features selected the same way: per member, from
its training rows, applied per batch (fit_inputs).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from dlbench.errors import DlbenchError
from dlbench.registry import Registry


@dataclass(frozen=True)
class PreprocessInfo:
    name: str
    description: str
    fit: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # X_train -> (scale, shift), (d,)


def _standardize(X):
    s = StandardScaler().fit(X)  # scale_ is 1 for constant features, so nothing divides by 0
    return 1 / s.scale_, -s.mean_ / s.scale_


def _minmax(X):
    s = MinMaxScaler().fit(X)
    return s.scale_, s.min_


def _identity(X):
    return np.ones(X.shape[1]), np.zeros(X.shape[1])


PREPROCESSORS: Registry[PreprocessInfo] = Registry("preprocessing")
PREPROCESSORS.add(PreprocessInfo("standardize", "zero mean, unit variance per feature",
                                 _standardize))
PREPROCESSORS.add(PreprocessInfo("minmax", "each feature scaled to [0, 1]", _minmax))
PREPROCESSORS.add(PreprocessInfo("none", "features as given", _identity))


def fit_affine(name: str, X_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(scale, shift) float32 arrays of shape (d,), fitted on the training rows given."""
    scale, shift = PREPROCESSORS.get(name).fit(np.asarray(X_train, dtype=np.float64))
    return scale.astype(np.float32), shift.astype(np.float32)


# --- missing values and feature selection: the rest of a member's input pipeline -------------
#
# Per member, fitted on its training rows only, in this order:
#   1. fill: each missing value (NaN) of feature j becomes fill[j] (IMPUTERS);
#   2. indicators: one 0/1 column per feature listed in `indicators`, 1 where it was missing;
#   3. selection: the K features with the largest F statistic (sklearn's SelectKBest with
#      f_classif / f_regression) on the filled training rows are kept; the others are zeroed
#      after the affine, with their indicator columns;
#   4. the affine (PREPROCESSORS), fitted on the filled training rows with their indicators.
# A zeroed column is a removed input for the first layer: its weights multiply 0, so they take
# no part in the output and get no gradient (penalties and decay still act on them).


@dataclass(frozen=True)
class ImputerInfo:
    name: str
    description: str
    fill: Callable[[np.ndarray], np.ndarray]  # X_train (n, d) with NaN -> (d,) fill values


def _nan_stat(stat: Callable[..., np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """A column statistic of the observed values; 0 for a column with none observed (as
    SimpleImputer with keep_empty_features=True)."""
    def fill(X: np.ndarray) -> np.ndarray:
        observed = ~np.isnan(X).all(0)
        values = np.zeros(X.shape[1])
        values[observed] = stat(X[:, observed], axis=0)
        return values
    return fill


IMPUTERS: Registry[ImputerInfo] = Registry("missing-value fill")
IMPUTERS.add(ImputerInfo("zero", "missing values become 0", lambda X: np.zeros(X.shape[1])))
IMPUTERS.add(ImputerInfo("mean", "missing values become the column mean of the training rows",
                         _nan_stat(np.nanmean)))
IMPUTERS.add(ImputerInfo("median", "missing values become the column median of the training "
                         "rows", _nan_stat(np.nanmedian)))


@dataclass(frozen=True, eq=False)
class Inputs:
    """One member's fitted input pipeline: raw (n, d) rows, NaN where missing -> (n, d + k)."""

    fill: np.ndarray  # (d,) float32: replaces a missing value of each feature
    indicators: np.ndarray  # (k,) int64: features whose missingness is an extra column
    scale: np.ndarray  # (d + k,) float32, 0 for a column left out by feature selection
    shift: np.ndarray  # (d + k,) float32, 0 likewise

    def transform(self, X: np.ndarray) -> np.ndarray:
        """The rows as the model sees them (float32), in numpy: the trainer does the same on
        its device, per batch."""
        X = np.asarray(X, dtype=np.float32)
        missing = np.isnan(X)
        filled = np.where(missing, self.fill, X)
        full = np.hstack([filled, missing[:, self.indicators].astype(np.float32)])
        return full * self.scale + self.shift


def fit_inputs(X_train: np.ndarray, y_train: np.ndarray, task: str, preprocess: str = "standardize",
               missing: str = "none", features: int = 0,
               indicators: np.ndarray | None = None) -> Inputs:
    """A member's input pipeline from its training rows alone (see the steps above).

    `missing` "none": the rows must be complete. `features` 0: keep every feature.
    `indicators`: the features that get a missingness column — the same for every member of a
    dataset, so it is the data's to say (see indicator_columns), never a member's.
    """
    X = np.asarray(X_train, dtype=np.float64)
    indicators = np.zeros(0, dtype=np.int64) if indicators is None else np.asarray(indicators)
    nan = np.isnan(X)
    holes = bool(nan.any())
    if missing == "none":
        if holes:
            raise DlbenchError("the training rows have missing values; pass --missing "
                               "zero, mean or median to fill them")
        fill = np.zeros(X.shape[1])
    else:
        fill = IMPUTERS.get(missing).fill(X)
    filled = np.where(nan, fill, X) if holes else X  # complete rows: no copy
    full = np.hstack([filled, nan[:, indicators]]) if len(indicators) else filled
    scale, shift = PREPROCESSORS.get(preprocess).fit(full)
    if features:
        keep = select_features(filled, y_train, features, task)
        kept = np.concatenate([keep, keep[indicators]]).astype(np.float64)
        scale, shift = scale * kept, shift * kept
    return Inputs(fill.astype(np.float32), indicators.astype(np.int64),
                  scale.astype(np.float32), shift.astype(np.float32))


def select_features(X_train: np.ndarray, y_train: np.ndarray, k: int, task: str) -> np.ndarray:
    """(d,) bool: the k features with the largest F statistic against the target on these
    (complete) rows — sklearn's SelectKBest with f_classif, or f_regression for regression.
    A constant feature scores NaN, which SelectKBest ranks last."""
    from sklearn.feature_selection import SelectKBest, f_classif, f_regression

    score = f_regression if task == "regression" else f_classif
    with warnings.catch_warnings():  # constant features: "invalid value", "are constant"
        warnings.simplefilter("ignore")
        return SelectKBest(score, k=min(k, X_train.shape[1])).fit(X_train, y_train).get_support()


def indicator_columns(missing_features: np.ndarray, input_shape: tuple[int, ...] | None
                      ) -> np.ndarray:
    """The features that get a missingness column, from those with a missing value anywhere
    in the data (Dataset.missing_features). Tabular data: each of them — a fact of the data's
    layout, like its column names: no value of any row is used, and every member gets the same
    columns, so members share a stack and a member alone is the same model. Sequences and
    images: none — a sample keeps its (C, L) or (C, H, W) shape, so conv models, shifts and
    test-time augmentation still apply; their missing values are filled, not flagged."""
    if input_shape is not None:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(missing_features, dtype=np.int64)
