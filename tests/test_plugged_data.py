"""The user's own data loader, `--data path/to/file.py:load[k=v,...]` (data/datasets.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import (
    EXECUTOR_IDS,
    EXECUTORS,
    assert_scores_as_inline,
    assert_usage_error,
    invoke,
    run_ok,
    user_file,
)

from dlbench.data.datasets import DataSpec, load_dataset

LOADER = '''
import numpy as np
import pandas as pd


def load(n=60, seed=0, shift=0.0):
    """Two noisy classes, 4 features."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)) + shift
    return X, (X[:, 0] + 0.3 * rng.normal(size=n) > shift).astype(int)


def fixed(n=60):
    """load's rows: the last 20 a fixed test split."""
    X, y = load(n)
    return X[:-20], y[:-20], X[-20:], y[-20:]


def images():
    rng = np.random.default_rng(0)
    return rng.normal(size=(48, 1, 6, 6)).astype(np.float32), np.arange(48) % 3


def frame():
    """A DataFrame and text labels, as pandas users hold them."""
    X, y = load()
    return pd.DataFrame(X, columns=list("abcd")), pd.Series(np.where(y, "yes", "no"))


def regression():
    X, y = load()
    return X.tolist(), (X @ np.arange(4.0)).tolist()


def holes():
    X, y = load()
    X[3, 1] = np.nan
    return X, y


def needs(k):
    return load()


def picky(n=60):
    if n < 10:
        raise ValueError(f"n must be at least 10, got {n}")
    return load(n)


def three():
    return load() + (None,)


def number():
    return 3


def uneven():
    X, y = load()
    return X, y[:-1]


def words():
    X, y = load()
    return pd.DataFrame({"a": X[:, 0], "b": ["x"] * len(y)}), y


def one_class():
    X, _ = load()
    return X, np.zeros(len(X), int)


