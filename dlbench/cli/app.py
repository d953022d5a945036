"""The `dlbench` program: the Typer app, its one-line errors and exit codes, and its commands.

The training commands (cv, optimize, overfit, transfer) are generated from the command table
(cli/commands.py) and their options dataclasses (cli/options.py); the others live in a module
each: run (suites), compare, check (the exactness contract), page (`dlbench report`),
listings. torch and the runners are
imported inside the commands, so `dlbench --help` stays instant.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
import typer.core
from typer.exceptions import Abort, TyperException

from dlbench import __version__, plugins
from dlbench.cli import check, compare, listings, page, run
from dlbench.cli.commands import COMMANDS
from dlbench.cli.execute import register
from dlbench.engine.execution import Interrupted, Stopped
from dlbench.errors import DlbenchError


class _OneLineErrors(typer.core.TyperGroup):
    """Bad usage or input: one line on stderr and exit code 2 — never a traceback or a panel."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        plugins.refresh()  # each invocation reads the user's files afresh
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except TyperException as e:  # click's usage errors: bad option, missing value, ...
            if type(e).__name__ == "NoArgsIsHelpError":  # bare `dlbench`: the help, not an error
                typer.echo(e.format_message())
                sys.exit(0)
            _fail(e.format_message(), getattr(e, "exit_code", 2))
        except DlbenchError as e:
            _fail(str(e), 2)
        except Interrupted as e:  # Ctrl-C or SIGTERM in a run: what finished is kept
            typer.echo(str(e), err=True)
            sys.exit(e.code)
        except Stopped as e:  # a worker killed, a full disk: what finished is kept
            _fail(str(e), e.code)
        except (Abort, KeyboardInterrupt):
            rv = 130
        if rv == 130:  # typer's answer to a Ctrl-C outside a run: before anything was kept
            typer.echo("interrupted before any cell finished; nothing was kept", err=True)
            sys.exit(130)
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    sys.exit(code)


app = typer.Typer(
    cls=_OneLineErrors, no_args_is_help=True, add_completion=False, rich_markup_mode=None,
    help="Measured evidence about deep-learning training choices: optimizers, regularization, "
         "evaluation protocols. Every run writes tidy CSVs, a manifest and a table.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dlbench {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
          ) -> None:
    pass


for _command in COMMANDS.values():  # cv, optimize, overfit, transfer: one table, one path
    register(app, _command)
app.command(name="report")(page.report_page)
app.command(name="run")(run.run_suite)
app.command()(compare.compare)
app.command()(check.check)
for _listing in (listings.optimizers, listings.datasets, listings.regularizers,
                 listings.models):
    app.command()(_listing)


def main() -> None:
    """The `dlbench` program. Once a command has finished (its files closed, its workers
    stopped), exit without the interpreter's teardown of some 3000 modules (torch's among them):
    about half a second that no one waits for gladly. Exit handlers still run."""
    import atexit
    import os
    import signal

    signal.signal(signal.SIGTERM, signal.default_int_handler)  # as Ctrl-C: files cleaned up
    try:
        app()
        code = 0
    except SystemExit as e:
        code = e.code
    except KeyboardInterrupt:  # after the command's own handling: its files are complete
        code = 130
    for sig in (signal.SIGINT, signal.SIGTERM):  # the command is over: nothing to interrupt
        signal.signal(sig, signal.SIG_IGN)
    if not isinstance(code, int):  # SystemExit("message") or None, as Python would treat them
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
