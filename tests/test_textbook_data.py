"""benchmarks/textbook_data.py, the textbook suite's data sets: each has the property its claim
rests on (a rare class, pure noise, missing cells, exact copies), at its parameters, every time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dlbench import plugins
from dlbench.data.datasets import DataSpec, drop_duplicates, load_dataset

PLUGIN = Path(__file__).resolve().parent.parent / "benchmarks" / "textbook_data.py"


@pytest.fixture(scope="module", autouse=True)
def registered():
    plugins.use(str(PLUGIN))


def load(name: str, **spec):
    return load_dataset(DataSpec(name=name, **spec))


@pytest.mark.parametrize(("name", "rows", "rare"), [("imbalanced", 2000, 0.05),
                                                   ("imbalanced[n=500,rare=0.02]", 500, 0.02)])
def test_imbalanced_has_its_rare_share(name, rows, rare):
    data = load(name)
    assert data.n_samples == rows
    assert np.bincount(data.y)[1] == pytest.approx(rare * rows, abs=1)


def test_noise_labels_owe_nothing_to_the_features():
    """No feature tells the classes apart beyond what chance gives 500 features on 200 rows."""
    data = load("noise")
    assert data.X.shape == (200, 500)
    shift = np.abs(data.X[data.y == 1].mean(0) - data.X[data.y == 0].mean(0))
    assert shift.max() < 0.6  # about 4 standard errors (each ≈ 0.14 at 100 rows a class)


def test_holes_has_its_share_of_missing_cells_and_none_at_zero():
    holes = load("holes", missing=True)
    assert np.isnan(holes.X).mean() == pytest.approx(0.3, abs=0.01)
    complete = load("holes[share=0]")
    assert not np.isnan(complete.X).any()
    kept = ~np.isnan(holes.X)  # the cells left are breast cancer's own
    np.testing.assert_array_equal(holes.X[kept], complete.X[kept])


def test_duplicated_is_n_rows_each_copied_and_dedupe_gives_them_back():
    data = load("duplicated")
    assert data.n_samples == 900
    once = drop_duplicates(data)
    assert once.n_samples == 300
    assert load("duplicated", dedupe=True).n_samples == 300


@pytest.mark.parametrize("name", ["imbalanced", "noise", "holes[share=0]", "duplicated"])
def test_each_is_the_same_every_time(name):
    assert load(name).fingerprint() == load(name).fingerprint()
