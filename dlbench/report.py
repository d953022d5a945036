"""What users read: rich tables on stdout, or the same summary as JSON. Only this module draws."""

from __future__ import annotations

import json
import math
import os
from typing import Any

import pandas as pd
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def stdout() -> Console:
    """The terminal's width (or $COLUMNS); 120 columns into a file or pipe, which have none."""
    console = Console()
    if console.is_terminal or os.environ.get("COLUMNS"):
        return console
    return Console(width=120)


def number(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def p_value(p: float) -> str:
    if not math.isfinite(p):
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def cv_table(summary: pd.DataFrame, info: dict[str, Any], title: str) -> Table:
    table = _table(title, [("metric", "left"), ("mean", "right"), ("std", "right"),
                           ("95% CI", "right"), ("chance", "right"), ("p", "right"),
                           ("beats", "left")])
    for split, rows in summary[summary.split != "train"].groupby("split", sort=False):
        table.add_row(f"[bold]{split}[/]")  # a section per split: val, then test
        for r in rows.itertuples():
            beats = {True: "[green]yes[/]", False: "[red]no[/]"}.get(r.beats_chance, "—")
            table.add_row(r.metric, number(r.mean), number(r.std),
                          f"{number(r.ci_low)}–{number(r.ci_high)}", number(r.chance),
                          p_value(r.p_value), beats)
    return table


def _notes(summary: pd.DataFrame, info: dict[str, Any]) -> list[str]:
    notes = []
    val = summary[summary.split == "val"]
    if len(val) and val["n"].iloc[0] > 1:
        first = val.iloc[0]
        notes.append(f"val {first.metric} ranged {number(first['min'])}–{number(first['max'])} "
                     f"over the {first.n} splits")
    for split, method in summary.groupby("split", sort=False)["interval"].first().items():
        if split != "train":
            notes.append(f"{split}: 95% CI by {method}")
    if (summary.split != "test").any():
        notes.append("p: paired corrected resampled t-test of model − chance over the same splits")
    if info.get("diverged"):
        notes.append(f"[red]{info['diverged']} of {info['members']} members diverged "
                     "(NaN/inf loss); their scores are NaN and left out of the estimates[/]")
    notes.append(f"{info['members']} members, {info['seconds']:.2f} s on {info['device']}; "
                 "beats: better than chance at p < 0.05")
    return notes


def listing(title: str, rows: list[dict[str, Any]], columns: list[str]) -> None:
    """A registry listing (`dlbench datasets`, `dlbench models`) as a table on stdout."""
    table = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):  # the name never wraps; long text columns fold
        table.add_column(c.replace("_", " "), overflow="fold", no_wrap=i == 0)
    for row in rows:
        table.add_row(*(_cell(row[c]) for c in columns))
    stdout().print(table)


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return escape(str(value))  # "[batch norm]" is text, not rich markup


def print_cv(summary: pd.DataFrame, info: dict[str, Any], title: str, fmt: str,
             console: Console | None = None) -> None:
    if fmt == "json":  # plain JSON on stdout, nothing else, so it pipes into jq or a script
        _print_json(summary, info)
    else:
        console = console or stdout()
        console.print(cv_table(summary, info, title))
        for note in _notes(summary, info):
            console.print(note, style="dim", soft_wrap=True, highlight=False)


def print_functions(summary: pd.DataFrame, info: Any, config: Any, fmt: str) -> None:
    """Mode 1 of optimize: where each optimizer ended on the 2-D function."""
    if fmt == "json":
        _print_json(summary, {"function": info.name, "steps": config.steps, "tol": config.tol})
        return
    start = config.start or info.start
    table = _table(f"optimize · {info.name} · {config.steps} steps from "
                   f"({start[0]:g}, {start[1]:g})",
                   [("optimizer", "left"), ("x", "right"), ("y", "right"), ("f", "right"),
                    (f"steps to f−f*≤{config.tol:g}", "right"), ("status", "left")])
    for r in summary.itertuples():
        reached = ("—" if not math.isfinite(info.f_min)  # unbounded below: no f* to reach
                   else "never" if not math.isfinite(r.steps_to_tol) else str(int(r.steps_to_tol)))
        table.add_row(escape(r.cell), number(r.x), number(r.y), number(r.f), reached,
                      _status(r.status))
    console = stdout()
    console.print(table)
    console.print(f"{info.name}: {info.description}", style="dim", highlight=False)


