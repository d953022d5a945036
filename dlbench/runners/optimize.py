"""`dlbench optimize`: optimizers on 2-D test functions and on networks.

With --function, each optimizer descends a 2-D test function from the same start. Otherwise the
runner builds a grid of cells — model × init × activation × batch norm × preprocessing ×
optimizer × learning rate — and trains each cell's seeds as one stack through the shared trainer.
Every cell uses the same train/validation/test split, and seed s starts every cell from the same
initial weights and batch order, so cells are compared paired over seeds.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from dlbench import stats
from dlbench.activations import activation_rows, capture
from dlbench.cells import Cell, execute, labels
from dlbench.datasets import Dataset, DataSpec, load_dataset
from dlbench.errors import DlbenchError
from dlbench.functions import FUNCTIONS
from dlbench.metrics import MetricInfo, resolve_metrics, score
from dlbench.models import ModelSpec, Shape, batch_statistics, build_model
from dlbench.optim import OptimSpec
from dlbench.preprocess import fit_affine
from dlbench.schedules import check_schedule
from dlbench.seeding import derive_seed
from dlbench.splits import SplitConfig, dev_and_test, make_splits
from dlbench.trainer import (
    Member,
    MemberResult,
    TrainConfig,
    check_config,
    minimize,
    resolve_device,
    train_grid,
)

SEVERITY = {"ok": 0, "stalled": 1, "diverged": 2}  # a tie between statuses shows the worse
DIVERGED_FACTOR = 2.0  # final training loss above this × its start (or NaN/inf): diverged
STALLED_FRACTION = 0.9  # final training loss above this × its start: stalled, barely moved
TUNE_RANGE = (1e-4, 1.0)  # --tune lr searches log-spaced rates here unless --lr-grid gives one
TUNE_KEY = 1_000_037  # derives the tuning trials' seed, apart from every final seed
ACTIVATION_BATCH = 1000  # training rows pushed through the net for the activation study
TOO_SMALL_TO_SPLIT = 20  # fewer rows (xor's 4-point table): train and evaluate on all of them


@dataclass(frozen=True)
class OptimizeConfig:
    optimizers: tuple[OptimSpec, ...] = (OptimSpec("adam", 1e-3),)  # the --opt entries
    function: str | None = None  # a 2-D test function: trajectories instead of networks
    steps: int = 100  # function mode: optimizer steps
    start: tuple[float, float] | None = None  # function mode: start (default: the function's)
    tol: float = 1e-3  # function mode: a path has arrived once f - f_min <= tol
    data: DataSpec = field(default_factory=DataSpec)
    models: tuple[ModelSpec, ...] = (ModelSpec(),)  # model variants of the grid
    preprocess: tuple[str, ...] = ("standardize",)  # preprocessing variants of the grid
    train: TrainConfig = field(default_factory=TrainConfig)  # epochs, batch, schedule, device
    lr_grid: tuple[float, ...] = ()  # every optimizer at each of these learning rates
    tune_budget: int = 0  # > 0: --tune lr with this many trials per optimizer
    seeds: int = 3  # members per cell, paired across cells
    seed: int = 0  # seeds the split, the initial weights and the batch order
    val_fraction: float = 0.2  # validation share of the train+validation rows
    test_fraction: float = 0.2  # test share, for datasets without a fixed test split
    stratify: bool = True  # classification: keep class ratios in every part
    target: float | None = None  # validation accuracy whose time-to-reach is reported
    activations: bool = False  # also record per-layer activations at initialisation
    metrics: tuple[str, ...] = ()  # empty: the task's defaults; the first one ranks cells


# --- mode 1: 2-D test functions --------------------------------------------------------------


def run_functions(config: OptimizeConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """-> (trajectories: one row per cell × step, summary: one row per cell)."""
    info = FUNCTIONS.get(config.function)
    check_schedule(config.train.schedule, config.train.warmup)
    if config.steps < 1:
        raise DlbenchError(f"--steps must be positive, got {config.steps}")
    if not config.tol > 0:
        raise DlbenchError(f"--tol must be positive, got {config.tol}")
    start = list(config.start or info.start)
    cells = [Cell(ModelSpec(), replace(config.train, optimizer=s)) for s in _optimizer_grid(config)]
    paths, summary = [], []
    for cell, label in zip(cells, labels(cells), strict=True):
        path, status = minimize(info.fn, start, cell.train, config.steps)
        status = _path_status(path, info.f_min, status)
        opt = cell.train.optimizer
        frame = pd.DataFrame(path, columns=["x", "y", "f"]).assign(
            cell=label, optimizer=opt.label, lr=opt.lr, step=range(len(path)), status=status)
        paths.append(frame)
        arrived = np.flatnonzero(path[:, 2] - info.f_min <= config.tol)
        summary.append({"cell": label, "optimizer": opt.label, "lr": opt.lr,
                        "x": path[-1, 0], "y": path[-1, 1], "f": path[-1, 2],
                        "steps_to_tol": int(arrived[0]) if len(arrived) else math.nan,
                        "status": status})
    columns = ["cell", "optimizer", "lr", "step", "x", "y", "f", "status"]
    return pd.concat(paths, ignore_index=True)[columns], pd.DataFrame(summary)


def _path_status(path: np.ndarray, f_min: float, status: str) -> str:
    """The network rule on a path: diverged once f - f_min ends above DIVERGED_FACTOR × its
    start. minimize() stops only at NaN/inf, which takes float64 hundreds of steps to reach
    (sgd[lr=5] on the bowl multiplies y by -9 a step and stays finite for 100 steps). Functions
    unbounded below (saddle) are judged on NaN/inf alone: escaping downhill is their answer."""
    if status == "diverged" or not np.isfinite(path[-1]).all():
        return "diverged"
    if math.isfinite(f_min) and path[-1, 2] - f_min > DIVERGED_FACTOR * (path[0, 2] - f_min):
        return "diverged"
    return status


def _optimizer_grid(config: OptimizeConfig) -> list[OptimSpec]:
    if not config.lr_grid:
        return list(config.optimizers)
    return [replace(s, lr=lr) for s in config.optimizers for lr in config.lr_grid]


# --- mode 2: networks ------------------------------------------------------------------------


@dataclass(eq=False)
class Plan:
    config: OptimizeConfig
    dataset: Dataset
    metrics: list[MetricInfo]
    members: list[Member]  # one per seed, shared by every cell
    cells: list[Cell]  # the cells to train (tuning adds its final cells later)

    @property
    def total_epochs(self) -> int:
        grid = len(self.config.optimizers) * len(self.config.models) * len(self.config.preprocess)
        if not self.config.tune_budget:
            return self.config.train.epochs * len(self.cells) * len(self.members)
        return self.config.train.epochs * grid * (self.config.tune_budget + len(self.members))


def prepare(config: OptimizeConfig) -> Plan:
    dataset = load_dataset(config.data)
    cells = _grid(config)
    for cell in cells:
        check_config(cell.train, cell.model, dataset)
    _check(config, dataset)
    metrics = resolve_metrics(list(config.metrics), dataset.task)
    return Plan(config, dataset, metrics, _members(config, dataset),
                [] if config.tune_budget else cells)


def _grid(config: OptimizeConfig) -> list[Cell]:
    return [Cell(model, replace(config.train, optimizer=spec, preprocess=prep))
            for model in config.models for prep in config.preprocess
            for spec in _optimizer_grid(config)]


def _check(config: OptimizeConfig, dataset: Dataset) -> None:
    if config.seeds < 1:
        raise DlbenchError(f"--seeds must be positive, got {config.seeds}")
    for option, value in (("--val-fraction", config.val_fraction),
                          ("--test-fraction", config.test_fraction)):
        if not 0 < value < 1:
            raise DlbenchError(f"{option} must be strictly between 0 and 1 (got {value})")
    if config.target is not None:
        if dataset.task != "classification":
            raise DlbenchError("--target is a validation accuracy: it needs a classification "
                               "dataset")
        if not 0 < config.target <= 1:
            raise DlbenchError(f"--target is a validation accuracy in (0, 1], got "
                               f"{config.target}")
    if config.tune_budget < 0:
        raise DlbenchError(f"--budget must be positive, got {config.tune_budget}")
    if config.seed < 0:
        raise DlbenchError(f"--seed must be a non-negative integer (got {config.seed})")


def _members(config: OptimizeConfig, dataset: Dataset) -> list[Member]:
    """One train/validation/test split for every cell; one member per seed."""
    rows = np.arange(dataset.n_samples)
    ordered = dataset.time is not None  # time-ordered data: never let the future train
    if dataset.n_samples < TOO_SMALL_TO_SPLIT:  # measures fit, not generalisation: said so
        return [Member({"seed": s}, derive_seed(config.seed, s), rows,
                       {"val": rows, "test": rows}) for s in range(config.seeds)]
    dev, test = dev_and_test(dataset, config.test_fraction, seed=config.seed,
                             stratify=config.stratify, time_order=ordered)
    split_config = SplitConfig("holdout", val_fraction=config.val_fraction,
                               stratify=config.stratify, time_order=ordered, seed=config.seed)
    groups = None if dataset.groups is None or ordered else dataset.groups[dev]
    [split] = make_splits(dataset.y[dev], split_config, task=dataset.task, groups=groups)
    train_rows, val_rows = dev[split.train], dev[split.val]
    return [Member({"seed": s}, derive_seed(config.seed, s), train_rows,
                   {"val": val_rows, "test": test}) for s in range(config.seeds)]


@dataclass(eq=False)
class OptimizeResult:
    scores: pd.DataFrame
    curves: pd.DataFrame
    summary: pd.DataFrame
    sweep: pd.DataFrame  # one row per optimizer × lr × seed: final training loss and status
    activations: pd.DataFrame | None
    histograms: list[tuple[str, list[np.ndarray]]]
    info: dict[str, Any]


def run(plan: Plan, progress=None) -> OptimizeResult:
    start = time.perf_counter()
    cells, trials = plan.cells, []
    if plan.config.tune_budget:
        trials = _tune(plan, progress)
        cells = _tuned_cells(plan, trials)
    finals = _run_cells(plan, cells, plan.members, progress)
    runs = [*trials, *[("final", cell, results) for cell, results in zip(cells, finals,
                                                                          strict=True)]]
    trial_cells = [cell for _, cell, _ in trials]
    names = dict(zip(trial_cells, labels(trial_cells), strict=True))
    names |= dict(zip(cells, labels(cells), strict=True))
    scores = pd.DataFrame([r for phase, cell, results in runs
                           for r in _score_rows(plan, phase, names[cell], cell, results)])
    curves = pd.DataFrame([r for phase, cell, results in runs
                           for r in _curve_rows(phase, names[cell], cell, results)])
    summary = summarize(plan, [(names[c], c, r) for c, r in zip(cells, finals, strict=True)])
    activations, histograms = _activation_study(plan, cells) if plan.config.activations \
        else (None, [])
    info = {"dataset": {"name": plan.dataset.name, "fingerprint": plan.dataset.fingerprint(),
                        "samples": plan.dataset.n_samples, "task": plan.dataset.task},
            "cells": len(cells), "seeds": len(plan.members), "trials": len(trials),
            "primary_metric": plan.metrics[0].name,
            "rows": {"train": len(plan.members[0].train), "val": len(plan.members[0].evals["val"]),
                     "test": len(plan.members[0].evals["test"])},
            "evaluated_on_training_rows": plan.dataset.n_samples < TOO_SMALL_TO_SPLIT,
            "device": str(resolve_device(plan.config.train.device)),
            "seconds": round(time.perf_counter() - start, 3)}
    sweep = pd.DataFrame([{"phase": phase, "optimizer": cell.train.optimizer.label,
                           "lr": cell.train.optimizer.lr, "seed": r.member.key["seed"],
                           "final_loss": _last_loss(r), "status": classify(r.curves, r.status)}
                          for phase, cell, results in runs for r in results])
    return OptimizeResult(scores, curves, summary, sweep, activations, histograms, info)


def _run_cells(plan: Plan, cells: list[Cell], members: list[Member],
               progress) -> list[list[MemberResult]]:
    """Each cell's members, in cell order; cells sharing a model train as one stack."""
    return execute(cells, lambda batch: train_grid(plan.dataset, batch[0].model,
                                                   [c.train for c in batch], members, progress))


