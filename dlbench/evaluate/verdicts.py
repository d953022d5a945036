"""Verdicts on trained members: one status word each, and each word means one thing.

- diverged: a training loss became NaN/inf (its scores are NaN: no measurement);
- unstable: finite, but the training loss rose well above its best (or its start);
- stalled: otherwise, the model learned nothing usable: for classification, validation
  accuracy stayed near chance, whatever the training criterion did (a perceptron's criterion
  falls to 0 on XOR at chance accuracy, its log-loss stays at ln 2); without a chance level
  (regression, a function's value), the loss barely decreased;
- ok: anything else.

Every loss here is the eval-mode loss over the member's training rows, at the start (epoch 0)
and after each epoch, so the start and the end are measured the same way (with dropout, the
running train-mode mean of the minibatches is no match for an eval-mode start).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dlbench.engine.members import MemberResult
from dlbench.engine.predictions import Predictions
from dlbench.errors import DlbenchError
from dlbench.evaluate.metrics import MetricInfo, chance_predictions
from dlbench.evaluate.stats import Estimate, seeds_and_rows_estimate

STATUSES = ("ok", "stalled", "unstable", "diverged")  # in order of severity
GIVE_BACK = 0.5  # unstable: the loss gave back more than this share of its best improvement ...
RISE = 0.05  # ... and rose above its best by more than this × its start
STALLED_FRACTION = 0.9  # stalled without a chance level: the final loss is above this × start
NEAR_CHANCE = 0.1  # stalled: validation accuracy closes less than this share of chance → 1


def training_loss(result: MemberResult) -> list[float]:
    """The eval-mode training loss at epoch 0, 1, ..., E."""
    return result.curve("train", "loss", trusted=False)


def status(result: MemberResult, chance_accuracy: float | None) -> str:
    """A trained member's status; chance_accuracy is None for regression (no accuracy)."""
    return judge(training_loss(result), near_chance=_near_chance(result, chance_accuracy),
                 nonfinite=result.status == "diverged")


def judge(loss: Sequence[float], *, near_chance: bool | None = None,
          nonfinite: bool = False) -> str:
    """The status of a loss sequence (start first) that must fall toward 0, the floor.
    near_chance: whether the evaluation metric stayed near chance, which alone decides
    "stalled"; None where there is no chance level: then the loss barely falling decides."""
    start, final = loss[0], loss[-1]
    if nonfinite or not math.isfinite(final):
        return "diverged"
    best = min(v for v in loss if math.isfinite(v))
    rise = final - best
    if rise > GIVE_BACK * (start - best) and rise > RISE * start:
        return "unstable"
    barely_fell = final > STALLED_FRACTION * start
    if barely_fell if near_chance is None else near_chance:
        return "stalled"
    return "ok"


def _near_chance(result: MemberResult, chance: float | None) -> bool | None:
    if chance is None:
        return None  # regression: the loss alone says it
    split = next(iter(result.member.evals), "train")  # validation (test, for a refit)
    pred = result.predictions[split]
    return float(np.mean(pred.y_pred == pred.y_true)) <= chance + NEAR_CHANCE * (1 - chance)


def chance_accuracy(y_train: np.ndarray, y_eval: np.ndarray, task: str,
                    n_classes: int) -> float | None:
    """The accuracy of the majority class of the training rows on the evaluation rows."""
    if task != "classification":
        return None
    pred = chance_predictions(y_train, y_eval, task=task, n_classes=n_classes)
    return float(np.mean(pred.y_pred == pred.y_true))


def summary(statuses: Sequence[str]) -> tuple[str, str]:
    """(the status most seeds share, ties to the worse; '2 ok, 1 unstable' when they differ)."""
    counts = {s: statuses.count(s) for s in STATUSES if s in statuses}
    common = max(counts, key=lambda s: (counts[s], STATUSES.index(s)))
    return common, ", ".join(f"{n} {s}" for s, n in counts.items())


# --- ranking configurations against the best, paired over seeds and evaluation rows ----------

ALPHA = 0.05  # every test here: one level, said in the notes


@dataclass(frozen=True)
class Margin:
    """How close counts as equivalent: in the metric's units, or a share of the best's value."""

    value: float
    relative: bool = False

    def of(self, best: float) -> float:
        return self.value * abs(best) if self.relative else self.value

    def __str__(self) -> str:
        return f"{self.value * 100:g}% of #1" if self.relative else f"{self.value:g}"


def parse_margin(text: str, option: str = "--margin") -> Margin:
    """'0.01' (metric units) or '2%' (of the best cell's value)."""
    body, relative = (text[:-1], True) if text.strip().endswith("%") else (text, False)
    try:
        value = float(body)
    except ValueError:
        raise DlbenchError(f"{option} takes a number in the metric's units (0.01) or a "
                           f"percentage of the best value (2%); got '{text}'") from None
    if not math.isfinite(value):
        raise DlbenchError(f"{option} must be a finite number, got '{text}'")
    if value <= 0:
        raise DlbenchError(f"{option} must be positive, got '{text}'")
    return Margin(value / 100 if relative else value, relative)


