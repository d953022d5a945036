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

from dlbench import plugins
from dlbench.data.datasets import Dataset, DataSpec, load_dataset
from dlbench.data.splits import dev_and_test, split_record
from dlbench.engine import checkpoints, sizes
from dlbench.engine.cells import Cell, tasks
from dlbench.engine.execution import Engine
from dlbench.engine.members import Member, TrainConfig, model_shape, resolve_device
from dlbench.engine.regimens import Regimen
from dlbench.errors import DlbenchError
from dlbench.evaluate import verdicts
from dlbench.evaluate.metrics import MetricInfo, resolve_metrics
from dlbench.evaluate.stats import row_resamples
from dlbench.nn.models import MODELS, ModelSpec
from dlbench.optim.optimizers import OptimSpec
from dlbench.registry import Registry
from dlbench.runners.grid import (
    CellRun,
    check_cells,
    clipped,
    cost,
    curve_table,
    run_cells,
    score_table,
    scored,
    stratified_sample,
)
from dlbench.seeding import TARGET_SAMPLE_KEY, derive_seed

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
    redraw_top: bool = False  # the top --top pretrained layers start from a fresh draw too


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
    StrategyInfo("probe-early", "a probe on earlier layers: the lower pretrained layers frozen, "
                 "the top --top ones re-drawn and trained with a new head", True, _top,
                 redraw_top=True),
):
    STRATEGIES.add(_info)


TRAINS_CELLS = True  # the Runner protocol (runners/base.py): its cells run through an Engine


@dataclass(frozen=True)
class TransferConfig:
    source: DataSpec = field(default_factory=lambda: DataSpec("mnist1d[0-4,n=12000]"))
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
    # similar: the target; different: --different, or the target with its features permuted
    similarity: tuple[str, ...] = ()
    different: DataSpec | None = None
    metrics: tuple[str, ...] = ()
    allow_large: bool = False

    def record(self) -> dict[str, Any]:
        return asdict(self)

    def targets(self) -> list[tuple[str, DataSpec]]:
        """(similarity label, target data): the target alone ("") without --similarity."""
        if not self.similarity:
            return [("", self.target)]
        shifted = self.different or DataSpec(_with_param(self.target.name, "transform=permuted"))
        return [(label, self.target if label == "similar" else shifted)
                for label in self.similarity]


SIMILARITIES = ("similar", "different")


def _with_param(name: str, param: str) -> str:
    """'mnist1d[5-9]' + 'transform=permuted' -> 'mnist1d[5-9,transform=permuted]'."""
    return f"{name[:-1]},{param}]" if name.endswith("]") else f"{name}[{param}]"


@dataclass(eq=False)
class Target:
    """One target dataset: its test rows (the same for every strategy and size) and the
    training rows of each (size, seed) (the same for every strategy)."""

    label: str  # its similarity, or ""
    dataset: Dataset
    test: np.ndarray
    rows: dict[tuple[int, int], np.ndarray]
    chance: float | None


@dataclass(eq=False)
class Plan:
    config: TransferConfig
    source: Dataset
    targets: list[Target]
    metrics: list[MetricInfo]
    layers: Layers
    source_rows: tuple[np.ndarray, np.ndarray]  # source train, test
    cells: list[Cell]  # tagged with their target's similarity
    checkpoint: dict | None  # the loaded source weights (--source-checkpoint)
    warnings: list[str] = field(default_factory=list)

    def target(self, cell: Cell) -> Target:
        return next(t for t in self.targets if t.label == cell.tag("similarity"))

    @property
    def total_epochs(self) -> int:
        source = 0 if self.checkpoint is not None else self.config.source_epochs
        return source + self.config.train.epochs * len(self.cells) * self.config.seeds


