"""A named registry of frozen entries: the CLI choices, --help, runners and tests loop over it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, Protocol, TypeVar

from dlbench import plugins
from dlbench.errors import DlbenchError


class Named(Protocol):
    name: str


T = TypeVar("T", bound=Named)


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind  # what an entry is called in error messages, e.g. "dataset"
        self._entries: dict[str, T] = {}
        # after the entry points (plugins.GROUPS): collections of installed packages, each a
        # name -> reference lookup (pytorch-optimizer's), asked in order
        self.collections: list[Callable[[str], str | None]] = []

    def add(self, entry: T) -> T:
        again = plugins.adding(self.kind, entry.name)  # a plugin module's entry: from where
        if entry.name in self._entries and not again:
            raise ValueError(f"{self.kind} '{entry.name}' is registered twice")
        self._entries[entry.name] = entry
        return entry

    def get(self, name: str) -> T:
        """The entry named `name`; an installed entry point of that name that names a plugin
        module is imported first (it adds the entry itself: plugins.py)."""
        if name not in self._entries:
            self._use_entry_point(name)
        try:
            return self._entries[name]
        except KeyError:
            raise DlbenchError(
                f"unknown {self.kind} '{name}'; choose one of: {', '.join(self.names())}"
            ) from None

    def lookup(self, name: str) -> str:
        """How a name given for an entry reads: a registry name (built-ins win) or a reference
        stays as it is; an installed entry point's name becomes its 'module:Name' (one that
        names a module is imported: it adds the entry); else a collection's reference (the
        first that knows it). A name none of them knows stays too, for `get` to refuse."""
        if name in self._entries or plugins.is_reference(name) or self._use_entry_point(name):
            return name
        found = plugins.entry_point(self.kind, name)
        for source in self.collections:
            if found is not None:
                break
            found = source(name)
        return name if found is None else found

    def _use_entry_point(self, name: str) -> bool:
        """Import the plugin module an entry point `name` names -> whether it added `name`."""
        found = plugins.entry_point(self.kind, name)
        if found is None or plugins.is_reference(found):
            return False
        plugins.use(found, f"entry point {plugins.GROUPS[self.kind]}:{name}")
        if name not in self._entries:
            raise DlbenchError(f"entry point {name} = {found} adds no {self.kind} '{name}'; "
                               f"its module must add it ({self.kind.upper()}S.add)")
        return True

    def names(self) -> list[str]:
        return list(self._entries)

    def __iter__(self) -> Iterator[T]:
        return iter(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries
