"""The user's own code: `path/to/file.py:Name[...]` or `package.module:Name[...]` wherever a
registry name is accepted (an optimizer, a model, a dataset, a metric), or a Python object
handed to the API (`register`).

What each kind accepts is its layer's business: a `Kind` says how to recognise one and how to
write it (optim/optimizers.py declares the optimizer kind; the others declare theirs). A plugged
optimizer is not elementwise (it steps each member's own leaf views in the stack, exact for any
optimizer: engine/stepper.py) unless it declares the class attribute `elementwise = True` (each
weight updated from its own gradient history only), nor full batch unless it declares
`full_batch = True` (its step takes a closure over the whole training set).

Installed packages: an entry point in one of the groups of GROUPS names what a registry name
stands for, e.g. `[project.entry-points."dlbench.optimizers"] lion = "lion_pkg.opt:Lion"`: then
`--opt lion` reads as `--opt lion_pkg.opt:Lion` (Registry.lookup; a built-in name wins). An entry
point that names a module without ':Name' is a plugin module (below), imported when its name is
first asked for: it must add an entry of that name itself. That is how a regularizer is plugged
(`dlbench.regularizers`: `mine = "pkg.regs"`, whose import calls REGULARIZERS.add), since a
regularizer is an entry of a registry, not one object. Nothing is imported to find an entry
point, so `dlbench --help` stays quick.

Plugin modules (`--plugin path/to/file.py` or `--plugin package.module`, repeatable; a suite's
`plugins = [...]`; an entry point naming a module) add entries through the registries' own
API, exactly as the built-ins do, and the entries are then names like any other:

    from dlbench.optim.optimizers import OPTIMIZERS, OptimInfo
    OPTIMIZERS.add(OptimInfo("mine", MyOptimizer, elementwise=False, test_lr=0.01))
    # likewise MODELS.add(ModelInfo(...)) from dlbench.nn.models, REGULARIZERS.add(...) from
    # dlbench.engine.regularizers, METRICS.add(...) from dlbench.evaluate.metrics,
    # DATASETS.add(...) from dlbench.data.datasets; each entry's fields are documented there

A name a plugin adds records where it came from (Registry.add calls `adding`): a config that
names it carries the plugin's sha256 (a file) or package version into its cells' keys and the
manifest (`named_in`, `record`), so an edited plugin retrains on --resume, and a worker imports
the plugin before it trains (`pins`, `pin`). Importing the same plugin again after its file
changed replaces its own entries; a name that is already taken is refused.

A file is imported under a module name made of its resolved path and the sha256 of its bytes
(two files of one stem never clash) and registered in sys.modules, so pickles and dataclasses
of it resolve; a package module is imported as usual. Each is loaded once per process, and a
worker process loads it again itself: `pin` checks there that the bytes are those the run's
keys were made from.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import inspect
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from dlbench.errors import DlbenchError

# the entry-point group that plugs each registry's entries, by the registry's kind
GROUPS = {"optimizer": "dlbench.optimizers", "model": "dlbench.models",
          "dataset": "dlbench.datasets", "metric": "dlbench.metrics",
          "regularizer": "dlbench.regularizers"}
FLAGS = ("elementwise", "full_batch")  # the class attributes a plugged optimizer may declare
OBJECT = "python."  # where a registered Python object lives: 'python.<digest>:Name'


@dataclass(frozen=True)
class Kind:
    """What a reference may name in one place: an optimizer, a model, a dataset, a metric."""

    name: str  # what messages call it: "optimizer"
    option: str  # the option that names one: "--opt"
    accepts: Callable[[Any], bool]  # whether an object a module defines is one
    wanted: str  # how to write one, for the error when the named object is not
    # what the manifest records of one besides its origin (a metric's direction), or nothing
    recorded: Callable[[Any], dict[str, Any]] = lambda obj: {}


@dataclass(frozen=True)
class Loaded:
    module: ModuleType  # the imported file or package module
    digest: str  # a file's sha256, or "package==version" for a package module
    provenance: tuple[tuple[str, Any], ...]  # what the manifest records of it


def is_reference(name: str) -> bool:
    """'where:Name' names a plugged optimizer; registry names hold no ':'."""
    return ":" in name


def is_plugged(name: str) -> bool:
    """A user's entry: a reference, or a registry name a plugin module added."""
    return is_reference(name) or name in _added


