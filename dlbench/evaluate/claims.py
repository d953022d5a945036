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

`against` may be a number (better, worse, equivalent): compare's units against that constant,
one-sample, with the same variance as above; the effect is compare's mean − the number.
Overfit's curve measures (metrics.CURVE_MEASURES: gap_final, gap_best, val_loss_final, read
from scores.csv with an empty checkpoint) are judged lower-is-better: `expect = "better"` on
gap_final means a smaller gap; onset_epoch and best_epoch have no better side (equivalent and
narrower only).
A function run's path measures (metrics.PATH_MEASURES: f_gap, steps_to_tol,
grad_evals_to_tol, turns; split train) are lower-is-better too; its members are its starts
(`optimize --function --starts N`), paired start by start.

Three relations read something else than one score per member:
- reaches-first (needs `target`): per member, the first epoch at which the curve of `metric` on
  `split` in curves.csv reaches `target` (>= for a metric that rises, <= for one that falls);
  epoch 0 is before training. `metric` names a curves.csv metric (CURVE_METRICS: loss — the
  training objective, for classification log_loss's cross-entropy — accuracy, and the train
  split's running_loss / running_accuracy). `cost` (default epochs) counts instead the
  member's cumulative grad_evals (steps: one forward+backward pass over a batch, whatever its
  size) or examples (rows processed) at that epoch: sides with different batch sizes take
  different numbers of steps per epoch, and sides with different training rows process
  different numbers of rows per epoch. A member that never reaches the target is censored at
  one epoch past its last (its last epoch + 1; in cost units, its last cost plus its last
  epoch's) and the test column says how many were; none on either side reaching it is
  inconclusive. Members are paired, and the difference tested, as scores are; the effect is
  the mean compare − against; holds when it is shown negative.
- overfits-sooner: overfit's onset (scores.csv's onset_epoch: the epoch of lowest validation
  loss, when the loss ends ONSET_RISE above it); a member that never overfits (onset empty, not
  diverged) is censored at the entry's epoch budget + 1. Holds when compare's onset is shown
  earlier. It takes no metric or split (both sides must be overfit entries).
- narrower: compare's estimates spread less than against's. The unit is the estimate one run
  of that protocol gives: for cv, each repeat's mean over its folds and seeds (hold-out with
  --holdout-seeds N: each shuffle seed's; k-fold with --repeats R: each repeat's); for other
  commands, each member's score. Brown-Forsythe (scipy.stats.levene, center="median"); the
  effect is the ratio SD(compare) / SD(against), its 95% interval the F distribution's (which
  assumes normal units); holds when p < α and the ratio is below 1, fails when p < α and it
  is above. seeds_needed: units per side for which the two-sided F test of the variances
  reaches 80% power at the ratio seen (Brown-Forsythe needs about as many or a few more).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from dlbench.errors import DlbenchError
from dlbench.evaluate import compare
from dlbench.evaluate.metrics import CURVE_MEASURES
from dlbench.evaluate.stats import Estimate
from dlbench.registry import Registry

ALPHA = 0.05  # every claim's test, two-sided (TOST: each side at α)
POWER = 0.8  # seeds_needed: the members a paired t test needs for this power at α
MOST_SEEDS = 100_000  # seeds_needed above this is written as NaN ("more than")
SPLITS = ("train", "val", "test")  # scores.csv's split column
VERDICTS = ("holds", "fails", "inconclusive")
COLUMNS = ("entry", "claim", "relation", "compare", "against", "metric", "split", "verdict",
           "test", "effect", "ci_low", "ci_high", "p", "margin", "target", "cost",
           "seeds_needed", "note")


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
    against: Side | float | None  # the other side, a constant (metric units), None (status)
    metric: str = "accuracy"  # a scores.csv metric (reaches-first: a curves.csv one)
    split: str = "val"  # train, val or test
    margin: float | None = None  # in the metric's units: equivalent within ±margin
    target: float | None = None  # reaches-first: the value to reach, in the metric's units
    cost: str = "epochs"  # reaches-first: what reaching costs, a COSTS name

    @property
    def sides(self) -> tuple[Side, ...]:
        """The sides that name cells (a constant `against` names none)."""
        return tuple(s for s in (self.compare, self.against) if isinstance(s, Side))


Judge = Callable[[Hypothesis, compare.Results, dict[str, bool]], dict[str, Any]]


