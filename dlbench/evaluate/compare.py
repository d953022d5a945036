"""Two sets of results compared row by row: what improved, what regressed, what is noise.

Inputs are finished results directories (a run's, with scores.csv and manifest.json), suite
directories (one run per entry) or scores CSV files. Rows are matched on their configuration
columns (the dataset, the cell's coordinates, the split, the metric; the checkpoint where there
is one). Within a match the units are the resampled splits where there are several (each
split's seeds averaged first, as `cv` does), else the seeds. Units are paired only where both
runs trained and scored them on the same rows: by the split identity each run records in its
manifest (`splits`: sizes and a digest of the data and the rows). Where the splits or the data
differ the two sides are independent, and the test is unpaired (Welch).

The variance of the units: over resampled splits, the corrected resampled t (Nadeau & Bengio
2003, n_test / n_train from the recorded split sizes); over forward-chaining folds (not
exchangeable) or over seeds on one split, the plain t.

A change is a *regression* when it is shown worse than the metric's tolerance
(`--tolerance accuracy:-1%,loss:+5%`: relative to the baseline's mean, or absolute without '%';
1% relative by default): a one-sided test of H0 "worse by at most the tolerance" with p below
ALPHA (a non-inferiority test; at 0.025, the same as the 95% interval of Δ lying wholly beyond
the tolerance). Why not "significantly worse than 0 and worse than the
tolerance on average": that rule calls a change regressed whose interval still holds drops
smaller than the tolerance, i.e. it reports more than its numbers show. The price: with few
units a real drop just beyond the tolerance may stay "unchanged"; a lost member (fewer rows,
or members that diverged only now) fails the gate whatever the test says. "improved" is the
mirror test: better by more than the tolerance. "untested": no test could be made (fewer than
two units on a side, or no spread): never read as "unchanged"; give the runs more seeds or splits.
`--rope R` adds the probability that the difference lies within ±R (practically equivalent):
the correlated Bayesian t-test (Corani & Benavoli 2015), whose posterior is a Student t with the
same location, scale and degrees of freedom as the test above.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from dlbench.errors import DlbenchError
from dlbench.evaluate import stats
from dlbench.evaluate.metrics import DIRECTION, METRICS, PATH_MEASURES
from dlbench.evaluate.stats import Estimate
from dlbench.evaluate.verdicts import STATUSES
from dlbench.results import pruned, verify

# Level of the one-sided tests against the tolerance: 0.025, so that "regressed" holds exactly
# when the table's two-sided 95% interval of Δ lies wholly beyond the tolerance (at 0.05 a
# verdict could stand beside an interval that still reaches past it: a reader would see both)
ALPHA = 0.025
TIMING_ALPHA = 0.05  # wall time: Welch's two-sided t on log seconds
DEFAULT_TOLERANCE = 0.01  # relative, in the worse direction, for every metric not given
MEMBER = ("seed", "repeat", "fold")  # members, not configuration
TIMING = "seconds"  # --tolerance seconds:+N%: wall time, from repeated timings (timings.csv)
DROPPED = ("member_seed", "cell", "value", "status")  # neither configuration nor member
VERDICTS = ("regressed", "missing", "untested", "improved", "new", "unchanged")  # the table's order
FAILURES = ("regressed", "missing")


@dataclass(frozen=True)
class Tolerance:
    amount: float  # how much worse a change may be, >= 0
    relative: bool  # a share of the baseline's mean, else metric units

    def allowed(self, baseline: float) -> float:
        return self.amount * abs(baseline) if self.relative else self.amount


@dataclass(frozen=True)
class RunInfo:
    """What an entry's manifest says about how its scores were made."""

    command: str
    config: dict[str, Any]  # the resolved options
    fingerprint: str | None  # the dataset's
    splits: dict[tuple[str, str], dict[str, Any]]  # (repeat, fold) as in scores.csv -> its
    #   split_record (n_train, n_test, rows); one-split runs: every record under ("", "")
    ordered: bool = False  # forward-chaining folds: not exchangeable, no Nadeau-Bengio
    # the user's metrics its rows name ('mine.py:top2') -> greater is better, as declared
    metrics: dict[str, bool] = field(default_factory=dict)
    members: str = "seeds"  # what its members are: seeds, or a function run's starts

    @classmethod
    def of(cls, manifest: dict[str, Any]) -> RunInfo:
        config = manifest.get("config", {})
        records = manifest.get("splits", [])
        labelled = all("fold" in r for r in records)
        splits = {(str(r["repeat"]), str(r["fold"])): r for r in records} if labelled else \
            {("", ""): {"rows": "+".join(r["rows"] for r in records)}}
        plugged = {p["metric"]: p[DIRECTION] for p in manifest.get("plugins", [])
                   if isinstance(p, dict) and isinstance(p.get(DIRECTION), bool)
                   and "metric" in p}
        return cls(manifest.get("command", ""), config,
                   manifest.get("dataset", {}).get("fingerprint"),
                   splits if records else {},
                   bool(config.get("split", {}).get("time_order", False)), plugged,
                   "starts" if config.get("function") else "seeds")


