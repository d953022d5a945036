"""What a trained member predicts on one split, and an ensemble's prediction from its members'.

The trainer makes these; the metrics in `dlbench.evaluate` score them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Predictions:
    y_true: np.ndarray  # (n,) int class index, or float target
    y_pred: np.ndarray  # (n,) predicted class index, or predicted value (original units)
    proba: np.ndarray | None  # (n, C) class probabilities, classification only
    n_classes: int = 0  # C (classification); 0 for regression
    y_scale: float = 1.0  # regression: training-part std of the target; `loss` is MSE in it

    def __post_init__(self) -> None:
        if self.proba is not None and self.proba.shape != (len(self.y_true), self.n_classes):
            raise ValueError(
                f"proba shape {self.proba.shape} is not (n, n_classes) = "
                f"({len(self.y_true)}, {self.n_classes})"
            )


def averaged(preds: Sequence[Predictions]) -> Predictions:
    """An ensemble's prediction from its members' on the same rows: the mean of their class
    probabilities (its class: their argmax), or of their values for regression."""
    first = preds[0]
    if first.proba is None:
        return Predictions(first.y_true, np.mean([p.y_pred for p in preds], axis=0), None, 0,
                           first.y_scale)
    proba = np.mean([p.proba for p in preds], axis=0)
    return Predictions(first.y_true, proba.argmax(1), proba, first.n_classes)
