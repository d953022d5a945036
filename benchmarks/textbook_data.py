"""Data sets for textbook claims that no built-in data set can show: a rare class, missing cells,
duplicated rows, pure noise. A suite plugin (`plugins = ["textbook_data.py"]` in
benchmarks/textbook.toml): each is a DATASETS entry, deterministic (its own fixed seed), small
enough for a laptop, with parameters written name[k=v] like a built-in's.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_breast_cancer, make_classification
from sklearn.feature_selection import SelectKBest, f_classif

from dlbench.data.datasets import DATASETS, Dataset, DatasetInfo

SEED = 0  # part of each data set's definition, not the experiment's seed


def _classes(name: str, X: np.ndarray, y: np.ndarray) -> Dataset:
    classes = tuple(str(c) for c in range(int(y.max()) + 1))
    return Dataset(name, X.astype(np.float32), y.astype(np.int64), "classification", classes)


def imbalanced(n: int = 2000, rare: float = 0.05) -> Dataset:
    """Two classes, `rare` of the rows in class 1, overlapping: accuracy flatters a model that
    always says 0, precision, recall and average precision do not."""
    X, y = make_classification(n_samples=n, n_features=10, n_informative=4, n_redundant=2,
                               weights=[1 - rare], flip_y=0.0, class_sep=0.8, random_state=SEED)
    return _classes("imbalanced", X, y)


def noise(n: int = 200, d: int = 500, chosen: int = 0) -> Dataset:
    """Features and labels drawn independently: nothing to learn, so any estimate above chance
    is a leak. `chosen` > 0 makes that leak: only the `chosen` features of highest F statistic
    on all rows, labels included, are kept before any split (as a user who selects features
    and then cross-validates does)."""
    rng = np.random.default_rng(SEED)
    X, y = rng.standard_normal((n, d)), rng.integers(0, 2, n)
    if chosen:
        X = SelectKBest(f_classif, k=chosen).fit_transform(X, y)
    return _classes("noise", X, y)


def holes(share: float = 0.3) -> Dataset:
    """Breast cancer (30 features on scales from 1e-3 to 1e3) with `share` of its cells missing
    at random (NaN): they must be filled, from each member's training rows (--missing)."""
    X, y = load_breast_cancer(return_X_y=True)
    X = X.copy()
    X[np.random.default_rng(SEED).random(X.shape) < share] = np.nan
    return _classes("holes", X, y)


def duplicated(n: int = 300, copies: int = 3, flip: float = 0.2) -> Dataset:
    """n rows with `flip` of their labels random, each repeated `copies` times (then shuffled):
    a split puts copies of a validation row in training, and memorising them flatters the
    estimate; --dedupe keeps one copy of each."""
    X, y = make_classification(n_samples=n, n_features=10, n_informative=5, flip_y=flip,
                               random_state=SEED)
    order = np.random.default_rng(SEED).permutation(n * copies)
    return _classes("duplicated", np.tile(X, (copies, 1))[order], np.tile(y, copies)[order])


for _info in (
    DatasetInfo("imbalanced", "2 classes, 5% rare, overlapping (textbook plugin)", "classification",
                imbalanced, {"n": 2000, "rare": 0.05}),
    DatasetInfo("noise", "500 noise features, random labels (textbook plugin)", "classification",
                noise, {"n": 200, "d": 500, "chosen": 0}),
    DatasetInfo("holes", "breast cancer with 30% of cells missing (textbook plugin)",
                "classification", holes, {"share": 0.3}),
    DatasetInfo("duplicated", "300 noisy rows, each 3 times (textbook plugin)", "classification",
                duplicated, {"n": 300, "copies": 3, "flip": 0.2}),
):
    DATASETS.add(_info)
