"""Datasets: the built-in registry, user files (CSV, NPZ, MNIST IDX), class subsets, parameters.

One entry point, `load_dataset(DataSpec)`. Built-ins are deterministic: any randomness uses the
constant `_SEED`, so a dataset name always means the same rows; the experiment seed is applied
later (splits, weight init), never here. Heavy libraries (sklearn, pandas, mnist1d) are imported
inside the loaders so importing this module stays cheap for `dlbench --help`.

A built-in's brackets hold class-subset items and key=value parameters, in any order:
`mnist1d[0-4,n=12000,transform=inverted]`. Parameters are the entry's own (`DatasetInfo.params`,
e.g. mnist1d's sample count n) plus `transform`, which every dataset takes (`TRANSFORMS`). The
loaded dataset's name spells them out (subset first, then parameters sorted by key), so results
and manifests tell two runs apart; its fingerprint follows the changed rows.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import inspect
import os
import random
import re
import struct
import warnings
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from dlbench import plugins
from dlbench.errors import DlbenchError
from dlbench.grammar import format_value, read_params
from dlbench.registry import Registry

TASKS = ("classification", "regression")
_SEED = 0  # part of each synthetic dataset's definition, not the experiment seed


@dataclass(frozen=True, eq=False)
class Dataset:
    name: str  # as the user named it, e.g. "digits", "digits[0-4]", "data.csv"
    X: np.ndarray  # (n, d) float32; images and sequences flattened, see input_shape
    y: np.ndarray  # (n,) int64 class index 0..C-1 (classification) or float32 (regression)
    task: str  # "classification" or "regression"
    classes: tuple[str, ...] = ()  # class labels, index i names class i (classification only)
    input_shape: tuple[int, ...] | None = None  # per-sample (C, L) or (C, H, W); None = tabular
    groups: np.ndarray | None = None  # (n,) group ids for group k-fold
    time: np.ndarray | None = None  # (n,) time stamps; rows are sorted by time when set
    test_index: np.ndarray | None = None  # rows of a fixed, untouched test split (e.g. mnist1d)

    @property
    def n_samples(self) -> int:
        return len(self.y)

    @property
    def n_features(self) -> int:
        return self.X.shape[1]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @functools.cached_property
    def missing_features(self) -> np.ndarray:
        """(k,) the features with a missing value (NaN) in some row; empty for complete data
        (only `--missing` lets a loader keep NaN)."""
        return np.flatnonzero(np.isnan(self.X).any(0))

    def fingerprint(self) -> str:
        """sha256 of features and targets: two runs on the same data share it."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.X).tobytes())
        h.update(np.ascontiguousarray(self.y).tobytes())
        return h.hexdigest()[:16]


@dataclass(frozen=True)
class DataSpec:
    name: str | None = "digits"  # built-in, optionally with a class subset and parameters:
    #   "digits[0-4]", "digits[5,7,9]", "mnist1d[n=12000]", "mnist1d[0-4,transform=inverted]"
    path: str | None = None  # user data: .csv, .npz, or a directory of MNIST IDX files; wins
    target: str | None = None  # CSV: target column (required for CSV)
    group: str | None = None  # CSV: group column (group k-fold); becomes Dataset.groups
    time: str | None = None  # CSV: time column; rows sorted by it (stable); becomes Dataset.time
    dedupe: bool = False  # drop rows whose features exactly duplicate an earlier row (keep first)
    missing: bool = False  # keep missing feature values (NaN): --missing fills them per member


@dataclass(frozen=True)
class DatasetInfo:
    name: str  # registry key, e.g. "digits"
    description: str  # one line for `dlbench datasets`
    task: str  # "classification" or "regression"
    load: Callable[..., Dataset]  # builds the dataset from `params`; deterministic
    params: Mapping[str, Any] = field(default_factory=dict)  # own parameters -> defaults, e.g.
    #   {"n": 5000}; written name[n=12000], typed like the default, checked by `load`


@dataclass(frozen=True)
class TransformInfo:
    name: str  # the value in name[transform=...], e.g. "inverted"
    description: str  # one line
    apply: Callable[[np.ndarray], np.ndarray]  # (n, *sample_shape) -> the same shape


DATASETS = Registry[DatasetInfo]("dataset")
TRANSFORMS = Registry[TransformInfo]("transform")


# ---------------------------------------------------------------- entry point


def load_dataset(spec: DataSpec) -> Dataset:
    """The dataset a spec names: user file (path wins) or built-in (at its parameters), then
    dedupe, then class subset, then transform; parameters given are spelled out in its name."""
    csv_options = [f"--{k}" for k in ("target", "group", "time") if getattr(spec, k) is not None]
    is_csv = spec.path is not None and spec.path.lower().endswith(".csv")
    if csv_options and not is_csv:
        raise DlbenchError(
            f"{'/'.join(csv_options)} only apply to a CSV data file; drop them or give a .csv path"
        )
    if spec.path is not None:
        data, selector, params = load_file(spec), None, {}
    else:
        base, body = parse_name(spec.name)
        users = plugins.is_reference(base)  # the user's loader (plugins.py), not a built-in
        info = plugged(base) if users else DATASETS.get(base)
        selector, params = split_brackets(body, info)
        own = {k: v for k, v in params.items() if k in info.params}
        data = info.load(**{**info.params, **own})
        if users and not spec.missing and len(data.missing_features):  # as for CSV and NPZ
            raise DlbenchError(_missing_message(f"X from {info.name}"))
    if spec.dedupe:
        data = drop_duplicates(data)
    if selector is not None:
        data = select_classes(data, selector)
    if "transform" in params:
        data = transform(data, params["transform"])
    if params:
        data = replace(data, name=_spelled(info.name, selector, params))
    return data


