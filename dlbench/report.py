"""What users read: rich tables on stdout, or the same summary as JSON. Only this module draws."""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def number(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def p_value(p: float) -> str:
    if not math.isfinite(p):
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def cv_table(summary: pd.DataFrame, info: dict[str, Any], title: str) -> Table:
    table = Table(title=escape(title), title_justify="left", caption_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True,
                  show_edge=False)
    for name, justify in (("metric", "left"), ("mean", "right"), ("std", "right"),
                          ("95% CI", "right"), ("chance", "right"), ("p", "right"),
                          ("beats", "left")):
        table.add_column(name, justify=justify, no_wrap=True)
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
    for i, c in enumerate(columns):  # names never wrap; the last column (descriptions) folds
        table.add_column(c.replace("_", " "), overflow="fold", no_wrap=i < len(columns) - 1)
    for row in rows:
        table.add_row(*(_cell(row[c]) for c in columns))
    Console().print(table)


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return escape(str(value))  # "[batch norm]" is text, not rich markup


def print_cv(summary: pd.DataFrame, info: dict[str, Any], title: str, fmt: str,
             console: Console | None = None) -> None:
    if fmt == "json":  # plain JSON on stdout, nothing else, so it pipes into jq or a script
        records = json.loads(summary.to_json(orient="records"))
        print(json.dumps({"summary": records, "run": info}, indent=2, default=str))
    else:
        console = console or Console()
        console.print(cv_table(summary, info, title))
        for note in _notes(summary, info):
            console.print(note, style="dim", soft_wrap=True, highlight=False)
