"""Python objects where the command line takes a name or a path, for the Python API.

An optimizer class or factory, a model factory, a metric function, a data loader, arrays or a
DataFrame become references (`plugins.register`: 'python.<digest>:Name'), written into the
option's text as the command line would write a file's `file.py:Name[k=v,...]`; from there on
they take the command line's own path (parsing, checks, cell keys, manifests, workers).

An entry of a list option (opt, model, metrics) is a registry name or reference as on the
command line ('adam[lr=0.1]'), an object (`MyOpt`), or an object with its parameters
(`(MyOpt, {"lr": 0.1})`); a list holds several, as the command line's comma-separated text.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

from dlbench import plugins
from dlbench.errors import DlbenchError

ENTRIES = ("opt", "model", "metrics")  # the options whose entries may be Python objects
DATA_ROWS = (2, 4)  # (X, y) or (X, y, X_test, y_test): what data= takes as arrays
_FORBIDDEN = set(",[]=")  # characters a parameter's value cannot hold in the entry grammar


def converted(kw: Mapping[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """Keyword arguments with every Python object turned into its reference -> (the
    arguments, the names the user gave). A DataFrame's `target` column is taken by the
    conversion, so it is no longer an option given."""
    out = dict(kw)
    named = set(kw)
    for name in ENTRIES:
        if name in out and not _plain(out[name]):
            out[name] = ",".join(_entry(name, e) for e in _items(out[name]))
    if "data" in out and not _is_path(out["data"]):
        out["data"], took_target = _data(out["data"], out.get("target"))
        if took_target:
            del out["target"]
            named.discard("target")
    return out, named


def _plain(value: Any) -> bool:
    """What the command line's text already says: None, text, or a list of texts."""
    items = value if isinstance(value, list | tuple) else [value]
    return value is None or all(isinstance(v, str | int | float) for v in items)


def _items(value: Any) -> list[Any]:
    """A list option's entries: a list of them, or one (an object, or an object with its
    parameters)."""
    if isinstance(value, list):
        return value
    return [value]


def _entry(option: str, item: Any) -> str:
    """One entry as the command line writes it: 'python.<digest>:Name[k=v,...]'."""
    if isinstance(item, str):
        return item
    params: Mapping[str, Any] = {}
    if isinstance(item, tuple):
        if len(item) != 2 or not isinstance(item[1], Mapping):
            raise DlbenchError(f"{option}: an entry with parameters is (object, {{name: value}})"
                               f", got a tuple of {len(item)}")
        item, params = item
    if not callable(item):
        raise DlbenchError(f"{option}: an entry is a name like 'adam[lr=0.1]', a class or a "
                           f"function, or (it, {{parameters}}); got a {type(item).__name__}")
    reference = plugins.register(item)
    if not params:
        return reference
    return f"{reference}[{','.join(f'{k}={_written(option, k, v)}' for k, v in params.items())}]"


def _written(option: str, key: str, value: Any) -> str:
    """A parameter's value in the entry grammar (grammar.read_params reads it back with the
    type of the parameter's default); floats exactly (repr), tuples as a/b."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple | list):
        return "/".join(_written(option, key, v) for v in value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    text = str(value)
    if not isinstance(value, int | float | str) or _FORBIDDEN & set(text) or not text.strip():
        raise DlbenchError(f"{option}: parameter {key}={value!r} cannot be written as an "
                           "entry's value (a number, true/false, a word, or a tuple of "
                           "numbers); bind it in a function of your own instead")
    return text


def _is_path(value: Any) -> bool:
    import os

    return value is None or isinstance(value, str | os.PathLike)


def _data(value: Any, target: Any) -> tuple[str, bool]:
    """data= given as Python: a loader function, arrays, or a DataFrame with its `target`
    column -> (its reference, whether `target` was taken)."""
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return _frame(value, target), True
    if callable(value):
        return plugins.register(value), False
    if isinstance(value, tuple | list) and len(value) in DATA_ROWS:
        return _arrays(tuple(value)), False
    raise DlbenchError(f"data: give a file path, arrays (X, y) or (X, y, X_test, y_test), a "
                       f"DataFrame with target='column', or a function returning arrays; got "
                       f"a {type(value).__name__}")


def _frame(frame: Any, target: Any) -> str:
    """A DataFrame: its `target` column is y, the other columns (numbers) are X."""
    if not isinstance(target, str) or target not in frame.columns:
        raise DlbenchError(f"data: a DataFrame needs target='column', one of: "
                           f"{', '.join(map(str, frame.columns))}")
    features = frame.drop(columns=[target])
    text = [str(c) for c, kind in features.dtypes.items() if kind.kind not in "biuf"]
    if text:
        raise DlbenchError(f"data: column '{text[0]}' is not numeric; encode it as numbers, or "
                           "write the frame to a CSV and pass its path")
    return _arrays((features.to_numpy(), frame[target].to_numpy()))


def _arrays(arrays: tuple[Any, ...]) -> str:
    """Arrays as a registered loader returning them, named by a digest of their contents
    (so equal arrays are the same data to the cell keys, and changed ones are not)."""
    import numpy as np

    held = tuple(np.asarray(a) for a in arrays)
    if len({len(held[0]), len(held[1])}) != 1 or (len(held) == 4 and
                                                  len(held[2]) != len(held[3])):
        raise DlbenchError("data: X and y (and X_test and y_test) must have as many rows; got "
                           f"{', '.join(str(len(a)) for a in held)}")

    def arrays() -> tuple[Any, ...]:
        return held

    return plugins.register(arrays, _digest(held))


def _digest(arrays: tuple[Any, ...]) -> str:
    """sha256 over each array's dtype, shape and values (object arrays by their text)."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(f"{a.dtype.str}{a.shape}".encode())
        if a.dtype.hasobject:
            h.update("\0".join(map(repr, a.ravel().tolist())).encode())
        else:
            h.update(a.tobytes(order="C"))
    return h.hexdigest()