def describe(info: DatasetInfo) -> dict:
    """One row of the `dlbench datasets` listing (loads the data, at default parameters, to
    count it)."""
    data = info.load(**info.params)
    return {
        "name": info.name,
        "samples": data.n_samples,
        "features": data.n_features,
        "classes": data.n_classes if info.task == "classification" else None,
        "task": info.task,
        "fixed_test": data.test_index is not None,
        "description": info.description,
    }


def _spelled(base: str, selector: str | None, params: Mapping[str, Any]) -> str:
    """The canonical name: subset as written, then parameters sorted by key (deterministic)."""
    items = [selector] if selector is not None else []
    items += [f"{k}={format_value(v)}" for k, v in sorted(params.items())]
    return f"{base}[{','.join(items)}]"


# ---------------------------------------------------------------- row selection


def _take(data: Dataset, rows: np.ndarray, **changes) -> Dataset:
    """Keep `rows` (ascending positions) of every per-row array; test_index follows the rows."""
    test_index = None
    if data.test_index is not None:
        kept = np.flatnonzero(np.isin(rows, data.test_index))  # new positions of old test rows
        test_index = kept if len(kept) else None
    return replace(
        data,
        X=data.X[rows],
        y=data.y[rows],
        groups=None if data.groups is None else data.groups[rows],
        time=None if data.time is None else data.time[rows],
        test_index=test_index,
        **changes,
    )


def drop_duplicates(data: Dataset) -> Dataset:
    """Drop rows whose feature vector equals an earlier row's (first occurrence kept)."""
    _, first = np.unique(data.X, axis=0, return_index=True)  # index of each first occurrence
    return _take(data, np.sort(first))


# ---------------------------------------------------------------- class subsets

_NAME = re.compile(r"^(?P<base>[^\[\]]+)(?:\[(?P<sel>[^\[\]]*)\])?$")
_SUBSET_HELP = "write name[0-4] (inclusive range) or name[5,7,9] (list), e.g. digits[0-2,7]"
_NAME_HELP = (f"{_SUBSET_HELP}, plus key=value parameters in any order, "
              "e.g. mnist1d[0-4,n=12000,transform=inverted]")


def parse_name(name: str) -> tuple[str, str | None]:
    """'digits[0-4]' -> ('digits', '0-4'); 'digits' -> ('digits', None)."""
    match = _NAME.match(name.strip())
    if match is None:
        raise DlbenchError(f"malformed dataset name '{name}'; {_NAME_HELP}")
    return match["base"].strip(), match["sel"]


def split_brackets(body: str | None, info: DatasetInfo) -> tuple[str | None, dict[str, Any]]:
    """'0-4,n=12000' -> ('0-4', {'n': 12000}): items with '=' are parameters (typed and checked
    by the entry grammar), the rest the class subset: exactly as written when there are no
    parameters (the name stays as before), else its items stripped; None when there is none."""
    if body is None:
        return None, {}
    items = body.split(",")
    if len(items) > 1 and not all(item.strip() for item in items):
        raise DlbenchError(f"malformed dataset name {info.name}[{body}]: an empty item "
                           f"(two commas in a row, or one at an end); {_NAME_HELP}")
    classes = [item for item in items if "=" not in item]
    allowed = {**info.params, "transform": "none"}  # transform: text, checked by `transform`
    params = read_params(",".join(item for item in items if "=" in item), "dataset", info.name,
                         allowed, _NAME_HELP)
    if "transform" in params and params["transform"] not in TRANSFORMS:  # before any loading
        given = "none" if params["transform"] is None else params["transform"]
        raise DlbenchError(f"dataset {info.name}: unknown transform '{given}'; choose one of: "
                           f"{', '.join(TRANSFORMS.names())}")
    if classes == items:  # no parameters: the subset exactly as before, "" included
        return body, params
    return (",".join(c.strip() for c in classes) if classes else None), params


# ---------------------------------------------------------------- transforms


def transform(data: Dataset, name: str) -> Dataset:
    """Apply a registered feature transform; rows, targets and splits stay as they are."""
    shape = data.input_shape or (data.n_features,)  # tabular: one axis of features
    X = TRANSFORMS.get(name).apply(data.X.reshape(data.n_samples, *shape))  # (n, *shape)
    return replace(data, X=np.ascontiguousarray(X.reshape(data.n_samples, -1)))  # (n, d)


def _permuted(X: np.ndarray) -> np.ndarray:
    """One fixed permutation of all features, from `_SEED` and the feature count only: every
    run, and a source and a target of the same shape, shuffle the same way."""
    flat = X.reshape(len(X), -1)  # (n, d)
    return flat[:, np.random.default_rng(_SEED).permutation(flat.shape[1])]


for _transform in (
    TransformInfo("inverted", "every feature negated, x -> -x", lambda X: -X),
    TransformInfo(
        "reversed",
        "features reversed along the sample's last axis: a sequence read backwards, an image "
        "mirrored left-right, tabular columns in reverse order",
        lambda X: X[..., ::-1],
    ),
    TransformInfo(
        "permuted",
        "one fixed random permutation of the features (seed 0): spatial structure destroyed",
        _permuted,
    ),
):
    TRANSFORMS.add(_transform)


