"""Exercise checkers, one module per lesson (``lesson00.py``, ``lesson02.py``...).

A checker prints ``[PASS] ...``, or shows ``[TRY AGAIN] ...`` with a hint (a box in Jupyter, no traceback),
and returns None; it does not raise, so "Run All" goes on past an unanswered exercise. Under the tests
(``INFERML_STRICT_CHECKS=1``) a wrong or missing answer raises ``AssertionError("[TRY AGAIN] ...")``
instead, so a solution notebook fails loudly. Every public function of every lesson module is available
as ``inferml_course.checks.<name>``. Each is marked ``@checker(...)`` and takes its answer through the
helpers of ``_common`` first, so a malformed answer (NaN, a string, a wrong shape...) gets ``[TRY AGAIN]``
too, never ``[PASS]`` or another exception.
"""
from __future__ import annotations

import importlib
import pkgutil

from ._common import PASS, REPORT, STRICT_ENV, TRY_AGAIN  # the wording course.check_lesson reads (not in __all__)

__all__ = []
for _info in pkgutil.iter_modules(__path__):
    if _info.name.startswith("lesson"):
        _module = importlib.import_module(f"{__name__}.{_info.name}")
        for _name in getattr(_module, "__all__", [n for n in dir(_module) if n.startswith("check_")]):
            globals()[_name] = getattr(_module, _name)
            __all__.append(_name)
