"""Claims the tool judges itself: a suite entry's hypothesis, tested on the suite's scores.

A hypothesis names two sides (cells of the suite's entries, by label or by coordinates), a
metric and split, and a relation (RELATIONS). Its verdict is one of three words:

- holds: shown at α 0.05 (the 95% interval of the difference excludes 0 on the claimed side;
  for `equivalent`, TOST shows the difference within ±margin);
- fails: the opposite shown, or (a margin given) the difference shown within ±margin when a
  difference was claimed, or (equivalent) shown beyond the margin;
- inconclusive: neither; `seeds_needed` then says about how many members a paired t test at
  α 0.05 would need for 80% power at the effect and spread seen.

The units and their variance are `compare`'s (evaluate/compare.py): over resampled splits the
corrected resampled t (each split's seeds averaged), else a plain t over the seeds; paired by
split rows and seed where both sides have them, else unpaired (Welch), and said so. Scores come
from scores.csv, so the variance covers the seeds (and splits), not the sampling of the
evaluation rows. Status relations (diverges, stalls) count members: holds when every member of
the side has that status, fails when none does, inconclusive otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from dlbench.errors import DlbenchError
from dlbench.evaluate import compare
from dlbench.evaluate.stats import Estimate
from dlbench.registry import Registry

ALPHA = 0.05  # every claim's test, two-sided (TOST: each side at α)
POWER = 0.8  # seeds_needed: the members a paired t test needs for this power at α
MOST_SEEDS = 100_000  # seeds_needed above this is written as NaN ("more than")
SPLITS = ("train", "val", "test")  # scores.csv's split column
VERDICTS = ("holds", "fails", "inconclusive")
COLUMNS = ("entry", "claim", "relation", "compare", "against", "metric", "split", "verdict",
           "test", "effect", "ci_low", "ci_high", "p", "margin", "seeds_needed", "note")


@dataclass(frozen=True)
class Side:
    """Which cells of which entry a hypothesis reads."""

    entry: str  # the suite entry whose scores.csv holds them
    cell: str = ""  # a cell label as scores.csv's `cell` column writes it ("": any)
    coords: tuple[tuple[str, Any], ...] = ()  # (scores.csv column, value): grid coordinates

    def __str__(self) -> str:
        parts = [self.entry, *([self.cell] if self.cell else []),
                 *(f"{k}={v}" for k, v in self.coords)]
        return " · ".join(parts)


@dataclass(frozen=True)
class Hypothesis:
    """A claim in a testable form: `compare` relates to `against` on `metric` and `split`."""

    entry: str  # the entry it is declared in
    claim: str  # the claim's words
    relation: str  # a RELATIONS name
    compare: Side  # the side the relation is said of
    against: Side | None  # the other side (None for a status relation)
    metric: str = "accuracy"  # a scores.csv metric
    split: str = "val"  # train, val or test
    margin: float | None = None  # in the metric's units: equivalent within ±margin


@dataclass(frozen=True)
class Relation:
    name: str  # as written after expect =
    status: str  # the status word it expects of every member ("": a comparison)
    sign: int  # +1 better, -1 worse, 0 equivalent (comparisons only)
    description: str  # for error messages and the docs


RELATIONS: Registry[Relation] = Registry("relation")
for _relation in (
    Relation("better", "", 1, "compare's metric is better than against's"),
    Relation("worse", "", -1, "compare's metric is worse than against's"),
    Relation("equivalent", "", 0, "within ±margin of against's (needs margin)"),
    Relation("diverges", "diverged", 0, "every member of compare diverges"),
    Relation("stalls", "stalled", 0, "every member of compare stalls"),
):
    RELATIONS.add(_relation)


# --- judging a suite ---------------------------------------------------------------------------


def judge_suite(root: Path, hypotheses: list[Hypothesis]) -> pd.DataFrame:
    """One row per hypothesis (COLUMNS) from the entries' results under `root`."""
    try:
        found = compare.load(root)
        greater = compare.directions(found)
    except DlbenchError as e:  # no results to read (all diverged, damaged): nothing shown
        rows = [_row(h, {"verdict": "inconclusive", "note": str(e)}) for h in hypotheses]
    else:
        rows = [_row(h, judge(h, found, greater)) for h in hypotheses]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def judge(h: Hypothesis, found: compare.Results, greater: dict[str, bool]) -> dict[str, Any]:
    """The verdict and its numbers for one hypothesis."""
    try:
        if RELATIONS.get(h.relation).status:
            return status_verdict(_rows(found, h.compare, h), RELATIONS.get(h.relation).status)
        frames = _rows(found, h.compare, h), _rows(found, h.against, h)
    except DlbenchError as e:  # a side without results: nothing can be shown
        return {"verdict": "inconclusive", "note": str(e)}
    lost = [not np.isfinite(f["value"].to_numpy(float)).any() for f in frames]
    if any(lost):  # a side that diverged on every member delivered no model: no numbers
        return diverged_side(*lost, h)
    units = [compare.units(f, found.runs.get(s.entry), _identity(found, h))
             for f, s in zip(frames, (h.compare, h.against), strict=True)]
    estimate, pairing, _ = compare.difference(units[1], units[0])  # compare − against
    return compared(estimate, pairing, h, greater.get(h.metric, True))


