"""Methods compared across problems (datasets, suite entries): ranks, the Friedman test with
Nemenyi's post-hoc (scikit-posthocs), Wilcoxon's signed-rank test for two methods, and
performance profiles of time-to-target (Dolan & Moré 2002, as AlgoPerf uses them).

A *problem* is one results directory or suite entry; a *method* is a configuration within it
(its cell label). A method's score on a problem is the mean over its members of one metric on
one split; its cost, the median over seeds of what reaching the target took (optimize's
`--target-accuracy` columns of summary.csv).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from dlbench.errors import DlbenchError
from dlbench.evaluate.compare import Results
from dlbench.evaluate.metrics import METRICS

ALPHA = 0.05
TAUS = np.linspace(1.0, 4.0, 61)  # performance profiles: up to 4× the best method's cost
COSTS = ("grad_evals", "passes", "epochs", "seconds")  # <cost>_to_target in summary.csv


@dataclass(frozen=True)
class Ranking:
    scores: pd.DataFrame  # problems × methods: mean score
    ranks: pd.Series  # method -> mean rank over problems (1 = best)
    friedman: tuple[float, float]  # (chi-square statistic, p); NaN below 3 methods
    # methods × methods: p of equal ranks (Nemenyi); None unless Friedman rejects at ALPHA,
    # since a post-hoc test only follows a rejected omnibus test (Demšar 2006, section 3.2.2)
    nemenyi: pd.DataFrame | None
    critical_difference: float  # Nemenyi's CD at ALPHA, in mean-rank units
    wilcoxon: tuple[float, float] | None  # two methods: (statistic, p)


def score_table(sides: list[Results], split: str, metric: str) -> pd.DataFrame:
    """problems × methods of mean scores; only methods every problem has."""
    rows: dict[str, pd.Series] = {}
    seen: dict[str, str] = {}  # problem key -> the first problem's name
    for side in sides:
        for entry, frame in side.entries.items():
            chosen = frame[(frame.split == split) & (frame.metric == metric)]
            if "checkpoint" in chosen:  # overfit: the delivered model, not its best epoch
                chosen = chosen[chosen.checkpoint == "final"]
            if chosen.empty:
                continue
            method = chosen["cell"] if "cell" in chosen else chosen["model"]
            name = f"{side.path.name}/{entry}" if entry else side.path.name
            _refuse_duplicate(seen, _problem_key(side.path / entry, frame), name)
            rows[name] = chosen.groupby(method.to_numpy())["value"].mean()
    if len(rows) < 2:
        raise DlbenchError(f"--rank needs at least 2 problems (results directories or suite "
                           f"entries) with {split} {metric} scores; found {len(rows)}")
    table = pd.DataFrame(rows).T
    shared = table.dropna(axis=1)
    if shared.shape[1] < 2:
        raise DlbenchError("--rank: the problems share fewer than 2 methods (configurations "
                           f"with the same label); found {', '.join(table.columns[:6])}")
    return shared


def _problem_key(run: Path, frame: pd.DataFrame) -> str:
    """What makes two problems the same: the run's configuration (its seed aside: another seed
    of one configuration on the same data is a replicate, not another problem) and its data's
    fingerprint, from manifest.json; a bare scores CSV, its configuration columns."""
    try:
        manifest = json.loads((run / "manifest.json").read_text())
        config = {k: v for k, v in manifest["config"].items() if k != "seed"}
        return json.dumps([manifest.get("command"), config, manifest.get("dataset")],
                          sort_keys=True)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        columns = [c for c in frame.columns if c not in ("value", "status", "member_seed",
                                                         "seed", "repeat", "fold")]
        return frame[columns].drop_duplicates().sort_values(columns).to_csv(index=False)


def _refuse_duplicate(seen: dict[str, str], key: str, name: str) -> None:
    """The same problem twice would count its block twice and shrink every p (Friedman's
    blocks are independent problems)."""
    if key in seen:
        raise DlbenchError(f"--rank: {seen[key]} and {name} are the same problem (the same "
                           "configuration on the same data, e.g. a rerun); give each problem "
                           "once")
    seen[key] = name


def rank(scores: pd.DataFrame, metric: str, greater_is_better: bool | None = None) -> Ranking:
    """Ranks within each problem (1 = best; ties share the mean rank), then the tests. The
    direction: `greater_is_better` (a plugged metric's, from its runs' manifests), else the
    built-in metric's."""
    import scikit_posthocs as sp

    if greater_is_better is None:
        greater_is_better = METRICS.get(metric).greater_is_better
    better = 1.0 if greater_is_better else -1.0
    ranks = (-better * scores).rank(axis=1, method="average").mean()
    n, k = scores.shape
    friedman, nemenyi = (np.nan, np.nan), None
    if k >= 3:
        result = sps.friedmanchisquare(*(scores[c].to_numpy() for c in scores.columns))
        friedman = (float(result.statistic), float(result.pvalue))
    if friedman[1] < ALPHA:
        # scikit-posthocs ranks each block ascending: hand it "lower is better" values
        nemenyi = sp.posthoc_nemenyi_friedman((-better * scores).to_numpy())
        nemenyi.index = nemenyi.columns = scores.columns
    q = sps.studentized_range.ppf(1 - ALPHA, k, np.inf) / np.sqrt(2)  # Demšar (2006)
    cd = float(q * np.sqrt(k * (k + 1) / (6.0 * n)))
    wilcoxon = None
    if k == 2:
        a, b = (scores[c].to_numpy() for c in scores.columns)
        if np.any(a != b):
            w = sps.wilcoxon(a, b)
            wilcoxon = (float(w.statistic), float(w.pvalue))
    return Ranking(scores, ranks.sort_values(), friedman, nemenyi, cd, wilcoxon)


