"""`dlbench transfer`: pretrain on a source task, then train on a target task from scratch, as a
linear probe on the frozen pretrained layers, or fine-tuning the top layers or all of them.

Every strategy × target size × seed trains on the same target training rows (drawn per size and
seed, stratified) and is tested on the same target test rows, so strategies compare paired.
Strategies at one size share a stack: a frozen layer is a parameter group with learning rate 0
(the trainer's regimens), a pretrained member starts from the source weights with a fresh head.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from dlbench import checkpoints, sizes, verdicts
from dlbench.cells import Cell
from dlbench.datasets import Dataset, DataSpec, load_dataset
from dlbench.errors import DlbenchError
from dlbench.metrics import MetricInfo, resolve_metrics
from dlbench.models import ModelSpec
from dlbench.optim import OptimSpec
from dlbench.regimens import Regimen
from dlbench.registry import Registry
from dlbench.runners.grid import CellRun, check_cells, cost, curve_table, run_cells, score_table
from dlbench.seeding import TARGET_SAMPLE_KEY, derive_seed
from dlbench.splits import dev_and_test
from dlbench.stats import row_resamples
from dlbench.trainer import Member, TrainConfig, model_shape, resolve_device, train

SOURCE_SEED = 1_000  # the source model's member seed, derived with the run seed


@dataclass(frozen=True)
class Layers:
    """Where a model's weight layers sit in its layer list: their positions, the head last."""

    positions: tuple[int, ...]

    @property
    def head(self) -> str:
        return f"layers.{self.positions[-1]}."


@dataclass(frozen=True)
class StrategyInfo:
    name: str
    description: str
    pretrained: bool  # starts from the source weights (a fresh head)
    # (layers, --top, --body-lr-scale) -> the learning-rate multipliers (regimens.Regimen)
    scales: Callable[[Layers, int, float], tuple[tuple[str, float], ...]]


def _top(layers: Layers, top: int, body: float) -> tuple[tuple[str, float], ...]:
    """The head and the `top` weight layers below it train (with whatever follows them up to
    the head: batch norm, activations); everything below is frozen."""
    first = layers.positions[-1 - top]
    trained = tuple((f"layers.{i}.", 1.0) for i in range(first, layers.positions[-1] + 1))
    return (*trained, ("", 0.0))


STRATEGIES: Registry[StrategyInfo] = Registry("strategy")
for _info in (
    StrategyInfo("scratch", "the same network from random weights: the baseline to beat",
                 False, lambda layers, top, body: ()),
    StrategyInfo("linear-probe", "every pretrained layer frozen; a new head trained", True,
                 lambda layers, top, body: ((layers.head, 1.0), ("", 0.0))),
    StrategyInfo("finetune-top", "a new head and the top --top pretrained layers trained; the "
                 "rest frozen", True, _top),
    StrategyInfo("finetune-all", "a new head and every pretrained layer trained (those at "
                 "--body-lr-scale × the learning rate)", True,
                 lambda layers, top, body: ((layers.head, 1.0), ("", body))),
):
    STRATEGIES.add(_info)