@dataclass(frozen=True)
class Relation:
    name: str  # as written after expect =
    status: str  # the status word it expects of every member ("": a comparison)
    sign: int  # +1 better (reaches-first, overfits-sooner: sooner), -1 worse, 0 neither
    description: str  # for error messages and the docs
    judge: Judge  # the verdict and its numbers for one hypothesis
    keys: tuple[str, ...] = ("metric", "split", "margin")  # the optional keys it takes
    needs: tuple[str, ...] = ()  # the keys it cannot do without
    against: str = "side"  # what against is: "side", "side or number", "" (none)
    reads: str = "scores"  # what metric names: "scores", "curves" (their csv), "" (none)
    commands: tuple[str, ...] = ()  # the commands whose entries it can read (empty: any)


CURVE_METRICS = {"loss": False, "accuracy": True, "running_loss": False,
                 "running_accuracy": True}  # curves.csv's metrics -> greater is better
RUNNING = ("running_loss", "running_accuracy")  # on the train split only
COSTS = ("epochs", "grad_evals", "examples")  # reaches-first: curves.csv's cost columns
ONSET = "onset_epoch"  # overfits-sooner: overfit's onset rows in scores.csv (split val)


# --- judging a suite ---------------------------------------------------------------------------


def judge_suite(root: Path, hypotheses: list[Hypothesis]) -> pd.DataFrame:
    """One row per hypothesis (COLUMNS) from the entries' results under `root`."""
    try:
        found = compare.load(root, tuple(CURVE_MEASURES), chance=True)
        greater = compare.directions(found) | {
            m: g for m, g in CURVE_MEASURES.items() if g is not None}
    except DlbenchError as e:  # no results to read (all diverged, damaged): nothing shown
        rows = [_row(h, {"verdict": "inconclusive", "note": str(e)}) for h in hypotheses]
    else:
        rows = [_row(h, judge(h, found, greater)) for h in hypotheses]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def judge(h: Hypothesis, found: compare.Results, greater: dict[str, bool]) -> dict[str, Any]:
    """The verdict and its numbers for one hypothesis."""
    try:
        return RELATIONS.get(h.relation).judge(h, found, greater)
    except DlbenchError as e:  # a side without results: nothing can be shown
        return {"verdict": "inconclusive", "note": str(e)}


def judge_status(h: Hypothesis, found: compare.Results, greater: dict[str, bool]
                 ) -> dict[str, Any]:
    return status_verdict(_rows(found, h.compare, h), RELATIONS.get(h.relation).status)


def judge_scores(h: Hypothesis, found: compare.Results, greater: dict[str, bool]
                 ) -> dict[str, Any]:
    """better / worse / equivalent on scores.csv: against a side (paired as compare pairs)
    or against a constant (one-sample)."""
    frames = [_rows(found, s, h) for s in h.sides]
    lost = [not np.isfinite(f["value"].to_numpy(float)).any() for f in frames]
    if any(lost):  # a side that diverged on every member delivered no model: no numbers
        return diverged_side(lost[0], len(lost) > 1 and lost[1], h)
    units = [compare.units(f, found.runs.get(s.entry), _identity(found, h))
             for f, s in zip(frames, h.sides, strict=True)]
    if len(units) == 1:  # a constant: compare's own estimate, less the constant
        estimate = units[0].estimate()
        return compared(replace(estimate, mean=estimate.mean - h.against),
                        f"one-sample against {h.against:g}", h, greater.get(h.metric, True))
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
    test = f"{estimate.method}, {pairing}" + (
        f"; TOST within ±{h.margin:g}" if h.margin else "")
    if estimate.se == 0.0 and estimate.n >= 1:  # every unit the same: no spread to weigh
        verdict, p, test = _unanimous(verdict, estimate.n, sign, pairing)
    note = "" if estimate.n >= 2 and math.isfinite(estimate.se) else \
        "fewer than 2 units: nothing can be shown"
    return {"verdict": verdict, "effect": estimate.mean, "ci_low": interval.low,
            "ci_high": interval.high, "p": p, "note": note, "test": test,
            "seeds_needed": seeds_needed(target, _spread(estimate))
            if verdict == "inconclusive" else math.nan}


def _unanimous(verdict: str, n: int, sign: int, pairing: str) -> tuple[str, float, str]:
    """Every unit's difference is the same (discrete counts, censored members, identical
    scores): a t test would call that certain (its spread is 0). What n units on one side
    show is the exact sign test's: two-sided p = 2·0.5ⁿ (one side of TOST: 0.5ⁿ), so 3
    seeds never show a difference and 5 show one only within a margin."""
    p = 0.5 ** n if sign == 0 else min(1.0, 2 * 0.5 ** n)
    shown = verdict if p < ALPHA else "inconclusive"
    return shown, p, f"exact sign test over {n} units, every difference the same, {pairing}"


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


