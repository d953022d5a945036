"""MNIST-format images made here, for the claim "softmax regression on MNIST-like images reaches
about 88%": no download is possible, so sklearn's 8x8 digits are drawn as MNIST draws its digits
(the digit in a 20x20 box, centred in a 28x28 frame, 0-255 grey levels) and written as the four
MNIST IDX files, which dlbench's own IDX reader (`--data DIR`) then loads. The claim judged is
about these images, not about MNIST.

Two ways to use it:
- a suite plugin (`plugins = ["textbook_idx.py"]`): adds the dataset `digits-idx`, whose loader
  writes the files once into dlbench's cache directory (data/cache.py: $DLBENCH_CACHE, ...) and
  reads them back through `--data`'s reader;
- a script: `python benchmarks/textbook_idx.py DIR` writes the files into DIR, for
  `dlbench optimize --data DIR --model linear`.
"""

from __future__ import annotations

import os
import struct
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from dlbench.data.cache import cache_dir
from dlbench.data.datasets import DATASETS, Dataset, DatasetInfo, DataSpec, load_dataset

VERSION = 1  # part of the cache folder's name: bump when the images drawn here change
SEED = 0  # the fixed shuffle before the last TEST rows become the t10k files
TEST = 297  # t10k rows (1797 digits: 1500 train, as MNIST keeps its 10000 test rows apart)
BOX, FRAME = 20, 28  # MNIST: each digit fitted in a 20x20 box, centred in a 28x28 image
STEMS = {("train", 3): "train-images-idx3-ubyte", ("train", 1): "train-labels-idx1-ubyte",
         ("test", 3): "t10k-images-idx3-ubyte", ("test", 1): "t10k-labels-idx1-ubyte"}


def drawn() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's digits as (1797, 28, 28) uint8 images and their (1797,) labels, shuffled."""
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = digits.images / 16.0  # (1797, 8, 8) in [0, 1]
    big = np.clip(zoom(small, (1, BOX / 8, BOX / 8), order=1), 0.0, 1.0)  # (1797, 20, 20)
    pad = (FRAME - BOX) // 2
    images = np.pad(big, ((0, 0), (pad, pad), (pad, pad)))  # (1797, 28, 28)
    order = np.random.default_rng(SEED).permutation(len(images))
    return np.round(255 * images[order]).astype(np.uint8), digits.target[order].astype(np.uint8)


def write_idx(path: Path, array: np.ndarray) -> None:
    """One unsigned-byte IDX file: magic 00 00 08 <ndim>, the sizes as big-endian int32, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_files(directory: Path) -> Path:
    """The four MNIST files in `directory`, each written to a temporary file beside it and
    renamed into place, so a concurrent reader never sees half of one (and both wrote equal
    bytes)."""
    images, labels = drawn()
    parts = {"train": slice(None, -TEST), "test": slice(-TEST, None)}
    directory.mkdir(parents=True, exist_ok=True)
    for (part, ndim), stem in STEMS.items():
        handle, tmp = tempfile.mkstemp(dir=directory, prefix=f".{stem}.")
        os.close(handle)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; data files are for anyone to read
        write_idx(Path(tmp), (images if ndim == 3 else labels)[parts[part]])
        os.replace(tmp, directory / stem)
    return directory


def digits_idx() -> Dataset:
    """The images, written once into the cache, read back by the IDX reader of `--data`."""
    directory = cache_dir() / f"digits-idx-v{VERSION}"
    if not all((directory / stem).is_file() for stem in STEMS.values()):
        write_files(directory)
    return replace(load_dataset(DataSpec(name=None, path=str(directory))), name="digits-idx")


INFO = DATASETS.add(DatasetInfo(
    "digits-idx", "sklearn's digits drawn as 28x28 MNIST IDX files, t10k the last 297 "
    "(textbook plugin)", "classification", digits_idx))

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python benchmarks/textbook_idx.py DIR  (writes the four MNIST IDX files)")
    print(write_files(Path(sys.argv[1])))
