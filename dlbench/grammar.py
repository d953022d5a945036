"""The entry grammar of list options: `name[key=value,...]`, comma-separated.

`--opt 'sgd,adam[lr=0.3,betas=0.9/0.999]'` and `--reg 'none,l2[strength=1e-3]'` read the same
way: a value takes the type of its parameter's default (numbers, true/false, tuples written
a/b), and every mistake is one line naming the option, the entry and how to write it.
"""

from __future__ import annotations

import math
import re
from typing import Any

from dlbench.errors import DlbenchError

# a name, or a reference to the user's code: path/to/file.py:Name, package.module:Name (plugins.py)
_ENTRY = re.compile(r"^\s*(?P<name>[A-Za-z0-9_.~+/-]+(?::[A-Za-z_][A-Za-z0-9_]*)?)\s*"
                    r"(?:\[(?P<body>[^\[\]]*)\])?\s*$")


def split_entries(text: str, option: str, help: str) -> list[str]:
    """Split on commas outside brackets."""
    entries, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if depth not in (0, 1):
            raise DlbenchError(f"{option} '{text}': unbalanced or nested brackets; {help}")
        if char == "," and depth == 0:
            entries.append(current)
            current = ""
        else:
            current += char
    if depth != 0:
        raise DlbenchError(f"{option} '{text}': a '[' is never closed; {help}")
    entries.append(current)
    if any(not e.strip() for e in entries) and any(e.strip() for e in entries):
        raise DlbenchError(f"{option} '{text}' has an empty entry (two commas in a row, or one "
                           f"at an end); {help}")
    return [e for e in entries if e.strip()]


def read_entry(entry: str, option: str, help: str) -> tuple[str, str | None]:
    """'name[body]' -> (name, body or None)."""
    match = _ENTRY.match(entry)
    if match is None:
        raise DlbenchError(f"{option}: cannot read '{entry.strip()}'; {help}")
    return match["name"], match["body"]


def read_params(body: str | None, option: str, name: str, allowed: dict[str, Any],
                help: str) -> dict[str, Any]:
    """'k=v,...' -> {k: v} typed like `allowed[k]` (the defaults); unknown keys refused."""
    params: dict[str, Any] = {}
    for item in body.split(",") if body is not None and body.strip() else []:
        key, sep, raw = (s.strip() for s in item.partition("="))
        if not sep or not raw or not key:
            raise DlbenchError(f"{option} {name}: '{item.strip()}' is not key=value; {help}")
        if key not in allowed:
            takes = f"it takes: {', '.join(allowed)}" if allowed else "it takes none"
            raise DlbenchError(f"{option} {name} takes no parameter '{key}'; {takes}")
        if key in params:
            raise DlbenchError(f"{option} {name}: '{key}' is given twice; give it once")
        params[key] = _finite(option, name, key, raw,
                              _parse_value(option, name, key, raw, allowed[key]))
    return params


def _parse_value(option: str, name: str, key: str, raw: str, default: Any) -> Any:
    """Read a value with the type of the parameter's default (tuples written a/b)."""
    try:
        if isinstance(default, tuple):
            values = tuple(float(v) for v in raw.split("/"))
            if len(values) != len(default):
                raise ValueError
            return values
        if isinstance(default, bool):
            if raw.lower() not in ("true", "false"):
                raise ValueError
            return raw.lower() == "true"
        number = _number(raw)
        if isinstance(default, int) and not isinstance(number, int):
            raise ValueError  # a count: 2.5 epochs of patience means nothing
        if number is not None and (default is None or isinstance(default, int | float)):
            return float(number) if isinstance(default, float) else number
        if isinstance(default, int | float):
            raise ValueError
        return None if raw.lower() == "none" else raw
    except ValueError:
        raise DlbenchError(f"{option} {name}[{key}={raw}]: {key} takes {_kind(default)}"
                           ) from None


def _finite(option: str, name: str, key: str, raw: str, value: Any) -> Any:
    numbers = value if isinstance(value, tuple) else (value,)
    if any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
        raise DlbenchError(f"{option} {name}[{key}={raw}]: {key} must be a finite number")
    return value


def _kind(default: Any) -> str:
    if isinstance(default, tuple):
        return f"{len(default)} numbers like {format_value(default)}"
    if isinstance(default, bool):
        return "true or false"
    return "a whole number" if isinstance(default, int) else "a number"


def _number(raw: str) -> int | float | None:
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return None


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "/".join(format_value(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


