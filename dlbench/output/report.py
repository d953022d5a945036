"""What users read: rich tables on stdout, or the same summary as JSON. Only this module draws.

Every table fits 80 columns without losing a value: numbers and status words never wrap or get
cut; only a cell's label wraps, at its spaces. Each interval's note says what it covers.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from typing import Any

import pandas as pd
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

MARKS = {"equivalent": "≈", "inconclusive": "?", "better": "!"}
Grid = tuple[list[tuple[str, str]], list[list[str]]]  # (name, justify) columns; rows of cells


def stdout() -> Console:
    """The terminal's width (or $COLUMNS); 120 columns into a file or pipe, which have none."""
    console = Console()
    if console.is_terminal or os.environ.get("COLUMNS"):
        return console
    return Console(width=120)


def show(result: Any, fmt: str, table: Callable[[Any], tuple[Table, list[str]]],
         console: Console | None = None) -> None:
    """The summary of a finished run: `table(result)` (a table and its notes; the command's
    own, e.g. cv_table), or JSON."""
    if fmt == "json":  # plain JSON on stdout, nothing else, so it pipes into jq or a script
        _print_json(result.summary, result.info)
        return
    console = console or stdout()
    table, notes = table(result)
    _print_table(console, table)
    for note in notes:  # wrapped at words to the terminal's width
        console.print(note, style="dim", highlight=False)


# --- formatting ------------------------------------------------------------------------------


