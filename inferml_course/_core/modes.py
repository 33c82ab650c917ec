"""The mode policy shared by every family: modes are never switched silently, and every function that runs a
model leaves each module's own ``training`` flag as it found it, also when the body raises."""
from __future__ import annotations

import contextlib
import warnings
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


_MODE_DEPENDENT = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm)


def check_mode(model: nn.Module, method: str) -> None:
    """Warn (never switch modes silently) when a dropout or batch-norm layer of ``model`` is in training mode."""
    if any(m.training for m in model.modules() if isinstance(m, _MODE_DEPENDENT)):
        warnings.warn(f"{method}: the model is in training mode, so dropout makes the result random and "
                      "batch-norm layers mix the samples of a batch and update their running statistics. "
                      "Call model.eval() first unless that is what you want.", stacklevel=3)


DROPOUT_TYPES = (nn.modules.dropout._DropoutNd,)


def dropout_modules(model: nn.Module) -> list[nn.Module]:
    """Every dropout module (Dropout, Dropout1d/2d/3d, AlphaDropout, FeatureAlphaDropout) of ``model``."""
    return [m for m in model.modules() if isinstance(m, DROPOUT_TYPES)]


@contextlib.contextmanager
def mc_dropout_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode everywhere except the dropout modules, which sample (train mode).

    Batch norm therefore keeps using (and never updates) its running statistics. Every module's
    own flag is restored on exit, also when the body raises.
    """
    drops = dropout_modules(model)
    if not any(m.p > 0 for m in drops):
        raise ValueError("model has no dropout module with p > 0, so MC dropout would return S identical "
                         "predictions; use a model with nn.Dropout layers (e.g. SmallCNN)")
    saved = save_modes(model)
    try:
        model.eval()
        for m in drops:
            m.train()
        yield model
    finally:
        restore_modes(saved)
