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
    expect = "better"               # better | worse | equivalent | diverges | stalls |
                                    # reaches-first | overfits-sooner | narrower
    margin = 0.01                   # metric units: equivalent needs it; better/worse: a
                                    # difference shown within ±margin fails the claim
    target = 0.9                    # reaches-first only, and needed: the value to reach
    cost = "epochs"                 # reaches-first: epochs | grad_evals | examples

A table's keys other than entry and cell are grid coordinates, scores.csv's columns (lr,
optimizer, activation, ...); `{model = "chance"}` names a cv entry's chance baseline (its rows
are read only where a side names it, paired with the model fold by fold). `compare` defaults to
this entry; diverges and stalls take no `against`; better, worse and equivalent may take a
number (`against = 0.88`, metric units: a one-sample test). metric is a scores.csv metric (a
built-in, the user's own, or one of overfit's curve measures: gap_final, gap_best and
val_loss_final are lower-is-better; onset_epoch and best_epoch have no better side, so better
and worse refuse them), except for reaches-first, which reads curves.csv (loss, accuracy on
train or val; running_loss, running_accuracy on train), and overfits-sooner, which reads
overfit's onset_epoch and takes no metric or split (both sides overfit entries). narrower
compares the spread of the estimates one run of each side gives (Brown-Forsythe). A key the
relation does not take is refused, as are a missing target (reaches-first) or margin
(equivalent). `[[entry.NAME.hypothesis]]` declares several. An unknown entry, metric, split,
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
        replace(e, hypotheses=_hypotheses(path, e, entries[e.name],
                                          {x.name: x.command for x in parsed}))
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


HYPOTHESIS_KEYS = ("compare", "against", "metric", "split", "expect", "margin", "target", "cost")
COORDINATE_KEYS = ("dataset", "checkpoint", "protocol")  # scores.csv columns besides the axes
NEEDED = {"margin": "a margin (metric units), e.g. margin = 0.01",
          "target": "a target (the metric's units), e.g. target = 0.9"}


def _hypotheses(path: Path, entry: Entry, table: dict[str, Any], commands: dict[str, str]
                ) -> tuple[Any, ...]:
    """The entry's [entry.NAME.hypothesis] table(s), every name in them checked (`commands`:
    each entry's name -> its command)."""
    found = table.get("hypothesis", [])
    tables = [found] if isinstance(found, dict) else found
    where = f"suite {path}, entry '{entry.name}', hypothesis"
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise DlbenchError(f"{where}: a hypothesis is a table, [entry.{entry.name}.hypothesis]")
    try:
        return tuple(_hypothesis(entry, dict(t), commands) for t in tables)
    except DlbenchError as e:
        raise DlbenchError(f"{where}: {e}") from None


def _hypothesis(entry: Entry, table: dict[str, Any], commands: dict[str, str]):
    from dlbench.evaluate import claims

    unknown = sorted(set(table) - set(HYPOTHESIS_KEYS))
    if unknown:
        raise DlbenchError(f"unknown key '{unknown[0]}'; its keys: {', '.join(HYPOTHESIS_KEYS)}")
    relation = claims.RELATIONS.get(str(table.get("expect", "")))  # lists the valid names
    _check_keys(relation, table)
    margin, target = (_number(table, key) for key in ("margin", "target"))
    if margin is not None and not margin > 0:
        raise DlbenchError(f"margin is a positive number in the metric's units, got {margin!r}")
    cost = str(table.get("cost", "epochs"))
    if cost not in claims.COSTS:
        raise DlbenchError(f"unknown cost '{cost}'; choose from: {', '.join(claims.COSTS)}")
    metric, split = _metric_split(relation, table)
    compare = _side(entry, table.get("compare"), commands)
    against = _against(relation, entry, table.get("against"), commands)
    h = claims.Hypothesis(entry.name, entry.claim, relation.name, compare, against, metric,
                          split, margin, target, cost)
    _sides_commands(relation, h.sides, commands)
    return h


