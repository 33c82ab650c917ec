"""Module-mode context managers shared by the package: every function that runs a model leaves each
module's own ``training`` flag as it found it, also when the body raises."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


def save_modes(model: nn.Module) -> list[tuple[nn.Module, bool]]:
    """Every module of ``model`` with its ``training`` flag."""
    return [(m, m.training) for m in model.modules()]


def restore_modes(saved) -> None:
    """Undo :func:`save_modes`."""
    for module, flag in saved:
        module.training = flag


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every module in eval mode; on exit restore each module's own ``training`` flag (also on errors)."""
    saved = save_modes(model)
    try:
        model.eval()
        yield model
    finally:
        restore_modes(saved)