def select_classes(data: Dataset, selector: str) -> Dataset:
    """Keep the classes `selector` lists ("0-4", "5,7,9", "0-2,7"), relabelled 0..K-1 in order."""
    label = f"{data.name}[{selector}]"
    if data.task != "classification":
        raise DlbenchError(
            f"class subset {label} needs a classification dataset; '{data.name}' is regression"
        )
    chosen = _parse_selector(selector, data.classes, label)
    if len(chosen) < 2:
        raise DlbenchError(f"class subset {label} keeps {len(chosen)} class; list at least two")
    remap = np.full(data.n_classes, -1, dtype=np.int64)  # old class index -> new, -1 = dropped
    remap[chosen] = np.arange(len(chosen))
    rows = np.flatnonzero(remap[data.y] >= 0)
    subset = _take(data, rows, name=label, classes=tuple(data.classes[c] for c in chosen))
    return replace(subset, y=remap[subset.y])


def _parse_selector(selector: str, classes: Sequence[str], label: str) -> list[int]:
    """Class indices a selector lists, in order; ranges are inclusive."""
    if not selector.strip():
        raise DlbenchError(f"empty class subset {label}; {_SUBSET_HELP}")
    chosen: list[int] = []
    for token in (t.strip() for t in selector.split(",")):
        if not token:
            raise DlbenchError(f"malformed class subset {label}; {_SUBSET_HELP}")
        for index in _resolve_token(token, classes, label):
            if index in chosen:
                raise DlbenchError(f"class '{classes[index]}' listed twice in {label}; list once")
            chosen.append(index)
    return chosen


def _resolve_token(token: str, classes: Sequence[str], label: str) -> list[int]:
    """One selector item: a class (name or index) or an inclusive range 'lo-hi'."""
    single = _class_index(token, classes)
    if single is not None:  # exact names win, so a class called "T-shirt" is not a range
        return [single]
    for dash in (i for i, ch in enumerate(token) if ch == "-"):
        lo, hi = _class_index(token[:dash], classes), _class_index(token[dash + 1 :], classes)
        if lo is not None and hi is not None:
            if lo > hi:
                raise DlbenchError(f"range '{token}' in {label} runs backwards; write it low-high")
            return list(range(lo, hi + 1))
    valid = _name_list(classes)
    raise DlbenchError(
        f"unknown class '{token}' in {label}; valid classes: {valid} "
        f"(by name or index 0-{len(classes) - 1})"
    )


def _class_index(token: str, classes: Sequence[str]) -> int | None:
    token = token.strip()
    if token in classes:
        return list(classes).index(token)
    if token.isdigit() and int(token) < len(classes):
        return int(token)
    return None


# ---------------------------------------------------------------- small shared helpers


