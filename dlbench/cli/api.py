"""The Python API: `dlbench.cv(...)`, `optimize`, `overfit`, `transfer`, `run_suite`, `compare`.

Each takes the options of its command as keyword arguments, named as the flags without dashes
(`--holdout-seeds` -> holdout_seeds, `--format` -> fmt), with the command line's defaults: the
options dataclasses (cli/options.py) and the signatures of `run`/`compare` are the one
definition both read. A call runs the command line's own path (cli/execute.train: the same
checks, the same files, the same numbers); Python objects go where the command line takes a
name or a path (cli/objects.py). It returns a result with its tables as DataFrames, read back
from the files it wrote; nothing is printed unless `show=True` (the command's table and
warnings, as the command line prints them). A mistake raises DlbenchError with the command
line's one-line message, and nothing is written.
"""

from __future__ import annotations

import inspect
import json
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from dlbench import plugins
from dlbench.cli import objects
from dlbench.cli.commands import COMMANDS
from dlbench.cli.execute import Finished, check_format, train, warn
from dlbench.errors import DlbenchError

if typing.TYPE_CHECKING:
    import pandas as pd


# --- what a call returns -----------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """A finished run of cv, optimize, overfit or transfer: `run.scores`, `run.summary`, ...
    are its CSV files as DataFrames (`run.tables` holds them all)."""

    command: str  # cv, optimize, overfit or transfer
    out: Path  # its results directory
    tables: dict[str, pd.DataFrame]  # file stem (scores, curves, summary, ...) -> its rows
    manifest: dict[str, Any]  # manifest.json: config, seeds, environment, plugged objects
    warnings: tuple[str, ...] = ()  # what the command line says in 'warning:' lines
    finished: Finished | None = field(default=None, repr=False)  # the runner's result, to show

    def __repr__(self) -> str:
        return f"Run({self.command!r}, out={str(self.out)!r}, tables: {', '.join(self.tables)})"

    def __getattr__(self, name: str) -> pd.DataFrame:
        tables = self.__dict__.get("tables", {})
        if name.startswith("_") or name not in tables:
            raise AttributeError(f"{type(self).__name__} has no attribute '{name}'; its tables: "
                                 f"{', '.join(tables)}")
        return tables[name]

    def show(self, fmt: str = "table") -> None:
        """Print the summary as the command line does: its table and notes (or JSON)."""
        if self.finished is None:
            raise DlbenchError(f"the run in {self.out} was read back from its files, which "
                               f"hold no terminal table; `dlbench report {self.out}` draws its "
                               "summary as an HTML page")
        self.finished.route.show(self.finished.result, fmt)


@dataclass(frozen=True)
class SuiteRun:
    """A finished suite: a row per entry, and each entry's run read from its directory."""

    name: str  # the suite's name: its file's stem
    out: Path  # the suite's directory
    entries: pd.DataFrame  # entry, command, done, cells trained, [timings,] results
    runs: dict[str, Run]  # entry name -> its run
    claims: pd.DataFrame | None  # claims.csv: each hypothesis judged (None: the suite has none)
    quick: bool = False  # whether it ran the suite's quick profile (dlbench run --quick)

    def show(self) -> None:
        """Print the entries' table and the claims' as `dlbench run` does."""
        from dlbench.cli.run import suite_title
        from dlbench.output import report

        report.listing(suite_title(self.name, self.quick), self.entries.to_dict("records"),
                       list(self.entries.columns), wrap=("results",))
        if self.claims is not None:
            report.show_claims(self.claims, f"claims of suite {self.name}")


@dataclass(frozen=True)
class Comparison:
    """`compare`'s verdicts (or, with rank=True, its ranking tables); no exit code."""

    table: pd.DataFrame  # the verdicts, one row per compared row; --rank: the mean ranks
    regressed: bool  # what exits 1 on the command line (always False for a ranking)
    tables: dict[str, pd.DataFrame]  # every table it computed, by name
    out: Path | None  # where its files went (compare.csv; --rank's CSVs and PNGs)


def read_run(out: Path, command: str, warnings: tuple[str, ...] = (),
             finished: Finished | None = None) -> Run:
    """A run directory's CSV files and manifest, as a Run."""
    import pandas as pd

    manifest = json.loads((out / "manifest.json").read_text())
    tables = {name[:-len(".csv")]: pd.read_csv(out / name) for name in manifest["sha256"]
              if name.endswith(".csv")}
    return Run(command, out, tables, manifest, warnings, finished)


# --- keyword arguments -> options ---------------------------------------------------------------


def checked(function: str, kw: Mapping[str, Any], hints: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments against the option names (`hints`: name -> type): an unknown one is
    refused with the valid ones listed, and each value takes its option's type."""
    unknown = [name for name in kw if name not in hints]
    if unknown:
        raise DlbenchError(f"{function}() has no option '{unknown[0]}'; its options: "
                           f"{', '.join(hints)}, show")
    return {name: typed(name, hints[name], value) for name, value in kw.items()}


def typed(name: str, hint: Any, value: Any) -> Any:
    """A value as its option's type: text where the command line takes text (a list joined
    by commas; a list for an option given several times), numbers as numbers, paths."""
    args = typing.get_args(hint)
    if type(None) in args:  # X | None
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
    if typing.get_origin(hint) is list:  # an option the command line repeats
        items = value if isinstance(value, list | tuple) else [value]
        return [typed(name, str, v) for v in items]
    take = TYPES.get(hint)
    converted = take(value) if take is not None else None
    if converted is None:
        raise DlbenchError(f"{name}={value!r}: give {WANTED.get(hint, hint)}")
    return converted


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, list | tuple) and all(_text(v) is not None for v in value):
        return ",".join(_text(v) for v in value)  # the command line's comma-separated list
    return None


