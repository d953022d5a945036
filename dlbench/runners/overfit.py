"""`dlbench overfit`: capacity and regularizers on train-vs-validation curves.

A grid of cells — capacity (width × depth) × missing-value fill × feature count × regularizer
× share of the training rows — each cell's seeds one stack (members of different regimens,
fills and feature counts share it), every cell on one train/validation/test split, paired
over seeds and over the same resamples of the evaluation rows. Per cell it measures where
overfitting sets in (the validation loss turns up), the gap between training and validation,
validation scores at the best and the last epoch, and the test score of what the regimen
delivers, each regularizer against `none`.
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
from dlbench.engine.cells import Cell, labels
from dlbench.engine.execution import Engine
from dlbench.engine.members import Cost, Member, MemberResult, TrainConfig, resolve_device
from dlbench.engine.predictions import averaged
from dlbench.engine.regularizers import (
    Regularizer,
    edits_model,
    for_any_model,
    parse_regularizers,
)
from dlbench.errors import DlbenchError
from dlbench.evaluate import verdicts
from dlbench.evaluate.metrics import CURVE_MEASURES, MetricInfo, resolve_metrics
from dlbench.evaluate.rows import score_rows, value_rows
from dlbench.evaluate.stats import row_resamples, seeds_estimate
from dlbench.nn.models import ModelSpec, Shape, model_info
from dlbench.optim.optimizers import OptimSpec
from dlbench.runners.grid import (
    TOO_SMALL_TO_SPLIT,
    CellRun,
    Holdout,
    check_cells,
    clipped,
    cost,
    curve_table,
    holdout,
    key,
    run_cells,
    scored,
    stratified_sample,
)
from dlbench.seeding import SUBSAMPLE_KEY, derive_seed

ONSET_RISE = 0.05  # overfitting: the validation loss ends >= 5% above its minimum
DEFAULT_REG = "none,l2[strength=1e-3],dropout[p=0.5],early-stop[patience=5]"


TRAINS_CELLS = True  # the Runner protocol (runners/base.py): its cells run through an Engine


@dataclass(frozen=True)
class OverfitConfig:
    regularizers: tuple[Regularizer, ...] = tuple(parse_regularizers(DEFAULT_REG))
    data: DataSpec = field(default_factory=lambda: DataSpec("mnist1d"))
    model: ModelSpec = field(default_factory=lambda: ModelSpec("mlp", hidden=(512, 512)))
    widths: tuple[int, ...] = ()  # capacity sweep: every hidden layer this wide
    depths: tuple[int, ...] = ()  # capacity sweep: this many hidden layers
    train_rows: int | None = 1000  # training rows drawn (stratified) from the training part;
    #                                 None: all; the default takes all when there are fewer
    train_rows_given: bool = False  # the user asked for them: fewer rows is an error
    train_fractions: tuple[float, ...] = (1.0,)  # learning curve: shares of those rows
    train: TrainConfig = field(default_factory=lambda: TrainConfig(OptimSpec("adam", 1e-3),
                                                                   epochs=60))
    missing: tuple[str, ...] = ("none",)  # missing-value fills of the grid ("none": complete)
    features: tuple[int, ...] = (0,)  # feature counts kept of the grid (0: every feature)
    seeds: int = 3  # members per cell, paired across cells
    seed: int = 0  # seeds the split, the subsample, initial weights, batch order, resamples
    val_fraction: float | None = None  # validation share of train+validation; None: 0.2
    test_fraction: float | None = None  # test share (no fixed test split); None: 0.2
    stratify: bool = True
    metrics: tuple[str, ...] = ()  # empty: the task's defaults; the first one is reported
    allow_large: bool = False

    def record(self) -> dict[str, Any]:
        """What the manifest keeps of it: every cell sets its own missing-value fill and
        feature count (`missing`, `features`)."""
        record = asdict(self) | {"regularizers": [r.label for r in self.regularizers]}
        for name in ("missing", "features"):
            del record["train"][name]
        return record

    def inputs(self) -> list[TrainConfig]:
        """The training config at each missing-value fill × feature count of the grid."""
        return [replace(self.train, missing=fill, features=k) for fill in self.missing
                for k in self.features]

    def models(self) -> list[ModelSpec]:
        """The capacity variants: each width × depth, or the model as given."""
        widths = self.widths or (self.model.hidden[0],)
        depths = self.depths or (len(self.model.hidden),)
        if not (self.widths or self.depths):
            return [self.model]
        return [replace(self.model, hidden=(w,) * d) for d in depths for w in widths]


@dataclass(eq=False)
class Plan:
    config: OverfitConfig
    dataset: Dataset
    metrics: list[MetricInfo]
    split: Holdout  # train: the (sub)sampled training rows
    cells: list[Cell]
    members: dict[tuple[float, int], list[Member]]  # (fraction, ensemble size) -> members
    chance: float | None
    warnings: list[str] = field(default_factory=list)

    @property
    def total_epochs(self) -> int:
        return self.config.train.epochs * sum(len(self.members_of(c)) for c in self.cells)

    def members_of(self, cell: Cell) -> list[Member]:
        return self.members[(cell.tag("train_fraction"), _ensemble(cell))]


def _ensemble(cell: Cell) -> int:
    return cell.tag("ensemble", 1)


def prepare(config: OverfitConfig) -> Plan:
    models = config.seeds * sum(r.members for r in config.regularizers) * len(
        config.models()) * len(config.inputs()) * len(config.train_fractions)
    sizes.check_count(models, config.train.epochs, config.allow_large)
    dataset = load_dataset(config.data)
    _check(config, dataset)
    metrics = resolve_metrics(list(config.metrics), dataset.task, dataset)
    split = holdout(dataset, seed=config.seed, val_fraction=config.val_fraction,
                    test_fraction=config.test_fraction, stratify=config.stratify)
    rows = config.train_rows
    if rows is not None and rows > len(split.train) and not config.train_rows_given:
        rows = None  # the default asks for at most 1000
    split = replace(split, train=_subsample(dataset, split.train, rows, config.seed,
                                            config.stratify, "--train-rows"))
    shaped = Shape.of(dataset).input_shape is not None
    cells = [Cell(model_, train_, (("regularizer", reg.label), ("train_fraction", fraction),
                                   ("ensemble", reg.members)))
             for model in config.models() for train in config.inputs()
             for reg in config.regularizers for fraction in config.train_fractions
             for model_, train_ in [reg.apply(model, train, shaped)]]
    check_cells(cells, dataset)
    members = {}
    for cell in cells:
        fraction, n = cell.tag("train_fraction"), _ensemble(cell)
        if (fraction, n) not in members:
            rows = _subsample(dataset, split.train, round(fraction * len(split.train)),
                              config.seed, config.stratify, "--train-fraction")
            members[(fraction, n)] = split.members(config.seeds, config.seed, rows, n)
    _check_size(config, dataset, cells, members, split)
    y = dataset.y
    chance = verdicts.chance_accuracy(y[split.train], y[split.val], dataset.task,
                                      dataset.n_classes)
    warnings = [] if any(r.name == "none" for r in config.regularizers) else [
        "no 'none' in --reg: nothing to compare the regularizers with; add none"]
    return Plan(config, dataset, metrics, split, cells, members, chance, warnings)


def _check(config: OverfitConfig, dataset: Dataset) -> None:
    if config.seeds < 1:
        raise DlbenchError(f"--seeds must be positive, got {config.seeds}")
    if config.seed < 0:
        raise DlbenchError(f"--seed must be a non-negative integer (got {config.seed})")
    for option, values in (("--width", config.widths), ("--depth", config.depths)):
        if any(v < 1 for v in values):
            raise DlbenchError(f"{option} values must be positive, got "
                               f"{','.join(map(str, values))}")
    if (config.widths or config.depths) and "hidden" not in model_info(config.model.name).uses:
        raise DlbenchError(f"--width and --depth size hidden layers, and model "
                           f"{config.model.shown} has none; use --model mlp or resmlp")
    edits = [r.label for r in config.regularizers if edits_model(r)]
    if config.model.plugged and edits:
        raise DlbenchError(f"--reg {edits[0]} edits dlbench's built-in architectures, and "
                           f"{config.model.shown} is a model of your own; use the "
                           f"regularizers that apply to any model: {', '.join(for_any_model())}")
    if any(not 0 < f <= 1 for f in config.train_fractions):
        raise DlbenchError("--train-fraction values must be in (0, 1], got "
                           f"{','.join(f'{f:g}' for f in config.train_fractions)}")
    if config.train_rows is not None and config.train_rows < 2:
        raise DlbenchError(f"--train-rows must be at least 2, got {config.train_rows}")
    for option, value in (("--val-fraction", config.val_fraction),
                          ("--test-fraction", config.test_fraction)):
        if value is not None and not 0 < value < 1:
            raise DlbenchError(f"{option} must be strictly between 0 and 1 (got {value})")
    if config.test_fraction is not None and dataset.test_index is not None:
        raise DlbenchError(f"dataset {dataset.name} has a fixed test split already; "
                           "drop --test-fraction")
    if dataset.n_samples < TOO_SMALL_TO_SPLIT:
        raise DlbenchError(f"{dataset.name} has only {dataset.n_samples} rows: too few to hold "
                           "out validation rows, and overfitting is measured on them")


def _subsample(dataset: Dataset, rows: np.ndarray, n: int | None, seed: int, stratify: bool,
               option: str) -> np.ndarray:
    """n of the rows (stratified by class when asked), the same for every cell and seed."""
    if n is None or n >= len(rows):
        if n is not None and option == "--train-rows" and n > len(rows):
            raise DlbenchError(f"--train-rows {n}: the training part of {dataset.name} has "
                               f"{len(rows)} rows; ask for at most that many")
        return rows
    classes = len(np.unique(dataset.y[rows])) if stratify and \
        dataset.task == "classification" else 1
    if n < max(classes, 2):
        raise DlbenchError(f"{option} leaves {n} training rows, too few to hold two rows or "
                           f"one of each of the {classes} classes; ask for more")
    return stratified_sample(dataset, rows, n, derive_seed(seed, SUBSAMPLE_KEY), stratify)


def _check_size(config, dataset, cells, members, split) -> None:
    evaluated = len(split.train) + len(split.val) + len(split.test)
    jobs = []
    for model in dict.fromkeys(c.model for c in cells):
        mine = [c for c in cells if c.model == model]
        for group in dict.fromkeys((c.tag("train_fraction"), _ensemble(c)) for c in mine):
            configs = tuple(c.train for c in mine
                            if (c.tag("train_fraction"), _ensemble(c)) == group)
            jobs.append(sizes.Job(model, configs, len(members[group]),
                                  len(members[group][0].train), evaluated))
    sizes.check(dataset, jobs, resolve_device(config.train.device), config.allow_large)


# --- running ---------------------------------------------------------------------------------


@dataclass(eq=False)
class OverfitResult:
    plan: Plan
    scores: pd.DataFrame
    curves: pd.DataFrame
    summary: pd.DataFrame
    learning: pd.DataFrame  # score against training rows, per configuration (several shares)
    info: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        tables = {"scores": self.scores, "curves": self.curves, "summary": self.summary}
        return tables | ({"learning_curve": self.learning} if len(self.learning) else {})


def run(plan: Plan, engine: Engine | None = None) -> OverfitResult:
    start = time.perf_counter()
    runs = [_combined(r, plan.chance) for r in run_cells(
        plan.dataset, plan.cells, plan.members_of, plan.chance, engine=engine, best=True)]
    summary = summarize(plan, runs)
    info = {"dataset": {"name": plan.dataset.name, "fingerprint": plan.dataset.fingerprint(),
                        "samples": plan.dataset.n_samples, "task": plan.dataset.task},
            "seed": plan.config.seed, "cells": len(runs), "seeds": plan.config.seeds,
            "primary_metric": plan.metrics[0].name,
            "rows": {"train": len(plan.split.train), "val": len(plan.split.val),
                     "test": len(plan.split.test)},
            "onset_rise": ONSET_RISE,
            "splits": [split_record(plan.dataset.fingerprint(), plan.split.train,
                                    plan.split.val, plan.split.test)],
            "device": str(resolve_device(plan.config.train.device)),
            "seconds": round(time.perf_counter() - start, 3),
            **plugins.record(plan.config)}
    return OverfitResult(plan, _scores(plan, runs), curve_table(runs), summary,
                         _learning(plan, runs), info, _warnings(plan, summary))


def _combined(run: CellRun, chance: float | None) -> CellRun:
    """An ensemble cell's n members per seed as one result per seed: its predictions are the
    members' averaged probabilities (so are its scores and its status's accuracy); its curves
    — hence its onset and gap — are the mean of its members' own curves (an ensemble has no
    training of its own to follow); its cost is all n members'. It diverged when any member
    did, from the first such epoch."""
    n = _ensemble(run.cell)
    if n == 1:
        return run
    results, statuses = [], []
    for s in range(0, len(run.results), n):
        group = run.results[s:s + n]
        first = group[0]
        diverged = [r.diverged_epoch for r in group if r.diverged_epoch is not None]
        curves = [(e, split, metric, float(np.mean([r.curves[i][3] for r in group])))
                  for i, (e, split, metric, _) in enumerate(first.curves)]
        member = replace(first.member, key={"seed": first.member.key["seed"]})
        results.append(MemberResult(
            member, "diverged" if diverged else "ok", min(diverged, default=None), curves,
            [Cost(sum(r.cost[e].grad_evals for r in group), sum(r.cost[e].examples
                                                                for r in group),
                  sum(r.cost[e].passes for r in group), sum(r.cost[e].seconds for r in group))
             for e in range(len(first.cost))],
            {split: averaged([r.predictions[split] for r in group])
             for split in first.predictions},
            first.weights, first.best_epoch, first.stopped_epoch,
            {split: averaged([r.at_best[split] for r in group]) for split in first.at_best}))
        statuses.append(verdicts.status(results[-1], chance))
    return replace(run, results=results, statuses=statuses)


# --- per member: onset, best epoch, gaps -----------------------------------------------------


def onset(val_loss: list[float]) -> float:
    """The epoch of lowest validation loss when the loss ends at least ONSET_RISE above that
    minimum (it turned up and stayed up); NaN when it never rises (or no value is finite)."""
    loss = np.asarray(val_loss, dtype=np.float64)
    if not np.isfinite(loss).any():
        return math.nan
    best = int(np.nanargmin(loss))
    final = loss[np.isfinite(loss)][-1]
    return float(best) if final >= loss[best] * (1 + ONSET_RISE) and loss[best] > 0 \
        else math.nan


MEASURES = tuple(CURVE_MEASURES)  # their directions: evaluate/metrics.py


def member_measures(result: MemberResult, task: str, status: str = "ok") -> dict[str, float]:
    """onset_epoch, best_epoch (lowest validation loss), gap_final and gap_best: how much better
    the member does on its training rows than on validation — accuracy train − validation
    (classification), loss validation − train (regression) — with its delivered weights (the
    last epoch's; early stopping's: its restored best epoch's) and its best epoch's; and the
    validation loss of its delivered weights. All NaN for a diverged member (no measurement)."""
    if status == "diverged":
        return dict.fromkeys(MEASURES, math.nan)
    val_loss = result.curve("val", "loss")
    if task == "classification":
        train, val = result.curve("train", "accuracy"), result.curve("val", "accuracy")
        gaps = np.subtract(train, val)
    else:
        gaps = np.subtract(val_loss, result.curve("train", "loss"))
    best = int(np.nanargmin(val_loss)) if np.isfinite(val_loss).any() else None
    delivered = best if result.stopped_epoch is not None and best is not None else -1
    return {"onset_epoch": onset(val_loss),
            "best_epoch": math.nan if best is None else float(best),
            "gap_final": float(gaps[delivered]),
            "gap_best": math.nan if best is None else float(gaps[best]),
            "val_loss_final": float(val_loss[delivered])}


def _scores(plan: Plan, runs: list[CellRun]) -> pd.DataFrame:
    """Every member's scores with its final weights (what the regimen delivers: early stopping
    restores its best epoch) and with its best epoch's weights, plus its curve measures."""
    rows = []
    for run in runs:
        for r, status in zip(run.results, run.statuses, strict=True):
            base = {"dataset": plan.dataset.name, **key(run, r)}
            rows += score_rows(r, base | {"checkpoint": "final"}, plan.metrics, status)
            rows += score_rows(r, base | {"checkpoint": "best"}, plan.metrics, status,
                               r.at_best)
            rows += value_rows(base | {"checkpoint": ""}, "val",
                               member_measures(r, plan.dataset.task, status), status)
    return pd.DataFrame(rows)


