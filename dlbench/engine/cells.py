"""Cells: one configuration of an experiment grid, whose seeds train as one stack.

A cell is pure — its coordinates and configs in, member results out — and has a stable key, so
an executor can run it in this process, in a process pool or on a Dask cluster, and a resumed
run can skip the cells that finished (execution.py).

Its coordinates are open: each axis of a grid is one entry of AXES (how to read the cell's value
on it, how a label shows it), so a new axis is a registry entry, not a new field here. Runners set
the values that live outside the model and training configs (a regularizer's entry, the share
of the training rows) as the cell's `tags`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dlbench import plugins
from dlbench.data.datasets import Dataset
from dlbench.engine.execution import ENGINE_VERSION, Task, digest
from dlbench.engine.members import Member, TrainConfig, resolve_device
from dlbench.engine.stepper import trains_alone
from dlbench.nn.models import ModelSpec, model_info
from dlbench.registry import Registry


@dataclass(frozen=True)
class Cell:
    model: ModelSpec
    train: TrainConfig
    tags: tuple[tuple[str, Any], ...] = ()  # (axis, value) set by the runner

    def tag(self, axis: str, default: Any = "") -> Any:
        return dict(self.tags).get(axis, default)

    def coords(self) -> dict[str, Any]:
        """The grid coordinates, one column each in every result row ("" where an axis does
        not apply: the model ignores it, or the command has no such axis)."""
        return {axis.name: axis.value(self) for axis in AXES}


@dataclass(frozen=True)
class Axis:
    name: str  # its result column
    value: Callable[[Cell], Any]  # the cell's value; "" where it does not apply
    part: Callable[[Any], str] = str  # how a label shows a value


def _used(field: str) -> Callable[[Cell], Any]:
    """A model field, blank for models that ignore it (a blank is no variation)."""
    def value(cell: Cell) -> Any:
        if field not in model_info(cell.model.name).uses:
            return ""
        v = getattr(cell.model, field)
        return ",".join(map(str, v)) if isinstance(v, tuple) else v
    return value


def _fraction(value: Any) -> str:
    return f"{value:.0%} train"


# Column order; a label lists the varied axes in this order.
AXES: Registry[Axis] = Registry("axis")
for _axis in (
    Axis("model", lambda c: c.model.shown),
    Axis("hidden", _used("hidden"), lambda v: f"hidden {v}"),
    Axis("init", _used("init")),
    Axis("activation", _used("activation")),
    Axis("batchnorm", _used("batchnorm"), lambda v: "bn" if v else "no bn"),
    Axis("preprocess", lambda c: c.train.preprocess),
    Axis("missing", lambda c: "" if c.train.missing == "none" else c.train.missing,
         lambda v: f"{v} fill"),
    Axis("features", lambda c: c.train.features or "", lambda v: f"{v} features"),
    Axis("regularizer", lambda c: c.tag("regularizer")),
    Axis("strategy", lambda c: c.tag("strategy")),
    Axis("similarity", lambda c: c.tag("similarity")),
    Axis("target_size", lambda c: c.tag("target_size"), lambda v: f"{v} target rows"),
    Axis("train_fraction", lambda c: c.tag("train_fraction"), _fraction),
    Axis("batch_size", lambda c: c.train.batch_size, lambda v: f"batch {v}"),
    Axis("loss", lambda c: c.train.loss, lambda v: f"{v} loss"),
    Axis("optimizer", lambda c: c.train.optimizer.label),
    Axis("lr", lambda c: c.train.optimizer.lr),
):
    AXES.add(_axis)


def labels(cells: list[Cell]) -> list[str]:
    """Short names that tell the cells apart: the axes that vary (the optimizer with its lr when
    either varies), or the optimizer alone when nothing does."""
    coords = [c.coords() for c in cells]
    varied = {a.name for a in AXES  # blank: the axis does not apply, which is no variation
              if len({str(c[a.name]) for c in coords if c[a.name] != ""}) > 1}
    if "regularizer" in varied:  # an axis a regularizer entry sets (batchnorm) is said by it
        varied -= {a for a in varied - {"regularizer"}
                   if _follows(coords, a, "regularizer")}
    if "lr" in varied or not varied:
        varied.add("optimizer")
    return [" · ".join(_part(axis, c) for axis in AXES
                       if axis.name in varied and axis.name != "lr" and c[axis.name] != "")
            for c in coords]


def _follows(coords: list[dict[str, Any]], axis: str, source: str) -> bool:
    """Whether each value of `source` comes with one value of `axis` only."""
    seen: dict[str, str] = {}
    return all(seen.setdefault(str(c[source]), str(c[axis])) == str(c[axis]) for c in coords)


def _part(axis: Axis, coords: dict[str, Any]) -> str:
    if axis.name == "optimizer":
        return f"{coords['optimizer']} lr={coords['lr']:.3g}"  # the lr column keeps every digit
    return axis.part(coords[axis.name])


def tasks(dataset: Dataset, cells: list[Cell], members_of: Callable[[Cell], list[Member]],
          best: bool = False, weights: bool = False) -> list[tuple[Task, list[int]]]:
    """The cells as tasks, each with its cells' indices: cells of one model on the same members
    (`members_of` returns the same list object for them) whose configs can share a stack — a
    cell of an optimizer whose members train alone (full batch, or re-evaluating a closure:
    stepper.trains_alone) is a task of its own, and a plugged optimizer's cells share tasks
    only with each other.
    Exactly the stacks the trainer would form, so a cell's numbers do not depend on how tasks
    are spread over workers."""
    groups: dict[tuple, list[int]] = {}
    for i, cell in enumerate(cells):
        t = cell.train
        # a plugged optimizer's cells keep to their own tasks: an edit of its file (which
        # changes their keys) retrains only them
        plugged = tuple(plugins.named_in(t))
        stack = i if trains_alone(t.optimizer) else (t.epochs, t.batch_size, t.device, t.loss,
                                                      plugged)
        groups.setdefault((cell.model, id(members_of(cell)), stack), []).append(i)
    fingerprint = dataset.fingerprint()
    member_digests: dict[int, str] = {}
    found = []
    for indices in groups.values():
        members = members_of(cells[indices[0]])
        if id(members) not in member_digests:
            member_digests[id(members)] = digest(members)
        keys = tuple(cell_key(cells[i], fingerprint, member_digests[id(members)], best)
                     for i in indices)
        configs = tuple(cells[i].train for i in indices)
        found.append((Task(cells[indices[0]].model, configs, tuple(members), keys, best, weights,
                           plugins.pins(plugins.named_in(cells[indices[0]].model, configs))),
                      indices))
    return found


def cell_key(cell: Cell, fingerprint: str, members: str, best: bool) -> str:
    """A stable name for what a cell computes: its canonical configuration, the data (its
    fingerprint), its members (`members`: their digest), the device kind and the engine's
    version (and each plugged object's sha256 or package version) — equal keys, equal numbers."""
    # an edited file of the user's changes the key: its cells are trained again
    return digest({"engine": ENGINE_VERSION, "data": fingerprint, "members": members,
                   "device": resolve_device(cell.train.device).type, "cell": cell, "best": best,
                   **plugins.record(cell)})
