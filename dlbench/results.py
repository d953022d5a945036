"""Run directories and result files. Only this module writes files.

Every file is written to a temporary name in the same directory and renamed into place, so an
interrupted run never leaves a half-written CSV. manifest.json is written last: its presence
means the run finished.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import IO, Any

import pandas as pd

from dlbench import __version__
from dlbench.errors import DlbenchError

PACKAGES = ("torch", "numpy", "pandas", "scikit-learn", "scipy", "matplotlib", "mnist1d")


def default_out_dir(command: str, root: str | Path = "results") -> Path:
    """results/<command>-<timestamp>/, with a suffix if two runs start in the same second."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, n = Path(root) / f"{command}-{stamp}", 1
    while path.exists():
        n += 1
        path = Path(root) / f"{command}-{stamp}-{n}"
    return path


def check_out(out: Path | None) -> None:
    """What can be said of --out before anything runs: not a file, not a finished run."""
    if out is None:
        return
    try:
        if out.exists() and not out.is_dir():
            raise DlbenchError(f"--out {out} is a file; give a directory path")
        if (out / "manifest.json").exists():  # its files would mix with ours
            raise DlbenchError(f"--out {out} already holds a finished run; choose a new "
                               "directory or remove that one")
    except OSError as e:  # a name too long, a path through /proc, ...
        raise DlbenchError(f"cannot use --out {out}: {e.strerror}; give a writable directory "
                           "path") from None


@contextmanager
def claimed(path: Path) -> Iterator[Path]:
    """The results directory, created and proven writable before anything trains.

    If the run fails before it finishes, the directories this created are removed again
    (when empty), so a failed run leaves nothing behind.
    """
    created = []
    try:
        for parent in reversed((path, *path.parents)):
            if not parent.exists():
                parent.mkdir()
                created.append(parent)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".probe.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        _remove_empty(created)
        where = f"{path}: {e.strerror}" if e.filename is None else \
            f"{e.filename}: {e.strerror}"
        raise DlbenchError(f"cannot create results directory {where}; give --out a writable "
                           "directory") from None
    try:
        yield path
    except BaseException:
        _remove_empty(created)
        raise


def _remove_empty(directories: list[Path]) -> None:
    for directory in reversed(directories):  # deepest first
        try:
            directory.rmdir()
        except OSError:
            return  # not empty (or gone): leave it and its parents


def atomic_write(path: Path, write: Callable[[IO[str]], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_run(out_dir: Path, tables: dict[str, pd.DataFrame], manifest: dict[str, Any],
              extra: dict[str, Callable[[Path], None]] | None = None) -> Path:
    """tables: file stem -> tidy frame (written as <stem>.csv); extra: file name -> writer(path)."""
    for stem, frame in tables.items():
        atomic_write(out_dir / f"{stem}.csv", lambda f, frame=frame: frame.to_csv(f, index=False))
    for name, writer in (extra or {}).items():
        tmp = out_dir / f".{name}.tmp"
        try:
            writer(tmp)
            os.replace(tmp, out_dir / name)
        finally:
            tmp.unlink(missing_ok=True)
    atomic_write(out_dir / "manifest.json",
                 lambda f: json.dump(manifest, f, indent=2, default=_jsonable))
    return out_dir


def environment() -> dict[str, Any]:
    """Versions, platform and git revision: what a reader needs to reproduce a run."""
    versions = {"dlbench": __version__, "python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"versions": versions, "platform": platform.platform(), "git_revision": _git_revision(),
            "command_line": [_program(), *sys.argv[1:]]}


def _program() -> str:
    name = Path(sys.argv[0]).name
    return "dlbench" if name in ("__main__.py", "dlbench") else name


def _git_revision() -> str | None:
    """HEAD of the checkout dlbench runs from (with '-dirty' for local changes), if any."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("-dirty" if dirty else "")


def _jsonable(value: Any) -> Any:
    """numpy scalars/arrays, paths and tuples inside configs -> plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
