"""Running a command's config: check everything, train into a claimed directory, show.

One path for every training command (the command table picks the runner): the results
directory and the executor are checked, the runner prepares (data, sizes), then it trains —
through an Engine whose store lets an interrupted run resume, or directly for a runner without
cells — and its files, then its table, are written. However a run stops, one line says what was
kept and how to finish.
"""

from __future__ import annotations

import contextlib
import functools
import shlex
import sys
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from dlbench.cli.commands import Command, Route, values
from dlbench.cli.options import OptionsCommand, command_function
from dlbench.engine.execution import Interrupted, Stopped
from dlbench.errors import DlbenchError

if TYPE_CHECKING:  # pandas behind them: not at import, so --help stays instant
    from dlbench.runners.base import Plan, Result, Runner


def register(app: typer.Typer, command: Command) -> None:
    """Add a training command to `app`: its options generated from its dataclass."""
    body = functools.partial(run_command, command)
    app.command(command.name, cls=OptionsCommand)(
        command_function(command.options, body, command.doc))


def click_command(command: Command):
    """The command's own parser, alone (a suite entry's options go through it)."""
    single = typer.Typer(add_completion=False, rich_markup_mode=None)
    register(single, command)
    return typer.main.get_command(single)


def given(ctx: typer.Context) -> set[str]:
    """The options the user typed (the others hold their defaults)."""
    return {name for name in ctx.params
            if ctx.get_parameter_source(name).name == "COMMANDLINE"}


def check_format(fmt: str, formats: tuple[str, ...] = ("table", "json")) -> None:
    if fmt not in formats:
        raise DlbenchError(f"unknown format '{fmt}'; choose one of: {', '.join(formats)}")


def warn(warnings: list[str]) -> None:
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)


def run_command(command: Command, ctx: typer.Context, chosen: Any) -> None:
    """`dlbench <command>`: options -> config -> its runner; then the files and the table."""
    done = train(command, chosen, given(ctx))
    try:
        warn(done.result.warnings)
        done.route.show(done.result, chosen.fmt)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted after the run finished: its results are complete in "
                          f"{done.out}") from None
    typer.echo(f"results: {done.out}", err=True)


@dataclass(frozen=True)
class Finished:
    """A training command's finished run, its files written, nothing shown yet."""

    route: Route  # what ran it, and shows its summary (route.show)
    result: Result  # the runner's result: its tables, its warnings after training
    out: Path  # its results directory


def train(command: Command, chosen: Any, named: Collection[str],
          say: Callable[[list[str]], None] = warn, bar: bool = True,
          hint: Callable[[Path], str] | None = None) -> Finished:
    """Options -> config -> its runner -> its files, everything checked before anything
    trains: the path the command line and the Python API share. `named`: the options the user
    gave; `say`: where warnings before and during the run go; `bar`: a progress bar on a
    terminal; `hint`: the command that finishes an interrupted run (default: this one)."""
    from dlbench import results
    from dlbench.cli.config import execution_config
    from dlbench.engine.execution import check_execution

    check_format(chosen.fmt)
    built = command.build(values(chosen), named)
    route = command.route(built)
    runner = route.module()
    results.check_out(chosen.out, chosen.resume)
    execution = execution_config(values(chosen)) if runner.TRAINS_CELLS else None
    warnings = check_execution(execution) if execution is not None else []
    plan = runner.prepare(built)
    say(warnings + plan.warnings)
    with engine_for(execution, plan.total_epochs, command.name, bar) as engine:
        result, out_dir = execute(command.name, route, runner, built, plan, chosen.out,
                                  chosen.resume, engine, hint or finish_hint(chosen.out), say)
    return Finished(route, result, out_dir)


@contextlib.contextmanager
def engine_for(execution, total: int, description: str, bar: bool = True) -> Iterator[Any]:
    """An Engine with a progress bar over `total` member-epochs (`bar` False: none); None for
    a runner without cells (`execution` None)."""
    from dlbench.engine.execution import Engine
    from dlbench.output.progress import progress_bar

    if execution is None:
        yield None
        return
    with (progress_bar(total, description) if bar else contextlib.nullcontext()) as advance, \
            Engine(execution, progress=advance) as engine:
        yield engine


