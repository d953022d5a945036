"""Benchmark suites: named dlbench invocations in a TOML file, run by `dlbench run`.

    description = "A few minutes on 2 CPU cores"

    [entry.cv-digits]
    command = "cv"
    dataset = "digits"
    k = 4
    epochs = 5

Each `[entry.NAME]` table is one command (and, optionally, the `claim` it measures) with its
options, spelled as on the command line
without the dashes (`target-size = "25,100"`, `stratify = false` for `--no-stratify`, a list for
an option given several times: `hidden = ["8", "8,8,8"]`). This module reads the file's shape;
the options themselves are parsed and checked by the command's own code (the CLI's parser, then
config.py), exactly as on a command line, before anything runs.

A hypothesis makes the claim one the tool judges (evaluate/claims.py; claims.csv):

    [entry.lr-decay.hypothesis]
    compare = "lr-decay"            # an entry of the suite, or a cell label of this entry,
    against = "lr-constant"         # or a table: {entry = "...", cell = "...", lr = 10.0}
    metric = "accuracy"             # default accuracy
    split = "val"                   # train, val or test (default val)
    expect = "better"               # better | worse | equivalent | diverges | stalls
    margin = 0.01                   # metric units: equivalent needs it; better/worse: a
                                    # difference shown within ±margin fails the claim

A table's keys other than entry and cell are grid coordinates, scores.csv's columns (lr,
optimizer, activation, ...). `compare` defaults to this entry; diverges and stalls take no
`against`. `[[entry.NAME.hypothesis]]` declares several. An unknown entry, metric, split,
relation or coordinate is refused when the suite is read; a cell label or coordinate value that
names no cell, when the entries are prepared: both before anything trains.

The quick profile (`dlbench run SUITE --quick`) runs each entry with its `[entry.NAME.quick]`
table's options in place of its own, spelled and checked as they are (a smaller budget that
still judges the same hypotheses); an entry without one runs as it is:

    [entry.lr-decay.quick]
    epochs = 10
    seeds = 3

`plugins = ["mine.py", "package.module"]` at the top imports plugin modules (dlbench/plugins.py)
before any entry is read, a file's path relative to the suite file; an entry may also name its
own (`plugin = "..."`, as --plugin).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dlbench import plugins
from dlbench.cli.commands import COMMANDS
from dlbench.errors import DlbenchError

# set once for the whole suite by `dlbench run`, never per entry
RESERVED = ("out", "resume", "workers", "scheduler", "dask-local", "threads", "format")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # an entry's name is its directory's name


@dataclass(frozen=True)
class Entry:
    name: str
    command: str  # a key of COMMANDS, the command table
    options: dict[str, Any]  # option (without "--") -> value, a list for a repeated option
    claim: str = ""  # what the entry measures, in words (`claim = "..."`; shown by the report)
    hypotheses: tuple[Any, ...] = ()  # its claims.Hypothesis tables, checked against the suite
    quick: dict[str, Any] = field(default_factory=dict)  # [entry.NAME.quick]: option -> value
    # in place of its own under --quick (keys spelled as in options)

    def profiled(self, quick: bool) -> Entry:
        """The entry as the profile runs it: under --quick, its quick options over its own."""
        return replace(self, options={**self.options, **self.quick}) if quick else self


@dataclass(frozen=True)
class Suite:
    path: Path
    description: str
    entries: tuple[Entry, ...]

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def has_quick(self) -> bool:
        """Whether any entry declares a quick profile of its own."""
        return any(e.quick for e in self.entries)


def load(path: Path) -> Suite:
    """The suite in `path`; DlbenchError naming the file, entry and key when its shape is wrong."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise DlbenchError(f"suite {path} does not exist; give a suite file such as "
                           "benchmarks/smoke.toml") from None
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise DlbenchError(f"suite {path}: {e}") from None
    unknown = sorted(set(data) - {"description", "plugins", "entry"})
    if unknown:
        raise DlbenchError(f"suite {path}: unknown key '{unknown[0]}'; a suite has a "
                           "description, plugins and [entry.NAME] tables")
    _use_plugins(path, data.get("plugins", []))
    entries = data.get("entry")
    if not isinstance(entries, dict) or not entries:
        raise DlbenchError(f"suite {path} has no entries; add [entry.NAME] tables with a "
                           "command and its options")
    parsed = [_entry(path, name, table) for name, table in entries.items()]
    return Suite(path, str(data.get("description", "")), tuple(
        replace(e, hypotheses=_hypotheses(path, e, entries[e.name], set(entries)))
        for e in parsed))


def _use_plugins(path: Path, found: Any) -> None:
    """`plugins = ["mine.py", "package.module"]`: imported before any entry is read (as
    --plugin does for one command); a file's path is relative to the suite's directory."""
    if isinstance(found, str) or not isinstance(found, list) or \
            not all(isinstance(p, str) for p in found):
        raise DlbenchError(f"suite {path}: plugins is a list of modules or files in quotes, "
                           'e.g. plugins = ["mine.py"]')
    for where in found:
        try:
            plugins.use(str(path.parent / where) if plugins.is_file(where) else where)
        except DlbenchError as e:
            raise DlbenchError(f"suite {path}: {e}") from None


