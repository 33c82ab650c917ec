"""Checkers for lesson 00 (welcome): each compares an answer with the package's own computation."""
from __future__ import annotations

import torch

from ._common import as_tensor as _as_tensor, fail as _fail, passed as _pass, require_answer


def check_class_counts(answer, dataset) -> bool:
    """Lesson 00: the number of images per class, a tensor (K,) in label order."""
    answer = _as_tensor(answer, "counts")
    expected = torch.bincount(dataset.labels, minlength=len(dataset.classes))
    if answer.shape != expected.shape:
        _fail(f"expected one count per class, shape {tuple(expected.shape)}, got {tuple(answer.shape)}. "
              "Hint: torch.bincount(labels, minlength=K).")
    if not torch.equal(answer.long(), expected):
        _fail("the counts do not match the labels. Hint: count dataset.labels, not predictions.")
    return _pass(f"{len(dataset)} images, {int(expected.min())} to {int(expected.max())} per class.")


def check_accuracy(answer, model, images: torch.Tensor, labels: torch.Tensor, tolerance: float = 1e-4) -> bool:
    """Lesson 00: the accuracy (a float in [0, 1]) of ``model`` on ``images``."""
    from ..models import accuracy

    value = float(require_answer(answer, "accuracy"))
    if value > 1.0:
        _fail(f"{value} is above 1: give the accuracy as a fraction, not a percentage.")
    expected = accuracy(model, images, labels)
    if abs(value - expected) > tolerance:
        _fail(f"{value:.4f} differs from the accuracy we measure. Hint: compare model(x).argmax(1) with the labels, "
              "with the model in eval mode.")
    return _pass(f"accuracy {expected:.2%}.")


def check_hardest_corruption(answer, accuracies: dict) -> bool:
    """Lesson 00: the name of the corruption with the lowest accuracy in ``accuracies``."""
    require_answer(answer, "the corruption")
    if not isinstance(answer, str):
        _fail("answer with the corruption's name, a string such as 'fog'.")
    expected = min(accuracies, key=accuracies.get)
    if answer != expected:
        _fail(f"{answer!r} is not the corruption with the lowest accuracy; look at the table again.")
    return _pass(f"{expected} hurts the model most ({accuracies[expected]:.1%}).")
