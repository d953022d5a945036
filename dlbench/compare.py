"""Two sets of results compared row by row: what improved, what regressed, what is noise.

Inputs are results directories (a run's, with scores.csv), suite directories (one run per
entry) or scores CSV files. Rows are matched on their configuration columns (the dataset, the
cell's coordinates, the split, the metric; the checkpoint where there is one); within a match,
members are paired on their seed (and repeat and fold), since a rerun with the same seed trains
the same members.

A change is a *regression* only when both hold:
- it is worse than the metric's tolerance (`--tolerance accuracy:-1%,loss:+5%`: relative to the
  baseline's mean, or absolute without '%'; 1% relative by default), and
- it is significant: the paired difference over the members has a two-sided p below ALPHA, by
  the corrected resampled t (Nadeau & Bengio 2003) where the members are k-fold splits, else the
  paired t over seeds.
`--rope R` adds the probability that the difference lies within ±R (practically equivalent):
the correlated Bayesian t-test (Corani & Benavoli 2015), whose posterior is a Student t with the
same location, scale and degrees of freedom as the corrected (or plain) t above.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from dlbench.errors import DlbenchError
from dlbench.metrics import METRICS
from dlbench.stats import Estimate, corrected_estimate, seeds_estimate

ALPHA = 0.05  # significance level of a change
DEFAULT_TOLERANCE = 0.01  # relative, in the worse direction, for every metric not given
MEMBER = ("seed", "repeat", "fold")  # pair members on these
TIMING = "seconds"  # --tolerance seconds:+N%: wall time, from repeated timings (timings.csv)
DROPPED = ("member_seed", "cell", "value", "status")  # neither configuration nor member
VERDICTS = ("regressed", "missing", "improved", "new", "unchanged")  # the table's order
FAILURES = ("regressed", "missing")


@dataclass(frozen=True)
class Tolerance:
    amount: float  # how much worse a change may be, >= 0
    relative: bool  # a share of the baseline's mean, else metric units

    def allowed(self, baseline: float) -> float:
        return self.amount * abs(baseline) if self.relative else self.amount


@dataclass(frozen=True)
class Results:
    """One side: its scores per entry ("" for a single run), and each entry's n_test/n_train
    where its members are resampled splits."""

    path: Path
    entries: dict[str, pd.DataFrame]
    ratios: dict[str, float | None]
    timings: dict[str, np.ndarray] = field(default_factory=dict)  # entry -> seconds per timing


def parse_tolerance(text: str | None) -> dict[str, Tolerance]:
    """'accuracy:-1%,loss:+5%' -> per metric; the sign must point the metric's worse way."""
    found: dict[str, Tolerance] = {}
    for item in filter(None, (s.strip() for s in (text or "").split(","))):
        match = re.fullmatch(r"([a-z0-9_]+):([+-])(\d+(?:\.\d*)?|\.\d+)(%?)", item)
        if match is None:
            raise DlbenchError(f"--tolerance '{item}': write METRIC:-N% or METRIC:+N (e.g. "
                               "accuracy:-1%,loss:+5%)")
        name, sign, amount, percent = match.groups()
        if name == TIMING:
            if sign != "+" or not percent:
                raise DlbenchError(f"--tolerance {item}: time is worse when it rises, and is "
                                   f"compared relatively; write {TIMING}:+{amount}%")
            found[name] = Tolerance(float(amount) / 100, True)
            continue
        if name not in METRICS:
            raise DlbenchError(f"--tolerance: unknown metric '{name}'; choose from: "
                               f"{', '.join(METRICS.names())}, or {TIMING}")
        worse = "-" if METRICS.get(name).greater_is_better else "+"
        if sign != worse:
            raise DlbenchError(f"--tolerance {item}: {name} is worse when it "
                               f"{'falls' if worse == '-' else 'rises'}; write {name}:{worse}"
                               f"{amount}{percent}")
        found[name] = Tolerance(float(amount) / (100 if percent else 1), bool(percent))
    return found


def load(path: Path) -> Results:
    """A run directory, a suite directory or a scores CSV."""
    if path.is_file():
        return _results(path, {"": path})
    if not path.is_dir():
        raise DlbenchError(f"{path} does not exist; give a results directory, a suite "
                           "directory or a scores.csv")
    if (path / "scores.csv").exists():
        return _results(path, {"": path / "scores.csv"})
    runs = sorted(p for p in path.iterdir() if (p / "scores.csv").exists())
    if not runs:
        raise DlbenchError(f"{path} holds no results (no scores.csv in it or in its "
                           "subdirectories); give a finished run or suite directory")
    return _results(path, {p.name: p / "scores.csv" for p in runs})