def number(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def p_value(p: float) -> str:
    if not math.isfinite(p):
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def interval(low: float, high: float) -> str:
    """'low–high', or one '—' when there is no interval (a single unit)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return "—"
    return f"{number(low)}–{number(high)}"


def plus_minus(mean: float, half: float) -> str:
    """'−0.012±0.008': the mean to the half-width's precision (2 significant digits)."""
    if not math.isfinite(mean):
        return "—"
    if not (math.isfinite(half) and half > 0):
        return number(mean)
    if half >= 1000 or max(abs(mean), half) < 1e-3:  # huge (a loss blown up) or tiny (a
        # rerun's rounding): mantissa and exponent read where a run of zeros would not
        return f"{mean:+.1e}±{half:.1e}".replace("-", "−")
    decimals = max(0, 1 - math.floor(math.log10(half)))
    return f"{mean:+.{decimals}f}±{half:.{decimals}f}".replace("-", "−")


def _status(status: str) -> str:
    return {"ok": "ok", "stalled": "[yellow]stalled[/]", "unstable": "[magenta]unstable[/]",
            "diverged": "[red]diverged[/]"}.get(status, escape(status))


def _print_table(console: Console, table: Table) -> None:
    """The title on a line of its own (a table title would wrap at the table's width), bold."""
    title, table.title = table.title, None
    console.print(title, style="bold", highlight=False)
    console.print(table)


def _table(title: str, columns: list[tuple[str, str]]) -> Table:
    """A compact table: the 'cell'/'metric' column takes what is left and wraps at spaces;
    every other column keeps its values whole."""
    table = Table(title=escape(title), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  padding=0, show_edge=False)  # one space between columns: 80 columns fit
    for name, justify in columns:
        if name in ("cell", "setting"):
            table.add_column(name, justify=justify, min_width=12, ratio=1, overflow="fold")
        else:
            table.add_column(name, justify=justify, no_wrap=True)
    return table


# --- cv --------------------------------------------------------------------------------------


def cv_title(plan: Any) -> str:
    cfg, s = plan.config, plan.config.split
    opt = cfg.train.optimizer
    if s.protocol == "kfold":
        design = (f"{s.k} forward-chaining folds" if s.time_order
                  else f"{s.k}-fold" + (f" × {plural(s.repeats, 'repeat')}" if s.repeats > 1
                                        else ""))
        if cfg.data.group is not None:
            design += f", grouped by {cfg.data.group}"
    else:
        design = f"hold-out {s.val_fraction:g}" + (f" × {plural(s.holdout_seeds, 'shuffle')}"
                                                   if s.holdout_seeds > 1 else "")
        if s.time_order:
            design += " (time order)"
    return (f"cv · {plan.dataset.name} · {cfg.model.shown} · {opt.label} lr={opt.lr:g} · "
            f"{design} · {plural(cfg.seeds, 'seed')}")


def cv_table(result: Any) -> tuple[Table, list[str]]:
    return _filled(cv_title(result.plan), *cv_grid(result.summary, {})), _cv_notes(result)


def cv_grid(summary: pd.DataFrame, config: dict[str, Any]) -> Grid:
    shown = summary[summary.split != "train"]
    time_order = (shown["unit"] == "folds").any()
    spread = ("last fold", "last") if time_order else ("std", "std")
    columns = [("metric", "left"), ("mean", "right"), (spread[0], "right"),
               ("95% CI", "right"), ("chance", "right"), ("p", "right"), ("beats", "left")]
    rows = []
    for split, part in shown.groupby("split", sort=False):
        rows.append([f"[bold]{split}[/]"])  # a section per split: val, then test
        for r in part.itertuples():
            beats = {True: "[green]yes[/]", False: "[red]no[/]"}.get(r.beats_chance, "—")
            ci = interval(r.ci_low, r.ci_high) + ("*" if _word(r.ci_clipped) == "True" else "")
            rows.append([r.metric, number(r.mean), number(getattr(r, spread[1])), ci,
                         number(r.chance), p_value(r.p_value), beats])
    return columns, rows


def _cv_notes(result: Any) -> list[str]:
    summary, info = result.summary, result.info
    notes = []
    for split, rows in summary[summary.split != "train"].groupby("split", sort=False):
        first = rows.iloc[0]
        if first.n > 1:
            notes.append(f"{split} {first.metric} {_ranged(result, first)}")
        notes.append(f"{split}: 95% CI by {first.interval}")
        if rows["ci_clipped"].any():
            notes.append(f"{split}: * interval clipped at the metric's possible values")
        notes.append(f"p, beats ({split}): {first.p_test}; beats: p < 0.05")
    counts = info.get("statuses", {})
    members = info["members"]
    for status, meaning in status_meanings(info["dataset"]["task"]).items():
        if counts.get(status) and status != "ok":
            notes.append(f"[red]{counts[status]} of {members} members {status} ({meaning})[/]")
    notes.append(f"{plural(members, 'member')}, {info['seconds']:.2f} s on {info['device']}")
    return notes


def status_meanings(task: str) -> dict[str, str]:
    """What each status word means, in a note's words (evaluate/verdicts.py decides them)."""
    stalled = ("validation accuracy stayed near chance, whatever the training loss did"
               if task == "classification" else "the training loss barely fell")
    return {"diverged": "a training loss became NaN/inf: its scores are NaN and left out",
            "unstable": "the training loss rose well above its best",
            "stalled": stalled,
            "ok": "none of those"}


def _ranged(result: Any, row: Any) -> str:
    """How much the first metric moved, over the units of the estimate."""
    if row.unit == "folds":
        scores = result.scores
        mine = scores[(scores.model != "chance") & (scores.split == "val")
                      & (scores.metric == row.metric)]
        folds = mine.groupby("fold")["value"].mean()
        sizes = [len(s.train) for s in result.plan.splits]
        return ("per fold (trained on " + ", ".join(map(str, sizes)) + " rows): "
                + ", ".join(number(v) for v in folds) + "; the folds are not exchangeable")
    where = "on the one split" if row.unit == "seeds" else ""
    return f"ranged {number(row['min'])}–{number(row['max'])} over the " \
           f"{plural(int(row.n), row.unit.removesuffix('s'))} {where}".rstrip()


# --- optimize --------------------------------------------------------------------------------


def optimize_table(result: Any) -> tuple[Table, list[str]]:
    summary, run, config = result.summary, result.info, result.plan.config
    optimizers = {(r.optimizer, r.lr) for r in summary.itertuples()}
    shared = "".join(f" · {name} lr={lr:.3g}" for name, lr in optimizers) \
        if len(optimizers) == 1 and len(summary) > 1 else ""  # not in the cells' labels then
    title = (f"optimize · {run['dataset']['name']}{shared} · "
             f"{plural(run['cells'], 'cell')} × {plural(run['seeds'], 'seed')} · "
             f"{plural(config.train.epochs, 'epoch')} · {run['primary_metric']}")
    grid = optimize_grid(summary, {"target": config.target})
    return _filled(title, *grid), _optimize_notes(result)


def optimize_grid(summary: pd.DataFrame, config: dict[str, Any]) -> Grid:
    target = config.get("target")
    columns = [("#", "right"), ("cell", "left"), ("val", "right"), ("±95%", "right"),
               ("Δ #1 ±95%", "right"), ("test", "right"), ("s/model", "right")]
    if target is not None:
        columns.append((f"to {target:g}", "right"))
    rows = []
    for r in summary.itertuples():
        row = [f"{r.rank}{MARKS.get(r.vs_best, '')}", escape(str(r.cell)), number(r.val_mean),
               _half(r.val_ci_half) + ("*" if _word(r.val_ci_clipped) == "True" else ""),
               "best" if r.vs_best == "best" else plus_minus(r.diff_best, r.diff_ci_half),
               number(r.test_mean), _seconds(r.seconds_per_model)]
        if target is not None:
            row.append(_passes(r.passes_to_target))
        mixed = "," in str(r.statuses)
        rows.append([*row, _status(r.status) + ("~" if mixed else "")])  # "*": clipping
    return [*columns, ("status", "left")], rows


def _optimize_notes(result: Any) -> list[str]:
    summary, run, config = result.summary, result.info, result.plan.config
    rows, metric = run["rows"], run["primary_metric"]
    methods = summary["interval"].value_counts()
    notes = [f"val, test: {metric}, mean over seeds, on one split for every cell: "
             f"{rows['train']} train, {rows['val']} validation, {rows['test']} test rows",
             f"±95%: {methods.index[0]}"
             + "".join(f" ({n} cells: {m}, their diverged seeds left out)"
                       for m, n in methods.iloc[1:].items())
             + "; Δ #1: paired difference to #1 (same seeds, same resamples)"]
    if summary["val_ci_clipped"].any():
        notes.append("*: the interval reaches past what the metric can take (summary.csv has it "
                     "clipped)")
    seeds = run["seeds"]
    if seeds == 1:
        notes.append("1 seed: the seed variance cannot be estimated, so no cell is compared "
                     "with #1 (Δ shown without a verdict); use --seeds 3 or more")
    else:
        notes.append(f"≈: equivalent to #1 within ±{number(summary['margin'].iloc[0])} (TOST, "
                     "α 0.05; --margin); ?: neither equivalent nor shown worse; no mark: worse "
                     "than #1" + ("; !: better than #1 on the seeds finite in both"
                                  if (summary["vs_best"] == "better").any() else ""))
        if seeds < 5 and (summary["vs_best"] == "inconclusive").any():
            notes.append(f"with {seeds} seeds the seed variance is barely estimated: too few to "
                         "tell most differences; use --seeds 5 or more")
    notes.append("s/model: seconds per trained model, its own share (the stack's shared work "
                 "split evenly, plus its own optimizer steps); summary.csv also counts "
                 "gradient evaluations and passes over the data")
    if summary["loss"].nunique() > 1:
        notes.append("the cells train on different losses: each one's training loss (curves, "
                     "final_train_loss) is in its own units, so compare them on the metrics")
    meanings = status_meanings(run["dataset"]["task"])
    notes.append("status: " + "; ".join(f"{s} = {meanings[s]}"
                                        for s in ("diverged", "unstable", "stalled")))
    for r in summary[summary["statuses"].str.contains(",")].itertuples():
        notes.append(f"~ {r.cell}: its seeds differ: {r.statuses}")
    if run.get("evaluated_on_training_rows"):
        notes.append(f"{run['dataset']['name']} has only {run['dataset']['samples']} rows: every "
                     "split is all of them, so val and test measure fit, not generalisation")
    if config.target is not None:
        notes.append(f"to {config.target:g}: median passes over the training rows until "
                     "validation accuracy first reached it, checked after each epoch (— never; "
                     "full-batch optimizers: a pass per gradient evaluation)")
    if run.get("trials"):
        notes.append(f"tuned: every optimizer had {config.tune_budget} learning-rate trials "
                     "on validation (a seed of their own, no test rows); the lr shown is the one "
                     "chosen. The rates were chosen on these validation rows, so val is "
                     "optimistic: compare the test column")
    notes.append(f"{run['seconds']:.2f} s in all")
    return notes


# --- overfit ---------------------------------------------------------------------------------

VERSUS_NONE = {"better": "▲", "worse": "▼", "not significant": "", "baseline": "",
               "too few seeds": "", "": ""}


def overfit_table(result: Any) -> tuple[Table, list[str]]:
    run, config = result.info, result.plan.config
    opt = config.train.optimizer
    title = (f"overfit · {run['dataset']['name']} · {opt.label} lr={opt.lr:g} · "
             f"{plural(config.train.epochs, 'epoch')} · {plural(run['seeds'], 'seed')} · "
             f"{run['primary_metric']}")
    return _filled(title, *overfit_grid(result.summary, {})), _overfit_notes(result)


def overfit_grid(summary: pd.DataFrame, config: dict[str, Any]) -> Grid:
    columns = [("cell", "left"), ("onset", "right"), ("gap", "right"), ("val best", "right"),
               ("val end", "right"), ("test ±95%", "right"), ("Δ none ±95%", "right")]
    rows = []
    for r in summary.itertuples():
        status = "" if r.status == "ok" else f" ({r.status})"
        rows.append([escape(str(r.cell)) + status, _onset(r), number3(r.gap_final),
                     f"{number3(r.val_best_mean)}@{r.best_epoch:.0f}"
                     if math.isfinite(r.best_epoch) else "—",
                     number3(r.val_final_mean),
                     f"{number3(r.test_mean)}±{_half(r.test_ci_half)}",
                     "—" if _word(r.vs_none) in ("baseline", "", "too few seeds") else
                     plus_minus(r.diff_none, r.diff_none_ci_half)
                     + VERSUS_NONE.get(r.vs_none, "")])
    return columns, rows


def transfer_table(result: Any) -> tuple[Table, list[str]]:
    run, config = result.info, result.plan.config
    target = "similar/different" if config.similarity else run["dataset"]["name"]
    title = (f"transfer · {run['source']['name']} → {target} · {config.model.shown} · "
             f"{plural(run['seeds'], 'seed')} · {run['primary_metric']}")
    grid = transfer_grid(result.summary, {"similarity": config.similarity})
    return _filled(title, *grid), _transfer_notes(result)


def transfer_grid(summary: pd.DataFrame, config: dict[str, Any]) -> Grid:
    similar = bool(config.get("similarity"))
    columns = [*([("target", "left")] if similar else []),
               ("rows", "right"), ("strategy", "left"), ("test ±95%", "right"),
               ("Δ next ±95%", "right"), ("winner", "left"), ("s/model", "right"),
               ("status", "left")]
    rows = []
    for r in summary.sort_values(["similarity", "target_size", "test_mean"],
                                 ascending=[False, True, False]).itertuples():
        winner = _word(r.winner)
        rows.append([*([r.similarity] if similar else []), str(r.target_size),
                     escape(str(r.strategy)), f"{number3(r.test_mean)}±{_half(r.test_ci_half)}",
                     plus_minus(r.diff_next, r.diff_next_ci_half) if winner else "",
                     {"yes": "yes", "not significant": "n.s."}.get(winner, winner),
                     _seconds(r.seconds_per_model), _status(r.status)])
    return columns, rows


GRIDS = {"cv": cv_grid, "optimize": optimize_grid, "overfit": overfit_grid,
         "transfer": transfer_grid}  # a run's summary table, from summary.csv and its config


def _filled(title: str, columns: list[tuple[str, str]], rows: list[list[str]]) -> Table:
    table = _table(title, columns)
    for row in rows:
        table.add_row(*row)
    return table


def _word(value: Any) -> str:
    """A text cell as read back from CSV, where an empty one is NaN."""
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else str(value)


def _transfer_notes(result: Any) -> list[str]:
    run, config = result.info, result.plan.config
    source = run["source"]
    made = (f"loaded from {source['checkpoint']}" if source["checkpoint"] else
            f"pretrained {plural(config.source_epochs, 'epoch')}, source test accuracy "
            f"{number3(source['test_accuracy'])}")
    notes = [f"source model: {made}; written to source.pt (a plain PyTorch state dict)"]
    if config.similarity:
        notes.append("targets: " + "; ".join(f"{label}: {t['name']}"
                                             for label, t in run["targets"].items()))
    notes += _quadrant_notes(result.quadrants)
    return notes + [
            f"rows: target training rows per model, a stratified sample per seed, the same "
            f"for every strategy; test: {run['test_rows']} target test rows, the same for "
            "all; ±95% over " + ("seeds (their samples) and test rows" if run["seeds"] > 1
                                 else "test rows only: 1 seed covers no initialisation or "
                                      "sample variance; use --seeds 3 or more"),
            "Δ next: the winner at that size minus the runner-up, paired (same seeds, "
            "samples, resamples); winner yes: p < 0.05, n.s.: not significant",
            "s/model: seconds per trained model, its own share of its stack's time "
            "(pretraining not included); summary.csv also counts gradient evaluations",
            f"{run['seconds']:.2f} s in all"]


def _quadrant_notes(quadrants: Any) -> list[str]:
    """Each quadrant's verdict with its tests and margin beside it, and what each word means."""
    notes = []
    for q in quadrants.itertuples():
        head = f"{q.quadrant} ({q.target_size} rows): advice '{q.advice}' → {q.advised}"
        if q.verdict == "not measured":
            notes.append(f"{head}: not measured (that strategy was not run); the winner: "
                         f"{q.winner}")
            continue
        notes.append(f"{head}: {q.verdict} (paired t and TOST within ±{q.margin:.3g}, "
                     f"α 0.05; the winner: {q.winner}; {q.advised} − each other: {q.versus})")
    if len(quadrants):
        notes.append("agrees: the advised strategy is shown better than each other strategy "
                     "(paired t) or equivalent to it (TOST within the margin); disagrees: "
                     "another is shown better; inconclusive: neither shown for some other "
                     "(being the sample maximum is no agreement)")
    return notes


def number3(value: float) -> str:
    """A score to 3 decimals (accuracies and gaps read alike in a column)."""
    return "—" if not math.isfinite(value) else f"{value:.3f}"


def _onset(row: Any) -> str:
    if not row.onset_seeds:
        return "none"
    onset = f"{row.onset_epoch:g}"  # a median of epochs: whole, or halfway between two
    # "4 1/3" would read as a fraction: the seeds that had an onset are counted in words
    return onset if row.onset_seeds == row.seeds else \
        f"{onset} ({int(row.onset_seeds)} of {int(row.seeds)})"


def _overfit_notes(result: Any) -> list[str]:
    summary, run = result.summary, result.info
    rows, metric = run["rows"], run["primary_metric"]
    gap = ("train − validation accuracy" if run["dataset"]["task"] == "classification"
           else "validation − train loss")
    notes = [f"{rows['train']} train, {rows['val']} validation, {rows['test']} test rows, one "
             "split for every cell; curves in eval mode after each epoch",
             f"onset: median epoch of lowest validation loss over the seeds whose loss then "
             f"ended ≥{run['onset_rise']:.0%} above it ((k of n): only k of the n seeds did; "
             "none: no seed)",
             f"gap: {gap} with the delivered weights (the last epoch's; early stopping's: its "
             f"restored best epoch's), mean over seeds; val best@epoch: {metric} with the "
             "weights of the epoch of lowest validation loss (mean epoch); val end: with the "
             "delivered weights",
             f"test ±95%: {metric} of the delivered model, mean over seeds; interval over seeds "
             "and test rows",
             "Δ none: paired difference to none at the same capacity and training share (same "
             "seeds, same resamples), 95% interval; ▲ better, ▼ worse (p < 0.05), no mark: "
             "not significant"]
    if summary["regularizer"].str.startswith("ensemble").any():
        notes.append("ensemble: its onset and gap come from its members' curves averaged (an "
                     "ensemble has no training of its own); its scores from their averaged "
                     "probabilities; its cost counts every member")
    if run["seeds"] == 1:
        notes.append("1 seed: the seed variance cannot be estimated, so nothing is compared "
                     "with none; use --seeds 3 or more")
    for r in summary[summary["statuses"].str.contains(",")].itertuples():
        notes.append(f"{r.cell}: its seeds differ: {r.statuses}")
    notes.append(f"{run['seconds']:.2f} s in all")
    return notes


def _half(value: float) -> str:
    """A half-width to 2 significant digits: more would be noise."""
    return "—" if not math.isfinite(value) else f"{value:.2g}"


def _seconds(value: float) -> str:
    if not math.isfinite(value):
        return "—"
    return f"{value:.3g}" if value >= 0.01 else f"{value:.1e}"


def _passes(value: float) -> str:
    return "—" if not math.isfinite(value) else f"{value:.3g}"


# --- 2-D functions and listings --------------------------------------------------------------


def show_functions(result: Any, fmt: str) -> None:
    """A finished `optimize --function` run (runners.functions' result)."""
    from dlbench.optim.functions import FUNCTIONS

    config = result.plan.config
    print_functions(result.summary, FUNCTIONS.get(config.function), config, fmt)


def print_functions(summary: pd.DataFrame, info: Any, config: Any, fmt: str) -> None:
    """Mode 1 of optimize: where each optimizer ended on the 2-D function."""
    starts = config.starts or 1
    if fmt == "json":
        _print_json(summary, {"function": info.name, "steps": config.steps, "tol": config.tol,
                              **({"starts": starts} if starts > 1 else {})})
        return
    start = config.start or info.start
    table = _table(f"optimize · {info.name} · {config.steps} steps from "
                   f"({start[0]:g}, {start[1]:g})",
                   [("cell", "left"), ("x", "right"), ("y", "right"), ("f", "right"),
                    ("evals", "right"), (f"to f−f*≤{config.tol:g}", "right"),
                    ("status", "left")])
    for r in summary.itertuples():
        reached = ("—" if not math.isfinite(info.f_min)  # unbounded below: no f* to reach
                   else "never" if not math.isfinite(r.steps_to_tol)
                   else f"{int(r.steps_to_tol)} / {int(r.grad_evals_to_tol)}")
        table.add_row(escape(r.cell), number(r.x), number(r.y), number(r.f),
                      str(r.grad_evals), reached, _status(r.status))
    console = stdout()
    _print_table(console, table)
    for note in (f"{info.name}: {info.description}",
                 f"evals: gradient evaluations over the {config.steps} steps (an L-BFGS step "
                 "evaluates as often as its line search needs; a Newton step adds a backward "
                 "pass per Hessian row); to f−f*≤tol: steps / gradient evaluations until the "
                 "path first got there",
                 *([f"{starts} starts: the table is start 0's path; the others were drawn with "
                    f"--seed {config.seed} in the function's plot window; scores.csv holds "
                    "every start's measures, summary.csv their means"] if starts > 1 else [])):
        console.print(note, style="dim", highlight=False)


def listing(title: str, rows: list[dict[str, Any]], columns: list[str],
            wrap: tuple[str, ...] = ("description",)) -> None:
    """A registry listing (`dlbench datasets`, `dlbench models`) as a table on stdout: short
    columns never wrap; the `wrap` columns share the rest of the width and wrap between words
    (or after a separator in a word longer than the column: `inverted|`), never inside one."""
    heads = [c.replace("_", " ") for c in columns]
    cells = [[_text(row[c]) for c in columns] for row in rows]
    natural = [max([len(h)] + [len(line[i]) for line in cells]) for i, h in enumerate(heads)]
    widths = _widths(natural, [c in wrap for c in columns],
                     [max([len(h)] + [len(w) for line in cells for w in line[i].split()])
                      for i, h in enumerate(heads)], stdout().width - (len(columns) - 1))
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  padding=0, show_edge=False)  # the box's blank divider: one space apart
    for head, width in zip(heads, widths, strict=True):
        table.add_column(head, width=width, no_wrap=True)
    for line in cells:
        table.add_row(*(escape("\n".join(_wrap(text, width)))  # "[bn]" is text, not markup
                        for text, width in zip(line, widths, strict=True)))
    _print_table(stdout(), table)


