"""Split invariants over every protocol and variant, the error messages, and duplicate counting."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dlbench.data.splits import (
    PROTOCOLS,
    Split,
    SplitConfig,
    make_splits,
    shared_duplicates,
    split_test,
)
from dlbench.errors import DlbenchError

N = 60
rng = np.random.default_rng(0)
Y_CLASS = rng.permutation(np.repeat([0, 1, 2], [30, 20, 10]))  # imbalanced on purpose
Y_REG = rng.normal(size=N)
GROUPS = rng.permutation(np.arange(N) // 3)  # 20 groups of 3, scattered over the rows

# (id, SplitConfig keyword arguments, task, grouped)
VARIANTS = [
    ("stratified", {}, "classification", False),
    ("plain-class", {"stratify": False}, "classification", False),
    ("regression", {}, "regression", False),
    ("grouped", {"stratify": False}, "classification", True),
    ("grouped-stratified", {}, "classification", True),
    ("grouped-regression", {}, "regression", True),
    ("time", {"time_order": True}, "classification", False),
]
PROTOCOL_VARIANTS = [
    pytest.param(protocol, kwargs, task, grouped, id=f"{protocol}-{name}")
    for protocol in PROTOCOLS.names()
    for name, kwargs, task, grouped in VARIANTS
]
SHUFFLED = [v for v in PROTOCOL_VARIANTS if "time" not in v.id]
KFOLD_SHUFFLED = [v for v in SHUFFLED if v.values[0] == "kfold"]


def splits_for(protocol, kwargs, task, grouped, **extra) -> list[Split]:
    config = SplitConfig(protocol=protocol, **{**kwargs, **extra})
    y = Y_CLASS if task == "classification" else Y_REG
    return make_splits(y, config, task=task, groups=GROUPS if grouped else None)


def reshuffles(kwargs, protocol) -> dict:
    if kwargs.get("time_order"):
        return {}
    return {"repeats": 3} if protocol == "kfold" else {"holdout_seeds": 3}


def partition(splits: list[Split], repeat: int) -> set[tuple[int, ...]]:
    return {tuple(s.val) for s in splits if s.repeat == repeat}


@pytest.mark.parametrize("protocol,kwargs,task,grouped", PROTOCOL_VARIANTS)
def test_parts_are_sorted_disjoint_int64_rows(protocol, kwargs, task, grouped):
    splits = splits_for(protocol, kwargs, task, grouped, **reshuffles(kwargs, protocol))
    assert splits
    for s in splits:
        for rows in (s.train, s.val):
            assert rows.dtype == np.int64 and len(rows) > 0
            assert np.all(np.diff(rows) > 0) and rows[0] >= 0 and rows[-1] < N
        assert not set(s.train) & set(s.val)


@pytest.mark.parametrize("protocol,kwargs,task,grouped", KFOLD_SHUFFLED)
def test_kfold_validates_every_row_once_per_repeat(protocol, kwargs, task, grouped):
    splits = splits_for(protocol, kwargs, task, grouped, k=5, repeats=3)
    for repeat in range(3):
        folds = [s for s in splits if s.repeat == repeat]
        assert [s.fold for s in folds] == list(range(5))
        assert np.array_equal(np.sort(np.concatenate([s.val for s in folds])), np.arange(N))
        for s in folds:  # what is not validated trains
            assert len(s.train) + len(s.val) == N


PLAIN_OR_STRATIFIED = [v[:3] for v in VARIANTS if not v[3] and "time" not in v[0]]


@pytest.mark.parametrize("name,kwargs,task", PLAIN_OR_STRATIFIED)
@pytest.mark.parametrize("k", [4, 7])
def test_fold_sizes_within_one(name, kwargs, task, k):
    splits = splits_for("kfold", kwargs, task, False, k=k)
    sizes = [len(s.val) for s in splits]
    assert max(sizes) - min(sizes) <= 1


def keeps_class_ratios(splits: list[Split], y: np.ndarray) -> bool:
    """Every class's count in every part is within one of its proportional share."""
    totals = np.bincount(y)
    for s in splits:
        for rows in (s.val, s.train):
            expected = totals * len(rows) / len(y)
            if np.any(np.abs(np.bincount(y[rows], minlength=len(totals)) - expected) > 1):
                return False
    return True