def _results(path: Path, files: dict[str, Path]) -> Results:
    entries = {name: _read(file) for name, file in files.items()}
    timings = {name: pd.read_csv(file.parent / "timings.csv")["seconds"].to_numpy(float)
               for name, file in files.items() if (file.parent / "timings.csv").exists()}
    return Results(path, entries, {name: _ratio(scores) for name, scores in entries.items()},
                   timings)


def _read(path: Path) -> pd.DataFrame:
    try:  # as text: configuration values match as written ("" where an axis does not apply)
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as e:
        raise DlbenchError(f"cannot read {path}: {e}") from None
    missing = {"split", "metric", "value"} - set(frame.columns)
    if missing:
        raise DlbenchError(f"{path} is not a dlbench scores file (no {', '.join(sorted(missing))}"
                           " column)")
    if "phase" in frame:
        frame = frame[frame.phase == "final"]  # --tune trials are not results
    if "model" in frame:
        frame = frame[frame.model != "chance"]  # the baseline every run carries
    frame = frame[frame.metric.isin(METRICS.names())].copy()  # with a direction: known metrics
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")  # a diverged member: NaN
    return frame


def _ratio(scores: pd.DataFrame) -> float | None:
    """n_test / n_train of members that are k-fold splits (k from the fold column): what the
    corrected resampled t needs; None for members that are seeds on one split."""
    if "fold" not in scores:
        return None
    folds = {f for f in scores["fold"] if f not in ("", "-1")}
    return 1.0 / (len(folds) - 1) if len(folds) > 1 else None


def compare(baseline: Results, current: Results, tolerances: dict[str, Tolerance],
            rope: float | None = None) -> pd.DataFrame:
    """One row per (entry, configuration, split, metric) of either side, with its verdict."""
    rows = []
    for entry in sorted(baseline.entries.keys() | current.entries.keys()):
        base, now = baseline.entries.get(entry), current.entries.get(entry)
        ratio = (baseline.ratios.get(entry) or current.ratios.get(entry))
        rows += _entry_rows(entry, base, now, ratio, tolerances, rope)
    if TIMING in tolerances:
        rows += _timing_rows(baseline, current, tolerances[TIMING])
    if not rows:
        raise DlbenchError(f"{baseline.path} and {current.path} have no rows to compare")
    found = pd.DataFrame(rows)
    if not (found.verdict.isin(("unchanged", "improved", "regressed"))).any():
        raise DlbenchError(f"{baseline.path} and {current.path} share no configuration: "
                           "compare runs of the same command and options")
    order = {v: i for i, v in enumerate(VERDICTS)}
    return found.sort_values(["verdict", "entry"], key=lambda c: c.map(order) if
                             c.name == "verdict" else c, kind="stable").reset_index(drop=True)


def _entry_rows(entry: str, base: pd.DataFrame | None, now: pd.DataFrame | None,
                ratio: float | None, tolerances: dict[str, Tolerance],
                rope: float | None) -> list[dict[str, Any]]:
    frames = [f for f in (base, now) if f is not None]
    keys = [c for c in frames[0].columns if c not in (*MEMBER, *DROPPED)
            and all(c in f.columns for f in frames)]
    members = [c for c in MEMBER if all(c in f.columns for f in frames)]
    groups = [dict(iter(f.groupby(keys, sort=False))) if f is not None else {}
              for f in (base, now)]
    rows = []
    for key in list(dict.fromkeys([*groups[0], *groups[1]])):
        b, c = groups[0].get(key), groups[1].get(key)
        config = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        label = _label(c if c is not None else b, config)
        row = {"entry": entry, "configuration": label, **config}
        if b is None or c is None:
            side = b if c is None else c
            rows.append(row | _side("baseline" if c is None else "current", side, ratio)
                        | {"verdict": "missing" if c is None else "new"})
            continue
        rows.append(row | _judged(b, c, members, ratio, config["metric"],
                                  tolerances.get(config["metric"],
                                                 Tolerance(DEFAULT_TOLERANCE, True)), rope))
    return rows


def _label(frame: pd.DataFrame, config: dict[str, Any]) -> str:
    if "cell" in frame:
        return str(frame["cell"].iloc[0])
    return str(config.get("model", ""))


