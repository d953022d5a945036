"""Datasets: every built-in is well formed; subsets, parameters and transforms, user files
(CSV, NPZ, IDX) and dedupe."""

from __future__ import annotations

import gzip
import random
import struct

import numpy as np
import pytest

from dlbench.data.datasets import (
    DATASETS,
    TASKS,
    TRANSFORMS,
    Dataset,
    DataSpec,
    _mnist1d_arrays,
    describe,
    drop_duplicates,
    load_dataset,
    parse_name,
    select_classes,
    split_brackets,
)
from dlbench.errors import DlbenchError

# ---------------------------------------------------------------- helpers


def raises_one_line(spec: DataSpec, *fragments: str) -> str:
    """Loading `spec` fails with a one-line DlbenchError mentioning every fragment."""
    with pytest.raises(DlbenchError) as info:
        load_dataset(spec)
    message = str(info.value)
    assert "\n" not in message and message.strip() == message and message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def check_well_formed(data: Dataset) -> None:
    """The Dataset contract every loader must keep."""
    n = data.n_samples
    assert data.task in TASKS
    assert data.X.dtype == np.float32 and data.X.ndim == 2 and data.X.shape[0] == n > 0
    assert np.isfinite(data.X).all()
    if data.task == "classification":
        assert data.y.dtype == np.int64
        assert data.n_classes >= 2 and all(isinstance(c, str) for c in data.classes)
        assert data.y.min() >= 0 and data.y.max() < data.n_classes
        assert set(np.unique(data.y)) == set(range(data.n_classes))  # no empty class
    else:
        assert data.y.dtype == np.float32 and data.classes == ()
        assert np.isfinite(data.y).all()
    assert data.y.shape == (n,)
    if data.input_shape is not None:
        assert int(np.prod(data.input_shape)) == data.n_features
    for per_row in (data.groups, data.time):
        assert per_row is None or per_row.shape == (n,)
    if data.time is not None:
        assert (np.diff(data.time) >= 0).all()
    if data.test_index is not None:
        t = data.test_index
        assert len(t) > 0 and len(np.unique(t)) == len(t) and t.min() >= 0 and t.max() < n


def write_idx(path, array: np.ndarray, magic_dtype: int = 0x08, gz: bool = False) -> None:
    """An IDX file: 00 00 <dtype> <ndim>, big-endian int32 sizes, then the bytes."""
    head = bytes([0, 0, magic_dtype, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    payload = head + array.astype(np.uint8).tobytes()
    if gz:
        payload = gzip.compress(payload)
    path.write_bytes(payload)


def write_mnist(directory, n_train=6, n_test=4, gz=False, test=True, dot=False):
    """Tiny MNIST-like files; returns the arrays written."""
    rng = np.random.default_rng(1)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 3, 2)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 3,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 3, 2)),
        "t10k-labels-idx1-ubyte": np.arange(n_test) % 3,
    }
    for stem, array in arrays.items():
        if stem.startswith("t10k") and not test:
            continue
        name = stem.replace("-idx", ".idx", 1) if dot else stem
        write_idx(directory / (name + (".gz" if gz else "")), array, gz=gz)
    return arrays


# ---------------------------------------------------------------- built-ins


@pytest.mark.parametrize("info", list(DATASETS), ids=DATASETS.names())
def test_every_builtin_is_well_formed(info):
    data = load_dataset(DataSpec(name=info.name))
    check_well_formed(data)
    assert data.name == info.name and data.task == info.task
    assert info.description and "\n" not in info.description


@pytest.mark.parametrize("name", ["digits", "xor-noisy", "spirals", "series", "badly-scaled"])
def test_builtins_are_deterministic(name):
    state = np.random.get_state()
    assert load_dataset(DataSpec(name)).fingerprint() == load_dataset(DataSpec(name)).fingerprint()
    assert np.array_equal(np.random.get_state()[1], state[1])  # global RNG untouched


