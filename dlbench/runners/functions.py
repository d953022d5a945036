"""`dlbench optimize --function`: each optimizer descends a 2-D test function from its starts.

A function is a model that is just a point: the same optimizer registry, grammar and stepping
as networks (trainer.minimize), one path per optimizer entry and start.

Starts (`--starts N`): start 0 is the function's start (or --start); starts 1..N-1 are drawn
uniformly, with --seed, in the function's plot window (FunctionInfo.window: the box its contour
figure shows, which holds the default start and the minima), one generator for all of them, so
start k is the same point whatever N. The starts are the members of a cell: scores.csv's `seed`
column is the start's index, so compare and claims pair cells start by start as they pair a
network's seeds.

scores.csv (split train) holds, per cell × start, the path's measures (PATH_MEASURES, all
lower-is-better; evaluate/metrics.py registers their directions): f_gap, f − f* at the last
step; steps_to_tol and grad_evals_to_tol, the steps (gradient evaluations) until f − f* ≤ tol
first held, censored at steps + 1 (at the path's evaluations plus its last step's) when it never
did; turns, the share of consecutive moving steps whose directions turn by more than 90°
(negative dot product): 1.0 on a path that reverses every step, 0.0 on one that never turns back.
A function unbounded below (saddle) has no f*: only turns. A diverged path's values are NaN.
summary.csv and trajectories.csv/png are start 0's paths; with several starts summary.csv adds
`starts` and each measure's mean over the starts (`<measure>_mean`).
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
from dlbench.evaluate.metrics import PATH_MEASURES
from dlbench.nn.models import ModelSpec
from dlbench.optim.functions import FUNCTIONS
from dlbench.optim.schedules import check_schedule

COLUMNS = ["cell", "optimizer", "lr", "step", "grad_evals", "x", "y", "f", "status"]
SCORE_COLUMNS = ["cell", "optimizer", "lr", "seed", "split", "metric", "value", "status"]
MEASURES = tuple(PATH_MEASURES)  # their directions: evaluate/metrics.py
TRAINS_CELLS = False  # the Runner protocol (runners/base.py): a second's work, run directly


@dataclass(eq=False)
class Plan:
    config: Any  # an OptimizeConfig with a function
    warnings: list[str] = field(default_factory=list)
    total_epochs: int = 0  # no cells: nothing for a progress bar to count

    @property
    def cells(self) -> list[Cell]:
        """One per optimizer entry: what a suite's hypotheses name, checked before a run."""
        return grid(self.config.optimizer_grid(), self.config.train)


@dataclass(eq=False)
class FunctionResult:
    plan: Plan
    trajectories: pd.DataFrame  # one row per cell × step (start 0)
    summary: pd.DataFrame  # one row per cell: where its path ended, when it arrived
    scores: pd.DataFrame  # one row per cell × start × measure (SCORE_COLUMNS)
    info: dict[str, Any]  # the manifest's addition: the wall time, plugged optimizers
    warnings: list[str] = field(default_factory=list)

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        return {"trajectories": self.trajectories, "summary": self.summary,
                "scores": self.scores}


def prepare(config) -> Plan:
    check(config)
    return Plan(config)


def run(plan: Plan, engine: Any = None) -> FunctionResult:
    """Each optimizer's path (`engine` unused: no cells to place)."""
    started = time.perf_counter()
    trajectories, summary, scores = paths(plan.config, plan.config.optimizer_grid())
    return FunctionResult(plan, trajectories, summary, scores,
                          {"seconds": round(time.perf_counter() - started, 3),
                           **plugins.record(plan.config)})


def check(config) -> None:
    """Everything about a function run that can be wrong (config: an OptimizeConfig)."""
    FUNCTIONS.get(config.function)
    check_schedule(config.train.schedule, config.train.warmup)
    if config.steps < 1:
        raise DlbenchError(f"--steps must be positive, got {config.steps}")
    if count(config) < 1:
        raise DlbenchError(f"--starts must be positive (start 0 is the function's), got "
                           f"{config.starts}")
    if not (math.isfinite(config.tol) and config.tol > 0):
        raise DlbenchError(f"--tol must be positive, got {config.tol}")
    sizes.check_paths(config.optimizer_grid(), config.steps, config.allow_large)