def _entry(path: Path, name: str, table: Any) -> Entry:
    where = f"suite {path}, entry '{name}'"
    if not NAME.fullmatch(name):
        raise DlbenchError(f"{where}: a name is letters, digits, '.', '_' and '-' (it names "
                           "the entry's results directory)")
    if not isinstance(table, dict):
        raise DlbenchError(f"{where}: an entry is a table: [entry.{name}] with a command")
    options = dict(table)
    command = options.pop("command", None)
    claim = options.pop("claim", "")
    options.pop("hypothesis", None)  # read by _hypotheses, once every entry's name is known
    quick = options.pop("quick", {})
    if not isinstance(claim, str):
        raise DlbenchError(f"{where}: claim is a sentence in quotes")
    if command not in COMMANDS:
        raise DlbenchError(f"{where}: command must be one of {', '.join(COMMANDS)}, got "
                           f"{command!r}")
    if not isinstance(quick, dict):
        raise DlbenchError(f"{where}: quick is a table of options, [entry.{name}.quick] with "
                           "e.g. epochs = 5")
    taken = sorted(set(quick) & {"command", "claim", "hypothesis", "quick"})
    if taken:
        raise DlbenchError(f"{where}, quick: {taken[0]} is the entry's own, not an option; "
                           "the quick table sets options only")
    return Entry(name, command, _options(where, options), claim,
                 quick=_options(f"{where}, quick", quick))


def _options(where: str, table: dict[str, Any]) -> dict[str, Any]:
    """An entry's (or its quick table's) options, their shape checked -> option (its
    command-line spelling, without "--") -> value; the values are the command's to check."""
    for key, value in table.items():
        if key.replace("_", "-") in RESERVED:
            raise DlbenchError(f"{where}: --{key} is set for the whole suite by dlbench run; "
                               "drop it from the entry")
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str | int | float | bool) for v in values):
            raise DlbenchError(f"{where}: {key} must be a string, number or boolean (or a list "
                               "of them for a repeated option)")
    return {k.replace("_", "-"): v for k, v in table.items()}


HYPOTHESIS_KEYS = ("compare", "against", "metric", "split", "expect", "margin")
COORDINATE_KEYS = ("dataset", "checkpoint", "protocol")  # scores.csv columns besides the axes


def _hypotheses(path: Path, entry: Entry, table: dict[str, Any], names: set[str]
                ) -> tuple[Any, ...]:
    """The entry's [entry.NAME.hypothesis] table(s), every name in them checked."""
    found = table.get("hypothesis", [])
    tables = [found] if isinstance(found, dict) else found
    where = f"suite {path}, entry '{entry.name}', hypothesis"
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise DlbenchError(f"{where}: a hypothesis is a table, [entry.{entry.name}.hypothesis]")
    try:
        return tuple(_hypothesis(entry, dict(t), names) for t in tables)
    except DlbenchError as e:
        raise DlbenchError(f"{where}: {e}") from None


def _hypothesis(entry: Entry, table: dict[str, Any], names: set[str]):
    from dlbench.evaluate import claims
    from dlbench.evaluate.metrics import METRICS

    unknown = sorted(set(table) - set(HYPOTHESIS_KEYS))
    if unknown:
        raise DlbenchError(f"unknown key '{unknown[0]}'; its keys: {', '.join(HYPOTHESIS_KEYS)}")
    relation = claims.RELATIONS.get(str(table.get("expect", "")))  # lists the valid names
    metric, split = str(table.get("metric", "accuracy")), str(table.get("split", "val"))
    if metric not in METRICS.names() and not plugins.is_reference(metric):
        raise DlbenchError(f"unknown metric '{metric}'; choose from: "
                           f"{', '.join(METRICS.names())}, or a metric of your own as its "
                           "rows name it (mine.py:name)")
    if split not in claims.SPLITS:
        raise DlbenchError(f"unknown split '{split}'; choose from: {', '.join(claims.SPLITS)}")
    margin = table.get("margin")
    if margin is not None and (isinstance(margin, bool) or not isinstance(margin, int | float)
                               or not margin > 0):
        raise DlbenchError(f"margin is a positive number in the metric's units, got {margin!r}")
    if relation.name == "equivalent" and margin is None:
        raise DlbenchError("expect = \"equivalent\" needs a margin (metric units), e.g. "
                           "margin = 0.01")
    against = table.get("against")
    if (against is None) != bool(relation.status):
        raise DlbenchError(f"expect = \"{relation.name}\" " + (
            "takes no against" if relation.status else "needs against = (an entry or cell)"))
    return claims.Hypothesis(
        entry.name, entry.claim, relation.name, _side(entry, table.get("compare"), names),
        None if against is None else _side(entry, against, names), metric, split,
        None if margin is None else float(margin))


def _side(entry: Entry, given: Any, names: set[str]):
    """compare / against: an entry's name, a cell label of this entry, or a table."""
    from dlbench.engine.cells import AXES
    from dlbench.evaluate.claims import Side

    if given is None:
        return Side(entry.name)
    if isinstance(given, str):
        return Side(given) if given in names else Side(entry.name, given)
    if not isinstance(given, dict):
        raise DlbenchError("compare and against are an entry's name, a cell label, or a table "
                           '{entry = "...", cell = "...", lr = 0.1}')
    coords = dict(given)
    name, cell = str(coords.pop("entry", entry.name)), str(coords.pop("cell", ""))
    if name not in names:
        raise DlbenchError(f"unknown entry '{name}'; the suite's: {', '.join(sorted(names))}")
    columns = [*AXES.names(), *COORDINATE_KEYS]
    for key in coords:
        if key not in columns:
            raise DlbenchError(f"unknown coordinate '{key}'; choose from: {', '.join(columns)}")
    return Side(name, cell, tuple(sorted(coords.items())))