def _check_keys(relation, table: dict[str, Any]) -> None:
    """The keys the relation takes, and those it needs."""
    for key in HYPOTHESIS_KEYS[2:]:
        if key in table and key != "expect" and key not in relation.keys + relation.needs:
            raise DlbenchError(f'expect = "{relation.name}" takes no {key}' + (
                " (it reads overfit's onset on validation)" if not relation.reads else ""))
    for key in relation.needs:
        if key not in table:
            raise DlbenchError(f'expect = "{relation.name}" needs {NEEDED[key]}')


def _number(table: dict[str, Any], key: str) -> float | None:
    value = table.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise DlbenchError(f"{key} is a number in the metric's units, got {value!r}")
    return None if value is None else float(value)


def _metric_split(relation, table: dict[str, Any]) -> tuple[str, str]:
    """The metric and split the relation reads: a scores.csv metric (a built-in, one of
    overfit's curve measures or a function run's path measures, or the user's own), a
    curves.csv one, or overfit's onset."""
    from dlbench.evaluate import claims
    from dlbench.evaluate.metrics import CURVE_MEASURES, METRICS, PATH_MEASURES

    if not relation.reads:
        return claims.ONSET, "val"
    metric, split = str(table.get("metric", "accuracy")), str(table.get("split", "val"))
    if split not in claims.SPLITS:
        raise DlbenchError(f"unknown split '{split}'; choose from: {', '.join(claims.SPLITS)}")
    if relation.reads == "curves":
        return _curve_metric(relation, metric, split), split
    known = [*METRICS.names(), *CURVE_MEASURES, *PATH_MEASURES]
    if metric not in known and not plugins.is_reference(metric):
        raise DlbenchError(f"unknown metric '{metric}'; choose from: {', '.join(known)}, or a "
                           "metric of your own as its rows name it (mine.py:name)")
    if relation.sign and metric in CURVE_MEASURES and CURVE_MEASURES[metric] is None:
        raise DlbenchError(f"{metric} is an epoch, neither better nor worse; use expect = "
                           '"equivalent" or "narrower" (an earlier onset: "overfits-sooner")')
    return metric, split


def _curve_metric(relation, metric: str, split: str) -> str:
    from dlbench.evaluate import claims

    if metric not in claims.CURVE_METRICS:
        raise DlbenchError(f'expect = "{relation.name}" reads curves.csv, whose metrics are '
                           f"{', '.join(claims.CURVE_METRICS)} (loss: the training objective, "
                           f"for classification log_loss), not '{metric}'")
    if split not in ("train", "val") or metric in claims.RUNNING and split != "train":
        raise DlbenchError(f"curves.csv has no {metric} on {split}: loss and accuracy on "
                           "train and val, running_loss and running_accuracy on train")
    return metric


def _against(relation, entry: Entry, given: Any, commands: dict[str, str]):
    """against: a side, a number (for better / worse / equivalent), or none (a status)."""
    if (given is None) != (not relation.against):
        raise DlbenchError(f"expect = \"{relation.name}\" " + (
            "needs against = (an entry or cell)" if given is None else "takes no against"))
    if isinstance(given, int | float) and not isinstance(given, bool):
        if relation.against != "side or number":
            raise DlbenchError(f'expect = "{relation.name}" compares two sides: against is '
                               f"an entry or a cell, not the number {given!r}")
        return float(given)
    return None if given is None else _side(entry, given, commands)


def _sides_commands(relation, sides: tuple, commands: dict[str, str]) -> None:
    """Each side's entry runs a command whose results the relation reads."""
    for side in sides:
        if relation.commands and commands.get(side.entry) not in relation.commands:
            raise DlbenchError(f'expect = "{relation.name}" reads {relation.description}; '
                               f"entry '{side.entry}' runs {commands.get(side.entry)}")


def _side(entry: Entry, given: Any, names: dict[str, str]):
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