# --- the summary -----------------------------------------------------------------------------


def summarize(plan: Plan, runs: list[CellRun]) -> pd.DataFrame:
    """One row per cell: onset, gaps, scores with intervals, and the difference to `none`."""
    primary = plan.metrics[0]
    resamples = {split: row_resamples(len(getattr(plan.split, split)), plan.config.seed)
                 for split in ("val", "test")}

    def score(run: CellRun, split: str, best: bool) -> verdicts.Scored:
        preds = [(r.at_best if best else r.predictions)[split] for r in run.results]
        return scored(primary, preds, run.statuses, resamples[split])

    tests = [score(run, "test", False) for run in runs]
    rows = []
    for run, test in zip(runs, tests, strict=True):
        measures = [member_measures(r, plan.dataset.task, status)
                    for r, status in zip(run.results, run.statuses, strict=True)]
        onsets = np.array([m["onset_epoch"] for m in measures])
        row = {"cell": run.label, **run.cell.coords(), "metric": primary.name,
               "train_rows": len(run.results[0].member.train),
               "onset_epoch": _finite(np.median, onsets),
               "onset_seeds": int(np.isfinite(onsets).sum()), "seeds": len(onsets),
               "best_epoch": _finite(np.mean, [m["best_epoch"] for m in measures])}
        for gap in ("gap_final", "gap_best"):
            estimate = seeds_estimate([m[gap] for m in measures])
            row |= {gap: estimate.mean, f"{gap}_ci_half": _half(estimate)}
        for name, split, best in (("val_best", "val", True), ("val_final", "val", False),
                                  ("test_best", "test", True)):
            row |= _interval_columns(name, score(run, split, best), primary)
        row |= _interval_columns("test", test, primary)
        row["val_loss_final"] = _finite(np.mean, [m["val_loss_final"] for m in measures])
        common, statuses = verdicts.summary(run.statuses)
        rows.append(row | cost(run.results) | {"status": common, "statuses": statuses})
    frame = pd.DataFrame(rows)
    comparisons = [_versus_none(plan, runs, tests, i, primary) for i in range(len(runs))]
    return pd.concat([frame, pd.DataFrame(comparisons)], axis=1)