def compared(estimate: Estimate, pairing: str, h: Hypothesis,
             greater_is_better: bool) -> dict[str, Any]:
    """better / worse / equivalent from the difference compare − against."""
    sign = RELATIONS.get(h.relation).sign
    interval = estimate.interval(1 - ALPHA)
    good = 1.0 if greater_is_better else -1.0  # "better" as a sign of the difference
    low, high = sorted((good * interval.low, good * interval.high))
    tost = estimate.equivalence_p(h.margin) if h.margin else math.nan
    if sign == 0:
        verdict = "holds" if tost < ALPHA else "fails" if (
            low > h.margin or high < -h.margin) else "inconclusive"
        p, target = tost, (h.margin or 0) - abs(estimate.mean)  # its distance to the margin
    else:
        verdict = "fails" if tost < ALPHA or sign * high < 0 and sign * low < 0 else \
            "holds" if sign * low > 0 and sign * high > 0 else "inconclusive"
        p, target = estimate.p_value(), estimate.mean
    note = "" if estimate.n >= 2 and math.isfinite(estimate.se) else \
        "fewer than 2 units: nothing can be shown"
    return {"verdict": verdict, "effect": estimate.mean, "ci_low": interval.low,
            "ci_high": interval.high, "p": p, "note": note,
            "test": f"{estimate.method}, {pairing}" + (
                f"; TOST within ±{h.margin:g}" if h.margin else ""),
            "seeds_needed": seeds_needed(target, _spread(estimate))
            if verdict == "inconclusive" else math.nan}


def diverged_side(compare_lost: bool, against_lost: bool, h: Hypothesis) -> dict[str, Any]:
    """Every member of a side diverged (no finite score): the other side, finite, is better
    (as verdicts.advised_versus_each counts it); both lost: nothing is shown."""
    sign = RELATIONS.get(h.relation).sign
    if compare_lost and against_lost or sign == 0:
        verdict = "inconclusive" if compare_lost and against_lost else "fails"
    else:
        verdict = "holds" if (sign > 0) == against_lost else "fails"
    lost = " and ".join(str(s) for s, gone in ((h.compare, compare_lost),
                                              (h.against, against_lost)) if gone)
    return {"verdict": verdict, "test": f"no test: every member of {lost} diverged "
            "(no finite score); the side with a model counts as better"}


def status_verdict(frame: pd.DataFrame, status: str) -> dict[str, Any]:
    """holds: every member (a row of one split and metric) has `status`; fails: none does;
    inconclusive: some do. The effect is the share that does."""
    has = int((frame["status"] == status).sum())
    verdict = "holds" if has == len(frame) else "fails" if has == 0 else "inconclusive"
    return {"verdict": verdict, "effect": has / len(frame),
            "test": f"status count: {has} of {len(frame)} members {status}"}


def seeds_needed(effect: float, sd: float, alpha: float = ALPHA, power: float = POWER
                 ) -> float:
    """The fewest members n for which a two-sided paired t test at `alpha` detects a mean
    difference `effect` with spread `sd` with probability `power` (noncentral t); NaN when
    no effect was seen (or no spread measured) or above MOST_SEEDS."""
    if not (math.isfinite(effect) and math.isfinite(sd)) or sd <= 0 or \
            abs(effect) <= 1e-9 * sd:
        return math.nan
    d = abs(effect) / sd
    normal = ((sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power)) / d) ** 2
    n = np.arange(2, min(MOST_SEEDS, int(2 * normal) + 20) + 1)
    crit = sps.t.ppf(1 - alpha / 2, n - 1)
    reached = sps.nct.sf(crit, n - 1, d * np.sqrt(n)) + sps.nct.cdf(-crit, n - 1, d * np.sqrt(n))
    enough = np.flatnonzero(reached >= power)
    return float(n[enough[0]]) if len(enough) else math.nan


