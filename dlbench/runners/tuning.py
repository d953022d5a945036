"""The fair tuning protocol of `optimize --tune lr`: the same learning-rate budget for every
optimizer, judged on validation only.

Every (model, preprocessing, optimizer) gets the same `budget` trials, log-spaced over one range,
each trained once on the first seed's rows with a seed of its own (so no final run repeats a
trial) and with no test rows at all. The trial with the best validation score is chosen; the
caller reruns it over every seed and tests it once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from dlbench.engine.cells import Cell
from dlbench.engine.members import Member, MemberResult
from dlbench.evaluate.metrics import MetricInfo, score
from dlbench.seeding import derive_seed

RANGE = (1e-4, 1.0)  # log-spaced rates are searched here unless --lr-grid gives a range
KEY = 1_000_037  # derives the trials' seed, apart from every final seed
NO_SEED = -1  # a trial's `seed` column: it is none of the final seeds (member_seed says which)


def trial_member(first: Member, run_seed: int) -> Member:
    """The first seed's rows, validation only, with a seed of its own."""
    return Member({"seed": NO_SEED}, derive_seed(run_seed, KEY), first.train,
                  {"val": first.evals["val"]})


def trial_cells(cells: list[Cell], low: float, high: float, budget: int) -> list[Cell]:
    """Every cell at `budget` log-spaced learning rates over [low, high]."""
    return [replace(c, train=replace(c.train, optimizer=replace(c.train.optimizer, lr=float(r))))
            for c in cells for r in np.geomspace(low, high, budget)]


@dataclass(frozen=True)
class Choice:
    cell: Cell  # the chosen trial's cell, to rerun over every seed
    at_edge: str | None  # "lowest" / "highest" when the chosen rate is at the searched range's end


def choose(trials: list[tuple[Cell, MemberResult, str]], primary: MetricInfo) -> list[Choice]:
    """Per (model, preprocessing, optimizer): the trial with the best validation score.

    trials: (cell, its one result, its status). A diverged trial (NaN/inf) is never chosen; an
    unstable one can be, on its merits. Ties go to the first trial, the lowest rate.
    """
    best: dict[tuple, tuple[float, Cell]] = {}
    rates: dict[tuple, list[float]] = {}
    for cell, result, status in trials:
        value = score(result.predictions["val"], [primary])[primary.name]
        if status == "diverged" or math.isnan(value):
            value = -math.inf
        elif not primary.greater_is_better:
            value = -value
        key = (cell.model, cell.train.preprocess, cell.train.optimizer.label)
        rates.setdefault(key, []).append(cell.train.optimizer.lr)
        if key not in best or value > best[key][0]:
            best[key] = (value, cell)
    return [Choice(cell, _edge(cell.train.optimizer.lr, rates[key]))
            for key, (_, cell) in best.items()]


def _edge(lr: float, tried: list[float]) -> str | None:
    if lr == min(tried):
        return "lowest"
    return "highest" if lr == max(tried) else None

