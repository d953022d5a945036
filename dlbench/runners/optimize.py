"""`dlbench optimize` on networks: a grid of cells, each cell's seeds one stack.

The runner builds a grid of cells — model × init × activation × batch norm × preprocessing ×
missing-value fill × feature count × batch size × loss × optimizer × learning rate — and trains
each cell's seeds through the shared trainer. Every cell uses the same train/validation/test
split, and seed s starts every cell from the same initial weights and batch order, so cells are
compared paired over seeds (and over the same bootstrap resamples of the evaluation rows).
2-D functions are `runners/functions.py`.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from dlbench import plugins
from dlbench.data.datasets import Dataset, DataSpec, load_dataset
from dlbench.data.splits import split_record
from dlbench.engine import sizes
from dlbench.engine.cells import Cell
from dlbench.engine.execution import Engine
from dlbench.engine.members import Member, MemberResult, TrainConfig, resolve_device
from dlbench.errors import DlbenchError
from dlbench.evaluate import verdicts
from dlbench.evaluate.metrics import MetricInfo, resolve_metrics
from dlbench.evaluate.stats import row_resamples
from dlbench.nn.activations import init_study
from dlbench.nn.models import ModelSpec
from dlbench.optim.optimizers import OptimSpec
from dlbench.runners import tuning
from dlbench.runners.grid import (
    TOO_SMALL_TO_SPLIT,
    CellRun,
    check_cells,
    clipped,
    cost,
    curve_table,
    holdout,
    run_cells,
    score_table,
    scored,
)

TRAINS_CELLS = True  # the Runner protocol (runners/base.py): its cells run through an Engine


@dataclass(frozen=True)
class OptimizeConfig:
    optimizers: tuple[OptimSpec, ...] = (OptimSpec("adam", 1e-3),)  # the --opt entries
    function: str | None = None  # a 2-D test function: trajectories instead of networks
    steps: int = 100  # function mode: optimizer steps
    start: tuple[float, float] | None = None  # function mode: start (default: the function's)
    tol: float = 1e-3  # function mode: a path has arrived once f - f_min <= tol
    starts: int | None = None  # function mode: paths per optimizer, start 0 the function's
    data: DataSpec = field(default_factory=DataSpec)
    models: tuple[ModelSpec, ...] = (ModelSpec(),)  # model variants of the grid
    preprocess: tuple[str, ...] = ("standardize",)  # preprocessing variants of the grid
    missing: tuple[str, ...] = ("none",)  # missing-value fills of the grid ("none": complete)
    features: tuple[int, ...] = (0,)  # feature counts kept of the grid (0: every feature)
    batch_sizes: tuple[int, ...] = (32,)  # batch-size variants (different sizes: other stacks)
    losses: tuple[str, ...] = ("default",)  # training-loss variants (engine.losses.TRAINING_LOSSES)
    train: TrainConfig = field(default_factory=TrainConfig)  # epochs, batch, schedule, device
    lr_grid: tuple[float, ...] = ()  # every optimizer at each of these learning rates
    tune_budget: int = 0  # > 0: --tune lr with this many trials per optimizer
    seeds: int = 3  # members per cell, paired across cells
    seed: int = 0  # seeds the split, the initial weights, the batch order and the resamples
    val_fraction: float | None = None  # validation share of train+validation; None: 0.2
    test_fraction: float | None = None  # test share (no fixed test split); None: 0.2
    stratify: bool = True  # classification: keep class ratios in every part
    target: float | None = None  # validation accuracy whose time-to-reach is reported
    activations: bool = False  # also record per-layer activations at initialisation
    metrics: tuple[str, ...] = ()  # empty: the task's defaults; the first one ranks cells
    margin: str | None = None  # equivalence margin, '0.01' or '2%'; None: the metric's default
    allow_large: bool = False  # run even when the size estimate refuses it

    def record(self) -> dict[str, Any]:
        """What the manifest keeps of it: every cell sets its own optimizer, batch size, loss,
        preprocessing, missing-value fill and feature count (`optimizers`, `batch_sizes`,
        `losses`, `preprocess`, `missing`, `features`)."""
        record = asdict(self)
        for key in ("optimizer", "batch_size", "loss", "preprocess", "missing", "features"):
            del record["train"][key]
        return record

    def optimizer_grid(self) -> list[OptimSpec]:
        """The --opt entries, each at every --lr-grid rate when there is one."""
        if not self.lr_grid:
            return list(self.optimizers)
        return [replace(s, lr=lr) for s in self.optimizers for lr in self.lr_grid]


@dataclass(eq=False)
class Plan:
    config: OptimizeConfig
    dataset: Dataset
    metrics: list[MetricInfo]
    members: list[Member]  # one per seed, shared by every cell
    cells: list[Cell]  # the grid; with --tune, the cells whose rates are tuned
    margin: verdicts.Margin
    chance: float | None  # the majority class's validation accuracy (None: regression)
    warnings: list[str] = field(default_factory=list)  # said before training

    @property
    def total_epochs(self) -> int:
        per_cell = self.config.tune_budget + len(self.members) if self.config.tune_budget \
            else len(self.members)
        return self.config.train.epochs * len(self.cells) * per_cell


def prepare(config: OptimizeConfig) -> Plan:
    # before any data: the cells without --lr-grid's rates already count this many models
    sizes.check_count(len(grid(replace(config, lr_grid=()))) * config.seeds,
                      config.train.epochs, config.allow_large)
    dataset = load_dataset(config.data)
    _check(config, dataset)
    entries = grid(replace(config, lr_grid=()))  # each --opt entry once, at its own rate
    check_cells(entries, dataset)  # every --lr-grid rate was checked when it was parsed
    metrics = resolve_metrics(list(config.metrics), dataset.task, dataset)
    margin = verdicts.parse_margin(config.margin or metrics[0].margin)
    members = _members(config, dataset)
    # with --tune, --lr-grid gives only the range searched: one cell per entry to tune
    cells = entries if config.tune_budget else grid(config)
    _check_size(config, dataset, cells, members)
    y = dataset.y
    chance = verdicts.chance_accuracy(y[members[0].train], y[members[0].evals["val"]],
                                      dataset.task, dataset.n_classes)
    return Plan(config, dataset, metrics, members, cells, margin, chance)


def _check_size(config: OptimizeConfig, dataset: Dataset, cells: list[Cell],
                members: list[Member]) -> None:
    first = members[0]
    n_train, evaluated = len(first.train), len(first.train) + sum(map(len, first.evals.values()))
    jobs = []
    for model in config.models:
        configs = tuple(c.train for c in cells if c.model == model)
        jobs.append(sizes.Job(model, configs, len(members), n_train, evaluated))
        if config.tune_budget:  # trials: every config at `budget` rates, one member each
            jobs.append(sizes.Job(model, configs * config.tune_budget, 1, n_train, evaluated))
    sizes.check(dataset, jobs, resolve_device(config.train.device), config.allow_large)


def grid(config: OptimizeConfig) -> list[Cell]:
    return [Cell(model, replace(config.train, optimizer=spec, preprocess=prep, batch_size=size,
                                loss=loss, missing=fill, features=k))
            for model in config.models for prep in config.preprocess for fill in config.missing
            for k in config.features for size in config.batch_sizes for loss in config.losses
            for spec in config.optimizer_grid()]


def _check(config: OptimizeConfig, dataset: Dataset) -> None:
    if config.seeds < 1:
        raise DlbenchError(f"--seeds must be positive, got {config.seeds}")
    for option, value in (("--val-fraction", config.val_fraction),
                          ("--test-fraction", config.test_fraction)):
        if value is not None and not 0 < value < 1:
            raise DlbenchError(f"{option} must be strictly between 0 and 1 (got {value})")
        if value is not None and dataset.n_samples < TOO_SMALL_TO_SPLIT:
            raise DlbenchError(f"{dataset.name} has only {dataset.n_samples} rows: every split "
                               f"is all of them, so {option} does not apply; drop it")
    if config.test_fraction is not None and dataset.test_index is not None:
        raise DlbenchError(f"dataset {dataset.name} has a fixed test split already; "
                           "drop --test-fraction")
    if config.target is not None:
        if dataset.task != "classification":
            raise DlbenchError("--target-accuracy is a validation accuracy: it needs a "
                               "classification dataset")
        if not 0 < config.target <= 1:
            raise DlbenchError(f"--target-accuracy is a validation accuracy in (0, 1], got "
                               f"{config.target}")
    if config.seed < 0:
        raise DlbenchError(f"--seed must be a non-negative integer (got {config.seed})")


def _members(config: OptimizeConfig, dataset: Dataset) -> list[Member]:
    """One train/validation/test split for every cell; one member per seed."""
    split = holdout(dataset, seed=config.seed, val_fraction=config.val_fraction,
                    test_fraction=config.test_fraction, stratify=config.stratify)
    return split.members(config.seeds, config.seed)


# --- running the grid ------------------------------------------------------------------------


@dataclass(eq=False)
class OptimizeResult:
    plan: Plan
    scores: pd.DataFrame
    curves: pd.DataFrame
    summary: pd.DataFrame
    sweep: pd.DataFrame  # one row per optimizer × lr × seed: final training loss and status
    activations: pd.DataFrame | None
    histograms: list[tuple[str, list[np.ndarray]]]
    info: dict[str, Any]
    warnings: list[str]  # said after training, before the table

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        tables = {"scores": self.scores, "curves": self.curves, "summary": self.summary}
        return tables if self.activations is None else tables | {"activations": self.activations}


def run(plan: Plan, engine: Engine | None = None) -> OptimizeResult:
    start = time.perf_counter()
    trials, choices = _tune(plan, engine) if plan.config.tune_budget else ([], [])
    cells = [c.cell for c in choices] if choices else plan.cells
    finals = _runs(plan, "final", cells, plan.members, engine)
    runs = [*trials, *finals]
    summary = summarize(plan, finals)
    activations, histograms = init_study(plan.dataset, plan.members[0], cells) \
        if plan.config.activations else (None, [])
    # a rate chosen at an end of the searched range may not be the best: it could lie beyond
    edges = {run.label: c.at_edge for run, c in zip(finals, choices, strict=False) if c.at_edge}
    warnings = [f"{label}: --tune chose the {edge} rate it tried; the best may lie beyond the "
                "searched range (widen it with --lr-grid LOW:HIGH:N)"
                for label, edge in edges.items()]
    return OptimizeResult(
        plan, score_table(plan.dataset, runs, plan.metrics), curve_table(runs),
        summary, _sweep(runs, choices), activations, histograms,
        _info(plan, finals, trials, edges, time.perf_counter() - start), warnings)


def _runs(plan: Plan, phase: str, cells: list[Cell], members: list[Member],
          engine: Engine | None) -> list[CellRun]:
    """Each cell's members, in cell order; cells sharing a model train as one stack."""
    return run_cells(plan.dataset, cells, lambda cell: members, plan.chance, phase, engine)