# --- sooner: reaches-first, overfits-sooner ----------------------------------------------------


def judge_reach(h: Hypothesis, found: compare.Results, greater: dict[str, bool]
                ) -> dict[str, Any]:
    """reaches-first: each member's cost (epochs, grad_evals, examples) to reach the target on
    its curve, compare − against, lower is sooner."""
    sign = ">=" if CURVE_METRICS.get(h.metric, True) else "<="
    sides = [_reached(found, s, h) for s in h.sides]
    return sooner(h, found, sides, f"{h.cost} to reach {h.metric} {sign} {h.target:g} on "
                  f"{h.split}", ("reached the target", "censored one epoch past their last"))


def judge_onset(h: Hypothesis, found: compare.Results, greater: dict[str, bool]
                ) -> dict[str, Any]:
    """overfits-sooner: each member's onset epoch, compare − against, lower is sooner."""
    h = replace(h, metric=ONSET, split="val")
    sides = [_onsets(found, s, h) for s in h.sides]
    return sooner(h, found, sides, "overfitting onset epoch (lowest validation loss)",
                  ("overfit", "censored at the epoch budget + 1"))


def sooner(h: Hypothesis, found: compare.Results, sides: list[tuple[pd.DataFrame, int]],
           what: str, censoring: tuple[str, str]) -> dict[str, Any]:
    """compare − against of a count per member (epochs or cost; `sides`: each side's members,
    a value each, and how many of them were censored), judged as scores are with lower as
    better; the test column says what was counted and how many members were censored
    (`censoring`: what they did not do, and where they were censored)."""
    done, at = censoring
    counts = "; ".join(f"{n} of {len(f)} {name} members never {done}: {at}"
                       for (f, n), name in zip(sides, ("compare", "against"), strict=True) if n)
    if all(n == len(f) for f, n in sides):
        return {"verdict": "inconclusive", "test": f"{what}: no test", "note":
                f"no member of either side {done}; give them a longer budget"}
    units = [compare.units(f, found.runs.get(s.entry), _identity(found, h))
             for (f, _), s in zip(sides, h.sides, strict=True)]
    estimate, pairing, _ = compare.difference(units[1], units[0])  # compare − against
    judged = compared(estimate, pairing, h, greater_is_better=False)
    return judged | {"test": "; ".join(filter(None, [what, counts, judged["test"]]))}


def _reached(found: compare.Results, side: Side, h: Hypothesis) -> tuple[pd.DataFrame, int]:
    """One row per member of the side's curve (its member columns kept, for pairing) whose
    value is its cost to the target; and how many never reached it (censored)."""
    chosen = _chosen(_curves(found, side.entry), side, h, "curves")
    greater = CURVE_METRICS.get(h.metric, True)
    cost = "epoch" if h.cost == "epochs" else h.cost
    members = [c for c in chosen.columns if c not in CURVE_VALUES]
    rows, censored = [], 0
    for key, curve in chosen.groupby(members, sort=False):
        curve = curve.assign(epoch=curve["epoch"].astype(int)).sort_values("epoch")
        values = pd.to_numeric(curve["value"], errors="coerce").to_numpy(float)
        spent = pd.to_numeric(curve[cost]).to_numpy(float)
        with np.errstate(invalid="ignore"):  # NaN (diverged) never reaches it
            reached = np.flatnonzero(values >= h.target if greater else values <= h.target)
        censored += not len(reached)
        after = spent[-1] + (spent[-1] - spent[-2] if len(spent) > 1 else 1.0)
        rows.append(dict(zip(members, key, strict=True))
                    | {"value": spent[reached[0]] if len(reached) else after})
    return pd.DataFrame(rows), censored


def _onsets(found: compare.Results, side: Side, h: Hypothesis) -> tuple[pd.DataFrame, int]:
    """The side's onset rows, a member that never overfit (empty, not diverged) censored at
    its entry's epoch budget + 1; and how many were."""
    frame = _rows(found, side, h)
    run = found.runs.get(side.entry)
    epochs = (run.config.get("train") or {}).get("epochs") if run is not None else None
    if run is None or run.command != "overfit" or not isinstance(epochs, int):
        raise DlbenchError(f"{side}: no overfit run with an epoch budget in its manifest; "
                           "overfits-sooner reads `dlbench overfit` entries")
    never = frame["value"].isna() & (frame["status"] != "diverged")
    return frame.assign(value=frame["value"].mask(never, epochs + 1.0)), int(never.sum())