def test_mnist1d_has_its_fixed_test_split_and_leaves_global_rngs_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("DLBENCH_CACHE", str(tmp_path))  # an empty cache: generate for real,
    _mnist1d_arrays.cache_clear()  # as mnist1d's make_dataset reseeds the global RNGs
    np.random.seed(123)
    random.seed(123)
    data = load_dataset(DataSpec("mnist1d"))
    assert (np.random.rand(), random.random()) == pytest.approx(_draws_after_seed(123))
    assert data.X.shape == (5000, 40) and data.input_shape == (1, 40)
    assert np.array_equal(data.test_index, np.arange(4000, 5000))
    data.X[:] = 0  # a caller's edit must not leak into the next load (the arrays are cached)
    data.y[:] = 0
    again = load_dataset(DataSpec("mnist1d"))
    assert again.X.any() and again.y.any()


def _draws_after_seed(seed: int) -> tuple[float, float]:
    np.random.seed(seed)
    random.seed(seed)
    return np.random.rand(), random.random()


def test_xor_is_the_truth_table():
    data = load_dataset(DataSpec("xor"))
    assert data.X.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert data.y.tolist() == [0, 1, 1, 0]


def test_xor_noisy_labels_follow_the_nearest_corner():
    data = load_dataset(DataSpec("xor-noisy"))
    corner = (data.X > 0.5).astype(int)
    agree = ((corner[:, 0] ^ corner[:, 1]) == data.y).mean()
    assert 0.9 < agree < 1.0  # noisy, but the label is the corner's XOR
    assert abs(data.y.mean() - 0.5) < 0.05


def test_sklearn_sets_keep_names_and_shapes():
    digits = load_dataset(DataSpec("digits"))
    assert digits.X.shape == (1797, 64) and digits.input_shape == (1, 8, 8)
    assert digits.classes == tuple(str(i) for i in range(10))
    assert load_dataset(DataSpec("breast-cancer")).classes == ("malignant", "benign")


def test_badly_scaled_columns_span_many_orders_of_magnitude():
    scale = load_dataset(DataSpec("badly-scaled")).X.std(axis=0)
    assert scale.max() / scale.min() > 1e5


def test_series_rows_are_lags_of_one_signal():
    data = load_dataset(DataSpec("series"))
    assert np.array_equal(data.time, np.arange(8, 8 + data.n_samples))
    # row i's lags shifted by one are row i+1's first lags, and row i's target is row i+1's last
    assert np.array_equal(data.X[1:, :-1], data.X[:-1, 1:])
    assert np.array_equal(data.X[1:, -1], data.y[:-1])


def test_describe_counts_the_data():
    row = describe(DATASETS.get("mnist1d"))
    assert row == {
        "name": "mnist1d",
        "samples": 5000,
        "features": 40,
        "classes": 10,
        "task": "classification",
        "fixed_test": True,
        "description": DATASETS.get("mnist1d").description,
    }
    assert describe(DATASETS.get("diabetes"))["classes"] is None  # no classes: shown as —


def test_unknown_dataset_lists_valid_names():
    raises_one_line(DataSpec("digts"), "digts", "digits", "mnist1d")


# ---------------------------------------------------------------- class subsets


def test_subset_range_keeps_and_relabels_classes():
    full = load_dataset(DataSpec("digits"))
    sub = load_dataset(DataSpec("digits[3-5]"))
    check_well_formed(sub)
    assert sub.name == "digits[3-5]" and sub.classes == ("3", "4", "5")
    keep = np.isin(full.y, [3, 4, 5])
    assert np.array_equal(sub.X, full.X[keep])
    assert np.array_equal(sub.y, full.y[keep] - 3)


def test_subset_list_uses_listed_order_and_mixes_ranges():
    full = load_dataset(DataSpec("digits"))
    sub = load_dataset(DataSpec("digits[9,0-1]"))
    assert sub.classes == ("9", "0", "1")
    keep = np.isin(full.y, [9, 0, 1])
    new_label = {9: 0, 0: 1, 1: 2}  # listed order, not numeric order
    assert sub.y.tolist() == [new_label[int(v)] for v in full.y[keep]]
    assert np.array_equal(sub.X, full.X[keep])


def test_subset_accepts_class_names_and_indices():
    by_name = load_dataset(DataSpec("iris[virginica,setosa]"))
    by_index = load_dataset(DataSpec("iris[2,0]"))
    assert by_name.classes == by_index.classes == ("virginica", "setosa")
    assert np.array_equal(by_name.y, by_index.y)
    assert by_name.n_samples == 100 and by_name.y.tolist().count(0) == 50