def _tune(plan: Plan, engine: Engine | None) -> tuple[list[CellRun], list[tuning.Choice]]:
    """Trials on the first seed's rows, validation only; then each optimizer's best rate."""
    low, high = (min(plan.config.lr_grid), max(plan.config.lr_grid)) if plan.config.lr_grid \
        else tuning.RANGE
    cells = tuning.trial_cells(plan.cells, low, high, plan.config.tune_budget)
    blind = [tuning.trial_member(plan.members[0], plan.config.seed)]
    trials = _runs(plan, "trial", cells, blind, engine)
    choices = tuning.choose([(r.cell, r.results[0], r.statuses[0]) for r in trials],
                            plan.metrics[0])
    return trials, choices


# --- rows ------------------------------------------------------------------------------------


def _sweep(runs: list[CellRun], choices: list[tuning.Choice]) -> pd.DataFrame:
    """One row per cell × seed: its final eval-mode training loss and status (lr_sweep.png).

    `optimizer` names a line of the plot: the cell's label without its rate, so a sweep over
    several models or preprocessings draws one line each."""
    chosen = {c.cell for c in choices}
    return pd.DataFrame([{"phase": run.phase, "optimizer": run.label.rsplit(" lr=", 1)[0],
                          "lr": run.cell.train.optimizer.lr, "seed": r.member.key["seed"],
                          "final_loss": verdicts.training_loss(r)[-1], "status": status,
                          "chosen": run.phase == "trial" and run.cell in chosen}
                         for run in runs for r, status in zip(run.results, run.statuses,
                                                              strict=True)])


