"""Cells: one configuration of an experiment grid, whose seeds train as one stack.

A cell is pure — its coordinates and configs in, rows out — so an executor can run cells in this
process (today), in a process pool or on a Dask cluster, and a rerun can skip finished cells.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from dlbench.models import MODELS, ModelSpec
from dlbench.trainer import TrainConfig

T = TypeVar("T")
AXES = ("model", "hidden", "init", "activation", "batchnorm", "preprocess", "optimizer", "lr")


@dataclass(frozen=True)
class Cell:
    model: ModelSpec
    train: TrainConfig

    def coords(self) -> dict[str, Any]:
        """The grid coordinates, one column each in every result row."""
        m, opt = self.model, self.train.optimizer
        uses = MODELS.get(m.name).uses  # a field the model ignores is blank, not a default
        return {"model": m.name, "hidden": ",".join(map(str, m.hidden)) if "hidden" in uses
                else "", "init": m.init,
                "activation": m.activation if "activation" in uses else "",
                "batchnorm": m.batchnorm if "batchnorm" in uses else "",
                "preprocess": self.train.preprocess, "optimizer": opt.label, "lr": opt.lr}


def labels(cells: list[Cell]) -> list[str]:
    """Short names that tell the cells apart: the axes that vary (the optimizer with its lr when
    either varies), or the optimizer alone when nothing does."""
    coords = [c.coords() for c in cells]
    varied = {a for a in AXES  # blank: the model ignores that axis, which is no variation
              if len({str(c[a]) for c in coords if c[a] != ""}) > 1}
    if "lr" in varied or not varied:
        varied.add("optimizer")
    return [" · ".join(_part(axis, c[axis], c) for axis in AXES
                       if axis in varied and axis != "lr" and c[axis] != "") for c in coords]


def _part(axis: str, value: Any, coords: dict[str, Any]) -> str:
    if axis == "optimizer":
        return f"{value} lr={coords['lr']:.3g}"  # the lr column keeps every digit
    if axis == "batchnorm":
        return "bn" if value else "no bn"
    return f"hidden {value}" if axis == "hidden" else str(value)


def execute(cells: list[Cell], run: Callable[[list[Cell]], list[T]]) -> list[T]:
    """The in-process executor (the seam for pools and Dask): results in cell order.

    Cells sharing a model spec go to `run` together, so one stack can train all of them.
    """
    batches: dict[ModelSpec, list[int]] = {}
    for i, cell in enumerate(cells):
        batches.setdefault(cell.model, []).append(i)
    results: list[T | None] = [None] * len(cells)
    for indices in batches.values():
        for i, result in zip(indices, run([cells[i] for i in indices]), strict=True):
            results[i] = result
    return results  # type: ignore[return-value]
