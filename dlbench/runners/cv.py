"""`dlbench cv`: hold-out, k-fold and iterated k-fold estimates, leakage-safe.

Decides *what* to train — one member per (repeat, fold, seed), plus one refit per seed on all
train+validation rows when there is a test split — and leaves *how* to the stacked trainer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dlbench import stats
from dlbench.datasets import Dataset, DataSpec, load_dataset
from dlbench.errors import DlbenchError
from dlbench.metrics import METRICS, MetricInfo, chance_predictions, resolve_metrics, score
from dlbench.models import ModelSpec
from dlbench.seeding import derive_seed
from dlbench.splits import Split, SplitConfig, dev_and_test, make_splits, shared_duplicates
from dlbench.trainer import (
    Member,
    MemberResult,
    TrainConfig,
    check_config,
    resolve_device,
    train,
)

CHANCE = "chance"  # the model name of the baseline rows
NA = -1  # repeat/fold/seed where not applicable (chance has no seed; the refit has no fold)


@dataclass(frozen=True)
class CVConfig:
    data: DataSpec = field(default_factory=DataSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    train: TrainConfig = field(default_factory=TrainConfig)
    split: SplitConfig = field(default_factory=SplitConfig)  # split.seed seeds everything
    seeds: int = 1  # initialisations trained per split (members per split)
    test_fraction: float | None = None  # carve an untouched test split when the dataset has none
    metrics: tuple[str, ...] = ()  # empty: the task's defaults


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


@dataclass(eq=False)
class CVResult:
    plan: Plan
    scores: pd.DataFrame
    curves: pd.DataFrame
    splits: pd.DataFrame
    summary: pd.DataFrame
    info: dict[str, Any]


def prepare(config: CVConfig) -> Plan:
    dataset = load_dataset(config.data)
    _check(config, dataset)
    metrics = resolve_metrics(list(config.metrics), dataset.task)
    s = config.split
    dev, test = dev_and_test(dataset, config.test_fraction, seed=s.seed, stratify=s.stratify,
                             time_order=s.time_order)
    groups = None if dataset.groups is None else dataset.groups[dev]
    splits = [Split(s.repeat, s.fold, dev[s.train], dev[s.val])
              for s in make_splits(dataset.y[dev], config.split, task=dataset.task, groups=groups)]
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


def run(plan: Plan, progress=None) -> CVResult:
    start = time.perf_counter()
    cfg = plan.config
    results = train(plan.dataset, cfg.model, cfg.train, plan.members, progress)
    scores = pd.DataFrame(_score_rows(plan, results) + _chance_rows(plan))
    curves = pd.DataFrame(_curve_rows(plan, results))
    summary = summarize(scores, plan)
    info = {
        "dataset": {"name": plan.dataset.name, "fingerprint": plan.dataset.fingerprint(),
                    "samples": plan.dataset.n_samples, "features": plan.dataset.n_features,
                    "classes": plan.dataset.n_classes, "task": plan.dataset.task},
        "device": str(resolve_device(cfg.train.device)),
        "members": len(plan.members),
        "diverged": sum(r.status == "diverged" for r in results),
        "duplicates": plan.duplicates,
        "interval": summary["interval"].iloc[0] if len(summary) else None,
        "seconds": round(time.perf_counter() - start, 3),
    }
    return CVResult(plan, scores, curves, _split_rows(plan), summary, info)


def _key(plan: Plan, model: str, key: dict[str, int]) -> dict[str, Any]:
    cfg = plan.config
    trained = model != CHANCE
    return {"dataset": plan.dataset.name, "model": model,
            "optimizer": cfg.train.optimizer.label if trained else "",
            "lr": cfg.train.optimizer.lr if trained else np.nan, "protocol": cfg.split.protocol,
            "repeat": key["repeat"], "fold": key["fold"], "seed": key.get("seed", NA)}


def _score_rows(plan: Plan, results: list[MemberResult]) -> list[dict[str, Any]]:
    rows = []
    for r in results:
        base = _key(plan, plan.config.model.name, r.member.key)
        for split, pred in r.predictions.items():
            for metric, value in score(pred, plan.metrics).items():
                # A diverged member predicts argmax(NaN) = class 0, which can score near chance;
                # that is no measurement, so all its scores are NaN (left out of the estimates).
                rows.append({**base, "split": split, "metric": metric,
                             "value": np.nan if r.status == "diverged" else value,
                             "status": r.status})
    return rows


def _chance_rows(plan: Plan) -> list[dict[str, Any]]:
    """The majority-class / mean predictor, fitted and scored on exactly the same splits."""
    ds, rows = plan.dataset, []
    parts = [({"repeat": s.repeat, "fold": s.fold}, s.train, {"val": s.val}) for s in plan.splits]
    if plan.test is not None:
        parts.append(({"repeat": NA, "fold": NA}, plan.dev, {"test": plan.test}))
    for key, train_rows, evals in parts:
        for split, eval_rows in {"train": train_rows, **evals}.items():
            pred = chance_predictions(ds.y[train_rows], ds.y[eval_rows], task=ds.task,
                                      n_classes=ds.n_classes)
            for metric, value in score(pred, plan.metrics).items():
                rows.append({**_key(plan, CHANCE, key), "split": split, "metric": metric,
                             "value": value, "status": "ok"})
    return rows


def _curve_rows(plan: Plan, results: list[MemberResult]) -> list[dict[str, Any]]:
    return [{**_key(plan, plan.config.model.name, r.member.key), "epoch": epoch, "split": split,
             "metric": metric, "value": r.trusted(epoch, value), "status": r.status}
            for r in results for epoch, split, metric, value in r.curves]


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


def summarize(scores: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    """One row per split × metric for the trained model, with its chance baseline beside it."""
    model = plan.config.model.name
    n_train = float(np.mean([len(s.train) for s in plan.splits]))
    n_val = float(np.mean([len(s.val) for s in plan.splits]))
    rows = []
    for (split, metric), group in scores.groupby(["split", "metric"], sort=False):
        if split != "test":  # the refit on train+val (repeat -1) is no unit of the k-fold estimate
            group = group[group["repeat"] != NA]
        # average seeds within each split first: the splits are the units of the estimate
        units = group.groupby(["model", "repeat", "fold"])["value"].mean()
        ours, chance = units.get(model), units.get(CHANCE)
        if split == "test":
            interval = stats.t_interval(group[group.model == model]["value"], unit="seeds")
            p = np.nan  # one test split: no resampling to test against
        else:
            interval = _cv_interval(ours, group[group.model == model]["value"], n_train, n_val)
            diffs = ours.to_numpy() - chance.reindex(ours.index).to_numpy()
            p = _p_value(diffs, n_train, n_val)
        info = METRICS.get(metric)
        better = info.greater_is_better
        low, high = info.bounds  # a t interval can cross what the metric can take: clip it
        diff = interval.mean - float(chance.mean())
        spread = ours if split != "test" else group[group.model == model]["value"]
        rows.append({"split": split, "metric": metric, "n": interval.n, "mean": interval.mean,
                     "std": interval.std, "min": spread.min(), "max": spread.max(),
                     "ci_low": max(interval.low, low), "ci_high": min(interval.high, high),
                     "interval": interval.method, "chance": float(chance.mean()), "diff": diff,
                     "p_value": p, "beats_chance": _beats(diff, p, better)})
    order = {"train": 0, "val": 1, "test": 2}
    frame = pd.DataFrame(rows)
    return frame.sort_values("split", key=lambda s: s.map(order), kind="stable",
                             ignore_index=True)


def _cv_interval(units: pd.Series, seed_values: pd.Series, n_train: float, n_val: float):
    if len(units) > 1:
        return stats.corrected_t_interval(units, n_train=n_train, n_test=n_val)
    return stats.t_interval(seed_values, unit="seeds")  # a single split: only seeds vary


def _p_value(diffs: np.ndarray, n_train: float, n_val: float) -> float:
    if len(diffs) > 1:
        return stats.paired_p_value(diffs, n_train=n_train, n_test=n_val)
    return np.nan


def _beats(diff: float, p: float, greater_is_better: bool) -> bool | None:
    if not np.isfinite(p):
        return None
    return bool(p < 0.05 and (diff > 0) == greater_is_better and diff != 0)