@dataclass(frozen=True)
class TransferConfig:
    source: DataSpec = field(default_factory=lambda: DataSpec("mnist1d[0-4]"))
    target: DataSpec = field(default_factory=lambda: DataSpec("mnist1d[5-9]"))
    model: ModelSpec = field(default_factory=lambda: ModelSpec("cnn1d", channels=(16, 32)))
    strategies: tuple[str, ...] = ("scratch", "linear-probe", "finetune-top", "finetune-all")
    target_sizes: tuple[int, ...] = (25, 100, 1000)
    top: int = 1  # finetune-top: pretrained layers trained below the head
    body_lr_scale: float = 1.0  # finetune-all: the pretrained layers' learning-rate multiplier
    source_epochs: int = 20
    source_checkpoint: str | None = None  # load the source weights instead of pretraining
    train: TrainConfig = field(default_factory=lambda: TrainConfig(OptimSpec("adam", 1e-3),
                                                                   epochs=40))
    seeds: int = 3
    seed: int = 0
    metrics: tuple[str, ...] = ()
    allow_large: bool = False

    def record(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(eq=False)
class Plan:
    config: TransferConfig
    source: Dataset
    target: Dataset
    metrics: list[MetricInfo]
    layers: Layers
    source_rows: tuple[np.ndarray, np.ndarray]  # source train, test
    test: np.ndarray  # target test rows, the same for every strategy and size
    rows: dict[tuple[int, int], np.ndarray]  # (size, seed) -> target training rows
    cells: list[Cell]
    checkpoint: dict | None  # the loaded source weights (--source-checkpoint)
    chance: float | None
    warnings: list[str] = field(default_factory=list)

    @property
    def total_epochs(self) -> int:
        source = 0 if self.checkpoint is not None else self.config.source_epochs
        return source + self.config.train.epochs * len(self.cells) * self.config.seeds


def prepare(config: TransferConfig) -> Plan:
    source, target = load_dataset(config.source), load_dataset(config.target)
    _check(config, source, target)
    metrics = resolve_metrics(list(config.metrics), target.task)
    shape = model_shape(target)
    layers = Layers(tuple(checkpoints.weight_layers(config.model, shape)))
    if config.top >= len(layers.positions):
        raise DlbenchError(f"--top {config.top}: model {config.model.name} has "
                           f"{len(layers.positions) - 1} pretrained weight layers below its "
                           "head; ask for at most that many")
    cells = [Cell(config.model, replace(config.train, regimen=Regimen(
        lr_scales=STRATEGIES.get(s).scales(layers, config.top, config.body_lr_scale))),
        (("strategy", s), ("target_size", n)))
        for n in config.target_sizes for s in config.strategies]
    check_cells(cells, target)
    check_cells([Cell(config.model, _source_train(config))], source)
    dev, test = dev_and_test(target, 0.2, seed=config.seed, stratify=True, time_order=False)
    rows = {(n, s): _sample(target, dev, n, derive_seed(config.seed, TARGET_SAMPLE_KEY, n, s))
            for n in config.target_sizes for s in range(config.seeds)}
    source_dev, source_test = dev_and_test(source, 0.2, seed=config.seed, stratify=True,
                                           time_order=False)
    checkpoint = None
    if config.source_checkpoint is not None:
        checkpoint = checkpoints.from_plain(config.model, model_shape(source),
                                            checkpoints.load(Path(config.source_checkpoint)))
    sizes.check(target, [sizes.Job(config.model, tuple(c.train for c in cells), config.seeds,
                                   max(config.target_sizes), max(config.target_sizes)
                                   + len(test))],
                resolve_device(config.train.device), config.allow_large)
    chance = verdicts.chance_accuracy(target.y[dev], target.y[test], target.task,
                                      target.n_classes)
    return Plan(config, source, target, metrics, layers, (source_dev, source_test), test, rows,
                cells, checkpoint, chance)


def _check(config: TransferConfig, source: Dataset, target: Dataset) -> None:
    if (source.n_features, source.input_shape) != (target.n_features, target.input_shape):
        raise DlbenchError(f"source {source.name} and target {target.name} differ in input "
                           f"shape ({source.input_shape or source.n_features} against "
                           f"{target.input_shape or target.n_features}); pretrained layers need "
                           "the same inputs")
    if source.task != "classification" or target.task != "classification":
        raise DlbenchError("transfer compares classifiers: source and target need classes")
    for name in config.strategies:
        STRATEGIES.get(name)
    if not config.strategies:
        raise DlbenchError("--strategy names no strategy; choose from: "
                           f"{', '.join(STRATEGIES.names())}")
    if config.seeds < 1:
        raise DlbenchError(f"--seeds must be positive, got {config.seeds}")
    if config.top < 1:
        raise DlbenchError(f"--top must be at least 1, got {config.top}")
    if not (math.isfinite(config.body_lr_scale) and config.body_lr_scale > 0):
        raise DlbenchError(f"--body-lr-scale must be a positive number, got "
                           f"{config.body_lr_scale}")
    if config.source_epochs < 1:
        raise DlbenchError(f"--source-epochs must be positive, got {config.source_epochs}")
    dev = target.n_samples - (len(target.test_index) if target.test_index is not None
                              else math.ceil(0.2 * target.n_samples))
    for n in config.target_sizes:
        if not target.n_classes <= n <= dev:
            raise DlbenchError(f"--target-size {n}: {target.name} has {dev} training rows "
                               f"and {target.n_classes} classes; a size must hold one row of "
                               f"each class and at most {dev}")


def _sample(target: Dataset, dev: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n training rows of the target, stratified: the same for every strategy (paired)."""
    if n >= len(dev):
        return dev
    kept, _ = train_test_split(dev, train_size=n, stratify=target.y[dev],
                               random_state=seed % 2**32)
    return np.sort(kept)


def _source_train(config: TransferConfig) -> TrainConfig:
    return replace(config.train, epochs=config.source_epochs)


# --- running ---------------------------------------------------------------------------------


@dataclass(eq=False)
class TransferResult:
    plan: Plan
    scores: pd.DataFrame
    curves: pd.DataFrame
    summary: pd.DataFrame
    source_weights: dict  # the plain state dict written as source.pt
    info: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        return {"scores": self.scores, "curves": self.curves, "summary": self.summary}


def run(plan: Plan, progress=None) -> TransferResult:
    start = time.perf_counter()
    config = plan.config
    weights, source_accuracy = _pretrained(plan, progress)
    runs = run_cells(plan.target, plan.cells, target_members(plan, weights), plan.chance,
                     progress=progress)
    info = {"dataset": {"name": plan.target.name, "fingerprint": plan.target.fingerprint(),
                        "samples": plan.target.n_samples, "task": plan.target.task},
            "source": {"name": plan.source.name, "fingerprint": plan.source.fingerprint(),
                       "test_accuracy": source_accuracy,
                       "checkpoint": config.source_checkpoint},
            "seed": config.seed, "seeds": config.seeds, "cells": len(runs),
            "primary_metric": plan.metrics[0].name, "test_rows": len(plan.test),
            "device": str(resolve_device(config.train.device)),
            "seconds": round(time.perf_counter() - start, 3)}
    shape = model_shape(plan.source)
    return TransferResult(plan, score_table(plan.target, runs, plan.metrics), curve_table(runs),
                          summarize(plan, runs),
                          checkpoints.to_plain(config.model, shape, weights), info)


def target_members(plan: Plan, weights: dict) -> Callable[[Cell], list[Member]]:
    """A cell's members: one per seed on that seed's sample of its size; a pretrained
    strategy's start from the source weights but the head (a fresh draw: the target's
    classes are not the source's)."""
    config = plan.config
    body = {k: v for k, v in weights.items() if not k.startswith(plan.layers.head)}
    members = {(n, pretrained): [Member({"seed": s}, derive_seed(config.seed, s),
                                        plan.rows[(n, s)], {"test": plan.test},
                                        init=body if pretrained else None)
                                 for s in range(config.seeds)]
               for n in config.target_sizes for pretrained in (False, True)}
    return lambda cell: members[(cell.tag("target_size"),
                                 STRATEGIES.get(cell.tag("strategy")).pretrained)]


def _pretrained(plan: Plan, progress) -> tuple[dict, float]:
    """The source weights (loaded, or trained on the source's training rows) and their test
    accuracy on the source's own test rows (NaN for a loaded checkpoint)."""
    if plan.checkpoint is not None:
        return plan.checkpoint, math.nan
    config = plan.config
    train_rows, test_rows = plan.source_rows
    member = Member({"seed": -1}, derive_seed(config.seed, SOURCE_SEED), train_rows,
                    {"test": test_rows})
    [result] = train(plan.source, config.model, _source_train(config), [member], progress)
    pred = result.predictions["test"]
    return result.weights, float(np.mean(pred.y_pred == pred.y_true))


# --- the summary -----------------------------------------------------------------------------


def summarize(plan: Plan, runs: list[CellRun]) -> pd.DataFrame:
    """Per strategy × size: the test score with its interval (seeds, training samples and test
    rows), cost, and at each size the winner against the runner-up (paired)."""
    from dlbench.runners.grid import clipped, scored

    primary = plan.metrics[0]
    resamples = row_resamples(len(plan.test), plan.config.seed)
    rows, scores = [], []
    for run in runs:
        s = scored(primary, [r.predictions["test"] for r in run.results], run.statuses,
                   resamples)
        interval, half, cut = clipped(s.estimate(), primary)
        common, statuses = verdicts.summary(run.statuses)
        scores.append(s)
        rows.append({"cell": run.label, **run.cell.coords(), "metric": primary.name,
                     "test_mean": interval.mean, "test_ci_low": interval.low,
                     "test_ci_high": interval.high, "test_ci_half": half,
                     "test_ci_clipped": cut, **cost(run.results), "status": common,
                     "statuses": statuses})
    frame = pd.DataFrame(rows)
    frame["winner"] = ""
    frame[["diff_next", "diff_next_ci_half", "p_vs_next"]] = math.nan
    sign = 1 if primary.greater_is_better else -1
    for _, group in frame.groupby("target_size"):
        order = sorted(group.index, key=lambda i: -sign * frame.at[i, "test_mean"])
        best = order[0]
        if len(order) < 2:
            frame.at[best, "winner"] = "only"
            continue
        diff = scores[best].minus(scores[order[1]])
        if diff.n < 2:
            frame.at[best, "winner"] = "too few seeds"
            continue
        interval, p = diff.interval(), diff.p_value()
        frame.loc[best, ["diff_next", "diff_next_ci_half", "p_vs_next"]] = [
            diff.mean, (interval.high - interval.low) / 2, p]
        frame.at[best, "winner"] = "yes" if p < verdicts.ALPHA else "not significant"
    return frame
