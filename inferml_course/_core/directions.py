"""Which way every metric and score of the package is better: one registry, read by every table,
ranking and widget (like torchmetrics' ``higher_is_better`` and Quantus' score direction).

Each name is declared once, with ``higher_is_better`` and the quantity it stands for:

* a **metric** (AUROC, ECE, deletion AUC, MURR, ...): True when a higher value means a better method;
* an **uncertainty score** of :mod:`inferml_course.uncertainty.scores` (``msp``, ``entropy``,
  ``gradtrust``, ...): True when the function's raw output is higher for a *more confident / more
  trustworthy* prediction (a confidence or trust score, which the score registry negates into an
  uncertainty), False when it already is an uncertainty (higher = more uncertain);
* an **attack** metric (membership inference, adversarial success): True when higher means a more
  successful attack (more leakage, more flipped predictions), the quantity those functions report.

Each family declares its names where the metric or score is defined (``register`` or
:func:`metric`; scores through ``uncertainty.registry.score``). Packages are lazy, so a name may be
asked for before its family is imported: on a miss the registry imports the modules the root package
listed with :func:`sources` (by name, so this bottom layer imports no family) and looks again.

No name means two directions: :func:`register` refuses to give a known name the other direction.
A derived name (``"sign iou"``, a metric on the sign masks) is not guessed from its words: callers
pass ``directions={"sign iou": True}`` or ``base={"sign iou": "iou"}``, or register it with
``register("sign iou", base="iou")`` (what :func:`inferml_course.evaluate.merge_summaries` does for
the names its ``prefix`` creates).
"""
from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "ATTACK",
    "DIRECTIONS",
    "METRIC",
    "REGISTRY",
    "SCORE",
    "Direction",
    "arrow",
    "describe",
    "family_view",
    "higher_is_better",
    "metric",
    "names",
    "register",
    "resolve",
    "root",
    "sources",
    "view",
    "word",
]

METRIC, SCORE, ATTACK = "metric", "score", "attack"


@dataclass(frozen=True)
class Direction:
    """One registry entry: ``higher_is_better``, what the number is (``quantity``), where it comes from
    (``family``: the package module) and its ``kind`` (``"metric"``, ``"score"`` or ``"attack"``)."""

    name: str
    higher_is_better: bool
    quantity: str
    family: str
    kind: str = METRIC

    @property
    def text(self) -> str:
        """``"higher is better"`` or ``"lower is better"``."""
        return describe(self.higher_is_better)


_ENTRIES: dict[str, Direction] = {}
_BOOLS: dict[str, bool] = {}
_DERIVED: dict[str, str] = {}  # name registered with base= -> that base
_SOURCES: list[str] = []
_LOADING: list[str] = []


def sources(*modules: str) -> None:
    """Name the modules that register directions (the root package lists them); :func:`_load` imports
    them on the first name the registry does not know."""
    _SOURCES.extend(m for m in modules if m not in _SOURCES)


def _load() -> None:
    """Import every declared source once (``importlib`` by name: the layering stays one-way; a source
    being imported, e.g. the caller's own family, is skipped)."""
    while len(_LOADING) < len(_SOURCES):
        module = _SOURCES[len(_LOADING)]
        _LOADING.append(module)
        importlib.import_module(module)


def _known(name) -> bool:
    if name not in _BOOLS:
        _load()
    return name in _BOOLS


class _View(Mapping):
    """A read-only view of the registry (``{name: value}``), complete however lazily families load."""

    def __init__(self, table: dict, selected: tuple | None = None):
        self._table, self._selected = table, selected

    def __getitem__(self, name):
        if (self._selected is None or name in self._selected) and _known(name):
            return self._table[name]
        raise KeyError(name)

    def __contains__(self, name) -> bool:
        return (self._selected is None or name in self._selected) and _known(name)

    def __iter__(self):
        if self._selected is not None:
            return iter(self._selected)
        _load()
        return iter(list(self._table))

    def __len__(self) -> int:
        return len(list(iter(self)))

    def __repr__(self) -> str:
        return repr(dict(self.items()))


#: name -> :class:`Direction` (read-only view of the registry).
REGISTRY: Mapping[str, Direction] = _View(_ENTRIES)
#: name -> True when higher is better (read-only view of the registry).
DIRECTIONS: Mapping[str, bool] = _View(_BOOLS)


def describe(higher: bool) -> str:
    """``"higher is better"`` or ``"lower is better"``."""
    return "higher is better" if higher else "lower is better"


def word(higher: bool) -> str:
    """``"higher"`` or ``"lower"``."""
    return "higher" if higher else "lower"


def arrow(higher: bool) -> str:
    """``"↑"`` (higher is better) or ``"↓"`` (lower is better)."""
    return "↑" if higher else "↓"