@pytest.mark.parametrize("protocol", PROTOCOLS.names())
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stratified_splits_keep_class_ratios(protocol, seed):
    splits = splits_for(
        protocol, {"seed": seed}, "classification", False, **reshuffles({}, protocol)
    )
    assert keeps_class_ratios(splits, Y_CLASS)


def test_class_ratio_check_catches_unstratified_splits():
    # The invariant above would be vacuous if plain shuffling also passed it.
    plain = [
        splits_for("kfold", {"stratify": False, "seed": s}, "classification", False)
        for s in range(5)
    ]
    assert not all(keeps_class_ratios(splits, Y_CLASS) for splits in plain)


@pytest.mark.parametrize("protocol,kwargs,task,grouped", SHUFFLED)
def test_repeats_are_reshuffled(protocol, kwargs, task, grouped):
    splits = splits_for(protocol, kwargs, task, grouped, **reshuffles(kwargs, protocol))
    assert sorted({s.repeat for s in splits}) == [0, 1, 2]
    parts = [partition(splits, r) for r in range(3)]
    assert parts[0] != parts[1] and parts[1] != parts[2] and parts[0] != parts[2]


@pytest.mark.parametrize("protocol,kwargs,task,grouped", SHUFFLED)
def test_same_seed_same_splits_other_seed_other_splits(protocol, kwargs, task, grouped):
    def run(seed):
        return splits_for(protocol, {**kwargs, "seed": seed}, task, grouped)

    first, again, other = run(7), run(7), run(8)
    assert all(
        np.array_equal(a.train, b.train) and np.array_equal(a.val, b.val)
        for a, b in zip(first, again, strict=True)
    )
    assert partition(first, 0) != partition(other, 0)


@pytest.mark.parametrize("protocol,kwargs,task,grouped", [v for v in SHUFFLED if v.values[3]])
def test_groups_never_straddle_train_and_val(protocol, kwargs, task, grouped):
    for s in splits_for(protocol, kwargs, task, grouped, **reshuffles(kwargs, protocol)):
        assert not set(GROUPS[s.train]) & set(GROUPS[s.val])


@pytest.mark.parametrize("protocol", PROTOCOLS.names())
def test_time_order_validates_only_after_training(protocol):
    splits = splits_for(protocol, {"time_order": True}, "classification", False)
    for s in splits:
        assert s.train.max() < s.val.min()
        assert np.array_equal(s.val, np.arange(s.val[0], s.val[-1] + 1))  # one block of time


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5])
@pytest.mark.parametrize("name,kwargs,task", [v[:3] for v in VARIANTS if not v[3]])
def test_holdout_val_size_is_the_fraction(fraction, name, kwargs, task):
    splits = splits_for("holdout", kwargs, task, False, val_fraction=fraction)
    for s in splits:
        assert len(s.val) == math.ceil(fraction * N)
        assert len(s.train) + len(s.val) == N


@pytest.mark.parametrize("stratify", [True, False])
def test_split_test_sets_aside_a_fraction(stratify):
    dev, test = split_test(
        Y_CLASS,
        task="classification",
        test_fraction=0.2,
        seed=3,
        stratify=stratify,
        time_order=False,
    )
    assert len(test) == math.ceil(0.2 * N)
    assert np.array_equal(np.sort(np.concatenate([dev, test])), np.arange(N))
    assert np.all(np.diff(dev) > 0) and np.all(np.diff(test) > 0)
    if stratify:
        assert keeps_class_ratios([Split(0, 0, dev, test)], Y_CLASS)
    again = split_test(
        Y_CLASS,
        task="classification",
        test_fraction=0.2,
        seed=3,
        stratify=stratify,
        time_order=False,
    )
    assert np.array_equal(again[1], test)


def test_split_test_time_order_and_groups():
    dev, test = split_test(
        Y_REG, task="regression", test_fraction=0.25, seed=0, stratify=True, time_order=True
    )
    assert np.array_equal(test, np.arange(N - 15, N)) and np.array_equal(dev, np.arange(N - 15))
    dev, test = split_test(
        Y_CLASS,
        task="classification",
        test_fraction=0.25,
        seed=0,
        stratify=True,
        time_order=False,
        groups=GROUPS,
    )
    assert not set(GROUPS[dev]) & set(GROUPS[test])


