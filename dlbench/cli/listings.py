"""The registry listings: `dlbench optimizers`, `datasets`, `regularizers`, `models`."""

from __future__ import annotations

from typing import Annotated

import typer

from dlbench import plugins
from dlbench.plugins import short as shown

FromFile = Annotated[str | None, typer.Option(
    "--from", help="List what a Python file (path/to/file.py) or module (package.module) "
    "offers to --opt: its torch.optim.Optimizer subclasses and factories (params, **kw).")]


def optimizers(source: FromFile = None) -> None:
    """List the optimizers with their defaults (the --opt grammar's names and parameters)."""
    from dlbench.optim.optimizers import OPTIMIZERS, format_value, offered
    from dlbench.output.report import listing

    found = OPTIMIZERS if source is None else offered(source)
    rows = [{"name": shown(o.name), "class": o.cls.__name__,
             "defaults": ", ".join(f"{k}={format_value(v)}"
                                   for k, v in o.signature_defaults().items()),
             "stacked": _stacking(o),
             "description": o.description} for o in found]
    listing("optimizers", rows, ["name", "class", "defaults", "stacked", "description"],
            wrap=("defaults", "stacked", "description"))
    if source is None:
        installed(OPTIMIZERS)
        _collection(OPTIMIZERS)


def installed(registry) -> None:
    """The installed entry points of a registry's group (plugins.GROUPS), read from the
    packages' metadata (none is imported); one a built-in shadows says so."""
    from dlbench.output.report import listing

    found = plugins.entry_points(registry.kind)
    if not found:
        return
    rows = [{"name": name, "names": ep.value,
             "package": f"{ep.dist.name} {ep.dist.version}" if ep.dist else "?",
             "note": "unused: the built-in of this name wins" if name in registry else ""}
            for name, ep in sorted(found.items())]
    listing(f"installed entry points ({plugins.GROUPS[registry.kind]})", rows,
            ["name", "names", "package", "note"], wrap=("names", "note"))


def _collection(registry) -> None:
    """pytorch-optimizer's names, compact, when it is installed."""
    from dlbench.optim import collection
    from dlbench.output.report import listing

    if not collection.installed():
        return
    names = collection.names()
    shadowed = [n for n in names if n in registry or plugins.entry_point(registry.kind, n)]
    rows = [{"names": ", ".join(n for n in names if n not in shadowed),
             "stacked": "per member, or alone if its step asks for a closure",
             "not reachable": ", ".join(shadowed) + " (a built-in or an entry point wins)"}]
    listing(f"pytorch-optimizer {collection.version()} (--opt NAME)", rows,
            ["names", "stacked", "not reachable"], wrap=("names", "stacked", "not reachable"))


def _stacking(info) -> str:
    """How an optimizer trains (engine/stepper.py's one rule, `stacking`)."""
    from dlbench.engine.stepper import entry_stacking

    found = entry_stacking(info)
    return "per member, or alone if it asks for a closure" if found is None else found.label


def datasets() -> None:
    """List the built-in datasets."""
    from dlbench.data.datasets import DATASETS, describe
    from dlbench.output.report import listing

    rows = [describe(info) for info in DATASETS]
    for row in rows:
        row["task"] = f"{row['classes']} classes" if row["classes"] else row["task"]
        row["test"] = "fixed" if row["fixed_test"] else "—"
    listing("datasets", rows, ["name", "samples", "features", "task", "test", "description"])
    installed(DATASETS)


def regularizers() -> None:
    """List the regularizers of `dlbench overfit --reg` with their parameters."""
    from dlbench.engine.regularizers import REGULARIZERS
    from dlbench.grammar import format_value
    from dlbench.output.report import listing

    rows = [{"name": r.name, "defaults": ", ".join(f"{k}={format_value(v)}"
                                                   for k, v in r.defaults.items()) or "—",
             "description": r.description} for r in REGULARIZERS]
    listing("regularizers", rows, ["name", "defaults", "description"],
            wrap=("defaults", "description"))
    installed(REGULARIZERS)


ModelsFrom = Annotated[str | None, typer.Option(
    "--from", help="List what a Python file (path/to/file.py) or module (package.module) "
    "offers to --model: its nn.Module subclasses and factories (input_shape, n_outputs, **k).")]


def models(source: ModelsFrom = None) -> None:
    """List the models and the options each one uses."""
    from dlbench.nn.models import MODELS, offered
    from dlbench.output.report import listing

    rows = [{"name": shown(m.name), "tasks": ", ".join(m.tasks), "options": m.options,
             "description": m.description}
            for m in (MODELS if source is None else offered(source))]
    listing("models", rows, ["name", "tasks", "options", "description"],
            wrap=("tasks", "options", "description"))
    installed(MODELS)