def _hint(name: str) -> str:
    known = [w for w in str(name).replace("(", " ").replace(")", " ").split() if w in _BOOLS and w != name]
    hint = f"pass directions={{{name!r}: True}} (True: higher is better, False: lower is better)"
    if known:
        k = known[-1]
        hint += (f"; if it is the metric {k!r} under another name, that is directions={{{name!r}: {_BOOLS[k]}}} "
                 f"({k!r}: {describe(_BOOLS[k])})")
    return hint


def register(name: str, higher_is_better: bool | None = None, *, base: str | None = None, quantity: str = "",
             family: str = "", kind: str | None = None) -> bool:
    """Declare the direction of ``name`` (or copy that of the registered ``base`` metric) and return it.

    Registering a known name again with the same direction is a no-op; with the other direction it is
    a ``ValueError`` (no name may mean two directions).
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r}")
    if (higher_is_better is None) == (base is None):
        raise TypeError("register needs exactly one of higher_is_better= (a bool) or base= (a registered name)")
    if base is not None:
        parent = _ENTRIES.get(base) if _known(base) else None
        if parent is None:
            raise ValueError(f"base metric {base!r} of {name!r} has no registered direction; {_hint(base)}")
        higher = parent.higher_is_better
        quantity = quantity or f"{parent.quantity} ({name})"
        family = family or parent.family
        kind = kind or parent.kind
    else:
        if not isinstance(higher_is_better, bool):
            raise TypeError(f"higher_is_better must be True or False, got {higher_is_better!r}")
        higher = higher_is_better
    old = _ENTRIES.get(name)
    if old is not None:
        if old.higher_is_better != higher:
            raise ValueError(f"{name!r} is registered as '{old.text}' ({old.quantity}); it cannot also mean "
                             f"'{describe(higher)}': give the other quantity its own name")
        return higher
    _ENTRIES[name] = Direction(name, higher, quantity, family, kind or METRIC)
    _BOOLS[name] = higher
    if base is not None:
        _DERIVED[name] = _DERIVED.get(base, base)
    return higher


def root(name: str) -> str:
    """The registered metric a derived name was registered from (``"MURR 2%"`` -> ``"MURR"``), else ``name``."""
    return _DERIVED.get(name, name)


def resolve(name: str, base: Mapping | None = None) -> Direction | None:
    """The registry entry of ``name`` (through ``base[name]`` when given), or None."""
    target = (base or {}).get(name, name)
    return _ENTRIES.get(target) if _known(target) else None


def higher_is_better(name: str, directions: Mapping | None = None, base: Mapping | None = None) -> bool:
    """True when a higher value of ``name`` is better.

    ``directions`` ({name: bool}) says it for names of the caller's own (it takes precedence, for this
    call only); ``base`` ({name: registered name}) maps a derived name to the registered metric it
    is (``{"sign iou": "iou"}``). Otherwise the registry decides; an unknown name is a ValueError that
    says how to pass its direction.
    """
    if directions and name in directions:
        value = directions[name]
        if type(value).__name__ not in ("bool", "bool_"):
            raise TypeError(f"directions[{name!r}] must be True (higher is better) or False, got {value!r}")
        return bool(value)
    if base and name in base:
        target = base[name]
        if directions and target in directions:
            return higher_is_better(target, directions)
        if not _known(target):
            raise ValueError(f"base[{name!r}] = {target!r} has no registered direction; {_hint(target)}")
        return _BOOLS[target]
    if _known(name):
        return _BOOLS[name]
    raise ValueError(f"the direction of metric {name!r} is unknown (is higher or lower better?); {_hint(name)}")


def names(kind: str | None = None, family: str | None = None) -> tuple[str, ...]:
    """Registered names, optionally of one ``kind`` and / or ``family``."""
    _load()
    return tuple(n for n, d in _ENTRIES.items() if (kind is None or d.kind == kind)
                 and (family is None or d.family == family))


def view(selected: Iterable[str]) -> Mapping[str, bool]:
    """A read-only {name: higher_is_better} of the names ``selected`` (a family's table), read when used."""
    return _View(_BOOLS, tuple(selected))


def family_view(family: str) -> Mapping[str, bool]:
    """A read-only {name: higher_is_better} of the names ``family`` declared (not those derived with ``base=``)."""
    return _FamilyView(family)


class _FamilyView(_View):
    def __init__(self, family: str):
        super().__init__(_BOOLS)
        self._family = family

    def _names(self) -> tuple:
        _load()
        return tuple(n for n, d in _ENTRIES.items() if d.family == self._family and n not in _DERIVED)

    def __getitem__(self, name):
        if name in self._names():
            return _BOOLS[name]
        raise KeyError(name)

    def __contains__(self, name) -> bool:
        return name in self._names()

    def __iter__(self):
        return iter(self._names())


def metric(name: str, higher_is_better: bool, quantity: str, *, family: str, kind: str = METRIC):
    """Decorator: declare the direction of the metric the decorated function computes (``register``
    beside its definition); returns the function unchanged."""
    def declare(function):
        register(name, higher_is_better, quantity=quantity, family=family, kind=kind)
        return function
    return declare
