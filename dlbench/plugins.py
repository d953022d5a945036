"""The user's own optimizers: `--opt path/to/file.py:Name[...]` or `--opt package.module:Name[...]`.

`Name` is a torch.optim.Optimizer subclass or a factory `(params, **hyperparameters)`; it is
not elementwise (it steps each member's own leaf views in the stack, exact for any optimizer:
engine/stepper.py) unless it declares the class attribute `elementwise = True` (each weight
updated from its own gradient history only), nor full batch unless it declares
`full_batch = True` (its step takes a closure over the whole training set).

A file is imported under a module name made of its resolved path and the sha256 of its bytes
(two files of one stem never clash) and registered in sys.modules, so pickles and dataclasses
of it resolve; a package module is imported as usual. Each is loaded once per process, and a
worker process loads it again itself: `pin` checks there that the bytes are those the run's
keys were made from.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from dlbench.errors import DlbenchError

FLAGS = ("elementwise", "full_batch")  # the class attributes a plugged optimizer may declare


@dataclass(frozen=True)
class Loaded:
    module: ModuleType  # the imported file or package module
    digest: str  # a file's sha256, or "package==version" for a package module
    provenance: tuple[tuple[str, Any], ...]  # what the manifest records of it


def is_reference(name: str) -> bool:
    """'where:Name' names a plugged optimizer; registry names hold no ':'."""
    return ":" in name


def split(reference: str) -> tuple[str, str]:
    where, _, name = reference.rpartition(":")
    return where, name


def is_file(where: str) -> bool:
    return where.endswith(".py") or "/" in where


def resolve(reference: str, option: str = "--opt") -> str:
    """'dir/file.py:Name' -> '/abs/dir/file.py:Name' (a module reference stays as it is), so
    the same file is the same optimizer from any working directory."""
    where, name = split(reference)
    if not name.isidentifier() or not where:
        raise DlbenchError(f"--opt '{reference}': write path/to/file.py:Name or "
                           "package.module:Name, Name a class or function it defines")
    if not is_file(where):
        return reference
    path = Path(where).expanduser().resolve()
    if not path.is_file():
        raise DlbenchError(f"{option} {where}: no such file {path}; give the path of a "
                           "Python file (or package.module:Name)")
    return f"{path}:{name}"


def short(reference: str) -> str:
    """What a result row shows: the file's name and the object ('sign.py:SignSGD')."""
    where, name = split(reference)
    return f"{Path(where).name}:{name}" if is_file(where) else reference


_current: dict[str, Loaded] = {}  # each file as this process's run planned or pinned it


def refresh() -> None:
    """Forget which content of each file is current: a new command reads its files afresh
    (an edit between two runs in one process is seen; one during a run is not used)."""
    _current.clear()


def load(where: str) -> Loaded:
    """The module at `where` (a resolved file path, or a dotted module name). A file is read
    once per command (`refresh`), so every cell of a run trains the code its keys were made
    from, however the file changes meanwhile."""
    if not is_file(where):
        return _load_module(where)
    if where not in _current:
        _current[where] = _read(where)
    return _current[where]


def _read(where: str) -> Loaded:
    try:
        source = Path(where).read_bytes()
    except OSError as e:
        raise DlbenchError(f"--opt: cannot read {where}: {e.strerror}; give a readable "
                           "Python file") from None
    return _load_file(Path(where), source)


@functools.cache
def _load_file(path: Path, source: bytes) -> Loaded:
    digest = hashlib.sha256(source).hexdigest()
    tag = hashlib.sha256(f"{path}\0{digest}".encode()).hexdigest()[:16]
    name = f"dlbench_plugin_{''.join(c if c.isalnum() else '_' for c in path.stem)}_{tag}"
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as e:
        raise DlbenchError(f"--opt: {path}, line {e.lineno}: {e.msg}; fix the file") from None
    module = ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module  # before it runs: its dataclasses look themselves up there
    try:
        exec(code, module.__dict__)
    except Exception as e:
        del sys.modules[name]
        raise DlbenchError(f"--opt: importing {path} failed: {type(e).__name__}: "
                           f"{str(e).splitlines()[0] if str(e) else ''}") from None
    return Loaded(module, digest, (("file", str(path)), ("sha256", digest)))


@functools.cache
def _load_module(where: str) -> Loaded:
    try:
        module = importlib.import_module(where)
    except ImportError as e:
        raise DlbenchError(f"--opt: cannot import {where} ({e}); install it, or give a "
                           "file path ending in .py") from None
    package = where.partition(".")[0]
    try:
        version = metadata.version(package)
    except metadata.PackageNotFoundError:
        version = None
    return Loaded(module, f"{package}=={version}",
                  (("module", where), ("package", package), ("version", version)))


def pin(where: str, digest: str) -> None:
    """Make `where`'s current content in this process the one the run was planned with (a
    worker reads it from disk), or refuse when the file no longer holds it."""
    if load(where).digest == digest:
        return
    found = _read(where) if is_file(where) else load(where)
    if found.digest != digest:
        raise DlbenchError(f"{where} changed while the run was under way ({digest[:12]} then, "
                           f"{found.digest[:12]} now); run again")
    _current[where] = found


def pins(references: list[str]) -> tuple[tuple[str, str], ...]:
    """(file or module, digest) of each distinct plugged reference among `references`: what a
    worker checks before it trains (`pin`)."""
    wheres = sorted({split(r)[0] for r in references if is_reference(r)})
    return tuple((where, load(where).digest) for where in wheres)


def is_optimizer(obj: Any) -> bool:
    """A torch.optim.Optimizer subclass, or a function whose first parameter is `params`."""
    import torch

    if isinstance(obj, type):
        return issubclass(obj, torch.optim.Optimizer) and obj is not torch.optim.Optimizer
    if not inspect.isfunction(obj):
        return False
    first = next(iter(inspect.signature(obj).parameters), None)
    return first == "params"


def offered(module: ModuleType) -> dict[str, Any]:
    """The optimizers a module defines itself (not those it imports), by name."""
    return {name: obj for name, obj in vars(module).items()
            if not name.startswith("_") and is_optimizer(obj)
            and getattr(obj, "__module__", None) == module.__name__}


def get(reference: str) -> Any:
    """The class or factory a resolved reference names."""
    where, name = split(reference)
    module = load(where).module
    if not hasattr(module, name):
        found = ", ".join(offered(module)) or "no optimizer class or factory"
        raise DlbenchError(f"--opt: {where} defines no '{name}'; it defines {found}")
    obj = getattr(module, name)
    if not is_optimizer(obj):
        raise DlbenchError(f"--opt {short(reference)} is a {type(obj).__name__}, not an "
                           "optimizer: name a torch.optim.Optimizer subclass or a function "
                           "(params, **hyperparameters) that returns one")
    return obj


def flag(obj: Any, name: str) -> bool:
    """A declaration the object makes (FLAGS): only a literal True counts."""
    return getattr(obj, name, False) is True