def prepare(config: TransferConfig) -> Plan:
    sizes.check_count(len(config.targets()) * len(config.target_sizes)  # before any data
                      * len(config.strategies) * config.seeds, config.train.epochs,
                      config.allow_large)
    source = load_dataset(config.source)
    layers = _layers(config.model, source)
    datasets = [(label, load_dataset(spec)) for label, spec in config.targets()]
    _check(config, source, [d for _, d in datasets])
    metrics = resolve_metrics(list(config.metrics), "classification", datasets[0][1])
    topped = [s for s in config.strategies if s in ("finetune-top", "probe-early")]
    below = len(layers.positions) - 1  # pretrained weight layers below the head
    if topped and config.top > below:  # below >= 1: only a --top the user gave gets here
        raise DlbenchError(f"--top {config.top}: model {config.model.name} has {below} "
                           "pretrained weight layers below its head; ask for at most that many")
    same = {"probe-early": "probe-early trains like scratch",
            "finetune-top": "finetune-top trains like finetune-all"}
    warnings = [] if not topped or config.top < below else [
        f"--top {config.top} covers every pretrained layer below the head, so "
        f"{' and '.join(same[s] for s in topped)}; the comparison needs more layers below the "
        "head than --top"]
    warnings += [_same_data(source, dataset) for _, dataset in datasets
                 if dataset.fingerprint() == source.fingerprint()]
    cells = [Cell(config.model, replace(config.train, regimen=Regimen(
        lr_scales=STRATEGIES.get(s).scales(layers, config.top, config.body_lr_scale))),
        (("strategy", s), ("target_size", n), ("similarity", label)))
        for label, _ in datasets for n in config.target_sizes for s in config.strategies]
    targets = [_target(config, label, dataset) for label, dataset in datasets]
    for target in targets:
        mine = [c for c in cells if c.tag("similarity") == target.label]
        check_cells(mine, target.dataset)
        largest = max(config.target_sizes)
        sizes.check(target.dataset, [sizes.Job(config.model, tuple(c.train for c in mine),
                                               config.seeds, largest,
                                               largest + len(target.test))],
                    resolve_device(config.train.device), config.allow_large)
    check_cells([Cell(config.model, _source_train(config))], source)
    source_dev, source_test = dev_and_test(source, 0.2, seed=config.seed, stratify=True,
                                           time_order=False)
    checkpoint = None
    if config.source_checkpoint is not None:
        checkpoint = checkpoints.from_plain(config.model, model_shape(source),
                                            checkpoints.load(Path(config.source_checkpoint)),
                                            skip=layers.head)
    return Plan(config, source, targets, metrics, layers, (source_dev, source_test), cells,
                checkpoint, warnings)


def _layers(model: ModelSpec, source: Dataset) -> Layers:
    """The model's weight layers; refused when none lies below the head (the head is always
    drawn afresh, so nothing pretrained would reach the target)."""
    layers = Layers(tuple(checkpoints.weight_layers(model, model_shape(source))))
    if len(layers.positions) < 2:
        deep = [m.name for m in MODELS if {"hidden", "channels"} & set(m.uses)]
        raise DlbenchError(f"model {model.name} has no layers below its head, and the head is "
                           "drawn afresh on the target: nothing pretrained would transfer; use "
                           f"a model with hidden layers: {', '.join(deep)}")
    return layers


def _same_data(source: Dataset, target: Dataset) -> str:
    """A warning, not an error: the numbers are sound (source and target are cut into
    training and test rows alike, so no test row is pretrained on), only the question is
    empty — a user may run it on purpose, as the most similar target there is."""
    return (f"the source {source.name} and the target {target.name} hold the same rows: the "
            "pretrained model has already trained on every target training row, so this "
            "measures no transfer; give another --source or --target")


def _target(config: TransferConfig, label: str, dataset: Dataset) -> Target:
    dev, test = dev_and_test(dataset, 0.2, seed=config.seed, stratify=True, time_order=False)
    rows = {(n, s): stratified_sample(dataset, dev, n,  # the same for every strategy: paired
                                      derive_seed(config.seed, TARGET_SAMPLE_KEY, n, s))
            for n in config.target_sizes for s in range(config.seeds)}
    chance = verdicts.chance_accuracy(dataset.y[dev], dataset.y[test], dataset.task,
                                      dataset.n_classes)
    return Target(label, dataset, test, rows, chance)