def split(reference: str) -> tuple[str, str]:
    where, _, name = reference.rpartition(":")
    return where, name


def is_file(where: str) -> bool:
    return where.endswith(".py") or "/" in where


def is_object(where: str) -> bool:
    """A Python object handed over by `register` (not a file, not an importable module)."""
    return where.startswith(OBJECT) and where in _objects


def resolve(reference: str, option: str = "--opt") -> str:
    """'dir/file.py:Name' -> '/abs/dir/file.py:Name' (a module reference stays as it is), so
    the same file is the same optimizer from any working directory."""
    where, name = split(reference)
    if not name.isidentifier() or not where:
        raise DlbenchError(f"{option} '{reference}': write path/to/file.py:Name or "
                           "package.module:Name, Name a class or function it defines")
    if not is_file(where):
        return reference
    path = Path(where).expanduser().resolve()
    if not path.is_file():
        raise DlbenchError(f"{option} {where}: no such file {path}; give the path of a "
                           "Python file (or package.module:Name)")
    return f"{path}:{name}"


def short(reference: str) -> str:
    """What a result row shows: the file's name and the object ('sign.py:SignSGD'); a Python
    object's own name ('SignSGD')."""
    where, name = split(reference)
    if where.startswith(OBJECT):
        return name
    return f"{Path(where).name}:{name}" if is_file(where) else reference


_objects: dict[str, Loaded] = {}  # Python objects handed over in this process, by `where`


def register(obj: Any, digest: str | None = None) -> str:
    """A reference naming `obj` itself ('python.<digest>:Name'), for the API: everything that
    takes 'file.py:Name' then takes it. `digest` says what the object computes (the API gives
    arrays' own digest); by default the sha256 of its source code, so an edited function is a
    new object to the cell keys (what its source calls is not part of that digest)."""
    name = getattr(obj, "__name__", None)
    if not isinstance(name, str) or not name.isidentifier():
        name = type(obj).__name__
    if digest is None:
        digest = _source_digest(obj)
    where = f"{OBJECT}{digest[:16]}"
    module = ModuleType(where)
    setattr(module, name, obj)
    qualname = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', name)}"
    _objects[where] = Loaded(module, digest, (("python", qualname), ("sha256", digest)))
    return f"{where}:{name}"


def _source_digest(obj: Any) -> str:
    try:
        source = inspect.getsource(obj)
    except (OSError, TypeError):  # defined at a prompt, or built at run time: only its identity
        source = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', id(obj))}"
    return hashlib.sha256(source.encode()).hexdigest()


_current: dict[str, Loaded] = {}  # each file as this process's run planned or pinned it


def refresh() -> None:
    """Forget which content of each file is current: a new command reads its files afresh
    (an edit between two runs in one process is seen; one during a run is not used), and which
    entry points are installed."""
    _current.clear()
    entry_points.cache_clear()


@functools.cache
def entry_points(kind: str) -> dict[str, metadata.EntryPoint]:
    """The installed entry points of a registry kind's group (GROUPS), by name: read from the
    installed distributions' metadata, nothing imported."""
    group = GROUPS.get(kind)
    return {} if group is None else {ep.name: ep for ep in metadata.entry_points(group=group)}


def entry_point(kind: str, name: str) -> str | None:
    """What an installed entry point named `name` stands for: 'module:Name' (a reference), or
    'module' (a plugin module that adds the entry itself); None when none is installed."""
    found = entry_points(kind).get(name)
    return None if found is None else found.value.replace(" ", "")


def load(where: str, option: str = "--opt") -> Loaded:
    """The module at `where` (a resolved file path, a dotted module name, or a registered
    object's). A file is read once per command (`refresh`), so every cell of a run trains the
    code its keys were made from, however the file changes meanwhile."""
    if where in _objects:
        return _objects[where]
    if where.startswith(OBJECT):
        raise DlbenchError(f"{option} {where}: a Python object this process was not given; "
                           "pass the object itself (dlbench's Python API)")
    if not is_file(where):
        return _load_module(where, option)
    if where not in _current:
        _current[where] = _read(where, option)
    return _current[where]