def _estimate(values: np.ndarray, ratio: float | None) -> Estimate:
    if ratio is not None:
        return corrected_estimate(values, n_train=1.0, n_test=ratio)
    return seeds_estimate(values)


def _side(name: str, frame: pd.DataFrame, ratio: float | None) -> dict[str, Any]:
    interval = _estimate(frame["value"].to_numpy(float), ratio).interval()
    return {f"{name}_mean": interval.mean, f"{name}_ci_low": interval.low,
            f"{name}_ci_high": interval.high, f"{name}_n": interval.n}


def _judged(base: pd.DataFrame, now: pd.DataFrame, members: list[str], ratio: float | None,
            metric: str, tolerance: Tolerance, rope: float | None) -> dict[str, Any]:
    paired = base.merge(now, on=members, suffixes=("_base", "_now")) if members else \
        pd.DataFrame({"value_base": base["value"].to_numpy(), "value_now": now["value"].to_numpy()})
    diffs = (paired["value_now"] - paired["value_base"]).to_numpy(float)
    estimate = _estimate(diffs, ratio)
    mean_base, mean_now = base["value"].mean(), now["value"].mean()
    delta = mean_now - mean_base
    better = 1.0 if METRICS.get(metric).greater_is_better else -1.0
    p, interval = estimate.p_value(), estimate.interval()
    significant = math.isfinite(p) and p < ALPHA
    allowed = tolerance.allowed(mean_base)
    lost = int((~np.isfinite(now["value"].to_numpy(float))).sum()
               - (~np.isfinite(base["value"].to_numpy(float))).sum())
    verdict = "unchanged"
    if lost > 0:  # members that diverged (NaN) here and not in the baseline: never noise
        verdict = "regressed"
    elif significant and better * delta < -allowed:
        verdict = "regressed"
    elif significant and better * delta > allowed:
        verdict = "improved"
    found = (_side("baseline", base, ratio) | _side("current", now, ratio)
             | {"delta": delta, "delta_ci_low": interval.low, "delta_ci_high": interval.high,
                "tolerance": allowed, "pairs": estimate.n, "p_value": p,
                "diverged_more": lost,
                "test": estimate.method if math.isfinite(p) else "none (fewer than 2 pairs)"})
    if rope is not None:
        found["p_equivalent"] = _within(estimate, rope)
    return found | {"verdict": verdict}


def _within(estimate: Estimate, rope: float) -> float:
    """Posterior probability that the mean difference lies in (-rope, rope)."""
    if not math.isfinite(estimate.se):
        return math.nan
    if estimate.se == 0.0:
        return float(abs(estimate.mean) < rope)
    t = sps.t(estimate.df, loc=estimate.mean, scale=estimate.se)
    return float(t.cdf(rope) - t.cdf(-rope))


def _timing_rows(baseline: Results, current: Results, tolerance: Tolerance
                 ) -> list[dict[str, Any]]:
    """Each entry's wall time, only from repeated timings on both sides (`dlbench run
    --timings N`): slower beyond the tolerance (on the ratio of geometric means) and a Welch t
    on log seconds with p < ALPHA. The runs are not paired: a machine's load drifts."""
    shared = sorted(baseline.timings.keys() & current.timings.keys())
    if not shared:
        raise DlbenchError(f"--tolerance {TIMING}: needs repeated timings on both sides; run "
                           "the suites with dlbench run --timings N (N >= 2)")
    rows = []
    for entry in shared:
        base, now = np.log(baseline.timings[entry]), np.log(current.timings[entry])
        ratio = float(np.exp(now.mean() - base.mean()))
        p = float(sps.ttest_ind(now, base, equal_var=False).pvalue) \
            if min(len(base), len(now)) >= 2 else math.nan
        significant = math.isfinite(p) and p < ALPHA
        verdict = "unchanged"
        if significant and ratio > 1 + tolerance.amount:
            verdict = "regressed"
        elif significant and ratio < 1 / (1 + tolerance.amount):
            verdict = "improved"
        rows.append({"entry": entry, "configuration": "wall time", "split": "", "metric": TIMING,
                     "baseline_mean": float(np.exp(base.mean())), "baseline_n": len(base),
                     "current_mean": float(np.exp(now.mean())), "current_n": len(now),
                     "delta": float(np.exp(now.mean()) - np.exp(base.mean())),
                     "tolerance": tolerance.amount, "p_value": p, "verdict": verdict,
                     "test": "Welch t on log seconds (unpaired runs)"})
    return rows