TINY = np.array([0, 0, 0, 1, 1, 1, 1, 1])  # smallest class: 3 rows
ERRORS = [
    ("unknown protocol", lambda: SplitConfig(protocol="loo"), "kfold, holdout"),
    ("k below 2", lambda: SplitConfig(k=1), "--k"),
    ("k above rows", lambda: make_splits(np.zeros(3), SplitConfig(k=4), task="regression"), "--k"),
    (
        "k above groups",
        lambda: make_splits(Y_REG, SplitConfig(k=4), task="regression", groups=np.arange(N) % 3),
        "3 groups",
    ),
    (
        "k above smallest class",
        lambda: make_splits(TINY, SplitConfig(k=4), task="classification"),
        "--no-stratify",
    ),
    ("repeats below 1", lambda: SplitConfig(repeats=0), "--repeats"),
    ("holdout seeds below 1", lambda: SplitConfig(holdout_seeds=0), "--holdout-seeds"),
    ("val fraction 0", lambda: SplitConfig(val_fraction=0.0), "--val-fraction"),
    ("val fraction 1", lambda: SplitConfig(val_fraction=1.0), "--val-fraction"),
    ("val fraction negative", lambda: SplitConfig(val_fraction=-0.2), "--val-fraction"),
    (
        "test fraction 1",
        lambda: split_test(
            TINY,
            task="classification",
            test_fraction=1.0,
            seed=0,
            stratify=False,
            time_order=False,
        ),
        "--test-fraction",
    ),
    ("time order repeats", lambda: SplitConfig(time_order=True, repeats=2), "--repeats 1"),
    (
        "time order holdout seeds",
        lambda: SplitConfig(time_order=True, holdout_seeds=2),
        "--holdout-seeds 1",
    ),
    (
        "time order with too few rows",
        lambda: make_splits(np.zeros(4), SplitConfig(k=4, time_order=True), task="regression"),
        "--k",
    ),
    (
        "time order with groups",
        lambda: make_splits(Y_REG, SplitConfig(time_order=True), task="regression", groups=GROUPS),
        "--time-order",
    ),
    (
        "holdout training part empty",
        lambda: make_splits(
            np.zeros(5), SplitConfig(protocol="holdout", val_fraction=0.9), task="regression"
        ),
        "--val-fraction",
    ),
    (
        "time holdout training part empty",
        lambda: make_splits(
            np.zeros(5),
            SplitConfig(protocol="holdout", val_fraction=0.9, time_order=True),
            task="regression",
        ),
        "--val-fraction",
    ),
    (
        "stratified holdout with a one-row class",
        lambda: make_splits(
            np.array([0, 0, 0, 1]), SplitConfig(protocol="holdout"), task="classification"
        ),
        "--no-stratify",
    ),
    (
        "stratified holdout part too small for every class",
        lambda: make_splits(
            Y_CLASS, SplitConfig(protocol="holdout", val_fraction=0.03), task="classification"
        ),
        "--no-stratify",
    ),
]


@pytest.mark.parametrize("name,call,hint", ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_input_raises_one_line_with_a_fix(name, call, hint):
    with pytest.raises(DlbenchError) as caught:
        call()
    message = str(caught.value)
    assert message and "\n" not in message
    assert hint in message


def test_shared_duplicates_counts_evaluation_rows_seen_in_training():
    X = np.array(
        [
            [1.0, 2.0],  # 0 train
            [3.0, 4.0],  # 1 train
            [0.0, 5.0],  # 2 train
            [1.0, 2.0],  # 3 eval: copy of 0
            [1.0, 2.0],  # 4 eval: copy of 0 again, counts again
            [-0.0, 5.0],  # 5 eval: equals 2 as numbers (-0.0 == 0.0)
            [4.0, 3.0],  # 6 eval: same values as 1, other order: not a duplicate
            [9.0, 9.0],  # 7 eval: copy of 8, which does not train
            [9.0, 9.0],  # 8 not in either part
        ],
        dtype=np.float32,
    )
    assert shared_duplicates(X, np.array([0, 1, 2]), np.array([3, 4, 5, 6, 7])) == 3
    assert shared_duplicates(X, np.array([0, 1, 2]), np.array([6, 7])) == 0
    assert shared_duplicates(X, np.array([], dtype=np.int64), np.array([3, 4])) == 0
    assert shared_duplicates(X.astype(np.int64), np.array([8]), np.array([7])) == 1