# --- the fair tuning protocol ----------------------------------------------------------------


def _tune(plan: Plan, progress) -> list[tuple[str, Cell, list[MemberResult]]]:
    """Each optimizer gets the same number of learning-rate trials, judged on validation only.

    Trials train the first seed and never see the test rows: its members carry no test split.
    """
    first = plan.members[0]  # its rows, but a seed of its own: no final run repeats a trial
    blind = [Member(first.key, derive_seed(plan.config.seed, TUNE_KEY), first.train,
                    {"val": first.evals["val"]})]
    low, high = (min(plan.config.lr_grid), max(plan.config.lr_grid)) if plan.config.lr_grid \
        else TUNE_RANGE
    rates = np.geomspace(low, high, plan.config.tune_budget)
    cells = [replace(c, train=replace(c.train, optimizer=replace(c.train.optimizer, lr=float(r))))
             for c in _grid(replace(plan.config, lr_grid=())) for r in rates]
    return [("trial", c, r) for c, r in zip(cells, _run_cells(plan, cells, blind, progress),
                                            strict=True)]


def _tuned_cells(plan: Plan, trials) -> list[Cell]:
    """Per (model, preprocessing, optimizer): the trial with the best validation score."""
    primary = plan.metrics[0]
    best: dict[tuple, tuple[float, Cell]] = {}
    for _, cell, [result] in trials:
        value = score(result.predictions["val"], [primary])[primary.name]
        diverged = classify(result.curves, result.status) == "diverged"
        value = -math.inf if diverged or math.isnan(value) else (
            value if primary.greater_is_better else -value)
        key = (cell.model, cell.train.preprocess, cell.train.optimizer.label)
        if key not in best or value > best[key][0]:
            best[key] = (value, cell)
    return [cell for _, cell in best.values()]


