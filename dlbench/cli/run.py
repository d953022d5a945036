"""`dlbench run SUITE`: every entry parsed by its command's own parser and config builder, and
prepared, before anything trains; then each runs into its own directory, keeping what already
finished there."""

from __future__ import annotations

import contextlib
import json
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.exceptions import TyperException

from dlbench.cli.commands import COMMANDS, Route, values
from dlbench.cli.execute import click_command, engine_for, execute, given, warn
from dlbench.cli.options import ExecutionOptions, help_template
from dlbench.cli.suites import RESERVED
from dlbench.engine.execution import DEFAULT_THREADS, Interrupted
from dlbench.errors import DlbenchError


def _execution(name: str) -> typer.models.OptionInfo:
    """An executor option of `run`, with the training commands' help."""
    return typer.Option(help=help_template(ExecutionOptions, name))


def run_suite(
        ctx: typer.Context,
        suite: Annotated[Path, typer.Argument(
            help="A suite file (TOML): [entry.NAME] tables, each a command and its options, "
                 "e.g. benchmarks/smoke.toml.", metavar="SUITE", show_default=False)],
        out: Annotated[Path | None, typer.Option(
            help="The suite's results directory, one subdirectory per entry (default "
                 "results/<suite>-<timestamp>/). Entries finished there are skipped, "
                 "interrupted ones resumed.")] = None,
        quick: Annotated[bool, typer.Option(
            "--quick", help="The suite's quick profile: each entry with the options of its "
                            "[entry.NAME.quick] table in place of its own (an entry without "
                            "one runs as it is); the same hypotheses judged. Kept in "
                            "suite.json: a directory holds one profile.")] = False,
        timings: Annotated[int, typer.Option(
            help="Also time each network entry N times (its cells train again, their results "
                 "dropped) into timings.csv: what compare --tolerance seconds:+N% needs.")
                           ] = 0,
        workers: Annotated[int, _execution("workers")] = 1,
        scheduler: Annotated[str | None, _execution("scheduler")] = None,
        dask_local: Annotated[int, _execution("dask_local")] = 0,
        threads: Annotated[int, _execution("threads")] = DEFAULT_THREADS) -> None:
    """Run a benchmark suite: every entry is checked first, then each runs into its own
    directory, keeping what already finished there."""
    from dlbench.output import report

    root, rows = suite_run(suite, out, timings, ctx.params, quick=quick)
    columns = ["entry", "command", "done", "cells trained", *(["timings"] if timings else []),
               "results"]
    report.listing(suite_title(Path(suite).stem, quick), [{"timings": "", **r} for r in rows],
                   columns, wrap=("results",))
    _show_claims(root, Path(suite).stem)
    typer.echo(f"results: {root}", err=True)


def suite_title(name: str, quick: bool) -> str:
    return f"suite {name}" + (" (quick profile)" if quick else "")


def suite_run(suite: Path, out: Path | None, timings: int, options: dict[str, Any],
              say: Callable[[list[str]], None] = warn, bar: bool = True,
              again: list[str] | None = None, quick: bool = False
              ) -> tuple[Path, list[dict[str, Any]]]:
    """`dlbench run`, nothing shown -> (the suite's directory, a row per entry). `options`:
    the executor's (workers, scheduler, dask_local, threads); `say`: where warnings go; `bar`:
    a progress bar on a terminal; `again`: the arguments that finish it when interrupted
    (default: this command line's); `quick`: the quick profile. What the command and the
    Python API share."""
    from dlbench import results
    from dlbench.cli import suites
    from dlbench.cli.config import execution_config
    from dlbench.engine.execution import check_execution

    loaded = suites.load(suite)
    if timings < 0:
        raise DlbenchError(f"--timings must be 0 or more, got {timings}")
    results.check_out(out)  # a suite's directory holds entries' runs, not a run of its own
    execution = execution_config(options)
    warnings = check_execution(execution) + _profile_warnings(loaded, quick)
    root = out or results.default_out_dir(loaded.name)
    if out is not None:
        _check_profile(out, quick)
    entries = [_prepared(entry.profiled(quick), root / entry.name) for entry in loaded.entries]
    _check_quick_tables(loaded.entries, quick)
    _check_hypotheses(entries)
    if out is None:  # every entry checked: now make the suite's directory, exclusively
        root = results.new_dir(loaded.name)
        for e in entries:
            e.out = root / e.entry.name
    say(warnings + [f"{e.entry.name}: {w}" for e in entries for w in e.warnings])
    _write_record(root, loaded, quick)
    again = [*(sys.argv[1:] if again is None else again),
             *(["--out", str(root)] if out is None else [])]
    rows = _run_entries(entries, execution, loaded.name, root, f"dlbench {shlex.join(again)}",
                        say, bar)
    for e, row in zip(entries, rows, strict=True):  # after every result: timing only adds
        if timings and e.runner.TRAINS_CELLS:
            row["timings"] = _timed(e, timings, execution)
    _write_claims(root, [h for e in loaded.entries for h in e.hypotheses])
    return root, rows