def test_subset_remaps_the_fixed_test_split():
    full = load_dataset(DataSpec("mnist1d"))
    sub = load_dataset(DataSpec("mnist1d[0-1]"))
    check_well_formed(sub)
    kept_rows = np.flatnonzero(np.isin(full.y, [0, 1]))
    expected = np.flatnonzero(kept_rows >= 4000)  # new positions of old test rows
    assert np.array_equal(sub.test_index, expected)
    assert np.array_equal(sub.X[sub.test_index], full.X[4000:][np.isin(full.y[4000:], [0, 1])])


def test_subset_keeps_groups_and_time_aligned():
    X = np.arange(12, dtype=np.float32).reshape(6, 2)
    data = Dataset(
        "toy",
        X,
        np.array([0, 1, 2, 0, 1, 2]),
        "classification",
        ("a", "b", "c"),
        groups=np.array(list("uvwxyz")),
        time=np.arange(6),
        test_index=np.array([4, 5]),
    )
    sub = select_classes(data, "b-c")
    assert sub.groups.tolist() == ["v", "w", "y", "z"]
    assert sub.time.tolist() == [1, 2, 4, 5] and sub.test_index.tolist() == [2, 3]
    assert sub.y.tolist() == [0, 1, 0, 1] and sub.X[:, 0].tolist() == [2, 4, 8, 10]


@pytest.mark.parametrize(
    ("name", "fragments"),
    [
        ("diabetes[0-1]", ["regression", "classification"]),
        ("digits[0-12]", ["unknown class", "valid classes", "9"]),
        ("iris[daisy,setosa]", ["daisy", "setosa, versicolor, virginica"]),
        ("digits[0-4", ["malformed", "name[0-4]"]),
        ("digits0-4]", ["malformed", "name[5,7,9]"]),
        ("digits[[0]]", ["malformed"]),
        ("digits[0,,1]", ["malformed"]),
        ("digits[]", ["empty", "name[0-4]"]),
        ("digits[3]", ["at least two"]),
        ("digits[4-1]", ["backwards", "low-high"]),
        ("digits[1,0-2]", ["listed twice"]),
    ],
)
def test_subset_errors(name, fragments):
    raises_one_line(DataSpec(name), *fragments)


def test_parse_name():
    assert parse_name("digits") == ("digits", None)
    assert parse_name("digits[0-2,7]") == ("digits", "0-2,7")


def test_split_brackets_separates_parameters_from_classes():
    mnist1d = DATASETS.get("mnist1d")
    assert split_brackets(None, mnist1d) == (None, {})
    assert split_brackets("0-2,7", mnist1d) == ("0-2,7", {})
    assert split_brackets("n=600,0-2,transform=reversed,7", mnist1d) == (
        "0-2,7", {"n": 600, "transform": "reversed"})
    assert split_brackets("n=600", mnist1d) == (None, {"n": 600})


# ---------------------------------------------------------------- parameters: mnist1d[n=...]