def _name_list(names: Sequence[object], limit: int = 20) -> str:
    """'a, b, c' for error messages; long lists are cut so the message stays one line."""
    shown = ", ".join(str(n) for n in list(names)[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def _one_line(exc: BaseException) -> str:
    """A library's message squeezed onto one line."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _encode_labels(values: np.ndarray, source: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Labels -> (y int64 index into sorted unique values, class names as strings)."""
    uniq, y = np.unique(values, return_inverse=True)
    if len(uniq) < 2:
        raise DlbenchError(
            f"{source} has a single class ({uniq[0] if len(uniq) else 'none'}); "
            "classification needs at least 2 classes"
        )
    return y.reshape(-1).astype(np.int64), tuple(str(v) for v in uniq)


def _classification(name: str, X, y, classes, **kwargs) -> Dataset:
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    return Dataset(name, X, y, "classification", tuple(str(c) for c in classes), **kwargs)


def _regression(name: str, X, y, **kwargs) -> Dataset:
    X = np.asarray(X, dtype=np.float32)
    return Dataset(name, X, np.asarray(y, dtype=np.float32), "regression", **kwargs)


# ---------------------------------------------------------------- built-ins


def _sklearn_bundled(name: str, loader: str, input_shape: tuple[int, ...] | None = None):
    """A loader for one of sklearn's bundled (shipped, never downloaded) datasets."""

    def load() -> Dataset:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, loader)()
        if "target_names" not in bunch:  # diabetes: the only regression set here
            return _regression(name, bunch.data, bunch.target)
        return _classification(
            name, bunch.data, bunch.target, bunch.target_names, input_shape=input_shape
        )

    return load


_MNIST1D_N = 5000  # the package's default num_samples: 4000 train + 1000 test rows
_MNIST1D_N_RANGE = (100, 200_000)  # 10 rows a class at least; at most ~64 MB of float64


@functools.lru_cache(maxsize=4)  # a transfer run holds two sizes: source and target
def _mnist1d_arrays(n: int = _MNIST1D_N) -> tuple[np.ndarray, np.ndarray, int]:
    """MNIST-1D train then test rows: X (n, 40), y (n,), and the number of train rows.
    Generating takes ~1-2 s per 5000 rows, so the arrays are cached per n, in memory and on
    disk (`cache`), keyed by n and the versions of the code that computes them (mnist1d's
    defaults are those of its version; a numpy/scipy that rounds differently is a miss too).
    The key needs no import of mnist1d (0.5 s, matplotlib included): a hit costs milliseconds."""
    from importlib.metadata import version

    from dlbench.data import cache

    key = {"layout": 1, "num_samples": n,  # layout: what the file holds, bump if it changes
           **{package: version(package) for package in ("mnist1d", "numpy", "scipy")}}
    arrays = cache.cached_arrays(f"mnist1d-n{n}", key, lambda: _make_mnist1d(n))
    return arrays["X"], arrays["y"], int(arrays["n_train"])


def _make_mnist1d(n: int) -> dict[str, np.ndarray]:
    """The package's default dataset at num_samples=n, as arrays X (train then test rows), y,
    n_train."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()  # n = 5000: exactly the package's default dataset
    args.num_samples = n
    # make_dataset reseeds the global `random` and numpy RNGs; put them back untouched
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        raw = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    X = np.concatenate([raw["x"], raw["x_test"]])
    y = np.concatenate([raw["y"], raw["y_test"]])
    return {"X": X, "y": y, "n_train": np.array(len(raw["x"]))}


def _mnist1d(n: int = _MNIST1D_N) -> Dataset:
    """The package's generator (seed 42) at num_samples=n, and its own split: the first
    int(n * 0.8) rows train, the last 20% the fixed test split (n = 5000: 4000 + 1000). The
    generator draws class by class from one seeded stream, so every n shares class 0's first
    rows (rescaled), and the data is normalised over all n rows: a larger n is not a superset."""
    low, high = _MNIST1D_N_RANGE
    if not (low <= n <= high and n % 10 == 0):  # the package makes n // 10 rows a class
        raise DlbenchError(
            f"dataset mnist1d[n={n}]: n must be a multiple of 10 from {low} to {high} "
            "(mnist1d makes n/10 rows a class), e.g. mnist1d[n=12000]"
        )
    X, y, n_train = _mnist1d_arrays(n)
    return _classification(
        "mnist1d",
        X.copy(),  # copies: callers may modify their arrays, the cache must not change
        y.copy(),
        [str(c) for c in range(10)],
        input_shape=(1, X.shape[1]),
        test_index=np.arange(n_train, len(y)),
    )


def _xor() -> Dataset:
    X = [[0, 0], [0, 1], [1, 0], [1, 1]]  # the truth table, tiny on purpose
    return _classification("xor", X, [0, 1, 1, 0], ["0", "1"])


def _xor_noisy() -> Dataset:
    rng = np.random.default_rng(_SEED)
    corners = np.repeat(np.array([[0, 0], [0, 1], [1, 0], [1, 1]]), 100, axis=0)  # (400, 2)
    X = corners + rng.normal(0.0, 0.2, corners.shape)
    y = corners[:, 0] ^ corners[:, 1]
    order = rng.permutation(len(y))  # interleave corners so an unshuffled hold-out is fair
    return _classification("xor-noisy", X[order], y[order], ["0", "1"])


def _sklearn_made(name: str, maker: str, classes: Sequence[str], **kwargs):
    """A loader for a sklearn generator (make_moons, ...) with a fixed random_state."""

    def load() -> Dataset:
        import sklearn.datasets

        X, y = getattr(sklearn.datasets, maker)(random_state=_SEED, **kwargs)
        return _classification(name, X, y, classes)

    return load


def _spirals() -> Dataset:
    rng = np.random.default_rng(_SEED)
    per_arm, arms = 300, 3
    radius = np.tile(np.linspace(0.0, 1.0, per_arm), arms)  # (900,)
    arm = np.repeat(np.arange(arms), per_arm)  # (900,) class = arm
    angle = 4.0 * (arm + radius) + rng.normal(0.0, 0.2, arm.shape)  # each arm turns 4 rad
    X = np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1)  # (900, 2)
    order = rng.permutation(len(arm))
    return _classification("spirals", X[order], arm[order], ["0", "1", "2"])


def _badly_scaled() -> Dataset:
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=1000, n_features=10, n_informative=5, n_redundant=2, random_state=_SEED
    )
    scales = np.logspace(-3, 4, X.shape[1])  # column j times 1e-3 ... 1e4: a terrible condition
    return _classification("badly-scaled", X * scales, y, ["0", "1"])


def _series() -> Dataset:
    rng = np.random.default_rng(_SEED)
    n_rows, n_lags = 1000, 8
    t = np.arange(n_rows + n_lags)
    drift = 1.5 * t / len(t)  # slow trend: the future is not like the past, as in real series
    signal = np.sin(2 * np.pi * t / 24) + drift + rng.normal(0.0, 0.3, len(t))
    X = np.lib.stride_tricks.sliding_window_view(signal[:-1], n_lags)  # (1000, 8) lags
    return _regression("series", X, signal[n_lags:], time=t[n_lags:])  # y: the next value


for _info in (
    DatasetInfo(
        "digits",
        "8x8 handwritten digits, 10 classes (sklearn)",
        "classification",
        _sklearn_bundled("digits", "load_digits", input_shape=(1, 8, 8)),
    ),
    DatasetInfo(
        "breast-cancer",
        "Wisconsin breast cancer, malignant vs benign (sklearn)",
        "classification",
        _sklearn_bundled("breast-cancer", "load_breast_cancer"),
    ),
    DatasetInfo(
        "wine",
        "wine cultivars, 3 classes (sklearn)",
        "classification",
        _sklearn_bundled("wine", "load_wine"),
    ),
    DatasetInfo(
        "iris",
        "iris flowers, 3 species (sklearn)",
        "classification",
        _sklearn_bundled("iris", "load_iris"),
    ),
    DatasetInfo(
        "diabetes",
        "diabetes progression after one year (sklearn)",
        "regression",
        _sklearn_bundled("diabetes", "load_diabetes"),
    ),
    DatasetInfo(
        "mnist1d",
        "MNIST-1D sequences (1, 40), 10 classes; fixed test split, the last 20%; "
        "mnist1d[n=12000] generates 12000 rows (n: 100-200000, a multiple of 10); like every "
        f"dataset it takes transform={'|'.join(TRANSFORMS.names())}",
        "classification",
        _mnist1d,
        params={"n": _MNIST1D_N},
    ),
    DatasetInfo("xor", "the 4-point XOR truth table", "classification", _xor),
    DatasetInfo(
        "xor-noisy", "400 noisy points around the XOR corners", "classification", _xor_noisy
    ),
    DatasetInfo(
        "moons",
        "two interleaved half-moons, 2-D",
        "classification",
        _sklearn_made("moons", "make_moons", ["0", "1"], n_samples=1000, noise=0.2),
    ),
    DatasetInfo(
        "circles",
        "two concentric circles, 2-D",
        "classification",
        _sklearn_made("circles", "make_circles", ["0", "1"], n_samples=1000, noise=0.1, factor=0.5),
    ),
    DatasetInfo("spirals", "three interleaved spiral arms, 2-D", "classification", _spirals),
    DatasetInfo(
        "blobs",
        "four Gaussian blobs, 2-D",
        "classification",
        _sklearn_made("blobs", "make_blobs", ["0", "1", "2", "3"], n_samples=1000, centers=4),
    ),
    DatasetInfo(
        "badly-scaled",
        "10 features scaled 1e-3 to 1e4: standardize or struggle",
        "classification",
        _badly_scaled,
    ),
    DatasetInfo(
        "series",
        "seasonal series with drift: 8 lags -> next value, time-ordered",
        "regression",
        _series,
    ),
):
    DATASETS.add(_info)


# ---------------------------------------------------------------- the user's own loader
# `--data path/to/file.py:load[k=v,...]` (or package.module:load): a function called as
# load(**k) that returns (X, y) or (X, y, X_test, y_test), arrays or array-likes (DataFrames,
# Series, lists). Its arrays are read as an NPZ file's are (float y: regression; any other y:
# class labels), except that X keeps its per-sample shape as torch does: (n, d) tabular,
# (n, C, L) sequences, (n, C, H, W) images; a grayscale image is (n, 1, H, W). A fixed test
# split's rows follow the others (as MNIST's t10k rows do). Its name in the DataSpec is the
# resolved reference with its parameters, as a built-in's is, so plugins.record finds it.

_PARTS = ("X", "y", "X_test", "y_test")
_RETURNS = "return (X, y) or (X, y, X_test, y_test): arrays, DataFrames or lists"


def _is_loader(obj: Any) -> bool:
    return callable(obj) and not isinstance(obj, type)


KIND = plugins.Kind("dataset", "--data", _is_loader,
                    "a function load(**parameters) that returns (X, y) or "
                    "(X, y, X_test, y_test)")


def plugged(reference: str) -> DatasetInfo:
    """The entry of a plugged loader, named by its resolved reference: its parameters and
    their defaults are its signature's (None where it has none: the user gives it)."""
    load = plugins.get(reference, KIND)
    shown = plugins.short(reference)
    try:
        signature = inspect.signature(load).parameters
    except (TypeError, ValueError):  # a builtin without a signature: no parameters
        signature = {}
    params = {k: None if p.default is inspect.Parameter.empty else p.default
              for k, p in signature.items() if p.kind in _NAMED}
    required = {k for k, p in signature.items() if p.default is inspect.Parameter.empty}
    return DatasetInfo(shown, plugins.summary(load), "",
                       functools.partial(_call_loader, shown, load, required), params)


_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _call_loader(shown: str, load: Callable[..., Any], required: set[str], **params) -> Dataset:
    """load(**params) -> its Dataset; what it raises is its own message, on one line. A
    parameter without a default that the user did not give is left for the function to
    miss (its message says which)."""
    given = {k: v for k, v in params.items() if not (v is None and k in required)}
    label = f"{shown}[{','.join(f'{k}={format_value(v)}' for k, v in given.items())}]" \
        if given else shown
    try:
        returned = load(**given)
    except Exception as e:  # the user's code may raise anything: say what, where
        raise DlbenchError(f"--data {label}: {type(e).__name__}: {_one_line(e)}") from None
    return _loaded(shown, label, returned)


def _loaded(shown: str, label: str, returned: Any) -> Dataset:
    """What a loader returned -> its Dataset; the fixed test rows, if any, last."""
    if not isinstance(returned, tuple | list) or len(returned) not in (2, 4):
        what = f"{len(returned)} values" if isinstance(returned, tuple | list) else \
            f"a {type(returned).__name__}"
        raise DlbenchError(f"--data {label} returned {what}; {_RETURNS}")
    X, y, *test = (_part(a, part, label) for a, part in zip(returned, _PARTS, strict=False))
    for features, target, part in ((X, y, ""), *([(*test, "_test")] if test else [])):
        if len(features) == 0:
            raise DlbenchError(f"--data {label}: X{part} has no rows; {_RETURNS}")
        if len(features) != len(target):
            raise DlbenchError(f"--data {label}: X{part} has {len(features)} rows but "
                               f"y{part} {len(target)} values; return one target per row")
    test_index = None
    if test:
        X, y, test_index = _with_test(X, y, *test, label)
    if X.ndim not in (2, 3, 4):
        raise DlbenchError(f"--data {label}: X must be (n, d), (n, C, L) or (n, C, H, W); "
                           f"got {X.shape}")
    data = _arrays_dataset(f"from {label}", shown, X, y,
                           None if X.ndim == 2 else tuple(X.shape[1:]), missing=True)
    return replace(data, test_index=test_index)


def _part(value: Any, part: str, label: str) -> np.ndarray:
    """One returned array-like as a numpy array; X numeric, y numbers or labels (text)."""
    if hasattr(value, "select_dtypes") and part.startswith("X"):  # a DataFrame: name columns
        numbers = set(value.select_dtypes(["number", "bool"]).columns)
        text = [str(c) for c in value.columns if c not in numbers]
        if text:
            raise DlbenchError(f"--data {label}: {part} has non-numeric column(s) "
                               f"{_name_list(text)}; encode them as numbers or drop them")
    array = np.asarray(value)
    if part.startswith("y"):
        array = array.reshape(-1) if array.ndim == 2 and array.shape[1] == 1 else array
        if not _numeric(array):
            import pandas as pd

            if pd.isna(array).any():
                raise DlbenchError(f"--data {label}: {part} has missing labels; fill them or "
                                   "drop those rows")
            array = array.astype(str)
    elif not _numeric(array):
        raise DlbenchError(f"--data {label}: {part} is not numeric ({array.dtype}); encode "
                           "it as numbers")
    return array


def _with_test(X, y, X_test, y_test, label: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The test rows after the others, and their positions: a fixed test split."""
    if X_test.shape[1:] != X.shape[1:]:
        raise DlbenchError(f"--data {label}: X_test's rows are {X_test.shape[1:]} but X's "
                           f"{X.shape[1:]}; return test rows of the same shape")
    if np.issubdtype(y.dtype, np.floating) != np.issubdtype(y_test.dtype, np.floating):
        raise DlbenchError(f"--data {label}: y is {y.dtype} but y_test {y_test.dtype}; return "
                           "both as labels (classification) or both as floats (regression)")
    if "U" in (y.dtype.kind, y_test.dtype.kind):  # labels as text on one side: both as text
        y, y_test = y.astype(str), y_test.astype(str)
    return (np.concatenate([X, X_test]), np.concatenate([y, y_test]),
            np.arange(len(X), len(X) + len(X_test)))


# ---------------------------------------------------------------- user files


def load_file(spec: DataSpec) -> Dataset:
    """User data at spec.path: a .csv file, a .npz file or a directory of MNIST IDX files."""
    path = os.path.expanduser(spec.path or "")
    if not os.path.exists(path):
        raise DlbenchError(f"data path '{spec.path}' does not exist; check the path")
    if os.path.isdir(path):
        return _load_idx_dir(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".csv", ".npz"):
        raise DlbenchError(
            f"unsupported data file '{spec.path}'; use a .csv file, a .npz file (arrays X, y) "
            "or a directory of MNIST/Fashion-MNIST IDX files"
        )
    if os.path.getsize(path) == 0:
        raise DlbenchError(f"data file '{spec.path}' is empty; give a file with data in it")
    return _load_csv(path, spec) if ext == ".csv" else _load_npz(path, spec.missing)


def _load_csv(path: str, spec: DataSpec) -> Dataset:
    df = _read_csv(path)
    name = os.path.basename(path)
    _check_columns(df, spec, name)
    features = [c for c in df.columns if c not in (spec.target, spec.group, spec.time)]
    _check_features(df, features, name, spec.missing)
    for column in (spec.target, spec.group, spec.time):
        if column is not None and df[column].isna().any():
            raise DlbenchError(
                f"column '{column}' in {name} has {int(df[column].isna().sum())} missing "
                "value(s); fill them or drop those rows"
            )
    time = None
    if spec.time is not None:
        time = _time_values(df[spec.time], name)
        order = np.argsort(time, kind="stable")  # stable: ties keep file order
        df, time = df.iloc[order].reset_index(drop=True), time[order]
    groups = None if spec.group is None else df[spec.group].to_numpy()
    X = df[features].to_numpy(dtype=np.float32)  # (n, d)
    target = df[spec.target]
    if _is_float(target):
        return _regression(name, X, target.to_numpy(), groups=groups, time=time)
    labels = target.to_numpy() if _is_number_or_bool(target) else target.astype(str).to_numpy()
    y, classes = _encode_labels(labels, f"target column '{spec.target}' in {name}")
    return _classification(name, X, y, classes, groups=groups, time=time)


def _read_csv(path: str):
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DlbenchError(f"data file '{path}' is empty; give a file with data in it") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise DlbenchError(
            f"cannot read '{path}' as CSV ({_one_line(exc)}); save it as comma-separated text "
            "with one header row"
        ) from None
    if df.empty:
        raise DlbenchError(f"CSV '{path}' has no data rows; add rows below the header")
    return df


def _check_columns(df, spec: DataSpec, name: str) -> None:
    """--target is required; --target/--group/--time must name distinct existing columns."""
    columns = _name_list(list(df.columns))
    if spec.target is None:
        raise DlbenchError(f"CSV data needs --target COLUMN; columns in {name}: {columns}")
    named = {"target": spec.target, "group": spec.group, "time": spec.time}
    for option, column in named.items():
        if column is not None and column not in df.columns:
            raise DlbenchError(
                f"--{option} column '{column}' not found in {name}; columns: {columns}"
            )
    given = [c for c in named.values() if c is not None]
    if len(set(given)) < len(given):
        raise DlbenchError("--target, --group and --time must name different columns")


def _check_features(df, features: list[str], name: str, missing: bool = False) -> None:
    """Every feature numeric (or bool) and finite; complete unless `missing` (--missing: the
    trainer fills them per member). dlbench does no encoding."""
    if not features:
        raise DlbenchError(f"{name} has no feature columns besides the target; add some")
    text = [c for c in features if not _is_number_or_bool(df[c])]
    if text:
        raise DlbenchError(
            f"non-numeric feature column(s) in {name}: {_name_list(text)}; "
            "encode them as numbers or drop them"
        )
    incomplete = [c for c in features if df[c].isna().any()]
    if incomplete and not missing:
        raise DlbenchError(
            f"missing values in feature column(s) of {name}: {_name_list(incomplete)}; "
            "pass --missing zero, mean or median to fill them per training part, or fill "
            "them or drop those rows yourself"
        )
    infinite = [c for c in features
                if np.isinf(df[c].to_numpy(dtype=np.float64, na_value=np.nan)).any()]
    if infinite:
        raise DlbenchError(
            f"infinite values in feature column(s) of {name}: {_name_list(infinite)}; "
            "replace them with finite numbers"
        )


def _time_values(column, name: str) -> np.ndarray:
    """Numbers stay numbers; text is parsed as dates (datetime64)."""
    import pandas as pd

    if _is_number_or_bool(column):
        return column.to_numpy()
    try:
        with warnings.catch_warnings():  # "could not infer format": we report failure ourselves
            warnings.simplefilter("ignore", UserWarning)
            return pd.to_datetime(column).to_numpy()
    except (ValueError, TypeError):
        raise DlbenchError(
            f"time column '{column.name}' in {name} holds neither numbers nor dates; "
            "use numbers or ISO dates like 2024-01-31"
        ) from None


def _is_float(column) -> bool:
    import pandas as pd

    return pd.api.types.is_float_dtype(column)


def _is_number_or_bool(column) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)


def _load_npz(path: str, missing: bool = False) -> Dataset:
    name = os.path.basename(path)
    if not zipfile.is_zipfile(path):  # checked first: np.load would fall back to pickle talk
        raise DlbenchError(
            f"'{path}' is not a .npz (zip) archive; save it with numpy.savez(path, X=X, y=y)"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:  # no pickles: never run file code
            found = sorted(archive.files)
            if "X" not in found or "y" not in found:
                raise DlbenchError(
                    f"{name} needs arrays 'X' and 'y'; found: {_name_list(found) or 'none'}"
                )
            X, y = archive["X"], archive["y"]
    except DlbenchError:
        raise
    except Exception as exc:  # zipfile, pickle and format errors all mean "not a valid .npz"
        raise DlbenchError(
            f"cannot read '{path}' as .npz ({_one_line(exc)}); save it with "
            "numpy.savez(path, X=X, y=y)"
        ) from None
    return _npz_dataset(name, X, y, missing)


def _npz_dataset(name: str, X: np.ndarray, y: np.ndarray, missing: bool = False) -> Dataset:
    """X (n, d) | (n, H, W) | (n, C, H, W), y (n,) -> a flattened Dataset."""
    if X.ndim not in (2, 3, 4) or not _numeric(X):
        raise DlbenchError(
            f"X in {name} must be numeric (n, d), (n, H, W) or (n, C, H, W); "
            f"got {X.dtype} {X.shape}"
        )
    input_shape = {2: None, 3: (1, *X.shape[1:]), 4: tuple(X.shape[1:])}[X.ndim]
    return _arrays_dataset(f"in {name}", name, X, y, input_shape, missing)


def _numeric(X: np.ndarray) -> bool:
    return np.issubdtype(X.dtype, np.number) or X.dtype == bool


def _arrays_dataset(where: str, name: str, X: np.ndarray, y: np.ndarray,
                    input_shape: tuple[int, ...] | None, missing: bool) -> Dataset:
    """Numeric X (n, ...) and y (n,) -> a flattened Dataset: float y is regression, any other
    y class labels (encoded as CSV targets are). `where` places the arrays in messages."""
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y  # accept a (n, 1) column
    if y.ndim != 1 or len(y) != len(X) or len(y) == 0:
        raise DlbenchError(
            f"y {where} must be 1-D with one value per row of X; X {X.shape}, y {y.shape}"
        )
    flat = X.reshape(len(X), -1).astype(np.float32)  # (n, d)
    if np.isinf(flat).any():
        raise DlbenchError(f"X {where} has infinite values; replace them first")
    if np.isnan(flat).any() and not missing:
        raise DlbenchError(_missing_message(f"X {where}"))
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all():
            raise DlbenchError(f"y {where} has NaN or infinite values; replace them first")
        return _regression(name, flat, y, input_shape=input_shape)
    labels, classes = _encode_labels(y, f"y {where}")
    return _classification(name, flat, labels, classes, input_shape=input_shape)


def _missing_message(what: str) -> str:
    return (f"{what} has missing values (NaN); pass --missing zero, mean or median to fill "
            "them per training part, or replace them first")


# MNIST file stems; each may also appear with a dot ("train-images.idx3-ubyte") and/or ".gz"
_IDX_STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_IDX_UBYTE = 0x08  # IDX dtype code for unsigned bytes, the only one MNIST uses


def _find_idx(directory: str, stem: str) -> str | None:
    for variant in (stem, stem.replace("-idx", ".idx", 1)):
        for suffix in ("", ".gz"):
            candidate = os.path.join(directory, variant + suffix)
            if os.path.isfile(candidate):
                return candidate
    return None


def _load_idx_dir(directory: str) -> Dataset:
    """MNIST / Fashion-MNIST: train rows first, then the t10k rows as the fixed test split."""
    found = {key: _find_idx(directory, stem) for key, stem in _IDX_STEMS.items()}
    missing = [_IDX_STEMS[k] for k in ("train_images", "train_labels") if found[k] is None]
    n_test_files = sum(found[k] is not None for k in ("test_images", "test_labels"))
    if n_test_files == 1:  # half a test split is a mistake, not "no test split"
        missing += [_IDX_STEMS[k] for k in ("test_images", "test_labels") if found[k] is None]
    if missing:
        raise DlbenchError(
            f"missing MNIST IDX file(s) in '{directory}': {', '.join(missing)}; a data directory "
            "needs train-images-idx3-ubyte and train-labels-idx1-ubyte (each optionally .gz), "
            "plus the t10k pair for a fixed test split"
        )
    images, labels = _read_idx_pair(found["train_images"], found["train_labels"])  # (n, H, W)
    n_train = len(labels)
    if n_test_files == 2:
        test_images, test_labels = _read_idx_pair(found["test_images"], found["test_labels"])
        if test_images.shape[1:] != images.shape[1:]:
            raise DlbenchError(
                f"t10k images are {test_images.shape[1:]} but train images {images.shape[1:]} "
                f"in '{directory}'; use files from the same dataset"
            )
        if not np.isin(test_labels, labels).any():
            raise DlbenchError(
                f"the t10k labels in '{directory}' share no class with the training labels "
                f"(train: {_name_list(np.unique(labels))}; t10k: "
                f"{_name_list(np.unique(test_labels))}); use files from the same dataset"
            )
        images = np.concatenate([images, test_images])
        labels = np.concatenate([labels, test_labels])
    y, classes = _encode_labels(labels, f"the labels in '{directory}'")
    return _classification(
        os.path.basename(os.path.normpath(directory)),
        images.reshape(len(images), -1).astype(np.float32) / 255.0,  # (n, H*W) in [0, 1]
        y,
        classes,
        input_shape=(1, *images.shape[1:]),
        test_index=np.arange(n_train, len(y)) if n_test_files == 2 else None,
    )


def _read_idx_pair(images_path: str, labels_path: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = _read_idx(images_path), _read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1:
        raise DlbenchError(
            f"expected 3-D images and 1-D labels, got {images.ndim}-D "
            f"'{os.path.basename(images_path)}' and {labels.ndim}-D "
            f"'{os.path.basename(labels_path)}'; check the file names are not swapped"
        )
    if len(images) != len(labels):
        raise DlbenchError(
            f"'{os.path.basename(images_path)}' has {len(images)} images but "
            f"'{os.path.basename(labels_path)}' has {len(labels)} labels; use a matching pair"
        )
    return images, labels


def _read_idx(path: str) -> np.ndarray:
    """Parse one IDX file: magic 00 00 <dtype> <ndim>, ndim big-endian int32 sizes, then data."""
    raw = _read_bytes(path)
    file = os.path.basename(path)
    if len(raw) < 4:
        raise DlbenchError(f"IDX file '{file}' is truncated (no header); re-download it")
    if raw[0] != 0 or raw[1] != 0 or raw[2] != _IDX_UBYTE:
        raise DlbenchError(
            f"bad magic number 0x{raw[:4].hex()} in '{file}': not an unsigned-byte IDX file "
            "(expected 0x000008NN); use the original MNIST/Fashion-MNIST files"
        )
    ndim = raw[3]
    if ndim not in (1, 3):  # MNIST's labels are 1-D, its images 3-D (count, height, width)
        raise DlbenchError(
            f"bad magic number 0x{raw[:4].hex()} in '{file}': {ndim} dimensions, but MNIST "
            "IDX files have 1 (labels) or 3 (images); use the original MNIST/Fashion-MNIST files"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DlbenchError(f"IDX file '{file}' is truncated inside its header; re-download it")
    sizes = struct.unpack(f">{ndim}i", raw[4:header])
    expected = header + int(np.prod(sizes, dtype=np.int64))
    if len(raw) != expected:
        problem = "is truncated" if len(raw) < expected else "has trailing bytes"
        raise DlbenchError(
            f"IDX file '{file}' {problem}: header promises {expected} bytes, found {len(raw)}; "
            "re-download it"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(sizes)


def _read_bytes(path: str) -> bytes:
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        with open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as exc:  # unreadable, bad or truncated gzip
        raise DlbenchError(
            f"cannot read '{os.path.basename(path)}' ({_one_line(exc)}); re-download it "
            "or gunzip it yourself"
        ) from None