def _check_hypotheses(entries: list[_Entry]) -> None:
    """Every hypothesis's cells named in its entry's prepared grid, before anything trains
    (an entry finished already, or without a grid, is read as it is when judged; paths on a
    function, whose plan is not kept, are prepared again: a grid of optimizer entries)."""
    from dlbench.evaluate import claims

    plans = {e.entry.name: getattr(e.plan if e.runner.TRAINS_CELLS else
                                   e.runner.prepare(e.config), "cells", None) for e in entries}
    for e in entries:
        for h in e.entry.hypotheses:
            for side in h.sides:
                if (side.cell or side.coords) and plans.get(side.entry):
                    try:
                        claims.check_side(side, plans[side.entry])
                    except DlbenchError as err:
                        raise DlbenchError(f"suite entry '{e.entry.name}', hypothesis: "
                                           f"{err}") from None


def _write_claims(root: Path, hypotheses: list) -> None:
    """claims.csv: every hypothesis judged on the entries' results (none: no file)."""
    from dlbench import results
    from dlbench.evaluate import claims

    if hypotheses:
        judged = claims.judge_suite(root, hypotheses)
        results.atomic_write(root / "claims.csv", lambda f: judged.to_csv(f, index=False))


def _show_claims(root: Path, name: str) -> None:
    """The claims table, the verdict first, when the suite declared hypotheses."""
    from dlbench.evaluate import claims
    from dlbench.output import report

    found = claims.read(root)
    if found is not None:
        report.show_claims(found, f"claims of suite {name}")


def _check_quick_tables(entries, quick: bool) -> None:
    """A full run parses the quick tables too (cheap: no data is loaded), so that a bad one is
    found by whichever profile runs first."""
    for entry in entries if not quick else ():
        if entry.quick:
            try:
                _configured(entry.profiled(True))
            except DlbenchError as e:
                raise DlbenchError(f"suite entry '{entry.name}', quick: {e}") from None


def _profile_warnings(loaded, quick: bool) -> list[str]:
    return [f"--quick: suite {loaded.name} has no [entry.NAME.quick] table; every entry runs "
            "as it is"] if quick and not loaded.has_quick else []


PROFILES = {False: "full", True: "quick"}  # suite.json's profile, by --quick


def _check_profile(root: Path, quick: bool) -> None:
    """A suite directory holds one profile: rerunning it under the other is refused (its
    entries with a quick table would differ; the others would mix into one record)."""
    try:
        there = json.loads((root / "suite.json").read_text()).get("profile", "full")
    except (OSError, ValueError, AttributeError):
        return  # none yet (or damaged: written anew)
    if there != PROFILES[quick]:
        raise DlbenchError(f"--out {root} holds the suite's {there} profile; "
                           + ("add --quick" if there == "quick" else "drop --quick")
                           + " to finish it, or choose a new --out")


def _write_record(root: Path, loaded, quick: bool) -> None:
    """suite.json: the suite's entries, claims and profile, what the report shows."""
    from dlbench import results

    try:
        results.atomic_write(root / "suite.json", lambda f: json.dump(
            {"suite": loaded.name, "description": loaded.description,
             "profile": PROFILES[quick],
             "entries": [{"name": e.name, "command": e.command, "claim": e.claim}
                         for e in loaded.entries],
             **({"claims": "claims.csv"} if any(e.hypotheses for e in loaded.entries)
                else {})}, f, indent=2))
    except OSError as e:
        raise DlbenchError(f"cannot write to {root}: {e.strerror}; give --out a writable "
                           "directory") from None


def _run_entries(entries: list[_Entry], execution, name: str, root: Path,
                 hint: str, say: Callable[[list[str]], None],
                 bar: bool) -> list[dict[str, Any]]:
    """Every unfinished entry, in order, on one engine -> a row per entry (a rerun with
    `hint` resumes)."""
    rows = []
    total = sum(e.plan.total_epochs for e in entries if e.plan is not None)
    with engine_for(execution, total, name, bar) as engine, \
            _suite_interrupted(root, hint):
        for e in entries:
            if e.state != "finished":
                _, e.out = execute(e.entry.command, e.route, e.runner, e.config,
                                   e.plan or e.runner.prepare(e.config), e.out,
                                   e.state == "unfinished", engine, lambda _: hint, say)
            rows.append({"entry": e.entry.name, "command": e.entry.command,
                         "done": {"new": "trained", "unfinished": "resumed"}.get(
                             e.state, "already finished"),
                         "cells trained": engine.trained if e.plan is not None else 0,
                         "results": str(e.out)})
    return rows