def _path(value: Any) -> Path | None:
    import os

    return Path(value) if isinstance(value, str | os.PathLike) else None


TYPES: dict[Any, Callable[[Any], Any]] = {  # an option's type -> value -> it, None if wrong
    bool: lambda v: v if isinstance(v, bool) else None,
    int: lambda v: v if isinstance(v, int) and not isinstance(v, bool) else None,
    float: lambda v: float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None,
    str: _text,
    Path: _path,
}
WANTED = {bool: "True or False", int: "a whole number", float: "a number",
          str: "text (or a list of entries)", Path: "a path"}


def _hints(cls_or_function: Any) -> dict[str, Any]:
    """name -> type of an options dataclass's fields or a command function's options."""
    found = typing.get_type_hints(cls_or_function, vars(sys.modules[cls_or_function.__module__]))
    return {name: hint for name, hint in found.items() if name not in ("ctx", "return")}


# --- the training commands ----------------------------------------------------------------------


def call_command(name: str, show: bool, kw: Mapping[str, Any]) -> Run:
    """`dlbench NAME` with these options, on the command line's path -> its Run."""
    command = COMMANDS[name]
    plugins.refresh()  # as each command line does: the user's files read afresh
    kw, named = objects.converted(kw)
    chosen = command.options(**checked(name, kw, _hints(command.options)))
    said: list[str] = []

    def say(warnings: list[str]) -> None:
        said.extend(warnings)
        if show:
            warn(warnings)

    done = train(command, chosen, named, say, bar=show, hint=lambda out: (
        f"dlbench.{name}(..., out={str(out)!r}, resume=True)"))
    say(done.result.warnings)
    if show:
        done.route.show(done.result, chosen.fmt)
    return read_run(done.out, name, tuple(said), done)


def _command_function(name: str) -> Callable[..., Run]:
    """`dlbench.NAME(**options, show=False)`: its signature the options with their defaults."""
    command = COMMANDS[name]

    def function(show: bool = False, **options: Any) -> Run:
        return call_command(name, show, options)

    params = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                default=f.default if f.default is not MISSING
                                else f.default_factory())
              for f in fields(command.options)]
    params.append(inspect.Parameter("show", inspect.Parameter.KEYWORD_ONLY, default=False))
    function.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    function.__name__ = function.__qualname__ = name
    function.__doc__ = (f"`dlbench {name}` from Python: {command.doc}\n\nKeyword arguments are "
                        f"its options (see `dlbench {name} --help`), named without dashes, "
                        "with the same defaults; show=True prints its table. Returns a Run.")
    return function


cv = _command_function("cv")
optimize = _command_function("optimize")
overfit = _command_function("overfit")
transfer = _command_function("transfer")


# --- suites and comparisons ---------------------------------------------------------------------


def _options(name: str, function: Callable[..., Any], argument: str,
             kw: Mapping[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """A command function's options (its parameters but `argument`: one definition), the
    keyword arguments checked against them and filling their defaults -> (values, given)."""
    hints = {k: v for k, v in _hints(function).items() if k != argument}
    given = checked(name, kw, hints)
    defaults = {p.name: p.default for p in inspect.signature(function).parameters.values()
                if p.name in hints}
    return defaults | given, set(given)


def run_suite(suite: str | Path, show: bool = False, **options: Any) -> SuiteRun:
    """`dlbench run SUITE` from Python: options out, quick, timings, workers, scheduler,
    dask_local, threads, as on the command line. Returns a SuiteRun."""
    import pandas as pd

    from dlbench.cli import run

    plugins.refresh()
    chosen, _ = _options("run_suite", run.run_suite, "suite", options)
    root, rows = run.suite_run(typed("suite", Path, suite), chosen["out"], chosen["timings"],
                               chosen, warn if show else lambda _: None, show,
                               ["run", str(suite), *(["--quick"] if chosen["quick"] else [])],
                               chosen["quick"])
    from dlbench.evaluate import claims

    found = SuiteRun(Path(suite).stem, root, pd.DataFrame(rows), {
        r["entry"]: read_run(Path(r["results"]), r["command"]) for r in rows}, claims.read(root),
        chosen["quick"])
    if show:
        found.show()
    return found


def compare(*paths: str | Path, show: bool = False, **options: Any) -> Comparison:
    """`dlbench compare BASELINE CURRENT` (or `--rank` over more) from Python: options
    tolerance, rope, all_rows, rank, metric, split, cost, out, fmt. Returns a Comparison."""
    from dlbench.cli import compare as command
    from dlbench.output import report

    o, given = _options("compare", command.compare, "paths", options)
    check_format(o["fmt"], ("table", "markdown", "json"))
    command.check_applies(given, o["rank"])
    where = [typed("paths", Path, p) for p in paths]
    if o["rank"]:
        ranked, title, tables, out = command.ranking_run(where, o["metric"], o["split"],
                                                         o["cost"], o["out"])
        if show:
            report.show_ranking(ranked, title, o["fmt"])
        return Comparison(tables["ranks"], False, tables, out)
    found, title, notes, claims = command.judged(where, o["tolerance"], o["rope"], o["out"])
    if show:
        report.show_compare(found, title, notes, o["fmt"], o["all_rows"])
    return Comparison(found, command.regressed(found, claims), {"compare": found}, o["out"])
