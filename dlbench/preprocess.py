"""Feature preprocessing, fitted on a member's training rows only and applied as x·scale + shift.

Both scalers are affine per feature, so the trainer keeps one (scale, shift) pair per member and
applies it to each batch: no per-member copy of the data, and evaluation rows never reach fit().
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.preprocessing import MinMaxScaler, StandardScaler

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