@dataclass(frozen=True)
class Results:
    """One side: its scores per entry ("" for a single run), and what each entry's manifest
    says (none for a bare scores CSV)."""

    path: Path
    entries: dict[str, pd.DataFrame]
    runs: dict[str, RunInfo] = field(default_factory=dict)
    timings: dict[str, np.ndarray] = field(default_factory=dict)  # entry -> seconds per timing


def directions(*sides: Results) -> dict[str, bool]:
    """Every metric the sides can name -> whether greater is better: the built-ins, and the
    user's own as each run's manifest declares them (two runs disagreeing are refused)."""
    found = {m.name: m.greater_is_better for m in METRICS} | PATH_MEASURES
    for side in sides:
        for run in filter(None, side.runs.values()):
            for name, greater in run.metrics.items():
                if found.setdefault(name, greater) != greater:
                    raise DlbenchError(f"metric {name} is better when it rises in one run and "
                                       "when it falls in another: its files differ; compare "
                                       "runs of the same metric")
    return found


def parse_tolerance(text: str | None, known: dict[str, bool] | None = None
                    ) -> dict[str, Tolerance]:
    """'accuracy:-1%,loss:+5%' -> per metric; the sign must point the metric's worse way.
    `known`: the metrics that may be named, and their directions (default: the built-ins;
    `directions` adds the user's own, 'mine.py:top2:-1%')."""
    known = known or {m.name: m.greater_is_better for m in METRICS}
    found: dict[str, Tolerance] = {}
    for item in filter(None, (s.strip() for s in (text or "").split(","))):
        match = re.fullmatch(r"([a-z0-9_]+|[^\s,:]+:[A-Za-z_]\w*):([+-])(\d+(?:\.\d*)?|\.\d+)(%?)",
                             item)
        if match is None:
            raise DlbenchError(f"--tolerance '{item}': write METRIC:-N% or METRIC:+N (e.g. "
                               "accuracy:-1%,loss:+5%)")
        name, sign, amount, percent = match.groups()
        if name in found:  # the last would win silently
            raise DlbenchError(f"--tolerance names {name} twice; give each metric once")
        if name == TIMING:
            if sign != "+" or not percent:
                raise DlbenchError(f"--tolerance {item}: time is worse when it rises, and is "
                                   f"compared relatively; write {TIMING}:+{amount}%")
            found[name] = Tolerance(float(amount) / 100, True)
            continue
        if name not in known:
            raise DlbenchError(f"--tolerance: unknown metric '{name}'; choose from: "
                               f"{', '.join(known)}, or {TIMING}")
        worse = "-" if known[name] else "+"
        if sign != worse:
            raise DlbenchError(f"--tolerance {item}: {name} is worse when it "
                               f"{'falls' if worse == '-' else 'rises'}; write {name}:{worse}"
                               f"{amount}{percent}")
        found[name] = Tolerance(float(amount) / (100 if percent else 1), bool(percent))
    return found


def load(path: Path, kept: tuple[str, ...] = (), chance: bool = False) -> Results:
    """A finished run directory, a suite directory or a scores CSV. `kept`: metrics kept
    besides those with a direction (claims read overfit's curve measures); `chance`: keep the
    chance baseline's rows (model `chance`, which a claim may name as a side)."""
    if path.is_file():
        return _results(path, {"": path}, kept, chance)
    if not path.is_dir():
        raise DlbenchError(f"{path} does not exist; give a results directory, a suite "
                           "directory or a scores.csv")
    if (path / "scores.csv").exists():
        return _results(path, {"": path / "scores.csv"}, kept, chance)
    runs = sorted(p for p in path.iterdir() if (p / "scores.csv").exists())
    if not runs:
        raise DlbenchError(f"{path} holds no results (no scores.csv in it or in its "
                           "subdirectories); give a finished run or suite directory")
    return _results(path, {p.name: p / "scores.csv" for p in runs}, kept, chance)


