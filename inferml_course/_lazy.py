"""Lazy attribute loading for packages (PEP 562): submodules and shortcuts import on first use."""
from __future__ import annotations

import importlib
import importlib.util


def lazy_getattr(package: str, namespace: dict, shortcuts: dict[str, str] | None = None):
    """A module ``__getattr__`` for ``package``: ``package.name`` imports the submodule ``name``
    (any submodule on disk), ``package.fn`` with ``shortcuts = {"fn": "submodule"}`` returns
    ``package.submodule.fn``. Loaded values are cached in ``namespace`` (the package's globals)."""
    shortcuts = shortcuts or {}

    def __getattr__(name: str):
        if name in shortcuts:
            value = getattr(importlib.import_module(f"{package}.{shortcuts[name]}"), name)
        elif not name.startswith("__") and importlib.util.find_spec(f"{package}.{name}") is not None:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    return __getattr__
