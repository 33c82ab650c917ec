"""Method registries: each method's facts are declared once, beside its definition, by a decorator.

A family keeps one :class:`Registry` per kind of method (``explain``: explainers; ``uncertainty``:
scores, attribution methods) and a decorator that adds an entry (a frozen dataclass with at least
``name`` and ``order``) where the function is defined, as zennit's ``@register_composite`` does.
Every table of the family is a read-only view of the registry (:class:`Names`, :class:`Column`,
:class:`Members`), computed when read, so a method registered later (in a lesson, a test, a
contributor's module) appears in all of them.

Order: entries with an ``order`` come first, by ``order`` (a number, e.g. a lesson's teaching
order), then the others in registration order. A name registered again with other facts is a
``ValueError``; the same facts again (a reloaded module) replace the entry.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence, Set

__all__ = ["Column", "Members", "Names", "Registry"]


def _facts(entry) -> dict:
    """The fields of ``entry`` that take part in comparison (callables are declared ``compare=False``)."""
    return {f.name: getattr(entry, f.name) for f in dataclasses.fields(entry) if f.compare}


class Registry(Mapping):
    """``{name: entry}`` of one kind, in the registry's order (see the module docstring).

    ``load`` (no arguments) imports the family's modules that register entries; it runs once, before
    the first read, so a view is complete however lazily the family's package is imported.
    """

    def __init__(self, kind: str, load: Callable[[], None] | None = None):
        self.kind = kind
        self._load, self._loaded, self._loading = load, load is None, False
        self._entries: dict = {}
        self._sorted: tuple | None = None

    def add(self, entry):
        """Register ``entry`` (returned); a known name with other facts is a ValueError."""
        name = entry.name
        if not isinstance(name, str) or not name:
            raise TypeError(f"a {self.kind} needs a non-empty string name, got {name!r}")
        old = self._entries.get(name)
        if old is not None and _facts(old) != _facts(entry):
            changed = sorted(k for k, v in _facts(entry).items() if _facts(old).get(k) != v)
            raise ValueError(f"{self.kind} {name!r} is already registered with other facts ({', '.join(changed)}); "
                             "give the new method its own name")
        self._entries[name] = entry
        self._sorted = None
        return entry

    def remove(self, name: str) -> None:
        """Forget ``name`` (for tests that register a throwaway method)."""
        self._entries.pop(name, None)
        self._sorted = None

    def load(self) -> None:
        """Import the registering modules (once; a no-op while they are being imported)."""
        if not self._loaded and not self._loading:
            self._loading = True
            try:
                self._load()
                self._loaded = True
            finally:
                self._loading = False

    def names(self) -> tuple[str, ...]:
        """The registered names, in order."""
        self.load()
        if self._sorted is None:
            position = {n: i for i, n in enumerate(self._entries)}
            self._sorted = tuple(sorted(self._entries, key=lambda n: (
                self._entries[n].order is None, self._entries[n].order or 0, position[n])))
        return self._sorted

    def __getitem__(self, name):
        if name not in self._entries:
            self.load()
        return self._entries[name]

    def __contains__(self, name) -> bool:
        if name not in self._entries:
            self.load()
        return name in self._entries

    def __iter__(self):
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"


class Names(Sequence):
    """The names of a registry, in order, optionally those whose entry passes ``where``; read-only, live."""

    def __init__(self, registry: Registry, where: Callable | None = None):
        self._registry, self._where = registry, where

    def _names(self) -> tuple[str, ...]:
        names = self._registry.names()
        return names if self._where is None else tuple(n for n in names if self._where(self._registry[n]))

    def __getitem__(self, index):
        return self._names()[index]

    def __len__(self) -> int:
        return len(self._names())

    def __contains__(self, name) -> bool:
        return name in self._names()

    def __iter__(self):
        return iter(self._names())

    def __eq__(self, other) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self):
        return hash(self._names())

    def __add__(self, other):
        return self._names() + tuple(other)

    def __repr__(self) -> str:
        return repr(self._names())


class Column(Mapping):
    """``{name: value(entry)}`` over a registry's entries (those with ``keep(value)`` true); read-only, live.

    ``value``: an attribute name or a function of the entry; ``rows``: instead, a function giving each
    entry's ``(key, value)`` pairs (an entry's variants as extra rows)."""

    def __init__(self, registry: Registry, value: str | Callable | None = None, keep: Callable | None = None,
                 rows: Callable | None = None):
        if (value is None) == (rows is None):
            raise TypeError("Column needs exactly one of value= or rows=")
        get = (lambda e: getattr(e, value)) if isinstance(value, str) else value
        self._registry, self._keep = registry, keep
        self._rows = rows or (lambda e: [(e.name, get(e))])

    def _items(self) -> dict:
        out = {}
        for name in self._registry.names():
            for key, value in self._rows(self._registry[name]):
                if self._keep is None or self._keep(value):
                    out[key] = value
        return out

    def __getitem__(self, name):
        return self._items()[name]

    def __iter__(self):
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())

    def __repr__(self) -> str:
        return repr(self._items())


class Members(Set):
    """The names whose entry passes ``where`` (e.g. the signed explainers); read-only, live."""

    def __init__(self, registry: Registry, where: Callable):
        self._names = Names(registry, where)

    def __contains__(self, name) -> bool:
        return name in self._names

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"{{{', '.join(map(repr, self._names))}}}"

    @classmethod
    def _from_iterable(cls, iterable: Iterable):
        return frozenset(iterable)  # set operations give a plain frozenset