def cost_table(paths: list, cost: str) -> pd.DataFrame:
    """problems × methods of the cost to reach the target (NaN: not reached), from the
    summary.csv of each run (or suite entry) in `paths`."""
    column = f"{cost}_to_target"
    rows = {}
    for path in map(Path, paths):
        if not path.is_dir():
            raise DlbenchError(f"--cost reads the summary.csv of run or suite directories; "
                               f"{path} is not one")
        runs = [path] if (path / "summary.csv").exists() else \
            sorted(p for p in path.iterdir() if (p / "summary.csv").exists())
        for run in runs:
            summary = pd.read_csv(run / "summary.csv")
            if column not in summary or "cell" not in summary:
                raise DlbenchError(f"{run} has no {column}: performance profiles need runs of "
                                   "dlbench optimize with --target-accuracy")
            name = path.name if run == path else f"{path.name}/{run.name}"
            rows[name] = summary.set_index("cell")[column].astype(float)
    if len(rows) < 2:
        raise DlbenchError("performance profiles need at least 2 problems")
    return pd.DataFrame(rows).T


def profiles(costs: pd.DataFrame, taus: np.ndarray = TAUS) -> pd.DataFrame:
    """taus × methods: the share of problems a method reaches the target on within τ times the
    cheapest method's cost on that problem (a problem no method solves counts as unsolved)."""
    best = costs.min(axis=1, skipna=True)
    ratio = costs.div(best, axis=0)  # NaN where unsolved (or no method solved it)
    return pd.DataFrame({m: [(ratio[m] <= t).mean() for t in taus] for m in costs.columns},
                        index=pd.Index(taus, name="tau"))


def ranks_table(ranked: Ranking) -> pd.DataFrame:
    """One row per method, best first: its mean rank and mean score over the problems."""
    return pd.DataFrame({"method": ranked.ranks.index, "mean_rank": ranked.ranks.to_numpy(),
                         "mean_score": ranked.scores.mean()[ranked.ranks.index].to_numpy()})