# --- rows ------------------------------------------------------------------------------------


def classify(curve: list[tuple[int, str, str, float]], trainer_status: str) -> str:
    """ok, stalled (training loss barely moved) or diverged (NaN/inf, or far above its start)."""
    loss = {epoch: v for epoch, split, metric, v in curve if (split, metric) == ("train", "loss")}
    start, final = loss[0], loss[max(loss)]
    if trainer_status == "diverged" or not math.isfinite(final) or final > DIVERGED_FACTOR * start:
        return "diverged"
    return "stalled" if final > STALLED_FRACTION * start else "ok"


def _score_rows(plan, phase, label, cell, results):
    rows = []
    for r in results:
        status = classify(r.curves, r.status)
        base = {"dataset": plan.dataset.name, "phase": phase, "cell": label, **cell.coords(),
                "seed": r.member.key["seed"]}
        for split, pred in r.predictions.items():
            values = score(pred, plan.metrics)
            for metric, value in values.items():
                rows.append({**base, "split": split, "metric": metric,
                             "value": np.nan if r.status == "diverged" else value,
                             "status": status})
    return rows


def _curve_rows(phase, label, cell, results):
    coords = cell.coords()
    return [{"phase": phase, "cell": label, **coords, "seed": r.member.key["seed"],
             "epoch": epoch, "split": split, "metric": metric,
             "value": r.trusted(epoch, value), "status": classify(r.curves, r.status)}
            for r in results for epoch, split, metric, value in r.curves]


