"""`dlbench optimize --function`: each optimizer descends a 2-D test function from one start.

A function is a model that is just a point: the same optimizer registry, grammar and stepping
as networks (trainer.minimize), one path per optimizer entry.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from dlbench import plugins
from dlbench.engine import sizes
from dlbench.engine.cells import Cell, labels
from dlbench.engine.trainer import minimize
from dlbench.errors import DlbenchError
from dlbench.evaluate import verdicts
from dlbench.nn.models import ModelSpec
from dlbench.optim.functions import FUNCTIONS
from dlbench.optim.schedules import check_schedule

COLUMNS = ["cell", "optimizer", "lr", "step", "grad_evals", "x", "y", "f", "status"]
TRAINS_CELLS = False  # the Runner protocol (runners/base.py): a second's work, run directly


@dataclass(eq=False)
class Plan:
    config: Any  # an OptimizeConfig with a function
    warnings: list[str] = field(default_factory=list)
    total_epochs: int = 0  # no cells: nothing for a progress bar to count


@dataclass(eq=False)
class FunctionResult:
    plan: Plan
    trajectories: pd.DataFrame  # one row per cell × step
    summary: pd.DataFrame  # one row per cell: where its path ended, when it arrived
    info: dict[str, Any]  # the manifest's addition: the wall time, plugged optimizers
    warnings: list[str] = field(default_factory=list)

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        return {"trajectories": self.trajectories, "summary": self.summary}


def prepare(config) -> Plan:
    check(config)
    return Plan(config)


def run(plan: Plan, engine: Any = None) -> FunctionResult:
    """Each optimizer's path (`engine` unused: no cells to place)."""
    started = time.perf_counter()
    trajectories, summary = paths(plan.config, plan.config.optimizer_grid())
    return FunctionResult(plan, trajectories, summary,
                          {"seconds": round(time.perf_counter() - started, 3),
                           **plugins.record(plan.config)})


def check(config) -> None:
    """Everything about a function run that can be wrong (config: an OptimizeConfig)."""
    FUNCTIONS.get(config.function)
    check_schedule(config.train.schedule, config.train.warmup)
    if config.steps < 1:
        raise DlbenchError(f"--steps must be positive, got {config.steps}")
    if not (math.isfinite(config.tol) and config.tol > 0):
        raise DlbenchError(f"--tol must be positive, got {config.tol}")
    sizes.check_paths(config.optimizer_grid(), config.steps, config.allow_large)


def paths(config, optimizers) -> tuple[pd.DataFrame, pd.DataFrame]:
    """-> (trajectories: one row per cell × step, summary: one row per cell)."""
    check(config)
    info = FUNCTIONS.get(config.function)
    start = list(config.start or info.start)
    cells = [Cell(ModelSpec(), replace(config.train, optimizer=s)) for s in optimizers]
    paths, summary = [], []
    for cell, label in zip(cells, labels(cells), strict=True):
        path, trainer_status = minimize(info.fn, start, cell.train, config.steps)
        status = path_status(path, info.f_min, trainer_status)
        opt = cell.train.optimizer
        frame = pd.DataFrame(path, columns=["x", "y", "f", "grad_evals"]).assign(
            cell=label, optimizer=opt.label, lr=opt.lr, step=range(len(path)), status=status)
        paths.append(frame.astype({"grad_evals": int}))
        # unbounded below (saddle): there is no f* to arrive at
        arrived = np.flatnonzero(path[:, 2] - info.f_min <= config.tol) \
            if math.isfinite(info.f_min) else []
        summary.append({"cell": label, "optimizer": opt.label, "lr": opt.lr,
                        "x": path[-1, 0], "y": path[-1, 1], "f": path[-1, 2],
                        "grad_evals": int(path[-1, 3]),
                        "steps_to_tol": int(arrived[0]) if len(arrived) else math.nan,
                        "grad_evals_to_tol": int(path[arrived[0], 3]) if len(arrived)
                        else math.nan, "status": status})
    return pd.concat(paths, ignore_index=True)[COLUMNS], pd.DataFrame(summary)


def path_status(path: np.ndarray, f_min: float, trainer_status: str) -> str:
    """The network statuses on a path, with f − f* as the loss: diverged only at NaN/inf;
    unstable when it ends well above its best or its start (sgd[lr=5] on the bowl multiplies y
    by −9 a step and stays finite for 100 steps); stalled when it barely descended.
    Functions unbounded below (saddle) are judged on NaN/inf alone: escaping downhill is
    their answer."""
    nonfinite = trainer_status == "diverged" or not np.isfinite(path[-1]).all()
    if not math.isfinite(f_min):
        return "diverged" if nonfinite else "ok"
    return verdicts.judge(path[:, 2] - f_min, nonfinite=nonfinite)
