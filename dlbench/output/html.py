"""One self-contained HTML page for any results: runs, suites, compare and rank directories.

Everything is inline — the style, every table, every PNG as a data URI, no script — so a CI job
keeps the one file as an artifact and a person opens it in a browser without a server. Compare
verdicts come first, regressions at their top.
"""

from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path

import pandas as pd

from dlbench import __version__
from dlbench.errors import DlbenchError
from dlbench.output.report import (
    CLAIM_COLUMNS,
    CLAIMS_NOTE,
    GRIDS,
    claim_rows,
    compare_grid,
    ranks_grid,
)
from dlbench.results import verify

HEAD = ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"  # how every report begins
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        "<title>dlbench report</title>")
MAX_ROWS = 200  # rows of a table shown; the CSV beside it holds them all
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #1a1a1a; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
h3 { margin-top: 1.5em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 12px; display: block;
        overflow-x: auto; }
th, td { border: 1px solid #ddd; padding: 3px 6px; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
th.left, td.left { text-align: left; } th.right, td.right { text-align: right; }
tr.regressed td, tr.missing td { background: #fde2e2; }
tr.improved td { background: #e3f6e3; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
.note { color: #555; } code { background: #f3f3f3; padding: 0 3px; }
.counts span { margin-right: 1.2em; }
"""


KINDS = {"compare": "compare", "compare --rank": "rank"}  # manifest command -> what it is


def kind(path: Path) -> str:
    """What a directory holds, by its manifest.json (dlbench's: it names a command) or, for a
    suite, its suite.json; anything else is refused, even with dlbench runs inside it."""
    if not path.exists():
        raise DlbenchError(f"{path} does not exist; give run, suite, compare or rank "
                           "directories")
    command = _manifest(path).get("command")
    if isinstance(command, str):
        return KINDS.get(command, "run")
    if (path / "suite.json").is_file():
        return "suite"
    runs = _runs(path) if path.is_dir() else []
    if runs:
        raise DlbenchError(f"{path} is not a dlbench suite (no suite.json) but holds "
                           f"{len(runs)} run director{'y' if len(runs) == 1 else 'ies'} "
                           f"({', '.join(r.name for r in runs[:3])}{', …' if len(runs) > 3 else ''}"
                           "); give those runs themselves")
    raise DlbenchError(f"{path} holds no finished results (no dlbench manifest.json or "
                       "suite.json); give run, suite, compare or rank directories")


def _runs(path: Path) -> list[Path]:
    """The dlbench runs directly below `path`."""
    return sorted(p for p in path.iterdir() if p.is_dir()
                  and isinstance(_manifest(p).get("command"), str))


def check_out(out: Path) -> None:
    """--out may replace an earlier report, never another file."""
    if out.is_dir():
        raise DlbenchError(f"--out {out} is a directory; give a file name like report.html")
    if out.exists() and not _is_report(out):
        raise DlbenchError(f"--out {out} exists and is not a dlbench report; give a new file "
                           "name (or remove that file)")


def _is_report(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8") as f:
            return f.read(len(HEAD)) == HEAD
    except (OSError, UnicodeDecodeError):
        return False


def page(paths: list[Path]) -> str:
    """The page: compare directories first (their regressions at the top), then the rest."""
    kinds = [(kind(p), p) for p in paths]
    kinds.sort(key=lambda kp: kp[0] != "compare")
    body = [f"<h1>dlbench report</h1><p class=note>{len(paths)} result"
            f"{'s' if len(paths) > 1 else ''}, made {time.strftime('%Y-%m-%d %H:%M')} by "
            f"dlbench {__version__}</p>"]
    for what, path in kinds:
        body.append({"compare": _compare, "rank": _rank, "run": _run, "suite": _suite}[what](path))
    return (HEAD + f"<style>{STYLE}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")


def _compare(path: Path) -> str:
    rows = _read_csv(path / "compare.csv", keep_default_na=False, na_values=[""])
    counts = rows["verdict"].value_counts()
    shown = rows[rows.verdict != "unchanged"]
    manifest = _manifest(path)
    return (f"<h2>compare: {_e(manifest.get('baseline', ''))} → "
            f"{_e(manifest.get('current', ''))}</h2><p class=counts>"
            + "".join(f"<span><b>{n}</b> {_e(v)}</span>" for v, n in counts.items()) + "</p>"
            + (_grid(*compare_grid(shown), list(shown.verdict)) if len(shown) else
               "<p>Nothing regressed, improved, went missing or appeared.</p>")
            + f"<p class=note>{_e(manifest.get('rule', ''))}</p>")


def _rank(path: Path) -> str:
    return (f"<h2>rank: {_e(path.name)}</h2>"
            + _markup(*ranks_grid(_read_csv(path / "ranks.csv"))) + _images(path))


def _suite(path: Path) -> str:
    """Its entries, each with the claim it measures when the suite file gave one."""
    runs = _runs(path)
    try:
        suite = json.loads((path / "suite.json").read_text())
    except (OSError, ValueError):
        suite = {}
    claims = {e["name"]: e.get("claim", "") for e in suite.get("entries", [])}
    order = {name: i for i, name in enumerate(claims)}  # the suite file's order
    runs.sort(key=lambda r: (order.get(r.name, len(order)), r.name))
    profile = " (quick profile)" if suite.get("profile") == "quick" else ""  # dlbench run --quick
    return (f"<h2>suite: {_e(path.name)}{profile}</h2>"
            + (f"<p>{_e(suite['description'])}</p>" if suite.get("description") else "")
            + _claims(path) + f"<p>{len(runs)} entries: "
            + ", ".join(f"<a href='#{_anchor(r)}'>{_e(r.name)}</a>" for r in runs) + "</p>"
            + "".join(_run(r, level=3, claim=claims.get(r.name, "")) for r in runs))


def _claims(path: Path) -> str:
    """The suite's judged claims (claims.csv), the verdict first, as the terminal shows them."""
    from dlbench.evaluate import claims

    found = claims.read(path)
    if found is None or found.empty:
        return ""
    columns = [(c, "left" if c in ("verdict", "claim", "hypothesis", "test") else "right")
               for c in CLAIM_COLUMNS]
    rows = [[row[c] for c in CLAIM_COLUMNS] for row in claim_rows(found)]
    return "<h3>claims</h3>" + _grid(columns, rows) + f"<p class=note>{_e(CLAIMS_NOTE)}</p>"


def _run(path: Path, level: int = 2, claim: str = "") -> str:
    manifest = _manifest(path)
    line = " ".join(manifest.get("command_line", [])) or manifest.get("command", "")
    parts = [f"<h{level} id='{_anchor(path)}'>{_e(manifest.get('command', 'run'))}: "
             f"{_e(path.name)}</h{level}>",
             f"<p class=note><code>{_e(line)}</code> · dataset "
             f"{_e(str(manifest.get('dataset', {}).get('name', '—')))} · "
             f"{manifest.get('seconds', '—')} s on {_e(str(manifest.get('device', '—')))}</p>"]
    if claim:
        parts.insert(1, f"<p><b>Claim:</b> {_e(claim)}</p>")
    if (path / "summary.csv").exists():
        parts.append(_summary(_read_csv(path / "summary.csv"), manifest))
    return "".join(parts) + _images(path)


def _summary(summary: pd.DataFrame, manifest: dict) -> str:
    """What the terminal showed: output/report.py's columns and cells for the run's command (2-D
    function paths, whose summary is short, as written)."""
    grid = GRIDS.get(manifest.get("command"))
    config = manifest.get("config") or {}
    if grid is None or config.get("function"):
        return _table(summary)
    try:
        columns, rows = grid(summary, config)
    except (AttributeError, KeyError, TypeError, ValueError):  # another version's columns
        return _table(summary) + ("<p class=note>summary.csv as written: its columns are not "
                                  "the ones this version of dlbench shows.</p>")
    return _markup(columns, rows)


def _markup(columns: list[tuple[str, str]], rows: list[list[str]]) -> str:
    """output/report.py's cells, their rich markup (colours, escaped brackets) made plain text."""
    from rich.text import Text

    return _grid(columns, [[Text.from_markup(cell).plain for cell in row] for row in rows])


def _grid(columns: list[tuple[str, str]], rows: list[list[str]],
          verdicts: list[str] | None = None) -> str:
    """A table of text cells (output/report.py's, for what the terminal shows); a row short of cells
    ends blank; a verdict row is coloured by its verdict."""
    head = "".join(f"<th class={justify}>{_e(name)}</th>" for name, justify in columns)
    body = "".join(
        (f"<tr class='{_e(verdicts[i])}'>" if verdicts else "<tr>")
        + "".join(f"<td class={justify}>{_e(cell)}</td>" for (_, justify), cell
                  in zip(columns, [*row, *[""] * len(columns)], strict=False)) + "</tr>"
        for i, row in enumerate(rows[:MAX_ROWS]))
    more = (f"<p class=note>{len(rows) - MAX_ROWS} more rows in the CSV.</p>"
            if len(rows) > MAX_ROWS else "")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def _images(path: Path) -> str:
    return "".join(
        f"<figure><img alt='{_e(png.stem)}' src='data:image/png;base64,"
        f"{base64.b64encode(png.read_bytes()).decode()}'><figcaption class=note>"
        f"{_e(png.name)}</figcaption></figure>" for png in sorted(path.glob("*.png")))


def _table(frame: pd.DataFrame) -> str:
    """A CSV as written (the first column its label)."""
    columns = [(str(c), "left" if i == 0 else "right") for i, c in enumerate(frame.columns)]
    return _grid(columns, [[_cell(v) for v in row] for row in frame.itertuples(index=False)])


def _cell(value) -> str:
    if isinstance(value, float):
        return "" if pd.isna(value) else f"{value:.4g}"
    return str(value)


def _read_csv(path: Path, **options) -> pd.DataFrame:
    damaged = verify(path.parent, [path.name])  # against the sha256 its manifest recorded
    if damaged:
        raise DlbenchError(f"{damaged[0]}; rerun the command that wrote it, or leave its "
                           "directory out")
    try:
        return pd.read_csv(path, **options)
    except (OSError, ValueError, UnicodeDecodeError) as e:  # pandas' ParserError is a ValueError
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DlbenchError(f"cannot read {path} ({reason}): it is damaged; rerun the command "
                           "that wrote it, or leave its directory out") from None


def _manifest(path: Path) -> dict:
    try:
        found = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _anchor(path: Path) -> str:
    return "run-" + "".join(c if c.isalnum() else "-" for c in path.name)


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)