# --- reading the sides -------------------------------------------------------------------------


def _rows(found: compare.Results, side: Side, h: Hypothesis) -> pd.DataFrame:
    """The side's rows of the split and metric; one cell only for a comparison."""
    frame = found.entries.get(side.entry)
    if frame is None:
        raise DlbenchError(f"entry '{side.entry}' has no finished results")
    keep = (frame.split == h.split) & (frame.metric == h.metric)
    if "checkpoint" in frame and "checkpoint" not in dict(side.coords):
        keep &= frame["checkpoint"] == "final"  # overfit's other checkpoints: by coordinate
    if side.cell:
        keep &= frame.get("cell", pd.Series("", frame.index)) == side.cell
    for column, value in side.coords:
        keep &= frame.get(column, pd.Series("", frame.index)).map(
            lambda v, value=value: same_value(v, value))
    chosen = frame[keep]
    if chosen.empty:
        raise DlbenchError(f"{side}: no {h.metric} on {h.split} in its scores")
    cells = chosen["cell"].nunique() if "cell" in chosen else 1
    if cells > 1 and not RELATIONS.get(h.relation).status:
        raise DlbenchError(f"{side} names {cells} cells; pick one by cell label or "
                           "coordinates")
    return chosen


def same_value(written: Any, wanted: Any) -> bool:
    """A scores.csv value (text) against a TOML one: as numbers where both are, else text."""
    try:
        return math.isclose(float(written), float(wanted), rel_tol=1e-9)
    except (TypeError, ValueError):
        return str(written).lower() == str(wanted).lower()


def _identity(found: compare.Results, h: Hypothesis) -> bool:
    """Pair by recorded split rows when both entries recorded them (else by labels)."""
    runs = [found.runs.get(s.entry) for s in (h.compare, h.against)]
    return all(r is not None and r.splits for r in runs)


def _spread(estimate: Estimate) -> float:
    """The SD of one member's difference: measured (paired), or from an unpaired standard
    error as if the members were paired one to one (an approximation, said in the docs)."""
    if math.isfinite(estimate.std):
        return estimate.std
    return estimate.se * math.sqrt(max(estimate.n, 2) / 2)


def _row(h: Hypothesis, judged: dict[str, Any]) -> dict[str, Any]:
    return {"entry": h.entry, "claim": h.claim, "relation": h.relation,
            "compare": str(h.compare), "against": str(h.against or ""), "metric": h.metric,
            "split": h.split, "margin": h.margin if h.margin is not None else math.nan,
            "effect": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p": math.nan,
            "seeds_needed": math.nan, "test": "", "note": "", **judged}



# --- checked before anything trains ------------------------------------------------------------


def check_side(side: Side, cells: list[Any]) -> None:
    """DlbenchError unless `side` names a cell of the prepared grid `cells` (engine Cells):
    by label, and by every coordinate that is a grid axis."""
    from dlbench.engine.cells import AXES, labels

    coords = [c.coords() for c in cells]
    found = [label for label, c in zip(labels(cells), coords, strict=True)
             if (not side.cell or label == side.cell)
             and all(same_value(c[k], v) for k, v in side.coords if k in AXES.names())]
    if not found:
        raise DlbenchError(f"{side} names no cell of entry '{side.entry}'; its cells: "
                           f"{', '.join(labels(cells))}")


def read(path: Path) -> pd.DataFrame | None:
    """A suite directory's claims.csv (its text columns blank, not NaN), None without one."""
    file = path / "claims.csv"
    if not file.is_file():
        return None
    texts = dict.fromkeys(("claim", "compare", "against", "test", "note"), "")
    try:
        return pd.read_csv(file, dtype=dict.fromkeys(texts, str)).fillna(texts)
    except (OSError, ValueError) as e:
        raise DlbenchError(f"cannot read {file} ({e}); run the suite again") from None