CONSTANT = 3
'''
CV = ["cv", "--epochs", "2", "--hidden", "8", "--k", "2"]


@pytest.fixture
def loader(tmp_path: Path) -> Path:
    return user_file(tmp_path / "mine" / "rows.py", LOADER)


def test_cv_on_a_loader_equals_cv_on_the_same_arrays_in_an_npz(loader, tmp_path):
    """The loader's arrays are read as an NPZ file's: the same rows, fingerprint and numbers;
    rows show the file's name with the parameters given, the manifest its file and sha256."""
    out = tmp_path / "out"
    run_ok(*CV, "--data", f"{loader}:load[n=80,seed=1]", "--out", out)
    namespace: dict = {}
    exec(LOADER, namespace)
    X, y = namespace["load"](n=80, seed=1)
    np.savez(tmp_path / "rows.npz", X=X, y=y)
    run_ok(*CV, "--data", tmp_path / "rows.npz", "--out", tmp_path / "npz")
    plugged, saved = (pd.read_csv(tmp_path / d / "scores.csv") for d in ("out", "npz"))
    assert set(plugged["dataset"]) == {"rows.py:load[n=80,seed=1]"}
    pd.testing.assert_frame_equal(plugged.drop(columns="dataset"),
                                  saved.drop(columns="dataset"), rtol=1e-5, atol=1e-6)
    manifest = json.loads((out / "manifest.json").read_text())
    npz = json.loads((tmp_path / "npz" / "manifest.json").read_text())
    assert manifest["dataset"]["fingerprint"] == npz["dataset"]["fingerprint"]
    assert manifest["plugins"] == [{"dataset": "rows.py:load", "file": str(loader),
                                    "sha256": hashlib.sha256(loader.read_bytes()).hexdigest()}]
    assert manifest["config"]["data"]["name"] == f"{loader}:load[n=80,seed=1]"


@pytest.mark.parametrize("command", [
    ["optimize", "--opt", "sgd[lr=0.1],adam[lr=0.01]", "--epochs", "2", "--hidden", "8"],
    ["overfit", "--reg", "none,l2", "--epochs", "2", "--hidden", "8"],
], ids=["optimize", "overfit"])
def test_optimize_and_overfit_train_on_a_loader(loader, tmp_path, command):
    out = tmp_path / "out"
    run_ok(*command, "--data", f"{loader}:load[n=90]", "--out", out)
    scores = pd.read_csv(out / "scores.csv")
    assert set(scores["dataset"]) == {"rows.py:load[n=90]"}
    assert scores["value"].notna().any()
    assert json.loads((out / "manifest.json").read_text())["plugins"][0]["dataset"] == \
        "rows.py:load"


def test_four_arrays_are_a_fixed_test_split(loader, tmp_path):
    data = load_dataset(DataSpec(f"{loader}:fixed"))
    np.testing.assert_array_equal(data.test_index, np.arange(40, 60))
    whole = load_dataset(DataSpec(f"{loader}:load"))
    np.testing.assert_array_equal(data.X, whole.X)  # the test rows last, as MNIST's t10k
    out = tmp_path / "out"
    run_ok(*CV, "--data", f"{loader}:fixed", "--out", out)
    scores = pd.read_csv(out / "scores.csv")
    assert (scores["split"] == "test").any()
    line = assert_usage_error(invoke(*CV, "--data", f"{loader}:fixed", "--test-fraction",
                                     "0.2", "--out", tmp_path / "no"), tmp_path / "no")
    assert "has a fixed test split already" in line


def test_images_keep_their_shape_for_conv_models(loader, tmp_path):
    data = load_dataset(DataSpec(f"{loader}:images"))
    assert data.input_shape == (1, 6, 6) and data.X.shape == (48, 36)
    assert data.classes == ("0", "1", "2")
    out = tmp_path / "out"
    run_ok("cv", "--data", f"{loader}:images", "--model", "cnn2d", "--channels", "4",
         "--epochs", "1", "--k", "2", "--out", out)
    assert json.loads((out / "manifest.json").read_text())["dataset"]["features"] == 36


def test_array_likes_and_the_task_are_read_as_for_csv(loader):
    frame = load_dataset(DataSpec(f"{loader}:frame"))
    assert frame.task == "classification" and frame.classes == ("no", "yes")  # sorted labels
    lists = load_dataset(DataSpec(f"{loader}:regression"))
    assert lists.task == "regression" and lists.y.dtype == np.float32


def test_the_fingerprint_follows_the_arrays(loader):
    def fingerprint(entry: str) -> str:
        return load_dataset(DataSpec(f"{loader}:{entry}")).fingerprint()

    assert fingerprint("load") == fingerprint("load[seed=0]")  # the default, spelled out
    assert fingerprint("load") != fingerprint("load[seed=1]")
    assert fingerprint("load") != fingerprint("load[shift=0.5]")


def test_missing_values_need_missing_as_in_a_csv(loader, tmp_path):
    line = assert_usage_error(invoke(*CV, "--data", f"{loader}:holes", "--out", tmp_path / "o"),
                              tmp_path / "o")
    assert "has missing values (NaN); pass --missing" in line
    run_ok(*CV, "--data", f"{loader}:holes", "--missing", "mean", "--out", tmp_path / "filled")


def test_resume_keeps_cells_while_the_arrays_stay_and_retrains_when_they_change(loader,
                                                                                tmp_path):
    """Cells are keyed by the arrays' fingerprint: an edit that leaves them (a comment) keeps
    the trained cells, one that changes them trains again; the manifest has the new sha256."""
    out = tmp_path / "out"
    args = [*CV, "--data", f"{loader}:load", "--out", out]
    run_ok(*args)
    before = pd.read_csv(out / "scores.csv")
    loader.write_text(LOADER + "\n# a comment\n")
    run_ok(*args, "--resume")
    execution = json.loads((out / "manifest.json").read_text())["execution"]
    assert execution["cells_trained"] == 0 and execution["cells_resumed"] == 1
    pd.testing.assert_frame_equal(pd.read_csv(out / "scores.csv"), before)
    loader.write_text(LOADER.replace("shift=0.0", "shift=1.0"))
    run_ok(*args, "--resume")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["execution"]["cells_trained"] == 1
    assert manifest["plugins"][0]["sha256"] == hashlib.sha256(loader.read_bytes()).hexdigest()
    assert not pd.read_csv(out / "scores.csv")["value"].equals(before["value"])


@pytest.mark.parametrize("executor", EXECUTORS, ids=EXECUTOR_IDS)
def test_pool_and_dask_workers_score_as_inline(loader, tmp_path, executor):
    args = ["optimize", "--opt", "sgd[lr=0.1],adam[lr=0.01]", "--epochs", "2", "--hidden", "8",
            "--data", f"{loader}:load[n=80]"]
    assert_scores_as_inline(args, tmp_path, executor)


@pytest.mark.parametrize("entry, says", [
    ("{dir}/nowhere.py:load", "no such file"),
    ("{dir}/broken.py:load", "broken.py, line 1"),
    ("{loader}:lost", "defines no 'lost'; it defines load, fixed, images"),
    ("{loader}:CONSTANT", "is a int, not a dataset"),
    ("{loader}:needs", "missing 1 required positional argument: 'k'"),
    ("{loader}:picky[n=3]", "picky[n=3]: ValueError: n must be at least 10, got 3"),
    ("{loader}:load[m=3]", "takes no parameter 'm'; it takes: n, seed, shift"),
    ("{loader}:load[n=two]", "n takes a whole number"),
    ("{loader}:three", "returned 3 values; return (X, y) or (X, y, X_test, y_test)"),
    ("{loader}:number", "returned a int; return (X, y)"),
    ("{loader}:uneven", "X has 60 rows but y 59 values"),
    ("{loader}:words", "X has non-numeric column(s) b"),
    ("{loader}:one_class", "has a single class (0)"),
])
def test_bad_loaders_are_one_line_before_anything_trains(loader, tmp_path, entry, says):
    (tmp_path / "broken.py").write_text("def load(:\n")
    out = tmp_path / "out"
    data = entry.format(dir=tmp_path, loader=loader)
    line = assert_usage_error(invoke(*CV, "--data", data, "--out", out), out)
    assert says in line, line


def test_an_existing_file_with_a_colon_stays_a_data_file(tmp_path):
    """Only what is not a file is read as a loader: data files keep their meaning."""
    X = np.random.default_rng(0).normal(size=(40, 3))
    path = tmp_path / "odd:name.npz"
    np.savez(path, X=X, y=(X[:, 0] > 0).astype(int))
    run_ok(*CV, "--data", path, "--out", tmp_path / "out")
    assert set(pd.read_csv(tmp_path / "out" / "scores.csv")["dataset"]) == {"odd:name.npz"}


def test_a_suite_entry_takes_a_loader_and_a_metric_of_the_users(loader, tmp_path):
    (loader.parent / "score.py").write_text(
        "import numpy as np\n\n\ndef acc(y, proba):\n"
        "    return float(np.mean(proba.argmax(1) == y))\n\n\nacc.greater_is_better = True\n")
    suite = tmp_path / "suite.toml"
    suite.write_text(f'[entry.mine]\ncommand = "cv"\ndata = "{loader}:load[n=50]"\n'
                     f'metrics = "accuracy,{loader.parent / "score.py"}:acc"\nk = 2\n'
                     'epochs = 1\nhidden = "8"\n')
    run_ok("run", suite, "--out", tmp_path / "out")
    scores = pd.read_csv(tmp_path / "out" / "mine" / "scores.csv")
    assert set(scores["dataset"]) == {"rows.py:load[n=50]"}
    assert {"accuracy", "score.py:acc"} <= set(scores["metric"])


def test_transfer_takes_loaders_as_source_and_target(loader, tmp_path):
    out = tmp_path / "out"
    run_ok("transfer", "--source", f"{loader}:load[n=120]", "--target",
           f"{loader}:load[n=80,seed=1]", "--target-size", "20", "--strategy",
           "scratch,linear-probe", "--epochs", "1", "--source-epochs", "1", "--out", out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["name"] == "rows.py:load[n=120]"
    assert manifest["plugins"] == [{"dataset": "rows.py:load", "file": str(loader),
                                    "sha256": hashlib.sha256(loader.read_bytes()).hexdigest()}]