def _package_mnist1d(n: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The mnist1d package's own dataset at num_samples=n: X float32, y, train rows."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = n
    state, py_state = np.random.get_state(), random.getstate()
    raw = make_dataset(args)
    np.random.set_state(state)
    random.setstate(py_state)
    X = np.concatenate([raw["x"], raw["x_test"]]).astype(np.float32)
    return X, np.concatenate([raw["y"], raw["y_test"]]), len(raw["x"])


def test_default_mnist1d_is_unchanged_by_the_n_parameter():
    data = load_dataset(DataSpec("mnist1d"))
    X, y, n_train = _package_mnist1d(5000)
    assert data.name == "mnist1d" and n_train == 4000
    assert data.X.tobytes() == X.tobytes() and np.array_equal(data.y, y)
    assert np.array_equal(data.test_index, np.arange(4000, 5000))
    assert data.fingerprint() == "f7e6b4ae17666120"  # as before parameters existed
    explicit = load_dataset(DataSpec("mnist1d[n=5000]"))  # the same rows, named as given
    assert explicit.name == "mnist1d[n=5000]" and explicit.fingerprint() == data.fingerprint()


def test_mnist1d_n_generates_n_rows_with_the_packages_split():
    np.random.seed(7)
    random.seed(7)
    data = load_dataset(DataSpec("mnist1d[n=500]"))
    assert (np.random.rand(), random.random()) == pytest.approx(_draws_after_seed(7))
    check_well_formed(data)
    X, y, n_train = _package_mnist1d(500)
    assert data.name == "mnist1d[n=500]" and data.X.shape == (500, 40) and n_train == 400
    assert np.array_equal(data.X, X) and np.array_equal(data.y, y)
    assert np.array_equal(data.test_index, np.arange(400, 500))  # the last 20%, as by default
    assert np.bincount(data.y).tolist() == [50] * 10
    assert data.fingerprint() != load_dataset(DataSpec("mnist1d")).fingerprint()


def test_mnist1d_is_generated_once_per_n():
    load_dataset(DataSpec("mnist1d[n=500]"))
    before = _mnist1d_arrays.cache_info()
    again = load_dataset(DataSpec("mnist1d[n=500]"))
    after = _mnist1d_arrays.cache_info()
    assert after.hits == before.hits + 1 and after.misses == before.misses
    assert again.n_samples == 500


def test_class_subset_combines_with_n_in_any_order():
    full = load_dataset(DataSpec("mnist1d[n=500]"))
    a = load_dataset(DataSpec("mnist1d[0-4,n=500]"))
    b = load_dataset(DataSpec("mnist1d[n=500, 0-4]"))
    check_well_formed(a)
    assert a.name == b.name == "mnist1d[0-4,n=500]"  # subset first, then sorted parameters
    assert a.fingerprint() == b.fingerprint() and a.classes == tuple("01234")
    keep = full.y < 5
    assert np.array_equal(a.X, full.X[keep]) and np.array_equal(a.y, full.y[keep])
    assert np.array_equal(a.test_index, np.flatnonzero(np.flatnonzero(keep) >= 400))


# ---------------------------------------------------------------- parameters: transform=...


def _by_sample(data: Dataset) -> np.ndarray:
    """X in its per-sample shape: (n, C, L), (n, C, H, W) or (n, d) for tabular data."""
    return data.X.reshape(data.n_samples, *(data.input_shape or (data.n_features,)))


@pytest.mark.parametrize("name", ["digits", "mnist1d[n=500]", "iris", "series"])
@pytest.mark.parametrize("transform", TRANSFORMS.names())
def test_every_transform_changes_only_the_features(name, transform):
    base = load_dataset(DataSpec(name))
    spelled = f"{name[:-1]},transform={transform}]" if "[" in name else (
        f"{name}[transform={transform}]")
    data = load_dataset(DataSpec(spelled))
    check_well_formed(data)
    assert data.name == spelled and data.X.flags.c_contiguous
    assert data.X.shape == base.X.shape and data.input_shape == base.input_shape
    assert np.array_equal(data.y, base.y) and data.classes == base.classes
    for same in ("test_index", "time", "groups"):
        assert np.array_equal(getattr(data, same), getattr(base, same)) or (
            getattr(data, same) is getattr(base, same) is None)
    assert data.fingerprint() != base.fingerprint()
    assert data.fingerprint() == load_dataset(DataSpec(spelled)).fingerprint()


@pytest.mark.parametrize("name", ["digits", "mnist1d[n=500]", "iris"])
def test_inverted_negates_every_feature(name):
    base = load_dataset(DataSpec(name))
    data = load_dataset(DataSpec(name.replace("]", ",transform=inverted]") if "[" in name
                                 else f"{name}[transform=inverted]"))
    assert np.array_equal(data.X, -base.X)


def test_reversed_reverses_the_last_axis_of_the_sample_shape():
    digits = load_dataset(DataSpec("digits"))  # (1, 8, 8): a left-right mirror of each image
    mirrored = load_dataset(DataSpec("digits[transform=reversed]"))
    assert np.array_equal(_by_sample(mirrored), _by_sample(digits)[..., ::-1])
    assert np.array_equal(_by_sample(mirrored)[:, 0, 0, 0], _by_sample(digits)[:, 0, 0, 7])
    sequences = load_dataset(DataSpec("mnist1d[n=500]"))  # (1, 40): read backwards
    backwards = load_dataset(DataSpec("mnist1d[n=500,transform=reversed]"))
    assert np.array_equal(backwards.X, sequences.X[:, ::-1])
    iris = load_dataset(DataSpec("iris"))  # tabular: the columns in reverse order
    assert np.array_equal(load_dataset(DataSpec("iris[transform=reversed]")).X, iris.X[:, ::-1])


def _column_permutation(base: np.ndarray, shuffled: np.ndarray) -> np.ndarray:
    """p with shuffled == base[:, p]; base's columns must be distinct."""
    p = np.array([np.flatnonzero((base == column[:, None]).all(0))[0] for column in shuffled.T])
    assert np.array_equal(shuffled, base[:, p])
    return p


def test_permuted_is_one_fixed_permutation_of_the_features():
    base = load_dataset(DataSpec("mnist1d[n=500]"))
    first = load_dataset(DataSpec("mnist1d[n=500,transform=permuted]"))
    second = load_dataset(DataSpec("mnist1d[transform=permuted,n=500]"))
    assert first.name == second.name == "mnist1d[n=500,transform=permuted]"
    assert np.array_equal(np.sort(first.X, axis=1), np.sort(base.X, axis=1))  # same values a row
    p = _column_permutation(base.X, first.X)
    assert sorted(p) == list(range(40)) and (p != np.arange(40)).mean() > 0.8
    assert np.array_equal(_column_permutation(base.X, second.X), p)
    # the same permutation for another dataset of the same width: source and target agree
    other, other_permuted = (load_dataset(DataSpec(f"mnist1d[0-4{t}]"))
                             for t in ("", ",transform=permuted"))
    assert np.array_equal(other_permuted.X, other.X[:, p])


def test_transforms_combine_with_class_subsets():
    sub = load_dataset(DataSpec("digits[3-5]"))
    for spelled in ("digits[3-5,transform=inverted]", "digits[transform=inverted,3-5]"):
        data = load_dataset(DataSpec(spelled))
        assert data.name == "digits[3-5,transform=inverted]" and data.classes == ("3", "4", "5")
        assert np.array_equal(data.X, -sub.X) and np.array_equal(data.y, sub.y)


def test_describe_tells_of_the_parameters():
    description = describe(DATASETS.get("mnist1d"))["description"]
    assert "mnist1d[n=12000]" in description
    for transform in TRANSFORMS:
        assert transform.name in description
        assert transform.description and "\n" not in transform.description


@pytest.mark.parametrize(
    ("name", "fragments"),
    [
        ("digits[n=500]", ["digits", "'n'", "it takes: transform"]),
        ("digits[0-4,n=500]", ["digits", "'n'", "it takes: transform"]),
        ("mnist1d[m=3]", ["'m'", "it takes: n, transform"]),
        ("mnist1d[n=50]", ["n=50", "multiple of 10", "100", "200000"]),
        ("mnist1d[n=200010]", ["n=200010", "200000"]),
        ("mnist1d[n=-500]", ["n=-500", "from 100"]),
        ("mnist1d[n=505]", ["n=505", "multiple of 10"]),
        ("mnist1d[n=1e4]", ["n=1e4", "whole number"]),
        ("mnist1d[n=many]", ["n=many", "whole number"]),
        ("mnist1d[n=500,n=600]", ["'n'", "twice"]),
        ("mnist1d[transform=upside-down]", ["'upside-down'", "inverted, reversed, permuted"]),
        ("iris[transform=none]", ["'none'", "inverted, reversed, permuted"]),
        ("iris[transform=inverted,transform=reversed]", ["'transform'", "twice"]),
        ("mnist1d[=500]", ["'=500'", "not key=value", "mnist1d[0-4,n=12000"]),
        ("mnist1d[n=]", ["'n='", "not key=value"]),
        ("mnist1d[0-4,,n=500]", ["malformed", "mnist1d[0-4,,n=500]", "empty item"]),
        ("mnist1d[n=500,]", ["malformed", "empty item"]),
        ("mnist1d[n=500,3]", ["at least two"]),
        ("mnist1d[n=500,0-12]", ["unknown class", "0-12"]),
        ("diabetes[0-1,transform=inverted]", ["regression"]),
        ("mnist1d[n=500]]", ["malformed", "n=12000"]),
    ],
)
def test_parameter_errors(name, fragments):
    raises_one_line(DataSpec(name), *fragments)


# ---------------------------------------------------------------- CSV


def write(tmp_path, text: str, name: str = "data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_csv_classification_with_text_target(tmp_path):
    path = write(tmp_path, "a,b,label\n1,2.5,cat\n3,4,dog\n5,6,cat\n7,8,bird\n")
    data = load_dataset(DataSpec(path=path, target="label"))
    check_well_formed(data)
    assert data.name == "data.csv" and data.classes == ("bird", "cat", "dog")
    assert data.y.tolist() == [1, 2, 1, 0]
    assert data.X.tolist() == [[1, 2.5], [3, 4], [5, 6], [7, 8]]
    assert data.groups is None and data.time is None and data.input_shape is None


def test_csv_integer_target_sorts_classes_numerically(tmp_path):
    path = write(tmp_path, "x,y\n1,10\n2,2\n3,10\n4,2\n5,3\n")
    data = load_dataset(DataSpec(path=path, target="y"))
    assert data.task == "classification" and data.classes == ("2", "3", "10")
    assert data.y.tolist() == [2, 0, 2, 0, 1]


def test_csv_float_target_is_regression(tmp_path):
    path = write(tmp_path, "x,y\n1,0.5\n2,1.5\n3,2.0\n")
    data = load_dataset(DataSpec(path=path, target="y"))
    check_well_formed(data)
    assert data.task == "regression" and data.y.tolist() == [0.5, 1.5, 2.0]


def test_csv_group_and_time_columns(tmp_path):
    text = "t,site,x,y\n3,a,30,1\n1,b,10,0\n2,a,20,1\n1,c,11,0\n"
    data = load_dataset(DataSpec(path=write(tmp_path, text), target="y", group="site", time="t"))
    check_well_formed(data)
    assert data.time.tolist() == [1, 1, 2, 3]  # sorted by time; ties keep file order
    assert data.X[:, 0].tolist() == [10, 11, 20, 30]  # only x is a feature
    assert data.groups.tolist() == ["b", "c", "a", "a"]
    assert data.y.tolist() == [0, 0, 1, 1]


def test_csv_time_column_of_dates(tmp_path):
    text = "day,x,y\n2024-01-03,3,1\n2024-01-01,1,0\n2024-01-02,2,1\n"
    data = load_dataset(DataSpec(path=write(tmp_path, text), target="y", time="day"))
    assert data.X[:, 0].tolist() == [1, 2, 3]
    assert np.issubdtype(data.time.dtype, np.datetime64)


@pytest.mark.parametrize(
    ("text", "options", "fragments"),
    [
        ("a,b\n1,2\n3,4\n", {}, ["--target", "columns", "a, b"]),
        ("a,b\n1,2\n3,4\n", {"target": "c"}, ["'c'", "not found", "a, b"]),
        ("a,b\n1,2\n3,4\n", {"target": "b", "group": "g"}, ["--group", "'g'", "a, b"]),
        ("a,b\n1,2\n3,4\n", {"target": "b", "time": "when"}, ["--time", "'when'", "a, b"]),
        ("a,b\n1,2\n3,4\n", {"target": "b", "group": "b"}, ["different columns"]),
        ("a,c,b\n1,x,0\n3,y,1\n", {"target": "b"}, ["non-numeric", "c", "encode"]),
        ("a,c,b\n1,,0\n3,2,1\n", {"target": "b"}, ["missing values", "c", "fill"]),
        ("a,b\n1,0\n3,\n", {"target": "b"}, ["'b'", "missing", "drop those rows"]),
        ("a,b\n1,0\n3,0\n", {"target": "b"}, ["single class", "at least 2"]),
        ("b\n0\n1\n", {"target": "b"}, ["no feature columns"]),
        ("a,b\n", {"target": "b"}, ["no data rows"]),
        ("a,b\n1,2\n3,4,5,6\n", {"target": "b"}, ["cannot read", "comma-separated"]),
        ("\n\n", {"target": "b"}, ["empty"]),
        ("t,a,b\nx,1,0\ny,2,1\n", {"target": "b", "time": "t"}, ["neither numbers nor dates"]),
    ],
)
def test_csv_errors(tmp_path, text, options, fragments):
    raises_one_line(DataSpec(path=write(tmp_path, text), **options), *fragments)


def test_csv_non_numeric_feature_names_every_offender(tmp_path):
    path = write(tmp_path, "a,c,d,b\n1,x,u,0\n3,y,v,1\n")
    message = raises_one_line(DataSpec(path=path, target="b"), "c, d", "drop them")
    assert "'a'" not in message and " a," not in message


def test_empty_file(tmp_path):
    raises_one_line(DataSpec(path=write(tmp_path, ""), target="y"), "empty")


def test_nonexistent_path(tmp_path):
    raises_one_line(DataSpec(path=str(tmp_path / "nope.csv"), target="y"), "does not exist")


def test_unsupported_extension_says_what_is_supported(tmp_path):
    raises_one_line(DataSpec(path=write(tmp_path, "1 2\n", "data.txt")), ".csv", ".npz", "IDX")


def test_csv_options_without_csv_are_rejected():
    raises_one_line(DataSpec("digits", target="y"), "--target", "CSV")


def test_unreadable_csv_bytes(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(b"a,b\n\xff\xfe\x00\x81,1\n")
    with pytest.raises(DlbenchError):
        load_dataset(DataSpec(path=str(path), target="b"))


# ---------------------------------------------------------------- NPZ


def test_npz_tabular_classification(tmp_path):
    path = tmp_path / "tab.npz"
    X = np.arange(12, dtype=np.float64).reshape(4, 3)
    np.savez(path, X=X, y=np.array([5, 7, 5, 7]))
    data = load_dataset(DataSpec(path=str(path)))
    check_well_formed(data)
    assert data.name == "tab.npz" and data.input_shape is None
    assert data.classes == ("5", "7") and data.y.tolist() == [0, 1, 0, 1]
    assert np.array_equal(data.X, X.astype(np.float32))


def test_npz_images_are_flattened(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "img3.npz", X=rng.random((5, 4, 3)), y=np.array([0, 1, 0, 1, 1]))
    np.savez(tmp_path / "img4.npz", X=rng.random((5, 2, 4, 3)), y=rng.random(5))
    gray = load_dataset(DataSpec(path=str(tmp_path / "img3.npz")))
    colour = load_dataset(DataSpec(path=str(tmp_path / "img4.npz")))
    assert gray.input_shape == (1, 4, 3) and gray.X.shape == (5, 12)
    assert colour.input_shape == (2, 4, 3) and colour.X.shape == (5, 24)
    assert colour.task == "regression" and colour.y.dtype == np.float32
    check_well_formed(gray)
    check_well_formed(colour)


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "a.npz", features=np.zeros((2, 2)), labels=np.zeros(2))
    raises_one_line(DataSpec(path=str(tmp_path / "a.npz")), "'X' and 'y'", "features, labels")
    np.savez(tmp_path / "b.npz", X=np.zeros((3, 2)), y=np.zeros(2))
    raises_one_line(DataSpec(path=str(tmp_path / "b.npz")), "one value per row")
    np.savez(tmp_path / "c.npz", X=np.zeros(3), y=np.zeros(3))
    raises_one_line(DataSpec(path=str(tmp_path / "c.npz")), "(n, d)")
    (tmp_path / "d.npz").write_bytes(b"this is not a zip archive")
    raises_one_line(DataSpec(path=str(tmp_path / "d.npz")), "not a .npz", "numpy.savez")
    np.savez(tmp_path / "e.npz", X=np.array([[np.nan, 1.0], [0.0, 1.0]]), y=np.array([0, 1]))
    raises_one_line(DataSpec(path=str(tmp_path / "e.npz")), "NaN")


# ---------------------------------------------------------------- MNIST IDX


@pytest.mark.parametrize(("gz", "dot"), [(False, False), (True, False), (False, True)])
def test_idx_directory_with_test_split(tmp_path, gz, dot):
    arrays = write_mnist(tmp_path, gz=gz, dot=dot)
    data = load_dataset(DataSpec(path=str(tmp_path)))
    check_well_formed(data)
    assert data.name == tmp_path.name and data.input_shape == (1, 3, 2)
    assert data.X.shape == (10, 6) and np.array_equal(data.test_index, np.arange(6, 10))
    images = np.concatenate([arrays["train-images-idx3-ubyte"], arrays["t10k-images-idx3-ubyte"]])
    assert np.allclose(data.X, images.reshape(10, 6) / 255.0)
    assert data.X.max() <= 1.0 and data.classes == ("0", "1", "2")
    assert data.y.tolist() == [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]


def test_idx_train_only_has_no_test_split(tmp_path):
    write_mnist(tmp_path, test=False)
    data = load_dataset(DataSpec(path=str(tmp_path)))
    assert data.n_samples == 6 and data.test_index is None


def test_idx_missing_files_names_expected_ones(tmp_path):
    raises_one_line(DataSpec(path=str(tmp_path)), "train-images-idx3-ubyte", "t10k", ".gz")
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    raises_one_line(DataSpec(path=str(tmp_path)), "missing", "t10k-labels-idx1-ubyte")


def test_idx_bad_magic(tmp_path):
    write_mnist(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((6, 3, 2)), magic_dtype=0x0D)
    raises_one_line(DataSpec(path=str(tmp_path)), "bad magic", "train-images-idx3-ubyte")


def test_a_wrong_dimension_count_is_a_bad_magic_number_not_a_truncated_file(tmp_path):
    """Byte 4 of the magic is the number of dimensions; MNIST files have 1 or 3."""
    write_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    raw = bytearray(path.read_bytes())
    raw[3] = 0x99
    path.write_bytes(bytes(raw))
    message = raises_one_line(DataSpec(path=str(tmp_path)), "bad magic", "0x00000899")
    assert "truncated" not in message and "re-download" not in message


def test_t10k_labels_sharing_no_class_with_training_are_refused(tmp_path):
    write_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(4) % 2 + 7)  # classes 7, 8
    raises_one_line(DataSpec(path=str(tmp_path)), "share no class", "same dataset")


def test_idx_count_mismatch(tmp_path):
    write_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(5))
    raises_one_line(DataSpec(path=str(tmp_path)), "6 images", "5 labels", "matching pair")