# --- the summary: estimates, time to target, ranking -----------------------------------------


def summarize(plan: Plan, cells: list[tuple[str, Cell, list[MemberResult]]]) -> pd.DataFrame:
    primary = plan.metrics[0]
    per_seed = {label: np.array([_final(r, "val", primary) for r in results])
                for label, _, results in cells}
    rows = [_cell_summary(plan, label, cell, results, primary) for label, cell, results in cells]
    frame = pd.DataFrame(rows)
    ok = frame["status"] != "diverged"  # a diverged cell ranks after every other
    ascending = not primary.greater_is_better
    order = frame["val_mean"].where(ok).rank(ascending=ascending, method="min")
    order = order.fillna(frame["val_mean"].where(~ok).rank(ascending=ascending, method="min")
                         + ok.sum())
    frame.insert(0, "rank", order.fillna(len(frame)).astype(int))
    best = frame.sort_values("rank").iloc[0]["cell"]
    frame["p_vs_best"] = [np.nan if label == best else
                          stats.paired_p_value(per_seed[label] - per_seed[best])
                          for label in frame["cell"]]
    frame["tied_with_best"] = [  # a diverged cell is never "as good as the best"
        label == best or (None if not np.isfinite(p) else p >= 0.05 and status != "diverged")
        for label, p, status in zip(frame["cell"], frame["p_vs_best"], frame["status"],
                                    strict=True)]
    return frame.sort_values(["rank", "cell"], ignore_index=True)


