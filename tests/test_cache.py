"""The on-disk cache of generated datasets (mnist1d): a hit skips the generator and is
bit-identical to a fresh generation; damage is a miss; the cache never fails a run; concurrent
runs each get whole files."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from dlbench.data import cache, datasets
from dlbench.data.datasets import DataSpec, _mnist1d_arrays, load_dataset

N = 200  # rows: generating mnist1d[n=200] takes a few milliseconds
SPEC = DataSpec(f"mnist1d[n={N}]")


@pytest.fixture(autouse=True)
def cache_root(tmp_path, monkeypatch) -> Path:
    """An empty cache directory of this test's own, and no arrays held in memory."""
    root = tmp_path / "cache"
    monkeypatch.setenv("DLBENCH_CACHE", str(root))
    _mnist1d_arrays.cache_clear()
    yield root
    _mnist1d_arrays.cache_clear()  # arrays from a faked generator must not outlive the test


@pytest.fixture
def generations(monkeypatch) -> list[int]:
    """Counts calls of the mnist1d generator (one entry per generation)."""
    calls, generate = [], datasets._make_mnist1d

    def counted(n):
        calls.append(n)
        return generate(n)

    monkeypatch.setattr(datasets, "_make_mnist1d", counted)
    return calls


def _package_arrays(n: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The mnist1d package's own make_dataset at num_samples=n, untouched: X, y, train rows."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = n
    py_state, np_state = random.getstate(), np.random.get_state()
    raw = make_dataset(args)
    random.setstate(py_state)
    np.random.set_state(np_state)
    return (np.concatenate([raw["x"], raw["x_test"]]), np.concatenate([raw["y"], raw["y_test"]]),
            len(raw["x"]))


def _only_file(root: Path) -> Path:
    """The one cache file; fails on a second one or on a leftover temporary file."""
    files = sorted(p.name for p in root.iterdir())
    assert len(files) == 1 and files[0].endswith(".npz"), files
    return root / files[0]


def _reload() -> datasets.Dataset:
    _mnist1d_arrays.cache_clear()  # forget the in-memory copy: the next load is from disk
    return load_dataset(SPEC)


def _forbid_generating(monkeypatch) -> None:
    def refuse(args):
        raise AssertionError("generated again instead of reading the cache")

    monkeypatch.setattr(datasets, "_make_mnist1d", refuse)


# ---------------------------------------------------------------- where, and what a file holds


def test_cache_dir_is_dlbench_cache_then_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "cache"  # the fixture's DLBENCH_CACHE wins
    monkeypatch.delenv("DLBENCH_CACHE")
    assert cache.cache_dir() == tmp_path / "xdg" / "dlbench"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/xdg")  # the XDG spec: ignore a relative one
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "dlbench"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "dlbench"


def test_first_load_writes_one_file_that_holds_its_key(cache_root, generations):
    load_dataset(SPEC)
    path = _only_file(cache_root)
    assert generations == [N]
    assert path.name.startswith(f"mnist1d-n{N}-") and len(path.stem) == len(f"mnist1d-n{N}-") + 16
    with np.load(path, allow_pickle=False) as archive:  # no pickles needed to read it
        key = json.loads(str(archive["__key__"][()]))
        assert sorted(archive.files) == ["X", "__key__", "n_train", "y"]
    from importlib.metadata import version

    assert key["num_samples"] == N  # the other arguments: the defaults of this mnist1d
    assert key["mnist1d"] == version("mnist1d")


def test_second_load_reads_the_file_without_generating(cache_root, monkeypatch):
    first = load_dataset(SPEC)
    written = _only_file(cache_root).stat().st_mtime_ns
    _forbid_generating(monkeypatch)
    again = _reload()
    assert again.fingerprint() == first.fingerprint()
    assert np.array_equal(again.test_index, first.test_index)
    assert _only_file(cache_root).stat().st_mtime_ns == written  # read, not rewritten


def test_cached_arrays_are_bit_identical_to_a_fresh_generation(monkeypatch):
    load_dataset(SPEC)  # generates and writes
    _mnist1d_arrays.cache_clear()
    _forbid_generating(monkeypatch)
    X, y, n_train = _mnist1d_arrays(N)  # from disk
    fresh_X, fresh_y, fresh_n_train = _package_arrays(N)
    assert n_train == fresh_n_train == N * 4 // 5
    for cached, fresh in ((X, fresh_X), (y, fresh_y)):
        assert cached.dtype == fresh.dtype and cached.shape == fresh.shape
        assert cached.tobytes() == fresh.tobytes()  # bits, not approximately equal floats


def test_a_different_generator_is_a_different_key(cache_root, monkeypatch, generations):
    from importlib import metadata

    load_dataset(SPEC)
    real = metadata.version
    monkeypatch.setattr(metadata, "version",
                        lambda name: "99.0" if name == "mnist1d" else real(name))
    _reload()
    assert generations == [N, N] and len(list(cache_root.iterdir())) == 2


def test_global_rngs_are_untouched_by_a_miss_and_by_a_hit():
    for _ in ("miss: generates", "hit: reads the file"):
        _mnist1d_arrays.cache_clear()
        np.random.seed(123)
        random.seed(123)
        load_dataset(SPEC)
        draws = np.random.rand(), random.random()
        np.random.seed(123)
        random.seed(123)
        assert draws == (np.random.rand(), random.random())


# ---------------------------------------------------------------- damage is a miss


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _flip_a_data_byte(path: Path) -> None:  # the zip's CRC catches it
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


def _garbage(path: Path) -> None:
    path.write_bytes(b"not a zip archive at all")


def _other_key(path: Path) -> None:  # a hash-prefix collision: the stored key decides
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["__key__"] = np.array('{"another":"key"}')
    arrays["X"] = np.zeros_like(arrays["X"])
    with open(path, "wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize("damage", [_truncate, _empty, _flip_a_data_byte, _garbage, _other_key])
def test_a_damaged_file_is_regenerated_and_rewritten(cache_root, generations, damage):
    first = load_dataset(SPEC)
    damage(_only_file(cache_root))
    again = _reload()
    assert generations == [N, N]
    assert again.fingerprint() == first.fingerprint()
    _reload()  # the rewritten file is whole again: a hit
    assert generations == [N, N]


# ---------------------------------------------------------------- the cache never fails a run


def _under_a_file(root: Path, monkeypatch) -> None:  # cannot be created, even by root
    root.parent.mkdir(parents=True, exist_ok=True)
    (root.parent / "a-file").write_text("")
    monkeypatch.setenv("DLBENCH_CACHE", str(root.parent / "a-file" / "cache"))


def _read_only(root: Path, monkeypatch) -> None:
    root.mkdir(parents=True)
    root.chmod(0o555)


def _no_temporary_file(root: Path, monkeypatch) -> None:  # read-only as seen by root, too
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)


def _disk_full_while_writing(root: Path, monkeypatch) -> None:
    def half_then_full(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache.np, "savez", half_then_full)


def _rename_fails(root: Path, monkeypatch) -> None:
    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)