def _check(config: TransferConfig, source: Dataset, targets: list[Dataset]) -> None:
    for label in config.similarity:
        if label not in SIMILARITIES:
            raise DlbenchError(f"unknown similarity '{label}'; choose one of: "
                               f"{', '.join(SIMILARITIES)}")
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
    for target in targets:
        _check_target(config, source, target)


def _check_target(config: TransferConfig, source: Dataset, target: Dataset) -> None:
    if (source.n_features, source.input_shape) != (target.n_features, target.input_shape):
        raise DlbenchError(f"source {source.name} and target {target.name} differ in input "
                           f"shape ({source.input_shape or source.n_features} against "
                           f"{target.input_shape or target.n_features}); pretrained layers need "
                           "the same inputs")
    if source.task != "classification" or target.task != "classification":
        raise DlbenchError("transfer compares classifiers: source and target need classes")
    dev = target.n_samples - (len(target.test_index) if target.test_index is not None
                              else math.ceil(0.2 * target.n_samples))
    for n in config.target_sizes:
        if not target.n_classes <= n <= dev:
            raise DlbenchError(f"--target-size {n}: {target.name} has {dev} training rows "
                               f"and {target.n_classes} classes; a size must hold one row of "
                               f"each class and at most {dev}")


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
    quadrants: pd.DataFrame = field(default_factory=pd.DataFrame)  # the advice, measured
    warnings: list[str] = field(default_factory=list)

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        tables = {"scores": self.scores, "curves": self.curves, "summary": self.summary}
        return tables | ({"quadrants": self.quadrants} if len(self.quadrants) else {})


def run(plan: Plan, engine: Engine | None = None) -> TransferResult:
    start = time.perf_counter()
    config = plan.config
    weights, source_accuracy = _pretrained(plan, engine)
    runs: list[CellRun] = []
    for target in plan.targets:  # a stack trains on one dataset: one grid per target
        cells = [c for c in plan.cells if c.tag("similarity") == target.label]
        runs += run_cells(target.dataset, cells, target_members(plan, target, weights),
                          target.chance, engine=engine)
    summary, scored_runs = summarize(plan, runs)
    info = {"dataset": {"name": plan.targets[0].dataset.name,
                        "fingerprint": plan.targets[0].dataset.fingerprint(),
                        "samples": plan.targets[0].dataset.n_samples,
                        "task": plan.targets[0].dataset.task},
            "targets": {t.label or "target": {"name": t.dataset.name,
                                              "fingerprint": t.dataset.fingerprint(),
                                              "test_rows": len(t.test)}
                        for t in plan.targets},
            "source": {"name": plan.source.name, "fingerprint": plan.source.fingerprint(),
                       "test_accuracy": source_accuracy,
                       "checkpoint": config.source_checkpoint},
            "seed": config.seed, "seeds": config.seeds, "cells": len(runs),
            "primary_metric": plan.metrics[0].name, "test_rows": len(plan.targets[0].test),
            "splits": [split_record(t.dataset.fingerprint(), rows, t.test, target=t.label,
                                    size=n, seed=s)
                       for t in plan.targets for (n, s), rows in sorted(t.rows.items())],
            "device": str(resolve_device(config.train.device)),
            "seconds": round(time.perf_counter() - start, 3),
            **plugins.record(config)}
    quadrants = advice(config, plan.metrics[0], summary, scored_runs)
    if len(quadrants):
        info["quadrants"] = advice_method(plan.metrics[0])
    scores = pd.concat([score_table(plan.target(r.cell).dataset, [r], plan.metrics)
                        for r in runs], ignore_index=True)
    return TransferResult(plan, scores, curve_table(runs), summary,
                          checkpoints.to_plain(config.model, model_shape(plan.source), weights),
                          info, quadrants=quadrants)