@contextlib.contextmanager
def _suite_interrupted(root: Path, hint: str) -> Iterator[None]:
    """Ctrl-C between a suite's entries (inside one, its own run says what it kept)."""
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted: the entries finished so far are kept in {root}; "
                          f"finish with: {hint}") from None


@dataclass(eq=False)
class _Entry:
    """A suite entry, parsed, checked and prepared before anything in the suite trains."""

    entry: Any  # suites.Entry
    route: Route  # what runs it, shows and draws it (the command table's)
    runner: Any  # route.module(), a runners.base.Runner
    config: Any  # its frozen config
    plan: Any  # None when its run finished already, and for a runner without cells (a
    # second's work, prepared again when it runs)
    state: str  # results.run_state: new, unfinished or finished
    out: Path  # its results directory

    @property
    def warnings(self) -> list[str]:
        return self.plan.warnings if self.plan is not None else []


def _timed(e: _Entry, n: int, execution) -> int:
    """Time an entry's whole training `n` times (its stored cells not used), kept in its
    timings.csv; timings already there count -> how many there are."""
    import pandas as pd

    from dlbench import results
    from dlbench.engine.execution import Engine

    path = e.out / "timings.csv"
    done = pd.read_csv(path)["seconds"].tolist() if path.exists() else []
    plan = e.plan or e.runner.prepare(e.config)
    with Engine(execution) as engine:  # no store: every cell trains again; one pool for all
        while len(done) < n:
            started = time.perf_counter()
            e.runner.run(plan, engine)
            done.append(round(time.perf_counter() - started, 4))
            frame = pd.DataFrame({"timing": range(len(done)), "seconds": done})
            results.atomic_write(path, lambda f, frame=frame: frame.to_csv(f, index=False))
    return len(done)


def _prepared(entry, out: Path) -> _Entry:
    """Parse an entry's options with the command's own parser and config builder, check its
    directory, and prepare its plan (data, sizes): every error names the entry."""
    from dlbench import results

    try:
        command, config = _configured(entry)
        route = command.route(config)
        runner = route.module()
        state = results.run_state(out, {"command": entry.command, "config": config.record()})
        if state != "finished":
            results.check_out(out, resume=state == "unfinished")
        plan = None
        if not runner.TRAINS_CELLS:  # checked now, whatever its state: a second's work
            runner.prepare(config)
        elif state != "finished":
            plan = runner.prepare(config)
    except DlbenchError as e:
        raise DlbenchError(f"suite entry '{entry.name}': {e}") from None
    return _Entry(entry, route, runner, config, plan, state, out)


def _configured(entry) -> tuple[Any, Any]:
    """An entry's options through its command's own parser and config builder -> (its
    command-table entry, its frozen config)."""
    command = COMMANDS[entry.command]
    context = _entry_context(entry)
    return command, command.build(values(command.options(**context.params)), given(context))


def _entry_context(entry) -> typer.Context:
    """A suite entry's options through its command's own parser: the values, types, defaults
    and usage errors of the command line."""
    command = click_command(COMMANDS[entry.command])
    try:
        return command.make_context(entry.command, _arguments(command, entry))
    except TyperException as e:  # typer's click: a bad value, a missing one
        raise DlbenchError(e.format_message()) from None


def _arguments(command, entry) -> list[str]:
    """An entry's options as command-line arguments."""
    params = {opt[2:]: p for p in command.params for opt in (*p.opts, *p.secondary_opts)
              if opt.startswith("--")}
    args: list[str] = []
    for key, value in entry.options.items():
        param = params.get(key)
        if param is None or key.startswith("no-"):
            names = sorted(p.opts[0][2:] for p in command.params
                           if p.opts[0].startswith("--") and p.opts[0][2:] not in RESERVED)
            raise DlbenchError(f"{entry.command} has no option --{key}; its options: "
                               f"{', '.join(names)}")
        if getattr(param, "is_flag", False):
            if not isinstance(value, bool):
                raise DlbenchError(f"--{key} is a switch: give true or false")
            if value or param.secondary_opts:
                args.append(param.opts[0] if value else param.secondary_opts[0])
            continue
        items = value if isinstance(value, list) else [value]
        if len(items) > 1 and not param.multiple:  # click would keep the last one
            raise DlbenchError(f"--{key} takes one value, got a list of {len(items)}; only "
                               "an option that may be repeated (optimize's hidden) takes a list")
        for item in items:
            args += [param.opts[0], str(item).lower() if isinstance(item, bool) else str(item)]
    return args