def _read(where: str, option: str = "--opt") -> Loaded:
    try:
        source = Path(where).read_bytes()
    except OSError as e:
        raise DlbenchError(f"{option}: cannot read {where}: {e.strerror}; give a readable "
                           "Python file") from None
    try:
        return _load_file(Path(where), source)
    except DlbenchError as e:
        raise DlbenchError(f"{option}: {e}") from None


@functools.cache
def _load_file(path: Path, source: bytes) -> Loaded:
    digest = hashlib.sha256(source).hexdigest()
    tag = hashlib.sha256(f"{path}\0{digest}".encode()).hexdigest()[:16]
    name = f"dlbench_plugin_{''.join(c if c.isalnum() else '_' for c in path.stem)}_{tag}"
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as e:
        raise DlbenchError(f"{path}, line {e.lineno}: {e.msg}; fix the file") from None
    module = ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module  # before it runs: its dataclasses look themselves up there
    try:
        exec(code, module.__dict__)
    except Exception as e:
        del sys.modules[name]
        raise DlbenchError(f"importing {path} failed: {type(e).__name__}: "
                           f"{str(e).splitlines()[0] if str(e) else ''}") from None
    return Loaded(module, digest, (("file", str(path)), ("sha256", digest)))


def _load_module(where: str, option: str = "--opt") -> Loaded:
    try:
        return _import(where)
    except ImportError as e:
        raise DlbenchError(f"{option}: cannot import {where} ({e}); install it, or give a "
                           "file path ending in .py") from None


@functools.cache
def _import(where: str) -> Loaded:
    module = importlib.import_module(where)
    package = where.partition(".")[0]
    version = _version(package)
    return Loaded(module, f"{package}=={version}",
                  (("module", where), ("package", package), ("version", version)))


def _version(package: str) -> str | None:
    """An importable package's installed version: its distribution's of the same name, else
    that of the distribution that provides it (a dist 'lion-bench' may install 'lion_pkg')."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        pass
    for dist in metadata.packages_distributions().get(package, []):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def pin(where: str, digest: str, obj: Any = None) -> None:
    """Make `where`'s current content in this process the one the run was planned with (a
    worker reads a file from disk; a registered object comes with the task, `obj`), or refuse
    when the file no longer holds it."""
    if where.startswith(OBJECT):
        if where not in _objects:
            register(obj, digest)
        return
    _loading.append(where)  # a plugin module's entries may come again from its edited file
    try:
        if load(where).digest == digest:
            return
        found = _read(where) if is_file(where) else load(where)
    finally:
        _loading.pop()
    if found.digest != digest:
        raise DlbenchError(f"{where} changed while the run was under way ({digest[:12]} then, "
                           f"{found.digest[:12]} now); run again")
    _current[where] = found


def pins(references: list[str]) -> tuple[tuple[str, str, Any], ...]:
    """(file or module, digest, registered object or None) of each distinct plugged reference
    among `references`: what a worker checks before it trains (`pin`). A registered object
    travels with the task, pickled by reference (its module must import in the worker)."""
    found = {split(r) for r in references if is_reference(r)}
    found |= {(_added[r][1], "") for r in references if r in _added}
    loaded = {where: load(where) for where, _ in found}
    return tuple((where, loaded[where].digest,
                  getattr(loaded[where].module, name) if where.startswith(OBJECT) else None)
                 for where, name in sorted(found))


def offered(module: ModuleType, kind: Kind) -> dict[str, Any]:
    """The objects of `kind` a module defines itself (not those it imports), by name."""
    return {name: obj for name, obj in vars(module).items()
            if not name.startswith("_") and kind.accepts(obj)
            and getattr(obj, "__module__", None) == module.__name__}


# --- plugin modules: `--plugin MODULE_OR_FILE` (the module docstring) ---------------------------

_loading: list[str] = []  # the plugin modules being imported now, innermost last
_added: dict[str, tuple[str, str]] = {}  # a name a plugin added: (registry kind, its `where`)


def use(spec: str, option: str = "--plugin") -> str:
    """Import a plugin module (`package.module`) or file (`path/to/file.py`) so that the
    entries it adds are there -> where it is (a resolved path, or the module name)."""
    if is_file(spec):
        path = Path(spec).expanduser().resolve()
        if not path.is_file():
            raise DlbenchError(f"{option} {spec}: no such file {path}; give a Python file or "
                               "an importable package.module")
        where = str(path)
    elif all(part.isidentifier() for part in spec.split(".")):
        where = spec
    else:
        raise DlbenchError(f"{option} '{spec}': write path/to/file.py or package.module")
    _loading.append(where)
    try:
        load(where, option)
    finally:
        _loading.pop()
    return where


def adding(kind: str, name: str) -> bool:
    """Registry.add's note of a new entry -> whether it may replace an entry of that name (the
    same plugin's, imported again after its file changed)."""
    if not _loading:
        return False
    again = _added.get(name, ("", ""))[1] == _loading[-1]
    _added[name] = (kind, _loading[-1])
    return again