def target_members(plan: Plan, target: Target, weights: dict) -> Callable[[Cell], list[Member]]:
    """A cell's members: one per seed on that seed's sample of its size; a pretrained
    strategy's start from the source weights but the head (a fresh draw: the target's
    classes are not the source's)."""
    config, layers = plan.config, plan.layers
    fresh = {False: (layers.head,)}
    if config.top < len(layers.positions):  # probe-early: from the top --top layer up
        fresh[True] = tuple(f"layers.{i}." for i in range(layers.positions[-1 - config.top],
                                                          layers.positions[-1] + 1))
    inits = {(pre, redraw): {k: v for k, v in weights.items()
                             if not k.startswith(fresh[redraw])} if pre else None
             for pre in (False, True) for redraw in fresh}
    members = {(n, key): [Member({"seed": s}, derive_seed(config.seed, s), target.rows[(n, s)],
                                 {"test": target.test}, init=init)
                          for s in range(config.seeds)]
               for n in config.target_sizes for key, init in inits.items()}

    def members_of(cell: Cell) -> list[Member]:
        info = STRATEGIES.get(cell.tag("strategy"))
        return members[(cell.tag("target_size"), (info.pretrained, info.redraw_top))]

    return members_of


def _pretrained(plan: Plan, engine: Engine | None) -> tuple[dict, float]:
    """The source weights (loaded, or trained on the source's training rows) and their test
    accuracy on the source's own test rows (NaN for a loaded checkpoint)."""
    if plan.checkpoint is not None:
        return plan.checkpoint, math.nan
    config = plan.config
    train_rows, test_rows = plan.source_rows
    members = [Member({"seed": -1}, derive_seed(config.seed, SOURCE_SEED), train_rows,
                      {"test": test_rows})]
    [(task, _)] = tasks(plan.source, [Cell(config.model, _source_train(config))],
                        lambda cell: members, weights=True)
    [[[result]]] = (engine or Engine()).run(plan.source, [task])
    pred = result.predictions["test"]
    return result.weights, float(np.mean(pred.y_pred == pred.y_true))


# --- the summary -----------------------------------------------------------------------------


def summarize(plan: Plan, runs: list[CellRun]) -> tuple[pd.DataFrame, list[verdicts.Scored]]:
    """Per target × strategy × size: the test score with its interval (seeds, training samples
    and test rows), cost, and at each target and size the winner against the runner-up
    (paired); with each cell's scores on the shared resamples."""
    primary = plan.metrics[0]
    rows, scores = [], []
    for run in runs:
        target = plan.target(run.cell)
        s = scored(primary, [r.predictions["test"] for r in run.results], run.statuses,
                   row_resamples(len(target.test), plan.config.seed))
        interval, half, cut = clipped(s.estimate(), primary)
        common, statuses = verdicts.summary(run.statuses)
        scores.append(s)
        rows.append({"cell": run.label, **run.cell.coords(), "target": target.dataset.name,
                     "metric": primary.name, "test_mean": interval.mean,
                     "test_ci_low": interval.low, "test_ci_high": interval.high,
                     "test_ci_half": half, "test_ci_clipped": cut, **cost(run.results),
                     "status": common, "statuses": statuses})
    frame = pd.DataFrame(rows)
    frame["winner"] = ""
    frame[["diff_next", "diff_next_ci_half", "p_vs_next"]] = math.nan
    for _, group in frame.groupby(["similarity", "target_size"]):
        order = _ranked(frame, group.index, primary)
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
    return frame, scores


def _ranked(frame: pd.DataFrame, index, metric: MetricInfo) -> list[int]:
    """Best first; a tie (or NaN: every seed diverged, last) in the registry's order, so the
    order of --strategy never picks a winner."""
    sign = 1 if metric.greater_is_better else -1
    names = STRATEGIES.names()

    def key(i: int) -> tuple[bool, float, int]:
        mean = frame.at[i, "test_mean"]
        return (math.isnan(mean), 0.0 if math.isnan(mean) else -sign * mean,
                names.index(frame.at[i, "strategy"]))

    return sorted(index, key=key)