def paths(config, optimizers) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """-> (trajectories: one row per cell × step of start 0, summary: one row per cell,
    scores: one row per cell × start × measure)."""
    check(config)
    info = FUNCTIONS.get(config.function)
    points = starts(config, info)
    cells = grid(optimizers, config.train)
    trajectories, summary, scores = [], [], []
    for cell, label in zip(cells, labels(cells), strict=True):
        opt = cell.train.optimizer
        walks = [walk(info, point, cell.train, config.steps) for point in points]
        path, status = walks[0]
        frame = pd.DataFrame(path, columns=["x", "y", "f", "grad_evals"]).assign(
            cell=label, optimizer=opt.label, lr=opt.lr, step=range(len(path)), status=status)
        trajectories.append(frame.astype({"grad_evals": int}))
        found = [measures(p, s, info, config) for p, s in walks]
        scores += [{"cell": label, "optimizer": opt.label, "lr": opt.lr, "seed": k,
                    "split": "train", "metric": m, "value": v, "status": s}
                   for k, ((_, s), values) in enumerate(zip(walks, found, strict=True))
                   for m, v in values.items()]
        summary.append({"cell": label, "optimizer": opt.label, "lr": opt.lr,
                        **ended(path, status, info, config.tol), **means(found)})
    return (pd.concat(trajectories, ignore_index=True)[COLUMNS], pd.DataFrame(summary),
            pd.DataFrame(scores, columns=SCORE_COLUMNS))


def grid(optimizers, train) -> list[Cell]:
    """A path's cell: the point as its model, one optimizer entry."""
    return [Cell(ModelSpec(), replace(train, optimizer=s)) for s in optimizers]


def starts(config, info) -> list[list[float]]:
    """Start 0, the function's (or --start); then config.starts − 1 points drawn uniformly
    with config.seed in the function's plot window, from one generator (start k does not
    depend on how many follow it)."""
    xmin, xmax, ymin, ymax = info.window
    drawn = np.random.default_rng(config.seed).uniform(
        (xmin, ymin), (xmax, ymax), size=(count(config) - 1, 2))
    return [list(config.start or info.start), *drawn.tolist()]


def count(config) -> int:
    """How many starts (a config built without --starts: one)."""
    return 1 if config.starts is None else config.starts


def walk(info, start: list[float], train, steps: int) -> tuple[np.ndarray, str]:
    """One path from `start` and its status word (path_status)."""
    path, trainer_status = minimize(info.fn, start, train, steps)
    return path, path_status(path, info.f_min, trainer_status)


def ended(path: np.ndarray, status: str, info, tol: float) -> dict[str, Any]:
    """summary.csv's row of one path: where it ended, when it first arrived (NaN: never)."""
    # unbounded below (saddle): there is no f* to arrive at
    arrived = np.flatnonzero(path[:, 2] - info.f_min <= tol) \
        if math.isfinite(info.f_min) else []
    return {"x": path[-1, 0], "y": path[-1, 1], "f": path[-1, 2],
            "grad_evals": int(path[-1, 3]),
            "steps_to_tol": int(arrived[0]) if len(arrived) else math.nan,
            "grad_evals_to_tol": int(path[arrived[0], 3]) if len(arrived) else math.nan,
            "status": status}


def means(found: list[dict[str, float]]) -> dict[str, Any]:
    """summary.csv's additions with several starts: their count and each measure's mean
    (NaN where a start diverged); none with one start, whose row is today's."""
    if len(found) == 1:
        return {}
    frame = pd.DataFrame(found)
    return {"starts": len(found), **{f"{m}_mean": frame[m].mean(skipna=False) for m in frame}}


def measures(path: np.ndarray, status: str, info, config) -> dict[str, float]:
    """scores.csv's values of one path (see the module's docstring): NaN where it diverged;
    turns alone on a function unbounded below."""
    names = MEASURES if math.isfinite(info.f_min) else ("turns",)
    if status == "diverged":
        return dict.fromkeys(names, math.nan)
    if not math.isfinite(info.f_min):
        return {"turns": turns(path[:, :2])}
    gap, evals = path[:, 2] - info.f_min, path[:, 3]
    arrived = np.flatnonzero(gap <= config.tol)
    # never arrived: censored one step past the last (a diverged path stops early, but is NaN)
    at = int(arrived[0]) if len(arrived) else None
    return {"f_gap": float(gap[-1]),
            "steps_to_tol": float(config.steps + 1 if at is None else at),
            "grad_evals_to_tol": float(evals[-1] + (evals[-1] - evals[-2]) if at is None
                                       else evals[at]),
            "turns": turns(path[:, :2])}


def turns(points: np.ndarray) -> float:
    """The share of consecutive steps (of those that move) whose directions turn by more
    than 90°: the dot product of the two steps is negative. SGD zig-zagging across a valley
    reverses every step (1.0); a straight or gently curving path never does (0.0). NaN with
    fewer than two moving steps."""
    steps = np.diff(points, axis=0)
    steps = steps[(steps != 0).any(axis=1)]  # a point that stopped has no direction
    if len(steps) < 2:
        return math.nan
    return float(np.mean((steps[1:] * steps[:-1]).sum(axis=1) < 0))


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