_named: dict[str, Kind] = {}  # each reference `get` resolved in this process: its kind


def get(reference: str, kind: Kind) -> Any:
    """The object of `kind` a resolved reference names."""
    where, name = split(reference)
    module = load(where, kind.option).module
    if not hasattr(module, name):
        found = ", ".join(offered(module, kind)) or f"no {kind.name}"
        raise DlbenchError(f"{kind.option}: {where} defines no '{name}'; it defines {found}")
    obj = getattr(module, name)
    if not kind.accepts(obj):
        raise DlbenchError(f"{kind.option} {short(reference)} is a {type(obj).__name__}, not "
                           f"{'an' if kind.name[0] in 'aeiou' else 'a'} {kind.name}: name "
                           f"{kind.wanted}")
    _named[reference] = kind
    return obj


def named_in(*objects: Any) -> list[str]:
    """The plugged references that `objects` (configs, cells: dataclasses, tuples, lists,
    dicts, strings, nested) hold, in order of first appearance: what a cell's key, a worker's
    pins and a manifest need to know of the user's code. A reference written with its
    parameters ('where:Name[k=v]', as a dataset's name is) counts as the reference."""
    found: dict[str, None] = {}

    def walk(x: Any) -> None:
        if isinstance(x, str):
            bare = _WITH_PARAMETERS.sub(r"\1", x)
            if bare in _named or bare in _added:
                found[bare] = None
        elif dataclasses.is_dataclass(x) and not isinstance(x, type):
            for f in dataclasses.fields(x):
                walk(getattr(x, f.name))
        elif isinstance(x, list | tuple | set | frozenset):
            for item in x:
                walk(item)
        elif isinstance(x, dict):
            for item in x.items():
                walk(item)

    walk(objects)
    return list(found)


_WITH_PARAMETERS = re.compile(r"^(.*:[A-Za-z_][A-Za-z0-9_]*)\[[^\[\]]*\]$")  # 'f.py:Name[...]'


def provenance(reference: str) -> dict[str, Any]:
    """A plugged object's origin: its kind and name, and its file with its sha256, its
    package with its version, or a Python object's source digest; then what its kind records
    of it (`Kind.recorded`). A registry name a plugin module added: its kind and name, and the
    plugin's origin."""
    if reference in _added:
        registry, where = _added[reference]
        return {registry: reference, **dict(load(where).provenance)}
    kind = _named[reference]
    where, name = split(reference)
    loaded = load(where)
    return {kind.name: short(reference), **dict(loaded.provenance),
            **kind.recorded(getattr(loaded.module, name))}


def record(*objects: Any) -> dict[str, Any]:
    """What a manifest (or a cell's key) records of the plugged objects `objects` name:
    {"plugins": [origin, ...]}, or nothing when they name none."""
    found = [provenance(r) for r in named_in(*objects)]
    return {"plugins": found} if found else {}


def summary(obj: Any) -> str:
    """The first line of the object's own docstring ('' when it has none: a class without one
    would otherwise show its base class's, torch's "Base class for all ...")."""
    doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc).partition("\n")[0] if isinstance(doc, str) else ""


def flag(obj: Any, name: str) -> bool:
    """A declaration the object makes (FLAGS): only a literal True counts."""
    return getattr(obj, name, False) is True