def print_optimize(summary: pd.DataFrame, run: dict[str, Any], config: Any, fmt: str) -> None:
    """Mode 2 of optimize: the cells ranked by their validation score."""
    if fmt == "json":
        _print_json(summary, run)
        return
    metric = run["primary_metric"]
    columns = [("#", "right"), ("cell", "left"), ("val", "right"), ("95% CI", "right"),
               ("test", "right"), ("loss", "right"), ("s/model", "right")]
    if config.target is not None:
        columns.append((f"to {config.target:g}", "right"))
    table = _table(f"optimize · {run['dataset']['name']} · {run['cells']} cells × "
                   f"{run['seeds']} seeds · {config.train.epochs} epochs · {metric}",
                   [*columns, ("status", "left")])
    for r in summary.itertuples():
        row = [f"{r.rank}{'≈' if r.tied_with_best and r.rank > 1 else ''}", escape(r.cell),
               number(r.val_mean), _interval(r.val_ci_low, r.val_ci_high),
               number(r.test_mean), number(r.final_train_loss),
               number(r.seconds / run["seeds"])]
        if config.target is not None:
            row.append(_to_target(r.epochs_to_target, r.seconds_to_target))
        mixed = "," in str(r.statuses)  # seeds disagree: say how many did what
        table.add_row(*row, escape(r.statuses) if mixed else _status(r.status))
    console = stdout()
    console.print(table)
    for note in _optimize_notes(summary, run, config):
        console.print(note, style="dim", soft_wrap=True, highlight=False)


def _optimize_notes(summary: pd.DataFrame, run: dict[str, Any], config: Any) -> list[str]:
    rows = run["rows"]
    notes = [f"val, test: {run['primary_metric']} (mean over seeds; 95% CI: t over seeds) on "
             f"one split for every cell: {rows['train']} train, {rows['val']} validation, "
             f"{rows['test']} test rows; loss: final training loss; s/model: wall seconds per "
             "trained model (its share of the stack it trained in)",
             "≈: not significantly different from #1 (paired t-test over seeds, p ≥ 0.05)",
             "status: diverged = loss NaN/inf or above 2× its start; stalled = final training "
             "loss above 0.9× its start"]
    if run.get("evaluated_on_training_rows"):
        notes.append(f"{run['dataset']['name']} has only {run['dataset']['samples']} rows: every "
                     "split is all of them, so val and test measure fit, not generalisation")
    if config.target is not None:
        notes.append(f"to {config.target:g}: median epochs / seconds per model to reach that "
                     "validation accuracy (— never)")
    if run.get("trials"):
        notes.append(f"tuned: every optimizer had {config.tune_budget} learning-rate trials "
                     "on validation (a seed of their own, no test rows); the lr shown is the one "
                     "chosen. The rates were chosen on these validation rows, so val is "
                     "optimistic: compare the test column")
    notes.append(f"{run['seconds']:.1f} s in all")
    return notes


def _interval(low: float, high: float) -> str:
    """'low–high', or one '—' when there is no interval (a single seed)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return "—"
    return f"{number(low)}–{number(high)}"


def _to_target(epochs: float, seconds: float) -> str:
    if not math.isfinite(epochs):
        return "—"
    return f"{int(epochs)} ep / {seconds:.2f} s"


def _status(status: str) -> str:
    return {"ok": "ok", "stalled": "[yellow]stalled[/]", "diverged": "[red]diverged[/]"}.get(
        status, escape(status))


def _table(title: str, columns: list[tuple[str, str]]) -> Table:
    table = Table(title=escape(title), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True, show_edge=False)
    for name, justify in columns:
        if name == "cell":
            table.add_column(name, justify=justify, min_width=14, ratio=1)
        else:
            table.add_column(name, justify=justify, no_wrap=True)
    return table


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