def _info(plan: Plan, finals: list[CellRun], trials: list[CellRun], edges: dict[str, str],
          seconds: float) -> dict[str, Any]:
    first = plan.members[0]
    return {"dataset": {"name": plan.dataset.name, "fingerprint": plan.dataset.fingerprint(),
                        "samples": plan.dataset.n_samples, "task": plan.dataset.task},
            "seed": plan.config.seed, "cells": len(finals), "seeds": len(plan.members),
            "trials": len(trials),
            "primary_metric": plan.metrics[0].name, "margin": str(plan.margin),
            "rows": {"train": len(first.train), "val": len(first.evals["val"]),
                     "test": len(first.evals["test"])},
            "evaluated_on_training_rows": plan.dataset.n_samples < TOO_SMALL_TO_SPLIT,
            "tuned_at_edge": edges,
            "splits": [split_record(plan.dataset.fingerprint(), first.train,
                                    first.evals["val"], first.evals["test"])],
            "device": str(resolve_device(plan.config.train.device)),
            "seconds": round(seconds, 3), **plugins.record(plan.config)}


# --- the summary: estimates, ranking against the best, cost, time to target ------------------


def summarize(plan: Plan, runs: list[CellRun]) -> pd.DataFrame:
    """One row per final cell, ranked by its validation mean (diverged cells last)."""
    primary = plan.metrics[0]
    scored = {}
    for split in ("val", "test"):  # every cell on the same resamples: paired comparisons
        weights = row_resamples(len(plan.members[0].evals[split]), plan.config.seed)
        scored[split] = [_scored(primary, run, split, weights) for run in runs]
    frame = pd.DataFrame([_cell_summary(plan, run, val, test) for run, val, test in
                          zip(runs, scored["val"], scored["test"], strict=True)])
    frame.insert(0, "rank", _ranks(frame, primary.greater_is_better))
    best = int(np.argmin(frame["rank"].to_numpy()))
    margin = plan.margin.of(frame["val_mean"].iloc[best])
    comparisons = [_versus(scored["val"][i], scored["val"][best], margin,
                           primary.greater_is_better, i == best) for i in range(len(runs))]
    frame = pd.concat([frame, pd.DataFrame(comparisons)], axis=1)
    first = (frame["vs_best"] != "best").astype(int)  # among tied ranks, #1 itself first
    return frame.assign(_first=first).sort_values(["rank", "_first", "cell"], ignore_index=True) \
        .drop(columns="_first")