def _finite(statistic, values) -> float:
    """The statistic of the finite values (diverged seeds are NaN), NaN when there are none."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(statistic(values)) if len(values) else math.nan


def _half(estimate) -> float:
    interval = estimate.interval()
    return (interval.high - interval.low) / 2


def _interval_columns(name: str, s: verdicts.Scored, metric: MetricInfo) -> dict[str, Any]:
    interval, half, cut = clipped(s.estimate(), metric)
    return {f"{name}_mean": interval.mean, f"{name}_ci_low": interval.low,
            f"{name}_ci_high": interval.high, f"{name}_ci_half": half,
            f"{name}_ci_clipped": cut}


def _versus_none(plan: Plan, runs: list[CellRun], tests: list[verdicts.Scored], i: int,
                 metric: MetricInfo) -> dict[str, Any]:
    """The cell's test score minus that of `none` at the same capacity and training share
    (paired over seeds and resamples), and whether the difference is significant."""
    blank = {"diff_none": math.nan, "diff_none_ci_low": math.nan, "diff_none_ci_high": math.nan,
             "diff_none_ci_half": math.nan, "p_vs_none": math.nan}
    cell = runs[i].cell
    if cell.tag("regularizer") == "none":
        return blank | {"vs_none": "baseline"}
    same = [j for j, run in enumerate(runs) if run.cell.tag("regularizer") == "none"
            and _setting(run.cell) == _setting(cell)]
    if not same:
        return blank | {"vs_none": ""}
    diff = tests[i].minus(tests[same[0]])
    if diff.n < 2:
        return blank | {"diff_none": diff.mean, "vs_none": "too few seeds"}
    interval, p = diff.interval(), diff.p_value()
    better = (diff.mean > 0) == metric.greater_is_better
    verdict = "not significant" if p >= verdicts.ALPHA else ("better" if better else "worse")
    return {"diff_none": diff.mean, "diff_none_ci_low": interval.low,
            "diff_none_ci_high": interval.high,
            "diff_none_ci_half": (interval.high - interval.low) / 2, "p_vs_none": p,
            "vs_none": verdict}


def _setting(cell: Cell) -> tuple:
    """What a regularizer is compared at: the capacity, the training share and the inputs."""
    return (cell.tag("train_fraction"), cell.model.hidden, cell.model.name, cell.train.missing,
            cell.train.features)


def _learning(plan: Plan, runs: list[CellRun]) -> pd.DataFrame:
    """Score against training rows (only with several --train-fraction values): per
    configuration without its share, training and validation, final weights."""
    if len(plan.config.train_fractions) < 2:
        return pd.DataFrame()
    primary = plan.metrics[0]
    names = labels([replace(run.cell, tags=tuple((axis, value) for axis, value in run.cell.tags
                                                 if axis != "train_fraction")) for run in runs])
    points = []
    for run, name in zip(runs, names, strict=True):
        for split in ("train", "val"):
            preds = [r.predictions[split] for r in run.results]
            rows = len(preds[0].y_true)
            s = scored(primary, preds, run.statuses, row_resamples(rows, plan.config.seed)) \
                if split == "val" else None
            values = [math.nan if status == "diverged" else  # argmax(NaN) is no prediction
                      primary.weighted(p, np.ones((1, rows)))[0]
                      for p, status in zip(preds, run.statuses, strict=True)]
            interval = (clipped(s.estimate(), primary)[0] if s is not None
                        else seeds_estimate(values).interval())
            points.append({"cell": name, "train_rows": len(run.results[0].member.train),
                           "train_fraction": run.cell.tag("train_fraction"), "split": split,
                           "metric": primary.name, "mean": interval.mean,
                           "ci_low": interval.low, "ci_high": interval.high})
    return pd.DataFrame(points)


def _warnings(plan: Plan, summary: pd.DataFrame) -> list[str]:
    found = []
    if not summary["onset_seeds"].any():
        found.append("the validation loss never turned up: no configuration overfit here "
                     "(try more epochs, fewer --train-rows or a wider model)")
    return found
