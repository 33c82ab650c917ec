"""Lazy packages (PEP 562): submodules and shortcuts import on first use, and ``dir()`` lists them all."""
from __future__ import annotations

import importlib
import importlib.util


def lazy_package(package: str, namespace: dict, submodules=(), shortcuts: dict[str, str] | None = None):
    """``(__getattr__, __dir__)`` for ``package``: ``package.name`` imports the submodule ``name``
    (any submodule on disk), ``package.fn`` with ``shortcuts = {"fn": "submodule"}`` returns
    ``package.submodule.fn``; loaded values are cached in ``namespace`` (the package's globals).
    ``dir(package)`` lists the loaded names, ``submodules`` and every shortcut, before any is used,
    so Jupyter's tab completion shows them."""
    shortcuts = dict(shortcuts or {})
    listed = (*submodules, *shortcuts)

    def __getattr__(name: str):
        if name in shortcuts:
            value = getattr(importlib.import_module(f"{package}.{shortcuts[name]}"), name)
        elif not name.startswith("_") and importlib.util.find_spec(f"{package}.{name}") is not None:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__():
        return sorted(set(namespace) | set(listed))

    return __getattr__, __dir__