def _widths(natural: list[int], wraps: list[bool], words: list[int], room: int) -> list[int]:
    """Short columns their natural width; each wrapping one its longest word (the widest of
    them less, if they cannot all have it), then the rest shared, the least wanting first."""
    widths = [min(n, w) for n, w in zip(natural, words, strict=True)]
    widths = [w if wrap else n for n, w, wrap in zip(natural, widths, wraps, strict=True)]
    todo = [i for i, w in enumerate(wraps) if w]
    free = room - sum(widths)
    if free < 0 and todo:  # a word longer than the room breaks (after a separator in _wrap)
        widest = max(todo, key=widths.__getitem__)
        widths[widest] = max(widths[widest] + free, 8)
        free = 0
    todo.sort(key=lambda i: natural[i] - widths[i])
    for k, i in enumerate(todo):
        more = min(natural[i] - widths[i], free // (len(todo) - k))
        widths[i] += more
        free -= more
    return widths


def _wrap(text: str, width: int) -> list[str]:
    """Greedy lines of whole words; a word wider than the line breaks after its separators."""
    pieces = [p for word in text.split() for p in _pieces(word, width)]
    lines: list[str] = []
    for piece, glued in pieces:
        if lines and len(lines[-1]) + (not glued) + len(piece) <= width:
            lines[-1] += ("" if glued else " ") + piece
        else:
            lines.append(piece)
    return lines or [""]


def _pieces(word: str, width: int) -> list[tuple[str, bool]]:
    """(piece, glued to the one before): the word whole, or cut after '|', ',', '/', '='."""
    if len(word) <= width:
        return [(word, False)]
    parts = re.findall(r"[^|,/=]*[|,/=]?", word)
    return [(p, i > 0) for i, p in enumerate(filter(None, parts))]


def _text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


# --- JSON ------------------------------------------------------------------------------------


def _print_json(summary: pd.DataFrame, run: dict[str, Any]) -> None:
    print(json.dumps({"summary": _records(summary), "run": run}, indent=2, default=str))


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain JSON values at full precision (DataFrame.to_json rounds to 10 decimals:
    f = 1.8e-11 would print as 0.0); NaN and ±inf, which JSON lacks, become null."""
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --- compare ---------------------------------------------------------------------------------


def show_compare(found: pd.DataFrame, title: str, notes: list[str], fmt: str,
                 everything: bool = False) -> None:
    """The verdicts, regressions first: a table, markdown (a CI job summary) or JSON (every
    row). Unchanged rows are counted, and listed only when `everything`."""
    if fmt == "json":
        rows = [{k: v for k, v in row.items() if v is not None}  # a column of another entry
                for row in json.loads(found.to_json(orient="records"))]
        print(json.dumps({"title": title, "counts": _counts(found), "notes": notes,
                          "rows": rows}, indent=2, ensure_ascii=False))
        return
    shown = found if everything else found[found.verdict != "unchanged"]
    lines = [_compare_cells(row) for _, row in shown.iterrows()]
    notes = [f"{_counts_line(found)}{'' if everything else ' (unchanged rows: --all)'}", *notes]
    if fmt == "markdown":
        print(f"### {title}\n")
        if lines:
            print("| " + " | ".join(COMPARE_COLUMNS) + " |")
            print("|" + "---|" * len(COMPARE_COLUMNS))
            for cells in compare_grid(shown)[1]:
                print("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
            print()
        for note in notes:
            print(f"{note}  ")
        return
    console = stdout()
    table = _table(title, [("setting", "left"), ("baseline", "right"), ("current", "right"),
                           ("Δ ±95%", "right"), ("p", "right"), ("verdict", "left")])
    setting = None
    for cells in lines:  # a setting's name on a line of its own, its metrics below it
        if cells[0] != setting:
            setting = cells[0]
            table.add_row(f"[bold]{escape(setting)}[/bold]", *[""] * 5)
        table.add_row(f"  {cells[1]}", number(cells[2]), number(cells[3]), cells[4], cells[5],
                      cells[6])
    if lines:
        _print_table(console, table)
    else:
        console.print(title, style="bold", highlight=False)
    for note in notes:
        console.print(note, style="dim", highlight=False)


COMPARE_COLUMNS = ("setting", "metric", "baseline", "current", "Δ ±95%", "p", "verdict")


def compare_grid(found: pd.DataFrame) -> Grid:
    """The verdicts as text cells (markdown's, and the HTML report's)."""
    rows = [[*cells[:2], number(cells[2]), number(cells[3]), *cells[4:]]
            for cells in (_compare_cells(row) for _, row in found.iterrows())]
    return [(c, "left" if c in ("setting", "metric", "verdict") else "right")
            for c in COMPARE_COLUMNS], rows


def _compare_cells(row: Any) -> list[Any]:
    """setting, metric, baseline mean, current mean, Δ ± half its 95% interval, p, verdict."""
    setting = " · ".join(_word(v) for v in (row["entry"], row["configuration"]) if _word(v))
    metric = f"{row['split']} {row['metric']}"
    means = [row.get(f"{side}_mean", math.nan) for side in ("baseline", "current")]
    delta = ""
    if pd.notna(row.get("delta")):
        delta = plus_minus(row["delta"], (row.get("delta_ci_high", math.nan)
                                          - row.get("delta_ci_low", math.nan)) / 2)
    p = p_value(row["p_value"]) if pd.notna(row.get("p_value")) else ""
    return [setting, metric, *means, delta, p, row["verdict"]]


def _counts(found: pd.DataFrame) -> dict[str, int]:
    from dlbench.evaluate.compare import VERDICTS  # the table's order, every verdict (0 where none)

    return {v: int((found.verdict == v).sum()) for v in VERDICTS}


def _counts_line(found: pd.DataFrame) -> str:
    return ", ".join(f"{n} {v}" for v, n in _counts(found).items() if n)


def _nemenyi_note(ranked: Any, alpha: float) -> str:
    """Pairs told apart, only after Friedman rejected equal ranks (Demšar 2006)."""
    if ranked.nemenyi is None:
        return (f"it does not reject equal ranks at α={alpha}, so no post-hoc test: which "
                "methods differ is inconclusive")
    pairs = [f"{a} vs {b}" for i, a in enumerate(ranked.nemenyi.index)
             for b in ranked.nemenyi.columns[i + 1:] if ranked.nemenyi.loc[a, b] < alpha]
    return (f"it rejects equal ranks at α={alpha}; significantly different (Nemenyi, mean ranks "
            f"further apart than the critical difference {ranked.critical_difference:.3g}): "
            + ("; ".join(pairs) or "none"))


def ranks_grid(table_rows: pd.DataFrame) -> Grid:
    """ranks.csv's rows (ranking.ranks_table) as the table shows them."""
    return ([("setting", "left"), ("mean rank", "right"), ("mean score", "right")],
            [[escape(str(r.method)), f"{r.mean_rank:.2f}", number(r.mean_score)]
             for r in table_rows.itertuples()])


def show_ranking(ranked: Any, title: str, fmt: str) -> None:
    """compare --rank: the methods by mean rank, and what the tests say."""
    from dlbench.evaluate.ranking import ALPHA, ranks_table

    table_rows = ranks_table(ranked)
    statistic, p = ranked.friedman
    notes = [f"{ranked.scores.shape[0]} problems (rows of scores.csv in the output), "
             f"{ranked.scores.shape[1]} methods; rank 1 is best, ties share the mean rank"]
    if math.isfinite(p):
        notes.append(f"Friedman: chi² {statistic:.3g}, p {p_value(p)}; "
                     + _nemenyi_note(ranked, ALPHA))
    if ranked.wilcoxon is not None:
        notes.append(f"Wilcoxon signed-rank (two methods): statistic {ranked.wilcoxon[0]:.3g}, "
                     f"p {p_value(ranked.wilcoxon[1])}")
    if fmt == "json":
        print(json.dumps({"title": title, "ranks": json.loads(table_rows.to_json(
            orient="records")), "friedman": {"statistic": statistic, "p": p},
            "critical_difference": ranked.critical_difference, "notes": notes}, indent=2,
            ensure_ascii=False, default=lambda v: None))
        return
    if fmt == "markdown":
        print(f"### rank: {title}\n\n| method | mean rank | mean score |\n|---|---|---|")
        for row in table_rows.itertuples():
            print(f"| {row.method} | {row.mean_rank:.2f} | {number(row.mean_score)} |")
        print()
        for note in notes:
            print(f"{note}  ")
        return
    table = _filled(f"rank: {title}", *ranks_grid(table_rows))
    console = stdout()
    _print_table(console, table)
    for note in notes:
        console.print(note, style="dim", highlight=False)


# --- claims (evaluate/claims.py) ----------------------------------------------------------------

CLAIM_COLUMNS = ["verdict", "claim", "hypothesis", "effect [95% CI]", "p", "seeds needed",
                 "test"]


def claim_rows(claims: pd.DataFrame) -> list[dict[str, Any]]:
    """claims.csv's rows as the table shows them, the verdict first."""
    from dlbench.evaluate import claims as claims_module

    rows = []
    for _, c in claims.iterrows():
        status = bool(claims_module.RELATIONS.get(c.relation).status)  # counts members
        margin = f" ±{c.margin:g}" if math.isfinite(c.margin) else ""
        rows.append({
            "verdict": c.verdict, "claim": f"{c.entry}: {c.claim}" if c.claim else c.entry,
            "hypothesis": " ".join(filter(None, [_side(c["compare"], c.entry), c.relation,
                                                 _target(c), _side(c.against, c.entry)]))
            + f"{margin} ({c.metric}, {c.split})",
            "effect [95% CI]": f"{c.effect:.0%} of members" if status and
            math.isfinite(c.effect) else
            f"{number(c.effect)} [{number(c.ci_low)}, {number(c.ci_high)}]",
            "p": p_value(c.p),
            "seeds needed": "—" if c.verdict != "inconclusive" or status else
            ("no effect seen" if not math.isfinite(c.seeds_needed) else
             f"{c.seeds_needed:.0f}"),
            "test": "; ".join(filter(None, [c.test, c.note]))})
    return rows


def _target(claim: pd.Series) -> str:
    """reaches-first's target and what reaching it costs ('' for other relations)."""
    target = claim.get("target", math.nan)
    if not isinstance(target, float) or not math.isfinite(target):
        return ""
    cost = claim.get("cost", "")
    return f"{target:g}" + (f" in {cost}" if cost and cost != "epochs" else "") + " before"


def _side(side: str, entry: str) -> str:
    """A side as claims.csv writes it ('entry · cell · lr=0.1'), its own entry's name left out."""
    return side.removeprefix(f"{entry} · ") if side != entry else "this"


def show_claims(claims: pd.DataFrame, title: str) -> None:
    """The claims table on stdout: holds / fails / inconclusive first, then what was tested."""
    if len(claims):
        listing(title, claim_rows(claims), CLAIM_COLUMNS,
                wrap=("claim", "hypothesis", "test"))
        stdout().print(CLAIMS_NOTE, style="dim", highlight=False)


CLAIMS_NOTE = ("holds: shown at α 0.05 (95% interval of the difference, or TOST within the "
               "margin); fails: the opposite shown, or a claimed difference shown within the "
               "margin; inconclusive: neither. diverges / stalls: holds when every member "
               "has that status, fails when none does. The intervals cover the seeds (and "
               "resampled splits), not the sampling of the evaluation rows. seeds needed: "
               "members a "
               "paired t test at α 0.05 needs for 80% power at the effect and spread seen.")


def claim_change_lines(changes: pd.DataFrame | None) -> list[str]:
    """compare's notes for claims whose verdict changed (holds -> fails, or a claim gone
    missing: a regression; holds -> inconclusive: said as plainly, without failing)."""
    if changes is None or changes.empty:
        return []
    return [f"claim {c.entry} ({c.claim}): {c.baseline} -> {c.current}"
            + (" — REGRESSION" if c.regression else " — NO LONGER SHOWN TO HOLD"
               if c.baseline == "holds" else "") for _, c in changes.iterrows()]


CLAIMS_MARKDOWN_COLUMNS = ["verdict", "claim", "entry", "hypothesis", "effect [95% CI]", "p",
                           "seeds needed", "test"]


def claims_markdown(claims: pd.DataFrame) -> str:
    """claims.csv as a markdown table (the README's, generated by `make figures`): the
    terminal's words, the verdict first and bold, the claim's words and its entry apart."""
    lines = [_markdown_row(CLAIMS_MARKDOWN_COLUMNS),
             "|" + "---|" * len(CLAIMS_MARKDOWN_COLUMNS)]
    for (_, c), shown in zip(claims.iterrows(), claim_rows(claims), strict=True):
        cells = {**shown, "verdict": f"**{shown['verdict']}**", "claim": c.claim,
                 "entry": f"`{c.entry}`"}
        lines.append(_markdown_row([cells[k] for k in CLAIMS_MARKDOWN_COLUMNS]))
    return "\n".join(lines) + "\n"


def _markdown_row(cells: list[str]) -> str:
    """One table row; a '|' or a line break inside a cell would end it early."""
    return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"
