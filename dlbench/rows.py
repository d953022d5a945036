"""Tidy result rows from trained members: the one place score and curve rows are built.

A runner gives each member's identifying columns (its `key`: dataset, cell coordinates, fold,
seed, ...) and its status; the rows add what was measured, in the same columns for every command.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dlbench.metrics import MetricInfo, score
from dlbench.trainer import MemberResult


def score_rows(result: MemberResult, key: dict[str, Any], metrics: Sequence[MetricInfo],
               status: str) -> list[dict[str, Any]]:
    """One row per split × metric of the member's final predictions."""
    rows = []
    for split, pred in result.predictions.items():
        for metric, value in score(pred, metrics).items():
            # A diverged member predicts argmax(NaN) = class 0, which can score near chance;
            # that is no measurement, so all its scores are NaN (left out of the estimates).
            rows.append({**key, "split": split, "metric": metric,
                         "value": np.nan if status == "diverged" else value, "status": status})
    return rows


def curve_rows(result: MemberResult, key: dict[str, Any], status: str) -> list[dict[str, Any]]:
    """One row per epoch × split × metric, with the member's cumulative cost at that epoch."""
    return [{**key, "epoch": epoch, "split": split, "metric": metric,
             "value": result.trusted(epoch, value),
             "grad_evals": result.cost[epoch].grad_evals,
             "examples": result.cost[epoch].examples, "status": status}
            for epoch, split, metric, value in result.curves]
