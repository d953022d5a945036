"""`dlbench compare`: two runs judged against a tolerance (exit 1 on a regression), or with
--rank, methods ranked across problems."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from dlbench.cli.execute import check_format, given
from dlbench.errors import DlbenchError


def compare(
        ctx: typer.Context,
        paths: Annotated[list[Path], typer.Argument(
            help="BASELINE CURRENT: results directories, suite directories or scores.csv "
                 "files. With --rank: two or more results or suite directories.",
            metavar="PATH", show_default=False)],
        tolerance: Annotated[str | None, typer.Option(
            help="How much worse each metric may get before it counts, relative ('%') or in "
                 "its units: 'accuracy:-1%,loss:+5%' (default 1% of the baseline for every "
                 "metric); 'seconds:+20%' also compares wall time (needs dlbench run "
                 "--timings).")] = None,
        rope: Annotated[float | None, typer.Option(
            help="Also the probability that the difference lies within ±ROPE (practically "
                 "equivalent; correlated Bayesian t-test), in the metric's units.")] = None,
        all_rows: Annotated[bool, typer.Option(
            "--all", help="List the unchanged rows too.")] = False,
        rank: Annotated[bool, typer.Option(
            "--rank", help="Rank the methods (configurations) across the problems (each "
                           "directory or suite entry): Friedman, Nemenyi, Wilcoxon for two.")
                        ] = False,
        metric: Annotated[str, typer.Option(help="--rank: the metric ranked.")] = "accuracy",
        split: Annotated[str, typer.Option(help="--rank: the split ranked.")] = "val",
        cost: Annotated[str | None, typer.Option(
            help="--rank: also performance profiles of this cost to the target (grad_evals, "
                 "passes, epochs, seconds; runs of optimize --target-accuracy).")] = None,
        out: Annotated[Path | None, typer.Option(
            help="Also write the verdicts (compare.csv) here, for `dlbench report`; --rank: "
                 "where its CSVs and PNGs go (default results/rank-<timestamp>/).")] = None,
        fmt: Annotated[str, typer.Option(
            "--format", help="table | markdown (a CI job summary) | json.")] = "table") -> None:
    """Compare results with a baseline: exit 1 when something regressed (shown worse than
    its tolerance) or went missing, 0 when nothing did. With --rank: methods
    ranked across problems."""
    check_format(fmt, ("table", "markdown", "json"))
    check_applies(given(ctx), rank)
    if rank:
        _rank(paths, metric, split, cost, out, fmt)
        return
    raise typer.Exit(_judge(paths, tolerance, rope, out, fmt, all_rows))


def check_applies(named: set[str], rank: bool) -> None:
    """An option given that does not apply (--rank's without it, or the others with it) is
    refused, never ignored."""
    asked = named & {"tolerance", "rope", "all_rows", "metric", "split", "cost"}
    own = {"metric", "split", "cost"}  # --rank's; the others judge two runs
    for name in sorted(asked - own if rank else asked & own):
        option = "--all" if name == "all_rows" else f"--{name}"
        raise DlbenchError(f"{option} does not apply to --rank; drop it" if rank else
                           f"{option} applies to --rank; drop it or add --rank")


def _judge(paths: list[Path], tolerance: str | None, rope: float | None, out: Path | None,
           fmt: str, all_rows: bool) -> int:
    """compare BASELINE CURRENT: the verdicts, their table and compare.csv -> the exit code."""
    from dlbench.output import report

    found, title, notes, claims = judged(paths, tolerance, rope, out)
    report.show_compare(found, title, notes, fmt, all_rows)
    return 1 if regressed(found, claims) else 0


def regressed(found, claims) -> bool:
    """Whether a verdict says regressed (or missing), or a claim that held now fails: what
    makes `compare` exit 1 (and the API's Comparison.regressed)."""
    from dlbench.evaluate import compare as judge

    claim_failed = claims is not None and bool(claims.regression.any())
    return bool(found.verdict.isin(judge.FAILURES).any()) or claim_failed


def judged(paths: list[Path], tolerance: str | None, rope: float | None, out: Path | None):
    """compare BASELINE CURRENT, nothing shown: (verdicts, title, notes, the suites' claims
    whose verdict changed or None); compare.csv in `out` when given. What the command and the
    Python API share."""
    from dlbench import results
    from dlbench.evaluate import compare as judge

    if len(paths) != 2:
        raise DlbenchError(f"compare takes BASELINE CURRENT (2 paths), got {len(paths)}; "
                           "--rank compares more")
    if rope is not None and not (rope > 0 and math.isfinite(rope)):
        raise DlbenchError(f"--rope must be a positive number, got {rope:g}")
    results.check_out(out)
    base_path, now_path = paths
    baseline, current = judge.load(base_path), judge.load(now_path)
    # after reading them: the user's metrics and their directions are in the runs' manifests
    tolerances = judge.parse_tolerance(tolerance, judge.directions(baseline, current))
    notes = [f"regressed: shown worse than its tolerance, one-sided p < {judge.ALPHA} "
             "(non-inferiority; p is that test's, in the direction Δ points); units are the "
             "resampled splits (seeds averaged within each, corrected resampled t of Nadeau & "
             "Bengio 2003) or else the seeds (t), paired where both runs used the same rows; "
             "missing rows or members count as failures", *judge.notes(baseline, current)]
    if rope is not None:
        notes.append(f"p_equivalent (json): posterior probability that the difference lies "
                     f"within ±{rope:g} (correlated Bayesian t-test)")
    if judge.TIMING in tolerances:
        notes.append("wall time: geometric means of each side's timings (dlbench run "
                     "--timings N), Welch t on log seconds; both sides' load is part of it: "
                     "time them on the same quiet machine")
    found = judge.compare(baseline, current, tolerances, rope)
    if out is not None:  # compare.csv, every row: what `dlbench report` shows
        record = {"command": "compare", "config": {"baseline": str(base_path),
                                                   "current": str(now_path),
                                                   "tolerance": tolerance, "rope": rope}}
        with results.claimed(out, "compare", record) as out_dir:
            results.write_run(out_dir, {"compare": found}, {
                **record, "baseline": str(base_path), "current": str(now_path),
                "rule": notes[0], **results.environment()})
    from dlbench.output import report

    claims = judge.claim_changes(*paths) if all(p.is_dir() for p in paths) else None
    return (found, f"compare {base_path} → {now_path}",
            [*notes, *report.claim_change_lines(claims)], claims)


def _rank(paths: list[Path], metric: str, split: str, cost: str | None, out: Path | None,
          fmt: str) -> None:
    """compare --rank: every input checked, then the ranking, its files and its table."""
    from dlbench.output import report

    ranked, title, _, out_dir = ranking_run(paths, metric, split, cost, out)
    report.show_ranking(ranked, title, fmt)
    typer.echo(f"results: {out_dir}", err=True)


def ranking_run(paths: list[Path], metric: str, split: str, cost: str | None,
                out: Path | None):
    """compare --rank, nothing shown: (the ranking, its title, its tables, its directory).
    What the command and the Python API share."""
    from dlbench import results
    from dlbench.evaluate import compare as judge
    from dlbench.evaluate import ranking
    from dlbench.output import plots

    if cost is not None and cost not in ranking.COSTS:
        raise DlbenchError(f"--cost: unknown cost '{cost}'; choose one of: "
                           f"{', '.join(ranking.COSTS)}")
    results.check_out(out)
    loaded = [judge.load(p) for p in paths]
    known = judge.directions(*loaded)  # the built-ins, and the user's own the runs declare
    if metric not in known:
        raise DlbenchError(f"--metric: unknown metric '{metric}'; choose from: "
                           f"{', '.join(known)}")
    scores = ranking.score_table(loaded, split, metric)
    costs = ranking.cost_table(paths, cost) if cost is not None else None
    ranked = ranking.rank(scores, metric, known[metric])
    title = f"{metric} on {split}, {len(scores)} problems"
    tables = {"ranks": ranking.ranks_table(ranked),
              "scores": scores.rename_axis("problem").reset_index()}
    figures = {}
    if ranked.nemenyi is not None:
        tables["nemenyi"] = ranked.nemenyi.rename_axis("method").reset_index()
        figures["critical_difference.png"] = lambda p: plots.critical_difference_plot(
            p, ranked.ranks, ranked.nemenyi, f"mean rank, {title} (bars join methods "
            f"Nemenyi cannot tell apart at α={ranking.ALPHA})")
    if costs is not None:
        profile = ranking.profiles(costs)
        tables["profiles"] = profile.reset_index()
        figures["profiles.png"] = lambda p: plots.profiles_plot(
            p, profile, cost, f"performance profiles: {cost} to the target, {len(costs)} "
            "problems")
    record = {"command": "compare --rank", "config": {
        "paths": [str(p) for p in paths], "metric": metric, "split": split, "cost": cost}}
    with results.claimed(out, "rank", record) as out_dir:
        results.write_run(out_dir, tables, {**record, **results.environment()}, figures)
    return ranked, title, tables, out_dir