def test_idx_truncated_file(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-3])
    raises_one_line(DataSpec(path=str(tmp_path)), "truncated", "re-download")
    path.write_bytes(path.read_bytes() + b"\x00" * 5)
    raises_one_line(DataSpec(path=str(tmp_path)), "trailing bytes")


def test_idx_truncated_gzip(tmp_path):
    write_mnist(tmp_path, gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    raises_one_line(DataSpec(path=str(tmp_path)), "cannot read", "train-images-idx3-ubyte.gz")


# ---------------------------------------------------------------- dedupe and fingerprint


def test_dedupe_keeps_first_occurrence_and_aligns_everything():
    X = np.array([[5, 6], [3, 4], [5, 6], [1, 2], [3, 4]], dtype=np.float32)  # not sorted
    data = Dataset(
        "toy",
        X,
        np.array([0, 1, 1, 0, 0]),
        "classification",
        ("a", "b"),
        groups=np.array([10, 11, 12, 13, 14]),
        time=np.arange(5),
        test_index=np.array([2, 3, 4]),
    )
    out = drop_duplicates(data)
    assert out.X.tolist() == [[5, 6], [3, 4], [1, 2]]
    assert out.y.tolist() == [0, 1, 0] and out.groups.tolist() == [10, 11, 13]
    assert out.time.tolist() == [0, 1, 3] and out.test_index.tolist() == [2]


def test_dedupe_through_the_spec(tmp_path):
    path = write(tmp_path, "a,b,y\n1,2,0\n1,2,1\n3,4,1\n1,2,0\n5,5,0\n")
    data = load_dataset(DataSpec(path=path, target="y", dedupe=True))
    assert data.X.tolist() == [[1, 2], [3, 4], [5, 5]] and data.y.tolist() == [0, 1, 0]
    assert load_dataset(DataSpec(path=path, target="y")).n_samples == 5
    digits = load_dataset(DataSpec("digits", dedupe=True))
    assert digits.n_samples == len(np.unique(digits.X, axis=0)) <= 1797


def test_fingerprint_tracks_the_data():
    a, b = load_dataset(DataSpec("iris")), load_dataset(DataSpec("iris"))
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != load_dataset(DataSpec("iris[0-1]")).fingerprint()
    changed_label = Dataset("iris", a.X, np.roll(a.y, 1), a.task, a.classes)
    assert a.fingerprint() != changed_label.fingerprint()


def test_npz_with_pickled_arrays_is_refused(tmp_path):
    np.savez(tmp_path / "obj.npz", X=np.array([[{}]], dtype=object), y=np.array([0]))
    raises_one_line(DataSpec(path=str(tmp_path / "obj.npz")), "cannot read", "numpy.savez")
