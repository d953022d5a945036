"""pytorch-optimizer (`pip install dlbench[pytorch-optimizer]`): its optimizers by its own names.

`--opt lion` reads as `--opt pytorch_optimizer:Lion` when no built-in entry and no installed
entry point is named `lion` (Registry.lookup): a plugged optimizer like any other, so never
elementwise (each member steps its own leaf views, engine/stepper.py), alone when its step asks
for a closure, its defaults its signature's, its provenance the package and its version. The
package is imported only when a name reaches it or `dlbench optimizers` lists it.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
from importlib import metadata

PACKAGE = "pytorch_optimizer"  # the module; its distribution is 'pytorch_optimizer' too


def installed() -> bool:
    """Without importing it (about 2 s)."""
    return importlib.util.find_spec(PACKAGE) is not None


def version() -> str | None:
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return None


@functools.cache
def names() -> dict[str, str]:
    """Its own names (`get_supported_optimizers`) -> their references; empty when it is not
    installed. A class the package exports at its top is named there (shorter rows)."""
    if not installed():
        return {}
    import pytorch_optimizer

    found = {}
    for name in pytorch_optimizer.get_supported_optimizers():
        cls = pytorch_optimizer.load_optimizer(name)
        top = getattr(pytorch_optimizer, cls.__name__, None) is cls
        found[name] = f"{PACKAGE if top else cls.__module__}:{cls.__name__}"
    return found


def reference(name: str) -> str | None:
    """The reference its name stands for, or None (not installed, or not one of its names)."""
    if not installed():
        return None
    return names().get(name)


@functools.cache
def asks_closure(cls: type) -> bool:
    """Whether one of its classes needs a closure though its `step(closure=None)` says not:
    the package's convention is to raise its NoClosureError in `step` (its SAM variants)."""
    if not cls.__module__.startswith(PACKAGE):
        return False
    try:
        return "NoClosureError" in inspect.getsource(cls.step)
    except (OSError, TypeError):
        return False
