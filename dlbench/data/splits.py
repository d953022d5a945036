"""Train/validation splits: (iterated) k-fold and hold-out, with strata, groups or time order.

Every split comes from a scikit-learn splitter; this module only picks the splitter, derives its
seed, checks the input up front (so a bad option fails with one line, not a sklearn traceback)
and returns sorted row positions.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.model_selection import (
    GroupKFold,
    GroupShuffleSplit,
    KFold,
    ShuffleSplit,
    StratifiedGroupKFold,
    StratifiedKFold,
    StratifiedShuffleSplit,
    TimeSeriesSplit,
)

from dlbench.errors import DlbenchError
from dlbench.registry import Registry
from dlbench.seeding import HOLDOUT_KEY, TEST_KEY, derive_seed

# Seed keys for the shuffle splits. k-fold repeat r uses derive_seed(seed, r); these keys sit far
# above any repeat index so hold-out and test splits never reuse a k-fold stream. They must not be
# 0: SeedSequence([s, 0]) equals SeedSequence([s]).


@dataclass(frozen=True)
class SplitConfig:
    protocol: str = "kfold"  # kfold | holdout (see PROTOCOLS)
    k: int = 4  # folds (kfold)
    repeats: int = 1  # kfold repeats; >1 = iterated k-fold, reshuffled every repeat
    val_fraction: float = 0.25  # holdout: fraction of rows for validation, in (0, 1)
    holdout_seeds: int = 1  # holdout: repeat the split with this many shuffle seeds
    stratify: bool = True  # classification only: keep class ratios in every part
    time_order: bool = False  # forward-chaining splits in row order; no shuffling
    seed: int = 0  # run seed; every repeat's shuffle seed is derived from it

    def __post_init__(self) -> None:
        # Checks that need no data run when the config is built, i.e. at the CLI boundary.
        PROTOCOLS.get(self.protocol)
        if self.k < 2:
            raise DlbenchError(f"--k must be at least 2 (got {self.k})")
        if self.repeats < 1:
            raise DlbenchError(f"--repeats must be at least 1 (got {self.repeats})")
        if self.holdout_seeds < 1:
            raise DlbenchError(f"--holdout-seeds must be at least 1 (got {self.holdout_seeds})")
        _check_fraction(self.val_fraction, "--val-fraction")
        if self.seed < 0:
            raise DlbenchError(f"--seed must be a non-negative integer (got {self.seed})")
        if self.time_order and self.repeats > 1:
            raise DlbenchError("time-ordered splits cannot be reshuffled; use --repeats 1")
        if self.time_order and self.holdout_seeds > 1:
            raise DlbenchError("time-ordered splits cannot be reshuffled; use --holdout-seeds 1")


@dataclass(frozen=True)
class Split:
    repeat: int  # repeat index (kfold repeat, or holdout seed index)
    fold: int  # fold index (0 for holdout)
    train: np.ndarray  # sorted int64 row positions
    val: np.ndarray  # sorted int64 row positions


# make(y, config, stratified, groups) -> splits; `stratified` is already resolved from the task.
MakeSplits = Callable[[np.ndarray, SplitConfig, bool, np.ndarray | None], list[Split]]


@dataclass(frozen=True)
class SplitProtocol:
    name: str
    description: str
    make: MakeSplits


def make_splits(
    y: np.ndarray, config: SplitConfig, *, task: str, groups: np.ndarray | None = None
) -> list[Split]:
    """The train/validation splits of rows 0..len(y)-1 under `config`."""
    y, groups = _as_arrays(y, groups)
    _check_time_groups(config.time_order, groups)
    stratified = _is_stratified(config.stratify, task, config.time_order)
    splits = PROTOCOLS.get(config.protocol).make(y, config, stratified, groups)
    for s in splits:
        for part, rows in (("training", s.train), ("validation", s.val)):
            if len(rows) == 0:
                raise DlbenchError(
                    f"the {part} part of repeat {s.repeat}, fold {s.fold} would be empty; "
                    "use fewer folds (--k) or another --val-fraction"
                )
    return splits


def split_test(
    y: np.ndarray,
    *,
    task: str,
    test_fraction: float,
    seed: int,
    stratify: bool,
    time_order: bool,
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(development rows, test rows), both sorted: the test rows are set aside before any split."""
    y, groups = _as_arrays(y, groups)
    _check_fraction(test_fraction, "--test-fraction")
    _check_time_groups(time_order, groups)
    if time_order:
        return _tail_split(len(y), test_fraction, "--test-fraction")
    stratified = _is_stratified(stratify, task, time_order)
    random_state = derive_seed(seed, TEST_KEY)
    pairs = _shuffle_splits(
        y, test_fraction, 1, random_state, stratified, groups, "--test-fraction", "test"
    )
    return pairs[0]