def _results(path: Path, files: dict[str, Path], kept: tuple[str, ...] = (),
             chance: bool = False) -> Results:
    entries = {name: read_rows(file, chance) for name, file in files.items()}
    runs = {name: RunInfo.of(manifest) for name, file in files.items()
            if (manifest := _manifest(file, directory=file.name == "scores.csv"
                                      and path.is_dir())) is not None}
    entries = {name: _scored(frame, [*(runs[name].metrics if name in runs else {}), *kept])
               for name, frame in entries.items()}
    timings = {name: pd.read_csv(file.parent / "timings.csv")["seconds"].to_numpy(float)
               for name, file in files.items() if (file.parent / "timings.csv").exists()}
    return Results(path, entries, runs, timings)


def _manifest(scores: Path, directory: bool) -> dict[str, Any] | None:
    """The run's manifest.json, written last: a run directory without it is unfinished. A
    scores CSV given on its own may have none."""
    file = scores.parent / "manifest.json"
    if not file.exists():
        if directory:
            raise DlbenchError(f"{scores.parent} is an unfinished run (no manifest.json); "
                               "finish it with its command and --resume, or compare a "
                               "finished run")
        return None
    try:
        manifest = json.loads(file.read_text())
    except (OSError, ValueError) as e:
        raise DlbenchError(f"cannot read {file}: {e}") from None
    damaged = verify(scores.parent, [scores.name, "timings.csv"])
    if damaged:  # bytes changed since the run wrote them: its numbers are not the run's
        raise DlbenchError(f"{damaged[0]}; rerun it, or compare an intact copy")
    return manifest


CHANCE = "chance"  # the model column's value on the chance baseline's rows


def read_rows(path: Path, chance: bool = False) -> pd.DataFrame:
    """A scores (or curves) CSV as text, checked whole, without --tune trials, and without the
    chance baseline's rows unless `chance`."""
    try:  # as text: configuration values match as written ("" where an axis does not apply)
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as e:
        raise DlbenchError(f"cannot read {path}: {e}") from None
    missing = {"split", "metric", "value"} - set(frame.columns)
    if missing:
        raise DlbenchError(f"{path} is not a dlbench scores file (no {', '.join(sorted(missing))}"
                           " column)")
    # A cut line lacks its last fields (NaN even as text) or ends inside its status word
    cut = frame.isna().any(axis=1) | ~frame.get("status", pd.Series("ok", frame.index)).isin(
        STATUSES)
    if cut.any():
        raise DlbenchError(f"{path} is truncated or damaged (line {int(cut.idxmax()) + 2}); "
                           "rerun, or compare an intact copy")
    if "phase" in frame:
        frame = frame[frame.phase == "final"]  # --tune trials are not results
    if "model" in frame and not chance:
        frame = frame[frame.model != CHANCE]  # the baseline every run carries
    return frame


def _scored(frame: pd.DataFrame, plugged: list[str]) -> pd.DataFrame:
    """The rows of the metrics with a direction: the built-ins, a function run's path
    measures and the user's own (`plugged`, from the run's manifest, and any other kept),
    their values as numbers."""
    frame = frame[frame.metric.isin([*METRICS.names(), *PATH_MEASURES, *plugged])].copy()
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")  # a diverged member: NaN
    return frame


def notes(baseline: Results, current: Results) -> list[str]:
    """What the reader must know about how the two sides relate, one line each; two runs of
    different commands are refused."""
    found = []
    for entry in sorted(baseline.entries.keys() & current.entries.keys()):
        base, now = baseline.runs.get(entry), current.runs.get(entry)
        name = f"{entry}: " if entry else ""
        if base is None or now is None:
            found.append(f"{name}no manifest on the {'baseline' if base is None else 'current'}"
                         " side: its split identity is unknown; members paired by their "
                         "fold and seed labels")
            continue
        if base.command != now.command:
            raise DlbenchError(f"{name}the baseline is a run of '{base.command}' and the current "
                               f"one of '{now.command}'; compare runs of the same command")
        changed = _changed(_flat(pruned(base.config)), _flat(pruned(now.config)))
        if changed:
            found.append(f"{name}options differ ({', '.join(changed)}): rows are matched on "
                         "their configuration columns only")
        found += [f"{name}{line}" for line in _pairing(base, now)[1]]
    return found


