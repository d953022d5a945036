"""An on-disk cache of generated arrays (e.g. mnist1d), keyed by what generated them.

Where: $DLBENCH_CACHE, else $XDG_CACHE_HOME/dlbench, else ~/.cache/dlbench. One .npz file per
key, named <stem>-<sha256 of the key, 16 hex>.npz, holding the arrays plus the key itself (as
JSON), which a load checks. The cache never fails a run: a directory that cannot be created or
written means generating in memory, and a corrupt, truncated or mismatched file is a miss that is
regenerated and rewritten. Writes go to a temporary file in the same directory and are renamed
into place (as in `results.atomic_write`), so concurrent runs each write a whole file and a
reader never sees half of one; the last rename wins, and both wrote the same arrays.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

_KEY = "__key__"  # the archive member holding the key; not a valid caller array name


def cache_dir() -> Path:
    """$DLBENCH_CACHE, else $XDG_CACHE_HOME/dlbench, else ~/.cache/dlbench (read per call)."""
    own = os.environ.get("DLBENCH_CACHE")
    if own:
        return Path(own).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):  # the XDG spec: a relative value is to be ignored
        return Path(xdg) / "dlbench"
    return Path.home() / ".cache" / "dlbench"


def cached_arrays(stem: str, key: Mapping[str, Any],
                  make: Callable[[], Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays `make()` returns for `key` (JSON-able): read from the cache, or made and
    stored. stem names the file for people, e.g. "mnist1d-n5000"; the key decides a hit."""
    text = json.dumps(key, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    try:
        path = cache_dir() / f"{stem}-{digest}.npz"
    except RuntimeError:  # Path.home() with no home directory at all: no cache
        return dict(make())
    arrays = _read(path, text)
    if arrays is None:
        arrays = dict(make())
        _write(path, text, arrays)
    return arrays


def _read(path: Path, text: str) -> dict[str, np.ndarray] | None:
    """The arrays stored at path under exactly this key; None when absent or unreadable."""
    try:
        # our own handle: np.load leaks the one it opens when the archive is truncated
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as archive:  # no pickles
            if _KEY not in archive.files or str(archive[_KEY][()]) != text:
                return None
            return {name: archive[name] for name in archive.files if name != _KEY}
    except Exception:  # missing, truncated, corrupt (zip, CRC, format): all a miss
        return None


def _write(path: Path, text: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Store atomically; an OSError (read-only or full disk, no such directory) is ignored."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{_KEY: np.array(text)}, **arrays)
        os.replace(tmp, path)
    except BaseException as exc:  # interrupted too: leave no temporary file behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if not isinstance(exc, OSError):
            raise
