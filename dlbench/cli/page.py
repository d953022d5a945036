"""`dlbench report`: one self-contained HTML page of runs, suites, compares and rankings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dlbench.errors import DlbenchError


def report_page(
        paths: Annotated[list[Path], typer.Argument(
            help="Results to show: run, suite, compare (compare --out) or rank directories.",
            metavar="DIR", show_default=False)],
        out: Annotated[Path, typer.Option(
            help="The HTML file to write (self-contained: styles and images inline).")
                       ] = Path("report.html")) -> None:
    """One HTML page of results that opens in any browser without a server: compare verdicts
    first (regressions at the top), then every run's summary table and figures."""
    from dlbench import results
    from dlbench.output import html

    html.check_out(out)
    text = html.page(paths)
    try:
        results.atomic_write(out, lambda f: f.write(text))
    except OSError as e:
        raise DlbenchError(f"cannot write {out}: {e.strerror}; give --out a writable path"
                           ) from None
    typer.echo(f"report: {out}", err=True)