def _pairing(base: RunInfo | None, now: RunInfo | None) -> tuple[bool, list[str]]:
    """(whether units are keyed by their recorded split identity, why not)."""
    if base is None or now is None:
        return False, []
    if base.fingerprint != now.fingerprint:
        return True, [f"the data differ (dataset fingerprint {base.fingerprint} → "
                      f"{now.fingerprint}): nothing is paired; the unpaired (Welch) test"]
    if not (base.splits or now.splits or base.fingerprint or now.fingerprint):
        return False, []  # no data on either side (paths on a function): paired by start
    if not (base.splits and now.splits):
        side = "baseline" if not base.splits else "current"
        return False, [f"the {side} records no split identity (written before dlbench kept "
                       "it): members paired by their fold and seed labels; regenerate it"]
    rows = [{r["rows"] for r in run.splits.values()} for run in (base, now)]
    if rows[0] != rows[1]:
        return True, ["the splits differ (another --seed or split option): units on other "
                      "rows are not paired; the unpaired (Welch) test where none is shared"]
    return True, []


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat |= _flat(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _changed(base: dict[str, Any], now: dict[str, Any]) -> list[str]:
    return [f"{k} {base.get(k)} → {now.get(k)}" for k in sorted(base.keys() | now.keys())
            if base.get(k) != now.get(k)]


def compare(baseline: Results, current: Results, tolerances: dict[str, Tolerance],
            rope: float | None = None) -> pd.DataFrame:
    """One row per (entry, configuration, split, metric) of either side, with its verdict."""
    rows = []
    greater = directions(baseline, current)
    for entry in sorted(baseline.entries.keys() | current.entries.keys()):
        base, now = baseline.entries.get(entry), current.entries.get(entry)
        sides = (baseline.runs.get(entry), current.runs.get(entry))
        rows += _entry_rows(entry, base, now, sides, tolerances, rope, greater)
    if TIMING in tolerances:
        rows += _timing_rows(baseline, current, tolerances[TIMING])
    if not rows:
        raise DlbenchError(f"{baseline.path} and {current.path} have no rows to compare")
    found = pd.DataFrame(rows)
    if "pairs" not in found or found["pairs"].isna().all():  # no configuration on both sides
        raise DlbenchError(f"{baseline.path} and {current.path} share no configuration: "
                           "compare runs of the same command and options")
    order = {v: i for i, v in enumerate(VERDICTS)}
    return found.sort_values(["verdict", "entry"], key=lambda c: c.map(order) if
                             c.name == "verdict" else c, kind="stable").reset_index(drop=True)


def _entry_rows(entry: str, base: pd.DataFrame | None, now: pd.DataFrame | None,
                sides: tuple[RunInfo | None, RunInfo | None], tolerances: dict[str, Tolerance],
                rope: float | None, greater: dict[str, bool]) -> list[dict[str, Any]]:
    frames = [f for f in (base, now) if f is not None]
    keys = [c for c in frames[0].columns if c not in (*MEMBER, *DROPPED)
            and all(c in f.columns for f in frames)]
    groups = [dict(iter(f.groupby(keys, sort=False))) if f is not None else {}
              for f in (base, now)]
    identity = _pairing(*sides)[0]
    rows = []
    for key in list(dict.fromkeys([*groups[0], *groups[1]])):
        b, c = groups[0].get(key), groups[1].get(key)
        config = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        row = {"entry": entry, "configuration": _label(c if c is not None else b, config),
               **config}
        if b is None or c is None:
            side = ("baseline", b, sides[0]) if c is None else ("current", c, sides[1])
            rows.append(row | _side(side[0], units(side[1], side[2], identity))
                        | {"verdict": "missing" if c is None else "new"})
            continue
        tolerance = tolerances.get(config["metric"], Tolerance(DEFAULT_TOLERANCE, True))
        rows.append(row | _judged(b, c, sides, identity, greater[config["metric"]], tolerance,
                                  rope))
    return rows


def _label(frame: pd.DataFrame, config: dict[str, Any]) -> str:
    if "cell" in frame:
        return str(frame["cell"].iloc[0])
    return str(config.get("model", ""))


@dataclass(frozen=True)
class Units:
    """One side's units for one configuration: resampled splits (each its seeds' mean) when
    there are several, else the members (seeds on one split)."""

    values: pd.Series  # indexed by the pairing key
    splits: bool  # the units are resampled splits
    n_train: float  # mean training rows of a split (NaN: not recorded)
    n_test: float  # mean evaluated rows
    ordered: bool  # forward-chaining folds
    members: int  # rows (members) behind the units
    kind: str = "seeds"  # what a member is (seeds; a function run's starts)

    def estimate(self, values: np.ndarray | None = None) -> Estimate:
        """The t estimate of `values` (these units' own by default) with this design's
        variance: Nadeau-Bengio over shuffled splits, the plain t otherwise."""
        x = self.values.to_numpy(float) if values is None else values
        if not self.splits:
            return stats.seeds_estimate(x, self.kind)
        if self.ordered:
            estimate = stats.seeds_estimate(x, "forward-chaining folds")
            return replace(estimate, method=f"heuristic: plain {estimate.method} (not "
                           "exchangeable)")
        if not (self.n_train > 0 and self.n_test > 0):
            estimate = stats.seeds_estimate(x, "splits")
            return replace(estimate, method=f"{estimate.method}, uncorrected: the split sizes "
                           "are not recorded")
        return stats.corrected_estimate(x, n_train=self.n_train, n_test=self.n_test)


def units(frame: pd.DataFrame, run: RunInfo | None, identity: bool) -> Units:
    labels = [tuple(str(v) for v in pair) for pair in
              zip(frame.get("repeat", ""), frame.get("fold", ""), strict=True)] \
        if {"repeat", "fold"} <= set(frame.columns) else [("", "")] * len(frame)
    records = run.splits if run is not None else {}
    split_key = [_split_key(records, label, identity) for label in labels]
    over_splits = len(set(labels)) > 1
    if over_splits:  # seeds averaged within a split first, as cv does
        values = frame["value"].groupby(np.array(split_key), sort=False).mean()
        used = [records.get(label, {}) for label in dict.fromkeys(labels)]
    else:
        seeds = frame["seed"] if "seed" in frame else pd.Series(range(len(frame)), frame.index)
        values = pd.Series(frame["value"].to_numpy(float),
                           index=[f"{k}/{s}" for k, s in zip(split_key, seeds, strict=True)])
        used = []
    sizes = [(r["n_train"], r["n_test"]) for r in used if "n_train" in r]
    n_train, n_test = np.mean(sizes, axis=0) if sizes and len(sizes) == len(used) else \
        _assumed_sizes(labels)
    return Units(values, over_splits, n_train, n_test, bool(run and run.ordered), len(frame),
                 run.members if run is not None else "seeds")


def _split_key(records: dict, label: tuple[str, str], identity: bool) -> str:
    """What pairs a unit: its split's recorded rows, or (no identity) its labels."""
    if not identity:
        return ",".join(label)
    record = records.get(label) or records.get(("", ""))
    return record["rows"] if record else f"unrecorded {','.join(label)}"


def _assumed_sizes(labels: list[tuple[str, str]]) -> tuple[float, float]:
    """Without recorded sizes, k-fold's k from its fold labels: n_test / n_train = 1 / (k-1);
    other designs: unknown (NaN)."""
    folds = {fold for _, fold in labels if fold not in ("", "-1")}
    return (len(folds) - 1.0, 1.0) if len(folds) > 1 else (math.nan, math.nan)


def _side(name: str, units: Units) -> dict[str, Any]:
    interval = units.estimate().interval()
    return {f"{name}_mean": interval.mean, f"{name}_ci_low": interval.low,
            f"{name}_ci_high": interval.high, f"{name}_n": interval.n,
            f"{name}_members": units.members}


def difference(base: Units, now: Units) -> tuple[Estimate, str, set]:
    """(current − baseline, how the units were paired, baseline keys with no partner)."""
    shared = base.values.index.intersection(now.values.index)
    lost = set(base.values.index) - set(now.values.index)
    if len(shared) and base.splits == now.splits:
        diffs = (now.values[shared] - base.values[shared]).to_numpy(float)
        kind = "splits" if base.splits else base.kind
        return base.estimate(diffs), f"paired over {len(shared)} {kind}", lost
    return (stats.unpaired_difference(now.estimate(), base.estimate()),
            "unpaired: no split in common", set())


def _judged(base: pd.DataFrame, now: pd.DataFrame, sides: tuple, identity: bool,
            greater_is_better: bool, tolerance: Tolerance, rope: float | None
            ) -> dict[str, Any]:
    both = units(base, sides[0], identity), units(now, sides[1], identity)
    estimate, pairing, unpartnered = difference(*both)
    better = 1.0 if greater_is_better else -1.0
    allowed = tolerance.allowed(both[0].estimate().mean)
    # one-sided against the tolerance: "regressed" = shown worse by more than it
    p_worse = estimate.p_value("less" if better > 0 else "greater", null=-better * allowed)
    p_better = estimate.p_value("greater" if better > 0 else "less", null=better * allowed)
    diverged = int((~np.isfinite(now["value"].to_numpy(float))).sum()
                   - (~np.isfinite(base["value"].to_numpy(float))).sum())
    fewer = len(unpartnered) or max(0, len(base) - len(now))
    verdict = "unchanged"
    if fewer:  # members of the baseline the current lacks: never noise
        verdict = "missing"
    elif diverged > 0 or p_worse < ALPHA:  # members diverged only now: never noise either
        verdict = "regressed"
    elif p_better < ALPHA:
        verdict = "improved"
    elif not math.isfinite(p_worse):  # one unit a side (or no spread): nothing was tested
        verdict = "untested"
    interval = estimate.interval()
    found = (_side("baseline", both[0]) | _side("current", both[1])
             | {"delta": estimate.mean, "delta_ci_low": interval.low,
                "delta_ci_high": interval.high, "tolerance": allowed, "pairs": estimate.n,
                "p_value": p_worse if better * estimate.mean <= 0 else p_better,
                "diverged_more": diverged, "missing_members": fewer,
                "test": f"{estimate.method}, {pairing}; one-sided against the tolerance"
                if math.isfinite(p_worse) else f"none (fewer than 2 units), {pairing}"})
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
    on log seconds with p < TIMING_ALPHA. The runs are not paired: a machine's load drifts."""
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
        significant = math.isfinite(p) and p < TIMING_ALPHA
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


# --- claims (claims.csv, evaluate/claims.py) whose verdict changed ------------------------------

CLAIM_KEY = ("entry", "relation", "compare", "against", "metric", "split", "target", "cost")
# (one hypothesis; target and cost are blank where a relation takes none, or in a claims.csv
# written before they existed)
CLAIM_REGRESSION = ("holds", "fails")  # a change that makes compare exit 1
MISSING = "missing"  # a claim of the baseline that the current suite no longer judges: exit 1,
# as a missing result row (a claim may not stop holding by being dropped)
NEW = "new"  # a claim only the current suite judges


def claim_changes(base: Path, now: Path) -> pd.DataFrame:
    """Each claim in either suite's claims.csv whose verdict changed: entry, claim, baseline,
    current, regression (holds -> fails, or a claim gone missing); a claim only on one side
    reads `missing` on the current side or `new` on the baseline side. A side without
    claims.csv (a baseline run before claims existed, a single run) has no claims to compare:
    no rows."""
    sides = [_claims(p) for p in (base, now)]
    if any(s is None for s in sides):
        return pd.DataFrame(columns=["entry", "claim", "baseline", "current", "regression"])
    joined = sides[0].merge(sides[1], on=list(CLAIM_KEY), how="outer", sort=False,
                            suffixes=("_base", "_now"))
    joined = joined.fillna({"verdict_base": NEW, "verdict_now": MISSING})
    changed = joined[joined.verdict_base != joined.verdict_now]
    return pd.DataFrame({
        "entry": changed.entry, "claim": changed.claim_now.fillna(changed.claim_base),
        "baseline": changed.verdict_base, "current": changed.verdict_now,
        "regression": [(b, c) == CLAIM_REGRESSION or c == MISSING for b, c in
                       zip(changed.verdict_base, changed.verdict_now, strict=True)]
    }).reset_index(drop=True)


def _claims(path: Path) -> pd.DataFrame | None:
    file = path / "claims.csv"
    if not file.is_file():
        return None
    try:
        frame = pd.read_csv(file, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as e:
        raise DlbenchError(f"cannot read {file}: {e}") from None
    frame = frame.reindex(columns=[*frame.columns, *(k for k in ("target", "cost")
                                                     if k not in frame)], fill_value="")
    if not {*CLAIM_KEY, "claim", "verdict"} <= set(frame.columns):
        raise DlbenchError(f"{file} is not a dlbench claims file (columns "
                           f"{', '.join(CLAIM_KEY)}, claim, verdict)")
    return frame[[*CLAIM_KEY, "claim", "verdict"]]