def _final(result: MemberResult, split: str, metric: MetricInfo) -> float:
    if result.status == "diverged":
        return np.nan
    return score(result.predictions[split], [metric])[metric.name]


def _cell_summary(plan, label, cell, results, primary) -> dict[str, Any]:
    val = stats.t_interval([_final(r, "val", primary) for r in results], unit="seeds")
    test = stats.t_interval([_final(r, "test", primary) for r in results], unit="seeds")
    statuses = [classify(r.curves, r.status) for r in results]
    epochs, seconds = _time_to_target(results, plan.config.target)
    return {"cell": label, **cell.coords(), "metric": primary.name,
            "val_mean": val.mean, "val_std": val.std, "val_ci_low": _clip(val.low, primary),
            "val_ci_high": _clip(val.high, primary, upper=True), "test_mean": test.mean,
            "test_ci_low": _clip(test.low, primary),
            "test_ci_high": _clip(test.high, primary, upper=True),
            "final_train_loss": float(np.nanmean([_last_loss(r) for r in results])),
            "epochs_to_target": epochs, "seconds_to_target": seconds,
            "seconds": float(sum(r.seconds[-1] for r in results)),
            "status": max(sorted(set(statuses)), key=lambda s: (statuses.count(s), SEVERITY[s])),
            "statuses": ", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses)))}


def _clip(value: float, metric: MetricInfo, upper: bool = False) -> float:
    low, high = metric.bounds
    return min(value, high) if upper else max(value, low)


def _last_loss(result: MemberResult) -> float:
    losses = [v for e, split, m, v in result.curves if (split, m) == ("train", "loss") and e > 0]
    return losses[-1] if losses else math.nan


def _time_to_target(results: list[MemberResult], target: float | None) -> tuple[float, float]:
    """Median over seeds of the epochs and seconds to first reach `target` validation accuracy;
    a seed that never reaches it counts as infinite."""
    if target is None:
        return math.nan, math.nan
    epochs, seconds = [], []
    for r in results:
        hit = [e for e, split, m, v in r.curves
               if (split, m) == ("val", "accuracy") and e > 0 and v >= target]
        epochs.append(hit[0] if hit else math.inf)
        seconds.append(r.seconds[hit[0] - 1] if hit else math.inf)
    return float(np.median(epochs)), float(np.median(seconds))


# --- the initialisation study ----------------------------------------------------------------


def _activation_study(plan: Plan, cells: list[Cell]):
    """Per model variant: every hidden layer's activations at initialisation, for one batch."""
    seen, rows, histograms = set(), [], []
    first = plan.members[0]
    batch = first.train[:ACTIVATION_BATCH]
    shape = Shape.of(plan.dataset)
    for cell in cells:
        key = (cell.model, cell.train.preprocess)
        if key in seen:
            continue
        seen.add(key)
        scale, shift = fit_affine(cell.train.preprocess, plan.dataset.X[first.train])
        x = torch.as_tensor(plan.dataset.X[batch] * scale + shift)[None]  # (1, B, d)
        model = build_model(cell.model, shape, [first.seed])
        with batch_statistics(model):  # at init eval-mode batch norm would be the identity
            layers = capture(model, x)
        setting = f"{cell.model.init} · {cell.model.activation}" + \
            (" · bn" if cell.model.batchnorm else "")
        coords = {k: v for k, v in cell.coords().items() if k not in ("optimizer", "lr")}
        rows += [{"setting": setting, **coords, **row} for row in activation_rows(layers)]
        histograms.append((setting, [layer.values.ravel() for layer in layers]))
    return pd.DataFrame(rows), histograms
