"""`dlbench cv`: hold-out, k-fold and iterated k-fold estimates, leakage-safe.

Decides *what* to train — one member per (repeat, fold, seed), plus one refit per seed on all
train+validation rows when there is a test split — and leaves *how* to the stacked trainer.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from dlbench import plugins
from dlbench.data.datasets import Dataset, DataSpec, load_dataset
from dlbench.data.splits import (
    Split,
    SplitConfig,
    dev_and_test,
    make_splits,
    shared_duplicates,
    split_record,
)
from dlbench.engine import sizes
from dlbench.engine.cells import Cell, tasks
from dlbench.engine.execution import Engine
from dlbench.engine.members import Member, MemberResult, TrainConfig, resolve_device
from dlbench.engine.trainer import check_config
from dlbench.errors import DlbenchError
from dlbench.evaluate import stats, verdicts
from dlbench.evaluate.metrics import (
    MetricInfo,
    Predictions,
    chance_predictions,
    metric_info,
    resolve_metrics,
    score,
)
from dlbench.evaluate.rows import curve_rows, score_rows
from dlbench.nn.models import ModelSpec
from dlbench.seeding import derive_seed

CHANCE = "chance"  # the model name of the baseline rows
ALPHA = 0.05  # "beats chance": the one-sided test's level
NA = -1  # repeat/fold/seed where not applicable (chance has no seed; the refit has no fold)


TRAINS_CELLS = True  # the Runner protocol (runners/base.py): its cells run through an Engine


@dataclass(frozen=True)
class CVConfig:
    data: DataSpec = field(default_factory=DataSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    train: TrainConfig = field(default_factory=TrainConfig)
    split: SplitConfig = field(default_factory=SplitConfig)  # split.seed seeds everything
    seeds: int = 1  # initialisations trained per split (members per split)
    test_fraction: float | None = None  # carve an untouched test split when the dataset has none
    metrics: tuple[str, ...] = ()  # empty: the task's defaults
    allow_large: bool = False  # run even when the size estimate refuses it

    def record(self) -> dict[str, Any]:
        """What the manifest keeps of it."""
        return asdict(self)


@dataclass(eq=False)
class Plan:
    """A validated run: everything is checked before anything trains or is written."""

    config: CVConfig
    dataset: Dataset
    metrics: list[MetricInfo]
    dev: np.ndarray  # rows available for train/validation
    test: np.ndarray | None  # the untouched test rows, if any
    splits: list[Split]  # positions are dataset rows
    members: list[Member]
    duplicates: dict[str, Any]

    @property
    def total_epochs(self) -> int:
        return len(self.members) * self.config.train.epochs

    @property
    def warnings(self) -> list[str]:
        """What the user should know before the numbers: said on stderr before training."""
        found = []
        if self.dataset.time is not None and not self.config.split.time_order:
            found.append(f"{self.dataset.name} is time-ordered and these splits shuffle it, so "
                         "later rows train models scored on earlier ones; pass --time-order")
        d = self.duplicates
        if d["train_val"] or d["dev_test"]:
            test = f", and {d['dev_test']} test rows a train+val row" if d["dev_test"] else ""
            found.append(f"validation rows duplicate a training row of their split "
                         f"{d['train_val']} times over {len(d['per_split'])} splits{test}; "
                         "this inflates the estimate; pass --dedupe to drop duplicates")
        return found


@dataclass(eq=False)
class CVResult:
    plan: Plan
    scores: pd.DataFrame
    curves: pd.DataFrame
    splits: pd.DataFrame
    summary: pd.DataFrame
    info: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        return {"scores": self.scores, "curves": self.curves, "splits": self.splits,
                "summary": self.summary}


def prepare(config: CVConfig) -> Plan:
    dataset = load_dataset(config.data)
    _check(config, dataset)
    metrics = resolve_metrics(list(config.metrics), dataset.task, dataset)
    s = config.split
    dev, test = dev_and_test(dataset, config.test_fraction, seed=s.seed, stratify=s.stratify,
                             time_order=s.time_order)
    groups = None if dataset.groups is None else dataset.groups[dev]
    splits = [Split(s.repeat, s.fold, dev[s.train], dev[s.val])
              for s in make_splits(dataset.y[dev], config.split, task=dataset.task, groups=groups)]
    _check_size(config, dataset, splits, dev, test)
    members = _members(config, splits, dev, test)
    return Plan(config, dataset, metrics, dev, test, splits, members,
                _duplicates(dataset.X, splits, dev, test))


def _check(config: CVConfig, dataset: Dataset) -> None:
    check_config(config.train, config.model, dataset)
    if config.seeds < 1:
        raise DlbenchError(f"--seeds must be positive, got {config.seeds}")
    if config.test_fraction is not None and dataset.test_index is not None:
        raise DlbenchError(f"dataset {dataset.name} has a fixed test split already; "
                           "drop --test-fraction")
    if config.test_fraction is not None and not 0 < config.test_fraction < 1:
        raise DlbenchError("--test-fraction must be strictly between 0 and 1 "
                           f"(got {config.test_fraction})")
    if config.split.time_order and dataset.groups is not None:
        raise DlbenchError("--time-order cannot keep groups apart; drop --group or --time-order")


def _check_size(config: CVConfig, dataset: Dataset, splits: list[Split], dev, test) -> None:
    n_members = config.seeds * (len(splits) + (test is not None))
    n_train = len(dev) if test is not None else max(len(s.train) for s in splits)
    evaluated = len(dev) + (0 if test is None else len(test))
    sizes.check(dataset, [sizes.Job(config.model, (config.train,), n_members, n_train,
                                    evaluated)],
                resolve_device(config.train.device), config.allow_large)


def _members(config: CVConfig, splits: list[Split], dev, test) -> list[Member]:
    seed = config.split.seed
    members = [Member({"repeat": s.repeat, "fold": s.fold, "seed": i},
                      derive_seed(seed, 0, s.repeat, s.fold, i), s.train, {"val": s.val})
               for s in splits for i in range(config.seeds)]
    if test is not None:  # after validation: refit on train+validation, test once per seed
        members += [Member({"repeat": NA, "fold": NA, "seed": i}, derive_seed(seed, 1, i), dev,
                           {"test": test}) for i in range(config.seeds)]
    return members


def _duplicates(X, splits: list[Split], dev, test) -> dict[str, Any]:
    """Evaluation rows whose features exactly equal a training row of the same split."""
    per_split = [shared_duplicates(X, s.train, s.val) for s in splits]
    return {"train_val": int(sum(per_split)), "per_split": per_split,
            "dev_test": 0 if test is None else shared_duplicates(X, dev, test)}


def run(plan: Plan, engine: Engine | None = None) -> CVResult:
    start = time.perf_counter()
    cfg = plan.config
    [(task, _)] = tasks(plan.dataset, [Cell(cfg.model, cfg.train)], lambda cell: plan.members)
    [[results]] = (engine or Engine()).run(plan.dataset, [task])
    chance = _chance(plan)
    statuses = [_status(plan, r, chance) for r in results]
    scores = pd.DataFrame([row for r, status in zip(results, statuses, strict=True)
                           for row in score_rows(r, _key(plan, cfg.model.name, r.member.key),
                                                 plan.metrics, status)]
                          + _chance_rows(plan, chance))
    curves = pd.DataFrame([row for r, status in zip(results, statuses, strict=True)
                           for row in curve_rows(r, _key(plan, cfg.model.name, r.member.key),
                                                 status)])
    summary = summarize(scores, plan, results, chance)
    info = {
        "dataset": {"name": plan.dataset.name, "fingerprint": plan.dataset.fingerprint(),
                    "samples": plan.dataset.n_samples, "features": plan.dataset.n_features,
                    "classes": plan.dataset.n_classes, "task": plan.dataset.task},
        "seed": cfg.split.seed,
        "device": str(resolve_device(cfg.train.device)),
        "members": len(plan.members),
        "statuses": {s: statuses.count(s) for s in verdicts.STATUSES if s in statuses},
        "duplicates": plan.duplicates,
        "splits": _split_records(plan),
        "seconds": round(time.perf_counter() - start, 3),
        **plugins.record(cfg),
    }
    return CVResult(plan, scores, curves, _split_rows(plan), summary, info)


def _split_records(plan: Plan) -> list[dict[str, Any]]:
    """Each split's sizes and rows (and the refit's), for `compare` to pair runs by."""
    fingerprint = plan.dataset.fingerprint()
    records = [split_record(fingerprint, s.train, s.val, repeat=s.repeat, fold=s.fold)
               for s in plan.splits]
    if plan.test is not None:
        records.append(split_record(fingerprint, plan.dev, plan.test, repeat=NA, fold=NA))
    return records


def _status(plan: Plan, result: MemberResult, chance: dict) -> str:
    """The member's status; near chance means near its split's majority class."""
    if plan.dataset.task != "classification":
        return verdicts.status(result, None)
    key = result.member.key
    split = next(iter(result.member.evals))  # validation, or test for a refit
    pred = chance[key["repeat"], key["fold"]][split]
    return verdicts.status(result, float(np.mean(pred.y_pred == pred.y_true)))


def _key(plan: Plan, model: str, key: dict[str, int]) -> dict[str, Any]:
    cfg = plan.config
    trained = model != CHANCE
    return {"dataset": plan.dataset.name, "model": model,
            "optimizer": cfg.train.optimizer.label if trained else "",
            "lr": cfg.train.optimizer.lr if trained else np.nan, "protocol": cfg.split.protocol,
            "repeat": key["repeat"], "fold": key["fold"], "seed": key.get("seed", NA)}


def _chance(plan: Plan) -> dict[tuple[int, int], dict[str, Predictions]]:
    """The majority-class / mean predictor, fitted on each split's training rows (and on all
    train+validation rows for the refit) -> (repeat, fold) -> split -> its predictions."""
    ds = plan.dataset
    parts = [(s.repeat, s.fold, s.train, {"val": s.val}) for s in plan.splits]
    if plan.test is not None:
        parts.append((NA, NA, plan.dev, {"test": plan.test}))
    return {(repeat, fold): {split: chance_predictions(ds.y[train], ds.y[rows], task=ds.task,
                                                        n_classes=ds.n_classes)
                             for split, rows in {"train": train, **evals}.items()}
            for repeat, fold, train, evals in parts}


def _chance_rows(plan: Plan, chance: dict) -> list[dict[str, Any]]:
    """The chance predictor scored on exactly the same splits as the model."""
    return [{**_key(plan, CHANCE, {"repeat": repeat, "fold": fold}), "split": split,
             "metric": metric, "value": value, "status": "ok"}
            for (repeat, fold), splits in chance.items() for split, pred in splits.items()
            for metric, value in score(pred, plan.metrics).items()]


def _split_rows(plan: Plan) -> pd.DataFrame:
    """One row per repeat × fold × sample: which role each dataset row played."""
    frames = []
    for s in plan.splits:
        parts = [("train", s.train), ("val", s.val)]
        if plan.test is not None:
            parts.append(("test", plan.test))
        for role, rows in parts:
            frames.append(pd.DataFrame({"repeat": s.repeat, "fold": s.fold, "sample": rows,
                                        "role": role}))
    return pd.concat(frames, ignore_index=True)


# --- the summary: estimates, intervals, and the comparison with chance -----------------------

RESUBSTITUTION = "none: resubstitution (scored on the rows it trained on)"


def summarize(scores: pd.DataFrame, plan: Plan, results: list[MemberResult],
              chance: dict) -> pd.DataFrame:
    """One row per split × metric for the trained model, with its chance baseline beside it.

    What varies, and so what an interval covers, depends on the design:
    - train: resubstitution figures, no interval or test;
    - several shuffled splits (k-fold, iterated k-fold, repeated hold-out): the splits are the
      units (seeds averaged within each), corrected resampled t (Nadeau & Bengio);
    - forward-chaining folds (--time-order k-fold): not exchangeable (each trains on more of
      the past), so a plain t over folds, labelled a heuristic, and the last fold beside it;
    - one split (a single hold-out, or the test split): seeds and the evaluation rows.
    """
    model = plan.config.model.name
    one_split = {split: _one_split(plan, results, chance, split) for split in ("val", "test")
                 if split == "test" and plan.test is not None
                 or split == "val" and len(plan.splits) == 1}
    rows = []
    for (split, metric), group in scores.groupby(["split", "metric"], sort=False):
        if split != "test":  # the refit on train+val (repeat -1) is no unit of the k-fold estimate
            group = group[group["repeat"] != NA]
        units = group.groupby(["model", "repeat", "fold"])["value"].mean()
        info = metric_info(metric)
        ours, base = units.get(model), units.get(CHANCE)
        estimate, diff, unit = _estimates(plan, split, info, ours, base, one_split.get(split))
        rows.append(_summary_row(split, info, estimate, diff, unit, ours, base,
                                 group[group.model == model]))
    order = {"train": 0, "val": 1, "test": 2}
    frame = pd.DataFrame(rows)
    return frame.sort_values("split", key=lambda s: s.map(order), kind="stable",
                             ignore_index=True)


@dataclass(frozen=True, eq=False)
class _OneSplit:
    """One split's seeds: their predictions, the chance predictor's, the row resamples."""

    preds: list[Predictions]
    finite: list[bool]  # not diverged
    chance: Predictions
    resamples: np.ndarray  # (B, rows) bootstrap counts, shared by model and chance: paired

    def scored(self, metric: MetricInfo) -> tuple[verdicts.Scored, verdicts.Scored]:
        """(the model's seeds, chance as many times) on every row and on the resamples."""
        return (verdicts.Scored.of(self.preds, metric, self.resamples, self.finite),
                verdicts.Scored.of([self.chance] * len(self.preds), metric, self.resamples,
                                   [True] * len(self.preds)))


def _one_split(plan: Plan, results: list[MemberResult], chance: dict, split: str) -> _OneSplit:
    members = [r for r in results if split in r.member.evals
               and (split == "test" or r.member.key["repeat"] != NA)]
    key = members[0].member.key
    rows = len(members[0].member.evals[split])
    return _OneSplit([r.predictions[split] for r in members],
                     [r.status != "diverged" for r in members],
                     chance[key["repeat"], key["fold"]][split],
                     stats.row_resamples(rows, plan.config.split.seed))


def _estimates(plan: Plan, split: str, metric: MetricInfo, ours: pd.Series, chance: pd.Series,
               one_split: _OneSplit | None):
    """(the model's estimate, model − chance, the unit) for one split and metric."""
    if split == "train":
        return stats.seeds_estimate(ours, "splits"), None, "splits"
    if one_split is None:  # several splits: they are the units
        diffs = ours.to_numpy() - chance.reindex(ours.index).to_numpy()
        if plan.config.split.time_order:  # forward chaining: no Nadeau-Bengio
            unit = "forward-chaining folds"
            return (_heuristic(stats.seeds_estimate(ours, unit)),
                    _heuristic(stats.seeds_estimate(diffs, unit)), "folds")
        n_train = float(np.mean([len(s.train) for s in plan.splits]))
        n_val = float(np.mean([len(s.val) for s in plan.splits]))
        return (stats.corrected_estimate(ours, n_train=n_train, n_test=n_val),
                stats.corrected_estimate(diffs, n_train=n_train, n_test=n_val), "splits")
    # one split: its seeds, and the sampling of its evaluation rows
    model, base = one_split.scored(metric)
    estimate, diff = model.estimate(), model.minus(base)
    if plan.config.split.time_order:  # the rows are a time series, not exchangeable draws
        estimate, diff = _heuristic(estimate), _heuristic(diff)
    return estimate, diff, "seeds"


def _heuristic(estimate: stats.Estimate) -> stats.Estimate:
    return replace(estimate, method=f"heuristic: plain {estimate.method} (not exchangeable)")


def _summary_row(split, metric: MetricInfo, estimate, diff, unit, ours, chance,
                 values) -> dict[str, Any]:
    """values: the model's rows of this split and metric (one per member)."""
    spread = ours if unit != "seeds" else values["value"]  # one split: its seeds' range
    low = high = np.nan
    clipped = False
    if diff is not None:
        interval = estimate.interval()
        low, high, clipped = metric.clip(interval.low, interval.high)
    side = "greater" if metric.greater_is_better else "less"
    p = diff.p_value(side) if diff is not None else np.nan
    return {
        "split": split, "metric": metric.name, "n": estimate.n, "unit": unit,
        "mean": estimate.mean, "std": estimate.std, "min": spread.min(), "max": spread.max(),
        "last": float(ours.iloc[-1]) if unit == "folds" else np.nan,
        "ci_low": low, "ci_high": high, "ci_clipped": clipped,
        "interval": estimate.method if diff is not None else RESUBSTITUTION,
        "chance": float(chance.mean()),
        # the paired model − chance difference the test weighs (units where both are finite)
        "diff": diff.mean if diff is not None else estimate.mean - float(chance.mean()),
        "p_value": p, "p_test": _test_name(diff, side) if diff is not None else "",
        "beats_chance": bool(p < ALPHA) if np.isfinite(p) else None}


def _test_name(diff: stats.Estimate, side: str) -> str:
    better = "higher" if side == "greater" else "lower"
    return f"one-sided, H1: model {better} than chance; {diff.method}"
