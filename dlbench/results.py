"""Run directories and result files. Only this module writes them (the data cache in data/cache.py
keeps its own files).

A run directory is claimed before anything trains: created (exclusively, for a default name),
locked for the live run, and given run.json (what runs there). Every file is written to a
temporary name in the same directory and renamed into place, so an interrupted run never leaves
a half-written file; finished tasks are kept under cells/ (execution.Store) for --resume.
manifest.json is written last: its presence means the run finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import IO, Any

import pandas as pd

from dlbench import __version__
from dlbench.errors import DlbenchError

PACKAGES = ("torch", "numpy", "pandas", "scikit-learn", "scipy", "matplotlib", "mnist1d")


RUN_RECORD = "run.json"  # written when a run claims its directory: what it runs
CELLS = "cells"  # the finished tasks (execution.Store): what --resume keeps
LOCK = ".lock"  # held (flock) by the live run that owns the directory
SHA256 = "sha256"  # the manifest's entry: file name -> sha256 of its bytes (see `verify`)


def default_out_dir(command: str, root: str | Path = "results") -> Path:
    """results/<command>-<timestamp>/ (the first free name; `claimed` makes it exclusively)."""
    return Path(root) / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_out(out: Path | None, resume: bool = False, held: bool = False) -> None:
    """What can be said of --out before anything runs: not a file; a finished or unfinished
    run only with --resume, and then one there is."""
    if out is None:
        if resume:
            raise DlbenchError("--resume continues the run in --out DIR: give that directory")
        return
    try:
        if out.exists() and not out.is_dir():
            raise DlbenchError(f"--out {out} is a file; give a directory path")
        if not held:  # `held`: this process holds its lock already
            _check_free(out)
        if resume and not (out / RUN_RECORD).exists():
            raise DlbenchError(f"--resume: {out} holds no dlbench run to continue; give the "
                               "--out of an interrupted run, or drop --resume")
        if not resume and (out / "manifest.json").exists():  # its files would mix with ours
            raise DlbenchError(f"--out {out} already holds a finished run; choose a new "
                               "directory or remove that one")
        if not resume and (out / RUN_RECORD).exists():
            raise DlbenchError(f"--out {out} holds an unfinished run; add --resume to finish "
                               "it, or choose a new directory")
    except OSError as e:  # a name too long, a path through /proc, ...
        raise DlbenchError(f"cannot use --out {out}: {e.strerror}; give a writable directory "
                           "path") from None


@contextmanager
def claimed(path: Path | None, command: str, record: dict[str, Any],
            resume: bool = False, warn: Callable[[str], None] = lambda _: None
            ) -> Iterator[Path]:
    """The results directory, claimed for this run before anything trains.

    `path` None: results/<command>-<timestamp>[-N], created exclusively, so two runs started in
    the same second get two directories. Either way a lock held for the whole run refuses a
    second live run of the same directory, and run.json records what runs there: a resumed
    run must be the same (`record`: the command and its config). If the run fails before any
    cell finished, what this created is removed again, so a failed run leaves nothing behind.
    A damaged run.json does not block a resume: it is written anew (`warn` says so), since
    stored cells are matched by their keys, which hold their whole configuration.
    """
    created: list[Path] = []
    try:
        path = _make(path, command, created)
        lock = _lock(path)
        if path not in created:  # another run may have finished there since check_out looked
            try:
                check_out(path, resume, held=True)
            except DlbenchError:
                lock.close()
                raise
    except OSError as e:
        _remove_empty(created)
        where = f"{path}: {e.strerror}" if e.filename is None else \
            f"{e.filename}: {e.strerror}"
        raise DlbenchError(f"cannot create results directory {where}; give --out a writable "
                           "directory") from None
    except DlbenchError:
        _remove_empty(created)
        raise
    try:
        record = json.loads(json.dumps(record, default=_jsonable))
        damaged = resume and _stored_record(path) is None
        if damaged:
            warn(f"{path / RUN_RECORD} was damaged; written anew from these options (stored "
                 "cells are reused only where their keys match this configuration)")
        if resume and not damaged:
            try:
                _same_run(path, record)
            except DlbenchError as e:
                raise DlbenchError(f"--resume: {e}") from None
        else:
            _write_record(path, record)
        yield path
    except BaseException:
        if not any((path / CELLS).glob("*.pkl")) and not resume:
            for name in (RUN_RECORD, LOCK):
                (path / name).unlink(missing_ok=True)
            _remove_empty([*created, path / CELLS])
        raise
    finally:
        lock.close()


def _write_record(path: Path, record: dict[str, Any]) -> None:
    try:
        atomic_write(path / RUN_RECORD, lambda f: json.dump(record, f, indent=2))
    except OSError as e:  # a full disk, before anything trained: nothing is lost
        raise DlbenchError(f"cannot write {path / RUN_RECORD}: {e.strerror}; free some space "
                           "or give --out a writable directory") from None


def _make(path: Path | None, command: str, created: list[Path]) -> Path:
    """The directory, with any parents this creates listed in `created` (top first)."""
    target = path or default_out_dir(command)
    for parent in reversed(target.parents):
        if not parent.exists():
            parent.mkdir(exist_ok=True)
            created.append(parent)
    if path is not None:
        if not path.exists():
            path.mkdir(exist_ok=True)
            created.append(path)
        return path
    for n in range(1, 10_000):  # exclusive: a name another run took is skipped
        candidate = target if n == 1 else target.with_name(f"{target.name}-{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        created.append(candidate)
        return candidate
    raise DlbenchError(f"no free results directory name next to {target}; give --out")


def _lock(path: Path) -> IO[str]:
    """An exclusive lock on the directory for this process's lifetime (released by the OS
    when it dies, even by SIGKILL); refused while another live run holds it."""
    handle = open(path / LOCK, "a+")  # noqa: SIM115 - held open for the whole run
    owner = _locked(handle)
    if owner is not None:
        handle.close()
        raise _in_use(path, owner)
    handle.truncate(0)
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _locked(handle: IO[str]) -> str | None:
    """Take the lock of an open lock file: None, or the pid of the live run holding it."""
    try:
        import fcntl
    except ImportError:  # not POSIX (Windows): no lock; run.json still guards the config
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        return handle.read().strip() or "?"
    return None


def _check_free(out: Path) -> None:
    """Refuse a directory a live run holds (its lock is taken only for the look)."""
    if (out / LOCK).exists():
        with open(out / LOCK) as handle:
            owner = _locked(handle)
        if owner is not None:
            raise _in_use(out, owner)


def _in_use(path: Path, owner: str) -> DlbenchError:
    return DlbenchError(f"--out {path} is in use by another running dlbench (pid {owner}); "
                        "wait for it to finish or choose another directory")


def run_state(path: Path, record: dict[str, Any]) -> str:
    """What a directory holds of the run `record` describes: "new" (nothing), "unfinished" or
    "finished"; a run of another configuration is refused."""
    if not (path / RUN_RECORD).exists():
        return "new"
    if _stored_record(path) is None:  # damaged: resumed, and written anew (`claimed`)
        return "unfinished"
    _same_run(path, json.loads(json.dumps(record, default=_jsonable)),
              "run into a new --out, or remove that directory")
    return "finished" if (path / "manifest.json").exists() else "unfinished"


def new_dir(name: str) -> Path:
    """results/<name>-<timestamp>[-N]/, created exclusively (for a suite's own directory)."""
    try:
        return _make(None, name, [])
    except OSError as e:
        raise DlbenchError(f"cannot create a results directory under results/: {e.strerror}; "
                           "give --out a writable directory") from None


def _same_run(path: Path, record: dict[str, Any],
              advice: str = "resume with the same options or choose a new --out") -> None:
    """Refuse to resume a run of another configuration, naming the first difference."""
    difference = _first_difference(pruned(_stored_record(path)), pruned(record))
    if difference is not None:
        where, there, here = difference
        raise DlbenchError(f"{path} holds a run of another configuration ({where}: {there} "
                           f"there, {here} now); {advice}")


def _stored_record(path: Path) -> dict[str, Any] | None:
    """run.json's record; None when it is damaged (not a JSON object)."""
    try:
        with open(path / RUN_RECORD, "rb") as f:
            stored = json.load(f)
    except ValueError:  # not JSON, not UTF-8
        return None
    return stored if isinstance(stored, dict) else None


def pruned(value: Any) -> Any:
    """A record without its empty values (None, [], {}): an option added since a run was made
    arrives empty by default (a model's `params`), and is no difference from its absence."""
    if isinstance(value, dict):
        return {k: pruned(v) for k, v in value.items() if v not in (None, [], {})}
    if isinstance(value, list):
        return [pruned(v) for v in value]
    return value


def _first_difference(a: Any, b: Any, where: str = "") -> tuple[str, Any, Any] | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(a.keys() | b.keys()):
            found = _first_difference(a.get(k), b.get(k), f"{where}.{k}" if where else k)
            if found is not None:
                return found
        return None
    return None if a == b else (where or "config", json.dumps(a), json.dumps(b))


def _remove_empty(directories: list[Path]) -> None:
    for directory in reversed(directories):  # deepest first
        try:
            directory.rmdir()
        except FileNotFoundError:
            continue
        except OSError:
            return  # not empty: leave it and its parents


def atomic_write(path: Path, write: Callable[[IO], None], binary: bool = False) -> str:
    """Write through a temporary file renamed into place -> the sha256 of what was written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", newline="") as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are ordinary files
        digest = sha256(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest


def sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_run(out_dir: Path, tables: dict[str, pd.DataFrame], manifest: dict[str, Any],
              extra: dict[str, Callable[[Path], None]] | None = None) -> Path:
    """tables: file stem -> tidy frame (written as <stem>.csv); extra: file name -> writer(path).
    The manifest, written last, records each file's sha256 (`verify` checks them)."""
    digests = {}
    for stem, frame in tables.items():
        digests[f"{stem}.csv"] = atomic_write(
            out_dir / f"{stem}.csv", lambda f, frame=frame: frame.to_csv(f, index=False))
    for name, writer in (extra or {}).items():
        tmp = out_dir / f".{name}.tmp"
        try:
            writer(tmp)
            digests[name] = sha256(tmp)
            os.replace(tmp, out_dir / name)
        finally:
            tmp.unlink(missing_ok=True)
    manifest = {**manifest, SHA256: digests}
    atomic_write(out_dir / "manifest.json",
                 lambda f: json.dump(manifest, f, indent=2, default=_jsonable))
    return out_dir


def verify(out_dir: Path, names: Iterable[str] | None = None) -> list[str]:
    """What is wrong with a finished run's files: each file its manifest records (of `names`,
    where given: the files a reader is about to use) whose bytes are missing or differ from the
    sha256 written with it (empty: all intact). Runs written before the checksums were recorded
    have none to check."""
    try:
        with open(out_dir / "manifest.json") as f:
            recorded = json.load(f).get(SHA256, {})
    except FileNotFoundError:
        return [f"{out_dir} holds no manifest.json: not a finished run"]
    except (OSError, ValueError, AttributeError) as e:
        return [f"{out_dir / 'manifest.json'} is unreadable or damaged ({type(e).__name__})"]
    problems = []
    wanted = recorded.keys() if names is None else set(names) & recorded.keys()
    for name, expected in sorted((name, recorded[name]) for name in wanted):
        try:
            if sha256(out_dir / name) != expected:
                problems.append(f"{out_dir / name} is damaged: its sha256 differs from the "
                                "manifest's")
        except OSError as e:
            problems.append(f"{out_dir / name}: {e.strerror}")
    return problems


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