def execute(command: str, route: Route, runner: Runner, config, plan: Plan, out: Path | None,
            resume: bool, engine, hint: Callable[[Path], str],
            say: Callable[[list[str]], None] = warn) -> tuple[Result, Path]:
    """Run a prepared plan into its claimed directory -> (result, the directory): through
    `engine`'s cells, or directly (`engine` None: paths on a function, a second's work with no
    cells, no store, no executor). `say`: where its warnings go."""
    from dlbench import results

    record = {"command": command, "config": config.record()}
    with results.claimed(out, command, record, resume, lambda w: say([w])) as out_dir:
        if engine is None:
            result = runner.run(plan)
            _write(out_dir, command, route, config, result)
        else:
            result = _train(out_dir, command, route, runner, config, plan, engine, hint, say)
    return result, out_dir


def _train(out_dir: Path, command: str, route: Route, runner: Runner, config, plan: Plan,
           engine, hint: Callable[[Path], str], say: Callable[[list[str]], None]) -> Result:
    """Train a plan's cells (the finished ones kept in the directory's store, the others
    trained by `engine`) and write its files. However it stops (Ctrl-C, SIGTERM, a killed
    worker, a full disk), one line says what was kept and how to finish."""
    from dlbench import results
    from dlbench.engine.execution import Store, WorkerLost

    store = Store(out_dir / results.CELLS)
    engine.use(store)
    try:
        result = runner.run(plan, engine)
        say(_rejected(store))
        _write(out_dir, command, route, config, result, {"execution": engine.config.record() | {
            "cells_trained": engine.trained, "cells_resumed": engine.resumed}})
    except (Interrupted, KeyboardInterrupt):
        raise Interrupted(f"interrupted: {_kept(out_dir, store, hint)}") from None
    except (WorkerLost, OSError) as e:
        raise Stopped(f"{_why(e)}; {_kept(out_dir, store, hint)}") from None
    return result


def _write(out_dir: Path, command: str, route: Route, config, result: Result,
           more: dict[str, Any] | None = None) -> None:
    """A finished run's tables, manifest (the config, the environment, `more`, the result's
    own record) and figures."""
    from dlbench import results

    manifest = {"command": command, **results.environment(), "config": config.record(),
                **(more or {}), **result.info}
    results.write_run(out_dir, result.tables, manifest, route.figures(result))


def finish_hint(out: Path | None) -> Callable[[Path], str]:
    """The command that finishes an interrupted run: this one, with --resume (and --out)."""

    def hint(out_dir: Path) -> str:
        args = [a for a in sys.argv[1:] if a != "--resume"]
        more = ["--resume"] + (["--out", str(out_dir)] if out is None else [])
        return f"dlbench {shlex.join(args + more)}"

    return hint


def _kept(out_dir: Path, store, hint: Callable[[Path], str]) -> str:
    """What a stopped run leaves, and the command that finishes it."""
    finished = store.count()
    if not finished:
        return "no cell had finished, so nothing was kept; run the command again"
    return (f"{finished} finished cell{'s' if finished > 1 else ''} kept in {out_dir}; "
            f"finish with: {hint(out_dir)}")


def _why(error: Exception) -> str:
    """What stopped a run, in words: a lost worker's message, or the failed file operation."""
    if not isinstance(error, OSError):
        return str(error)
    where = f" ({error.filename})" if error.filename else ""
    return f"{error.strerror or error}{where}"


def _rejected(store) -> list[str]:
    """One warning for the stored cells that could not be used (and were trained again)."""
    if not store.rejected:
        return []
    reasons = sorted(set(store.rejected.values()))
    n = len(store.rejected)
    return [f"{n} stored task file{'s' if n > 1 else ''} in {store.directory} not used "
            f"({'; '.join(reasons)}): trained again"]