def _scored(metric: MetricInfo, run: CellRun, split: str,
            resamples: np.ndarray) -> verdicts.Scored:
    return scored(metric, [r.predictions[split] for r in run.results], run.statuses, resamples)


def _cell_summary(plan: Plan, run: CellRun, val: verdicts.Scored,
                  test: verdicts.Scored) -> dict[str, Any]:
    primary = plan.metrics[0]
    intervals = {split: clipped(s.estimate(), primary) for split, s in (("val", val),
                                                                         ("test", test))}
    common, statuses = verdicts.summary(run.statuses)
    finite = [r for r, s in zip(run.results, run.statuses, strict=True) if s != "diverged"]
    row = {"cell": run.label, **run.cell.coords(), "metric": primary.name}
    for split, (interval, half, cut) in intervals.items():
        row |= {f"{split}_mean": interval.mean, f"{split}_std": interval.std,
                f"{split}_ci_low": interval.low, f"{split}_ci_high": interval.high,
                f"{split}_ci_half": half, f"{split}_ci_clipped": cut}
    return row | {
        "interval": intervals["val"][0].method,
        "final_train_loss": _mean([verdicts.training_loss(r)[-1] for r in finite]),
        **cost(run.results), **_to_target(run.results, plan.config.target),
        "status": common, "statuses": statuses}


def _versus(cell: verdicts.Scored, best: verdicts.Scored, margin: float,
            greater_is_better: bool, is_best: bool) -> dict[str, Any]:
    if is_best:
        return {"diff_best": 0.0, "diff_ci_low": np.nan, "diff_ci_high": np.nan,
                "diff_ci_half": np.nan, "p_vs_best": np.nan, "equivalence_p": np.nan,
                "margin": margin, "vs_best": "best"}
    diff, verdict = verdicts.versus_best(cell, best, margin, greater_is_better)
    interval = diff.interval()
    tested = verdict not in ("too few seeds", "diverged")  # no test without the seeds' variance
    return {"diff_best": diff.mean, "diff_ci_low": interval.low, "diff_ci_high": interval.high,
            "diff_ci_half": (interval.high - interval.low) / 2,
            "p_vs_best": diff.p_value() if tested else np.nan,
            "equivalence_p": diff.equivalence_p(margin) if tested else np.nan,
            "margin": margin, "vs_best": verdict}


def _ranks(frame: pd.DataFrame, greater_is_better: bool) -> pd.Series:
    """1 = best validation mean; every diverged cell ranks after every other."""
    ok = frame["status"] != "diverged"
    ascending = not greater_is_better
    order = frame["val_mean"].where(ok).rank(ascending=ascending, method="min")
    order = order.fillna(frame["val_mean"].where(~ok).rank(ascending=ascending, method="min")
                         + ok.sum())
    return order.fillna(len(frame)).astype(int)


def _to_target(results: list[MemberResult], target: float | None) -> dict[str, float]:
    """Median over seeds of the cost to first reach `target` validation accuracy (checked at
    the end of each epoch); a seed that never reaches it counts as infinite, and so does one
    that diverged first (argmax of NaN outputs still 'predicts' a class)."""
    keys = ("epochs", "grad_evals", "passes", "seconds")
    if target is None:
        return {f"{k}_to_target": math.nan for k in keys}
    reached = []
    for r in results:
        hit = [e for e, v in enumerate(r.curve("val", "accuracy")) if e > 0 and v >= target]
        cost = r.cost[hit[0]] if hit else None
        reached.append((hit[0], cost.grad_evals, cost.passes, cost.seconds) if cost
                       else (math.inf,) * 4)
    medians = np.median(np.array(reached, dtype=np.float64), axis=0)
    return {f"{k}_to_target": float(v) for k, v in zip(keys, medians, strict=True)}


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan
