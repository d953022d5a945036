"""benchmarks/textbook_idx.py: sklearn's digits written as MNIST IDX files, read back by the
IDX reader of --data, and the suite's `digits-idx` dataset made of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dlbench import plugins
from dlbench.data.datasets import DataSpec, load_dataset

PLUGIN = Path(__file__).resolve().parent.parent / "benchmarks" / "textbook_idx.py"


@pytest.fixture
def idx(monkeypatch, tmp_path):
    """The plugin module, its dataset registered as the suite registers it (for the rest of
    the process, as test_textbook_data's: a file is imported once per process, so a later
    suite that names it finds it), its files written into this test's cache."""
    monkeypatch.setenv("DLBENCH_CACHE", str(tmp_path / "cache"))
    return plugins.load(plugins.use(str(PLUGIN))).module


def test_the_files_read_back_as_the_images_drawn(idx, tmp_path):
    """Every pixel and label survives the IDX round trip; the t10k rows are the last TEST."""
    images, labels = idx.drawn()
    data = load_dataset(DataSpec(name=None, path=str(idx.write_files(tmp_path / "files"))))
    assert data.input_shape == (1, 28, 28) and data.n_classes == 10
    np.testing.assert_array_equal(data.X, images.reshape(len(images), -1) / np.float32(255))
    np.testing.assert_array_equal(np.asarray(data.classes)[data.y], labels.astype(str))
    np.testing.assert_array_equal(data.test_index, np.arange(len(labels) - idx.TEST, len(labels)))


def test_the_images_are_laid_out_as_mnist(idx, tmp_path):
    """Unsigned-byte IDX headers; each digit inside the central 20x20 box of a 28x28 frame,
    the full 0-255 range used."""
    files = idx.write_files(tmp_path / "files")
    raw = (files / "train-images-idx3-ubyte").read_bytes()
    assert raw[:4] == bytes([0, 0, 8, 3])
    assert (files / "t10k-labels-idx1-ubyte").read_bytes()[:4] == bytes([0, 0, 8, 1])
    images, _ = idx.drawn()
    inside = np.zeros((28, 28), dtype=bool)
    inside[4:24, 4:24] = True
    assert not images[:, ~inside].any()
    assert images.max() == 255 and images.dtype == np.uint8


def test_the_dataset_writes_its_files_into_the_cache_once(idx, tmp_path):
    data = load_dataset(DataSpec("digits-idx"))
    folder = tmp_path / "cache" / f"digits-idx-v{idx.VERSION}"
    written = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert set(written) == set(idx.STEMS.values()) and data.name == "digits-idx"
    again = load_dataset(DataSpec("digits-idx"))
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == written
    np.testing.assert_array_equal(again.X, data.X)