@pytest.mark.parametrize("unwritable", [
    _under_a_file,
    pytest.param(_read_only, marks=pytest.mark.skipif(
        hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes to 0555 directories")),
    _no_temporary_file,
    _disk_full_while_writing,
    _rename_fails,
])
def test_an_unwritable_cache_still_loads_and_leaves_nothing(cache_root, monkeypatch, generations,
                                                            unwritable):
    unwritable(cache_root, monkeypatch)
    try:
        data = load_dataset(SPEC)
        assert data.n_samples == N and generations == [N]
        X, y, _ = _package_arrays(N)
        assert np.array_equal(data.X, X.astype(np.float32)) and np.array_equal(data.y, y)
        left = list(cache_root.iterdir()) if cache_root.is_dir() else []
        assert left == []  # no half file, no temporary file
    finally:
        if cache_root.is_dir():
            cache_root.chmod(0o755)  # let pytest remove tmp_path


# ---------------------------------------------------------------- concurrent runs

# Each process's generator, once it has generated, waits until the other's has too: both miss,
# generate and then write at the same moment.
_LOAD = f"""
import sys, time
from pathlib import Path
import numpy as np
from dlbench.data import datasets

barrier, me, out = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
generate, generated = datasets._make_mnist1d, []
def in_step(n):
    arrays = generate(n)
    generated.append(me)
    (barrier / me).touch()
    deadline = time.monotonic() + 60
    while len(list(barrier.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.002)
    return arrays
datasets._make_mnist1d = in_step
data = datasets.load_dataset(datasets.DataSpec("mnist1d[n={N}]"))
np.savez(out, X=data.X, y=data.y, generated=len(generated))
"""


def test_two_processes_at_once_get_the_same_arrays_and_one_whole_file(cache_root, tmp_path):
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    outs = [tmp_path / f"out{i}.npz" for i in range(2)]
    procs = [subprocess.Popen([sys.executable, "-c", _LOAD, str(barrier), str(i), str(out)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i, out in enumerate(outs)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    results = []
    for out in outs:
        with np.load(out, allow_pickle=False) as archive:
            results.append({name: archive[name] for name in archive.files})
    assert [int(r["generated"]) for r in results] == [1, 1]  # both missed: a real race
    assert all(np.array_equal(r["X"], results[0]["X"]) for r in results)
    assert all(np.array_equal(r["y"], results[0]["y"]) for r in results)
    path = _only_file(cache_root)  # one file, no temporary files
    with np.load(path, allow_pickle=False) as archive:
        assert np.array_equal(archive["X"].astype(np.float32), results[0]["X"])