CURVE_VALUES = ("epoch", "value", "grad_evals", "examples", "status", "member_seed")


def _curves(found: compare.Results, entry: str) -> pd.DataFrame:
    """The entry's curves.csv, as text (compare.read_rows)."""
    file = (found.path / entry if entry else found.path) / "curves.csv"
    if not file.is_file():
        raise DlbenchError(f"entry '{entry}' has no curves.csv; reaches-first reads the "
                           "curves of optimize, overfit, cv and transfer")
    return compare.read_rows(file)


# --- narrower: the spread of one run's estimates ----------------------------------------------


def judge_spread(h: Hypothesis, found: compare.Results, greater: dict[str, bool]
                 ) -> dict[str, Any]:
    """Brown-Forsythe on the estimates one run of each side's protocol gives (`estimates`);
    the effect is SD(compare) / SD(against) with the F distribution's 95% interval."""
    (a, unit_a), (b, unit_b) = (estimates(_rows(found, s, h)) for s in h.sides)
    test = (f"Brown-Forsythe (median-centred Levene) over {len(a)} {unit_a} vs {len(b)} "
            f"{unit_b}; effect SD(compare) / SD(against), interval from F (normal units)")
    if min(len(a), len(b)) < 2:
        return {"verdict": "inconclusive", "test": test,
                "note": "fewer than 2 estimates on a side: no spread to compare"}
    ratio = _std(a) / _std(b) if _std(b) > 0 else math.inf
    p = float(sps.levene(a, b, center="median").pvalue) if max(_std(a), _std(b)) > 0 \
        else 1.0
    verdict = "inconclusive" if not p < ALPHA else "holds" if ratio < 1 else "fails"
    f = sps.f(len(a) - 1, len(b) - 1)
    low, high = (ratio / math.sqrt(f.ppf(q)) for q in (1 - ALPHA / 2, ALPHA / 2))
    return {"verdict": verdict, "effect": ratio, "ci_low": low, "ci_high": high, "p": p,
            "test": test, "seeds_needed": spread_units_needed(ratio)
            if verdict == "inconclusive" else math.nan}


def estimates(frame: pd.DataFrame) -> tuple[np.ndarray, str]:
    """The finite estimates one run gives: cv's (repeat, fold) rows -> each repeat's mean
    over its folds and seeds; other commands -> each member's score."""
    values = frame["value"].astype(float)
    if {"repeat", "fold"} <= set(frame.columns):
        values, unit = values.groupby(frame["repeat"].to_numpy()).mean(), "repeats"
    else:
        unit = "members"
    x = values.to_numpy(float)
    return x[np.isfinite(x)], unit


