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

`plugins = ["mine.py", "package.module"]` at the top imports plugin modules (dlbench/plugins.py)
before any entry is read, a file's path relative to the suite file; an entry may also name its
own (`plugin = "..."`, as --plugin).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Suite:
    path: Path
    description: str
    entries: tuple[Entry, ...]

    @property
    def name(self) -> str:
        return self.path.stem


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
    return Suite(path, str(data.get("description", "")),
                 tuple(_entry(path, name, table) for name, table in entries.items()))


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
    if not isinstance(claim, str):
        raise DlbenchError(f"{where}: claim is a sentence in quotes")
    if command not in COMMANDS:
        raise DlbenchError(f"{where}: command must be one of {', '.join(COMMANDS)}, got "
                           f"{command!r}")
    for key, value in options.items():
        if key.replace("_", "-") in RESERVED:
            raise DlbenchError(f"{where}: --{key} is set for the whole suite by dlbench run; "
                               "drop it from the entry")
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str | int | float | bool) for v in values):
            raise DlbenchError(f"{where}: {key} must be a string, number or boolean (or a list "
                               "of them for a repeated option)")
    return Entry(name, command, {k.replace("_", "-"): v for k, v in options.items()}, claim)