def dev_and_test(dataset: Any, test_fraction: float | None, *, seed: int, stratify: bool,
                 time_order: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """(train+validation rows, untouched test rows or None) of a dlbench Dataset: its fixed test
    split when it has one, else `test_fraction` of its rows, else no test split."""
    rows = np.arange(dataset.n_samples)
    if dataset.test_index is not None:
        return np.setdiff1d(rows, dataset.test_index), np.sort(dataset.test_index)
    if test_fraction is None:
        return rows, None
    return split_test(dataset.y, task=dataset.task, test_fraction=test_fraction, seed=seed,
                      stratify=stratify, time_order=time_order,
                      groups=None if time_order else dataset.groups)


def split_record(fingerprint: str, train: np.ndarray, *evaluated: np.ndarray,
                 **labels: Any) -> dict[str, Any]:
    """What a run records of one split (its manifest's `splits`), so `compare` can pair two
    runs' members only where they trained and were scored on the same rows: the sizes (the
    Nadeau–Bengio correction needs n_test / n_train) and a digest of the dataset fingerprint
    and the row positions of every part. n_test counts the first evaluated part's rows."""
    h = hashlib.sha256(fingerprint.encode())
    for part in (train, *evaluated):
        h.update(np.asarray(part, dtype=np.int64).tobytes())
        h.update(b"|")  # the same rows moved from one part to the next make a new split
    return {**labels, "n_train": len(train), "n_test": len(evaluated[0]) if evaluated else 0,
            "rows": h.hexdigest()[:16]}


def shared_duplicates(X: np.ndarray, train: np.ndarray, evaluation: np.ndarray) -> int:
    """How many evaluation rows have a feature vector exactly equal to some training row's."""
    seen = set(_row_digests(X, train))
    return sum(digest in seen for digest in _row_digests(X, evaluation))


def _row_digests(X: np.ndarray, rows: np.ndarray, chunk: int = 4096) -> Iterable[bytes]:
    # Hashing the raw bytes of each row is ~4x faster than sorting void views and bounds memory
    # by the chunk; a 128-bit digest makes a false match practically impossible.
    rows = np.asarray(rows, dtype=np.int64)
    for start in range(0, len(rows), chunk):
        block = np.ascontiguousarray(X[rows[start : start + chunk]])
        if block.dtype.kind == "f":
            block = block + 0.0  # -0.0 == 0.0 as numbers, but not as bytes
        for row in block:
            yield hashlib.blake2b(row.tobytes(), digest_size=16).digest()


# --- protocols -------------------------------------------------------------------------------


def _kfold(y: np.ndarray, config: SplitConfig, stratified: bool, groups) -> list[Split]:
    _check_k(y, config.k, stratified, groups, config.time_order)
    X = np.zeros((len(y), 1))  # splitters only need the row count from X
    splits = []
    for repeat in range(config.repeats):
        splitter = _kfold_splitter(config, stratified, groups is not None, repeat)
        for fold, (train, val) in enumerate(splitter.split(X, y, groups)):
            splits.append(Split(repeat, fold, _sorted(train), _sorted(val)))
    return splits


def _kfold_splitter(config: SplitConfig, stratified: bool, grouped: bool, repeat: int):
    if config.time_order:
        return TimeSeriesSplit(n_splits=config.k)  # forward chaining: val always after train
    # A fresh shuffle seed per repeat is what makes repeated k-fold "iterated" k-fold.
    shuffle = {"shuffle": True, "random_state": derive_seed(config.seed, repeat)}
    if grouped:
        return (StratifiedGroupKFold if stratified else GroupKFold)(n_splits=config.k, **shuffle)
    return (StratifiedKFold if stratified else KFold)(n_splits=config.k, **shuffle)


def _holdout(y: np.ndarray, config: SplitConfig, stratified: bool, groups) -> list[Split]:
    if config.time_order:
        train, val = _tail_split(len(y), config.val_fraction, "--val-fraction")
        return [Split(0, 0, train, val)]
    # One splitter with n_splits seeds: adding seeds extends the list, earlier splits stay put.
    random_state = derive_seed(config.seed, HOLDOUT_KEY)
    pairs = _shuffle_splits(
        y,
        config.val_fraction,
        config.holdout_seeds,
        random_state,
        stratified,
        groups,
        "--val-fraction",
        "validation",
    )
    return [Split(i, 0, train, val) for i, (train, val) in enumerate(pairs)]


PROTOCOLS: Registry[SplitProtocol] = Registry("protocol")
PROTOCOLS.add(
    SplitProtocol(
        "kfold",
        "k-fold cross-validation; --repeats > 1 reshuffles for iterated k-fold",
        _kfold,
    )
)
PROTOCOLS.add(
    SplitProtocol(
        "holdout",
        "one validation part of --val-fraction, repeated over --holdout-seeds shuffles",
        _holdout,
    )
)


# --- helpers ---------------------------------------------------------------------------------


def _shuffle_splits(
    y, fraction, n_splits, random_state, stratified, groups, option, part
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, held-out) pairs from sklearn's shuffle splitters; `option`/`part` name the flag."""
    _check_shuffle_sizes(y, fraction, stratified, groups, option, part)
    kwargs = {"n_splits": n_splits, "test_size": fraction, "random_state": random_state}
    if groups is not None:
        # sklearn has no stratified group shuffle split: groups win, strata are not kept.
        splitter = GroupShuffleSplit(**kwargs)
    else:
        splitter = (StratifiedShuffleSplit if stratified else ShuffleSplit)(**kwargs)
    X = np.zeros((len(y), 1))
    return [(_sorted(a), _sorted(b)) for a, b in splitter.split(X, y, groups)]


def _check_shuffle_sizes(y, fraction, stratified, groups, option, part) -> None:
    n_units = len(np.unique(groups)) if groups is not None else len(y)
    unit = "groups" if groups is not None else "rows"
    n_out = math.ceil(fraction * n_units)  # sklearn's rounding of a float test_size
    if n_units - n_out < 1:
        raise DlbenchError(
            f"{option} {fraction} leaves no training {unit} out of {n_units}; lower {option}"
        )
    if not stratified or groups is not None:
        return
    counts = np.unique(y, return_counts=True)[1]
    if counts.min() < 2:
        raise DlbenchError(
            f"a stratified {part} split needs at least 2 rows of every class (the smallest "
            "class has 1); pass --no-stratify"
        )
    for name, size in ((part, n_out), ("training", n_units - n_out)):
        if size < len(counts):
            raise DlbenchError(
                f"the {name} part ({size} rows) cannot hold all {len(counts)} classes; "
                f"change {option} or pass --no-stratify"
            )


def _tail_split(n: int, fraction: float, option: str) -> tuple[np.ndarray, np.ndarray]:
    """Time order: the last `fraction` of rows is held out, everything before it trains."""
    n_out = math.ceil(fraction * n)
    if n - n_out < 1:
        raise DlbenchError(f"{option} {fraction} leaves no training rows out of {n}; lower it")
    rows = np.arange(n, dtype=np.int64)
    return rows[: n - n_out], rows[n - n_out :]


def _check_k(y, k: int, stratified: bool, groups, time_order: bool) -> None:
    if time_order and k + 1 > len(y):
        # TimeSeriesSplit cuts the rows into k + 1 blocks: the first one only ever trains.
        raise DlbenchError(f"time-ordered --k {k} needs more than {k} rows (got {len(y)})")
    n_units = len(np.unique(groups)) if groups is not None else len(y)
    unit = "groups" if groups is not None else "rows"
    if k > n_units:
        raise DlbenchError(f"--k {k} is more than the {n_units} {unit}; lower --k")
    if stratified:
        smallest = int(np.unique(y, return_counts=True)[1].min())
        if k > smallest:
            raise DlbenchError(
                f"--k {k} is more than the {smallest} rows of the smallest class; "
                "lower --k or pass --no-stratify"
            )


def _check_fraction(value: float, option: str) -> None:
    if not 0.0 < value < 1.0:
        raise DlbenchError(f"{option} must be strictly between 0 and 1 (got {value})")


def _check_time_groups(time_order: bool, groups) -> None:
    if time_order and groups is not None:
        # Forward chaining cuts the row order, so a group could end up on both sides.
        raise DlbenchError(
            "time-ordered splits cannot keep groups apart; drop --time-order or the groups"
        )


def _is_stratified(stratify: bool, task: str, time_order: bool) -> bool:
    # Strata need class labels, and time order fixes the cut, so there is nothing to balance.
    return stratify and task == "classification" and not time_order


def _as_arrays(y, groups) -> tuple[np.ndarray, np.ndarray | None]:
    y = np.asarray(y)
    if y.ndim != 1 or len(y) == 0:
        raise DlbenchError(f"need a non-empty 1-d target to split (got shape {y.shape})")
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != y.shape:
            raise ValueError(f"groups shape {groups.shape} does not match y shape {y.shape}")
    return y, groups


def _sorted(rows: np.ndarray) -> np.ndarray:
    return np.sort(np.asarray(rows, dtype=np.int64))
