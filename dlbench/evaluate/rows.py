"""Tidy result rows from trained members: the one place score and curve rows are built.

A runner gives each member's identifying columns (its `key`: dataset, cell coordinates, fold,
seed, ...) and its status; the rows add what was measured, in the same columns for every command.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dlbench.engine.members import MemberResult
from dlbench.engine.predictions import Predictions
from dlbench.evaluate.metrics import MetricInfo, score


def score_rows(result: MemberResult, key: dict[str, Any], metrics: Sequence[MetricInfo],
               status: str, predictions: dict[str, Predictions] | None = None
               ) -> list[dict[str, Any]]:
    """One row per split × metric of the member's final predictions (or of `predictions`,
    e.g. those with its best epoch's weights)."""
    return [row for split, pred in (predictions or result.predictions).items()
            for row in value_rows(key, split, score(pred, metrics), status)]


def value_rows(key: dict[str, Any], split: str, values: dict[str, float],
               status: str) -> list[dict[str, Any]]:
    """One row per metric → value measured on a split. A diverged member predicts argmax(NaN)
    = class 0, which can score near chance; that is no measurement, so its values are NaN
    (left out of the estimates)."""
    return [{**key, "split": split, "metric": metric,
             "value": np.nan if status == "diverged" else value, "status": status}
            for metric, value in values.items()]


def curve_rows(result: MemberResult, key: dict[str, Any], status: str) -> list[dict[str, Any]]:
    """One row per epoch × split × metric, with the member's cumulative cost at that epoch."""
    return [{**key, "epoch": epoch, "split": split, "metric": metric,
             "value": result.trusted(epoch, value),
             "grad_evals": result.cost[epoch].grad_evals,
             "examples": result.cost[epoch].examples, "status": status}
            for epoch, split, metric, value in result.curves]
