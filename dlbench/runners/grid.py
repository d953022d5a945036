"""Shared steps of the grid runners (`optimize`, `overfit`): one train/validation/test split,
cells trained seed-paired through the one trainer, their rows, and their scores on shared
resamples of the evaluation rows.

A runner composes these: it decides the cells and what to report, never how to train or how to
build a row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from dlbench.data.datasets import Dataset
from dlbench.data.splits import SplitConfig, dev_and_test, make_splits
from dlbench.engine.cells import Cell, labels, tasks
from dlbench.engine.execution import Engine
from dlbench.engine.members import Member, MemberResult
from dlbench.engine.predictions import Predictions
from dlbench.engine.trainer import check_model_fits, check_pair, check_task, check_train
from dlbench.evaluate import verdicts
from dlbench.evaluate.metrics import MetricInfo
from dlbench.evaluate.rows import curve_rows, score_rows
from dlbench.evaluate.stats import Interval
from dlbench.nn.models import ModelSpec
from dlbench.seeding import derive_seed

TOO_SMALL_TO_SPLIT = 20  # fewer rows (xor's 4-point table): train and evaluate on all of them
FRACTION = 0.2  # the validation and test shares when not given


@dataclass(frozen=True, eq=False)
class Holdout:
    """One train/validation/test split, the same for every cell of a run."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def members(self, seeds: int, seed: int, train: np.ndarray | None = None,
                per_seed: int = 1) -> list[Member]:
        """One member per seed (`per_seed` for an ensemble); seed s starts every cell from the
        same weights and order, and so does an ensemble's first member for that seed."""
        rows = self.train if train is None else train
        return [Member({"seed": s}, derive_seed(seed, s) if j == 0 else derive_seed(seed, s, j),
                       rows, {"val": self.val, "test": self.test})
                for s in range(seeds) for j in range(per_seed)]


def holdout(dataset: Dataset, *, seed: int, val_fraction: float | None,
            test_fraction: float | None, stratify: bool) -> Holdout:
    rows = np.arange(dataset.n_samples)
    if dataset.n_samples < TOO_SMALL_TO_SPLIT:  # measures fit, not generalisation: said so
        return Holdout(rows, rows, rows)
    ordered = dataset.time is not None  # time-ordered data: never let the future train
    dev, test = dev_and_test(dataset, test_fraction or FRACTION, seed=seed, stratify=stratify,
                             time_order=ordered)
    split_config = SplitConfig("holdout", val_fraction=val_fraction or FRACTION,
                               stratify=stratify, time_order=ordered, seed=seed)
    groups = None if dataset.groups is None or ordered else dataset.groups[dev]
    [split] = make_splits(dataset.y[dev], split_config, task=dataset.task, groups=groups)
    return Holdout(dev[split.train], dev[split.val], test)


def check_cells(cells: list[Cell], dataset: Dataset) -> None:
    """Every cell's training, model and their fit to the data, before anything trains."""
    n_params: dict[ModelSpec, int] = {}
    for cell in cells:
        check_train(cell.train)
        if cell.model not in n_params:  # shapes only: a huge model is refused unallocated
            n_params[cell.model] = check_model_fits(cell.model, dataset)
        check_pair(cell.train, cell.model, n_params[cell.model])
        check_task(cell.train, cell.model, dataset)


def stratified_sample(dataset: Dataset, rows: np.ndarray, n: int, seed: int,
                      stratify: bool = True) -> np.ndarray:
    """n of the rows, drawn with `seed` (scikit-learn's split), class ratios kept for
    classification when asked; all of them when n reaches their count. Sorted."""
    if n >= len(rows):
        return rows
    classes = dataset.y[rows] if stratify and dataset.task == "classification" else None
    kept, _ = train_test_split(rows, train_size=n, stratify=classes, random_state=seed % 2**32)
    return np.sort(kept)


# --- training cells --------------------------------------------------------------------------


@dataclass(eq=False)
class CellRun:
    """One cell's trained members, with their statuses."""

    phase: str  # "trial" (a --tune trial) or "final"
    label: str  # the short name that tells it apart from the other cells
    cell: Cell
    results: list[MemberResult]
    statuses: list[str]


def run_cells(dataset: Dataset, cells: list[Cell], members: Callable[[Cell], list[Member]],
              chance: float | None, phase: str = "final", engine: Engine | None = None,
              best: bool = False, weights: bool = False) -> list[CellRun]:
    """Each cell's members, in cell order, run as tasks by the engine (in this process when
    none is given), with their final weights when asked. Cells sharing a model and members
    train as one stack (`members(cell)` returns the same list object for cells that share
    them)."""
    trained: list[list[MemberResult]] = [[] for _ in cells]
    found = tasks(dataset, cells, members, best, weights)
    for (_, indices), results in zip(found, (engine or Engine()).run(
            dataset, [task for task, _ in found]), strict=True):
        for i, rs in zip(indices, results, strict=True):
            trained[i] = rs
    return [CellRun(phase, label, cell, rs, [verdicts.status(r, chance) for r in rs])
            for cell, label, rs in zip(cells, labels(cells), trained, strict=True)]


# --- rows ------------------------------------------------------------------------------------


def key(run: CellRun, result: MemberResult) -> dict[str, Any]:
    """The columns that identify a member's rows: phase, cell and its coordinates, seed."""
    return {"phase": run.phase, "cell": run.label, **run.cell.coords(), **result.member.key,
            "member_seed": result.member.seed}


def score_table(dataset: Dataset, runs: list[CellRun], metrics: list[MetricInfo],
                extra: Callable[[MemberResult], dict[str, Any]] = lambda r: {}) -> pd.DataFrame:
    return pd.DataFrame([row for run in runs
                         for r, status in zip(run.results, run.statuses, strict=True)
                         for row in score_rows(r, {"dataset": dataset.name, **key(run, r),
                                                   **extra(r)}, metrics, status)])


def curve_table(runs: list[CellRun]) -> pd.DataFrame:
    return pd.DataFrame([row for run in runs
                         for r, status in zip(run.results, run.statuses, strict=True)
                         for row in curve_rows(r, key(run, r), status)])


# --- scores on shared resamples --------------------------------------------------------------


def scored(metric: MetricInfo, predictions: list[Predictions], statuses: list[str],
           resamples: np.ndarray) -> verdicts.Scored:
    """Seeds' predictions on one split, scored on all rows and on the shared resamples."""
    return verdicts.Scored.of(predictions, metric, resamples,
                              [status != "diverged" for status in statuses])


def clipped(estimate, metric: MetricInfo) -> tuple[Interval, float, bool]:
    """(its 95% interval cut to the values the metric can take, the half-width before, whether
    it was cut)."""
    interval = estimate.interval()
    low, high, cut = metric.clip(interval.low, interval.high)
    return replace(interval, low=low, high=high), (interval.high - interval.low) / 2, cut


def cost(results: list[MemberResult]) -> dict[str, float]:
    """Per trained model (median over seeds; seconds: mean), at the end of training."""
    last = [r.cost[-1] for r in results]
    return {"grad_evals": float(np.median([c.grad_evals for c in last])),
            "passes": float(np.median([c.passes for c in last])),
            "seconds_per_model": float(np.mean([c.seconds for c in last]))}