def spread_units_needed(ratio: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The fewest units per side for which the two-sided F test of two variances at `alpha`
    tells an SD ratio `ratio` with probability `power`; NaN at a ratio of 1 (or none seen),
    or above MOST_SEEDS."""
    if not math.isfinite(ratio) or ratio <= 0 or abs(math.log(ratio)) < 1e-9:
        return math.nan
    # log s² has variance ≈ 2 / (n − 1): the normal approximation bounds the search
    normal = ((sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power)) / math.log(ratio)) ** 2
    n = np.arange(2, min(MOST_SEEDS, int(2 * normal) + 20) + 1)
    var = ratio ** 2  # the observed F is var times an F(n-1, n-1) draw
    reached = sps.f.sf(sps.f.ppf(1 - alpha / 2, n - 1, n - 1) / var, n - 1, n - 1) + \
        sps.f.cdf(sps.f.ppf(alpha / 2, n - 1, n - 1) / var, n - 1, n - 1)
    enough = np.flatnonzero(reached >= power)
    return float(n[enough[0]]) if len(enough) else math.nan


def _std(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1)) if len(x) > 1 else math.nan


RELATIONS: Registry[Relation] = Registry("relation")
for _relation in (
    Relation("better", "", 1, "compare's metric is better than against's (or a number)",
             judge_scores, against="side or number"),
    Relation("worse", "", -1, "compare's metric is worse than against's (or a number)",
             judge_scores, against="side or number"),
    Relation("equivalent", "", 0, "within ±margin of against's (needs margin)", judge_scores,
             needs=("margin",), against="side or number"),
    Relation("diverges", "diverged", 0, "every member of compare diverges", judge_status,
             keys=("metric", "split"), against=""),
    Relation("stalls", "stalled", 0, "every member of compare stalls", judge_status,
             keys=("metric", "split"), against=""),
    Relation("reaches-first", "", 1, "compare's curve reaches target in fewer epochs "
             "(needs target)", judge_reach, keys=("metric", "split", "margin", "cost"),
             needs=("target",), reads="curves"),
    Relation("overfits-sooner", "", 1, "overfit's onset: compare's comes earlier",
             judge_onset, keys=("margin",), reads="", commands=("overfit",)),
    Relation("narrower", "", 0, "compare's estimates spread less (Brown-Forsythe)",
             judge_spread, keys=("metric", "split")),
):
    RELATIONS.add(_relation)


# --- reading the sides -------------------------------------------------------------------------


def _rows(found: compare.Results, side: Side, h: Hypothesis) -> pd.DataFrame:
    """The side's rows of the split and metric; one cell only for a comparison."""
    frame = found.entries.get(side.entry)
    if frame is None:
        raise DlbenchError(f"entry '{side.entry}' has no finished results")
    return _chosen(frame, side, h, "scores")


def _chosen(frame: pd.DataFrame, side: Side, h: Hypothesis, where: str) -> pd.DataFrame:
    """The rows of `frame` (a side's scores or curves) of the split, metric and side."""
    keep = (frame.split == h.split) & (frame.metric == h.metric)
    if "checkpoint" in frame and "checkpoint" not in dict(side.coords):
        # overfit's final weights (its other checkpoints: by coordinate); its curve measures
        # have none
        keep &= frame["checkpoint"].isin(("final", ""))
    if "model" in frame and "model" not in dict(side.coords):
        keep &= frame["model"] != compare.CHANCE  # the baseline only where a side names it
    if side.cell:
        keep &= frame.get("cell", pd.Series("", frame.index)) == side.cell
    for column, value in side.coords:  # curves.csv lacks dataset and checkpoint: not asked
        if column in frame or where == "scores":
            keep &= frame.get(column, pd.Series("", frame.index)).map(
                lambda v, value=value: same_value(v, value))
    chosen = frame[keep]
    if chosen.empty:
        raise DlbenchError(f"{side}: no {h.metric} on {h.split} in its {where}")
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
    runs = [found.runs.get(s.entry) for s in h.sides]
    return all(r is not None and r.splits for r in runs)


def _spread(estimate: Estimate) -> float:
    """The SD of one member's difference: measured (paired), or from an unpaired standard
    error as if the members were paired one to one (an approximation, said in the docs)."""
    if math.isfinite(estimate.std):
        return estimate.std
    return estimate.se * math.sqrt(max(estimate.n, 2) / 2)


def _row(h: Hypothesis, judged: dict[str, Any]) -> dict[str, Any]:
    return {"entry": h.entry, "claim": h.claim, "relation": h.relation,
            "compare": str(h.compare), "against": _named(h.against), "metric": h.metric,
            "split": h.split, "margin": h.margin if h.margin is not None else math.nan,
            "target": h.target if h.target is not None else math.nan,
            "cost": h.cost if RELATIONS.get(h.relation).reads == "curves" else "",
            "effect": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p": math.nan,
            "seeds_needed": math.nan, "test": "", "note": "", **judged}


def _named(against: Side | float | None) -> str:
    """claims.csv's against: a side, a constant, or blank."""
    return "" if against is None else f"{against:g}" if isinstance(against, float) \
        else str(against)


# --- checked before anything trains ------------------------------------------------------------


def check_side(side: Side, cells: list[Any]) -> None:
    """DlbenchError unless `side` names a cell of the prepared grid `cells` (engine Cells):
    by label, and by every coordinate that is a grid axis."""
    from dlbench.engine.cells import AXES, labels

    coords = [c.coords() for c in cells]
    found = [label for label, c in zip(labels(cells), coords, strict=True)
             if (not side.cell or label == side.cell)
             and all(same_value(c[k], v) for k, v in side.coords if k in AXES.names()
                     and (k, v) != ("model", compare.CHANCE))]  # cv's baseline: no cell
    if not found:
        raise DlbenchError(f"{side} names no cell of entry '{side.entry}'; its cells: "
                           f"{', '.join(labels(cells))}")


def read(path: Path) -> pd.DataFrame | None:
    """A suite directory's claims.csv (its text columns blank, not NaN), None without one."""
    file = path / "claims.csv"
    if not file.is_file():
        return None
    texts = dict.fromkeys(("claim", "compare", "against", "cost", "test", "note"), "")
    try:
        return pd.read_csv(file, dtype=dict.fromkeys(texts, str)).fillna(texts)
    except (OSError, ValueError) as e:
        raise DlbenchError(f"cannot read {file} ({e}); run the suite again") from None