# --- the classic advice, measured ------------------------------------------------------------

# (target size, similarity) -> the strategy the textbooks advise
ADVICE = {("small", "similar"): "linear-probe", ("large", "similar"): "finetune-top",
          ("small", "different"): "probe-early", ("large", "different"): "finetune-all"}
ADVICE_TEXT = {("small", "similar"): "a linear probe on the frozen features",
               ("large", "similar"): "fine-tune some layers",
               ("small", "different"): "a probe on earlier layers",
               ("large", "different"): "fine-tune more (here: every layer)"}


def advice(config: TransferConfig, primary: MetricInfo, frame: pd.DataFrame,
           scores: list[verdicts.Scored]) -> pd.DataFrame:
    """With a small and a large size and both similarities: per quadrant, the advised strategy
    against every other, paired (verdicts.agreement): agrees (shown better than, or equivalent
    within the margin to, each), disagrees (another shown better) or inconclusive. Being the
    sample maximum is no agreement; a tie is broken by the registry, not --strategy's order."""
    sizes_ = sorted(config.target_sizes)
    if len(sizes_) < 2 or set(config.similarity) != set(SIMILARITIES):
        return pd.DataFrame()
    rows = []
    for (size, label), strategy in ADVICE.items():
        n = sizes_[0] if size == "small" else sizes_[-1]
        group = frame[(frame.similarity == label) & (frame.target_size == n)]
        order = _ranked(frame, group.index, primary)
        if not order:
            continue
        row = {"quadrant": f"{size} + {label}", "target_size": n,
               "advice": ADVICE_TEXT[(size, label)], "advised": strategy,
               "winner": frame.at[order[0], "strategy"]}
        advised = group.index[group.strategy == strategy]
        rows.append(row | (_measured(frame, scores, advised[0], order, primary)
                           if len(advised) else {"verdict": "not measured"}))
    return pd.DataFrame(rows)


def advice_method(primary: MetricInfo) -> dict[str, Any]:
    """How the quadrants are judged, for the manifest: the tests and the margin."""
    return {"tests": verdicts.PAIRED_TESTS, "alpha": verdicts.ALPHA,
            "margin": f"{verdicts.parse_margin(primary.margin)} ({primary.name})"}


def _measured(frame: pd.DataFrame, scores: list[verdicts.Scored], mine: int, order: list[int],
              primary: MetricInfo) -> dict[str, Any]:
    """The advised strategy (row `mine`) against each other one at its target and size."""
    best = order[0]
    margin = verdicts.parse_margin(primary.margin).of(frame.at[best, "test_mean"])
    others = {frame.at[i, "strategy"]: scores[i] for i in order if i != mine}
    outcomes = verdicts.advised_versus_each(scores[mine], others, margin,
                                            primary.greater_is_better)
    versus = "; ".join(f"{name}: {shown} ({_evidence(diff, margin)})"
                       for name, (diff, shown) in outcomes.items())
    diff = outcomes.get(frame.at[best, "strategy"], (None, ""))[0]
    interval = diff.interval() if diff is not None and diff.n >= 2 else None
    return {"advised_mean": frame.at[mine, "test_mean"],
            "winner_mean": frame.at[best, "test_mean"],
            "diff": math.nan if diff is None else diff.mean,  # advised − winner
            "diff_ci_half": math.nan if interval is None else (interval.high - interval.low) / 2,
            "p": math.nan if interval is None else diff.p_value(),
            "margin": margin, "tests": verdicts.PAIRED_TESTS, "versus": versus,
            "verdict": verdicts.agreement([shown for _, shown in outcomes.values()])}


def _evidence(diff: verdicts.Estimate, margin: float) -> str:
    """advised − other, its p and its TOST p within ±margin."""
    if diff.n < 2:
        return f"{diff.n} seeds in common"
    return (f"{diff.mean:+.3f}, p {diff.p_value():.2g}, "
            f"TOST ±{margin:.3g} p {diff.equivalence_p(margin):.2g}")