@dataclass(frozen=True, eq=False)
class Scored:
    """One configuration's score on one set of evaluation rows, per seed (paired by index with
    every other configuration's): on all rows, and on the shared bootstrap resamples."""

    per_seed: np.ndarray  # (S,), NaN for a diverged seed
    replicates: np.ndarray  # (S, B)

    @classmethod
    def of(cls, preds: Sequence[Predictions], metric: MetricInfo, resamples: np.ndarray,
           finite: Sequence[bool]) -> Scored:
        """Each seed's predictions on the same rows, scored on them all and on the resamples
        (counts (B, n), stats.row_resamples); a seed that is not `finite` (diverged) is NaN."""
        rows = resamples.shape[1]
        per_seed = np.array([metric.weighted(p, np.ones((1, rows)))[0] if ok else np.nan
                             for p, ok in zip(preds, finite, strict=True)])
        replicates = np.stack([metric.weighted(p, resamples) if ok
                               else np.full(len(resamples), np.nan)
                               for p, ok in zip(preds, finite, strict=True)])
        return cls(per_seed, replicates)

    def estimate(self) -> Estimate:
        return seeds_and_rows_estimate(self.per_seed, self.replicates)

    def minus(self, other: Scored) -> Estimate:
        """The paired difference self − other, over the seeds finite in both."""
        both = np.isfinite(self.per_seed) & np.isfinite(other.per_seed)
        return seeds_and_rows_estimate(self.per_seed[both] - other.per_seed[both],
                                       self.replicates[both] - other.replicates[both])


def versus_best(cell: Scored, best: Scored, margin: float,
                greater_is_better: bool) -> tuple[Estimate, str]:
    """The paired difference cell − best, and what it shows: equivalent (TOST within ±margin),
    worse (its 95% interval excludes 0; better, where the seeds finite in both say so),
    inconclusive (neither), too few seeds (under 2 in common: the seeds' variance cannot
    be estimated, so nothing is shown), or diverged (no seed has a finite score)."""
    diff = cell.minus(best)
    if not np.isfinite(cell.per_seed).any():
        return diff, "diverged"
    if diff.n < 2:
        return diff, "too few seeds"
    if diff.equivalence_p(margin) < ALPHA:
        return diff, "equivalent"
    interval = diff.interval(1 - ALPHA)
    if interval.low <= 0 <= interval.high:
        return diff, "inconclusive"
    return diff, "better" if (diff.mean > 0) == greater_is_better else "worse"


# --- an advised configuration against every other --------------------------------------------

# what a comparison of the advised configuration with one other counts as (versus_best's words)
SHOWN_AT_LEAST_AS_GOOD = ("better", "equivalent")
PAIRED_TESTS = (f"paired t over seeds and a bootstrap of the evaluation rows (α {ALPHA}); "
                f"equivalence by TOST (α {ALPHA})")


def advised_versus_each(advised: Scored, others: dict[str, Scored], margin: float,
                        greater_is_better: bool) -> dict[str, tuple[Estimate, str]]:
    """The paired difference advised − other, and what it shows (versus_best's words: better
    means the advised is better), for each other configuration. Another whose every seed
    diverged delivered no model: the advised, finite, counts as better."""
    outcomes = {}
    for name, other in sorted(others.items()):  # by name: the order of the options is no rank
        diff, shown = versus_best(advised, other, margin, greater_is_better)
        if shown == "too few seeds" and not np.isfinite(other.per_seed).any():
            shown = "better"
        elif shown in SHOWN_AT_LEAST_AS_GOOD and _diverged_alone(advised, other):
            shown = "diverged more"  # the seeds it lost are not in the pairs: not shown as good
        outcomes[name] = (diff, shown)
    return outcomes


def _diverged_alone(advised: Scored, other: Scored) -> bool:
    """Whether the advised diverged on a seed where the other delivered a model."""
    return bool((~np.isfinite(advised.per_seed) & np.isfinite(other.per_seed)).any())


def agreement(shown: Sequence[str]) -> str:
    """agrees: the advised is shown better than, or equivalent to, every other (a difference
    shown within the margin is equivalent even when significant); disagrees: another is shown
    significantly better; diverged: the advised diverged on every seed; else inconclusive."""
    if "diverged" in shown:
        return "diverged"
    if "worse" in shown:
        return "disagrees"
    if shown and all(s in SHOWN_AT_LEAST_AS_GOOD for s in shown):
        return "agrees"
    return "inconclusive"  # not shown either way (or nothing to compare with)
