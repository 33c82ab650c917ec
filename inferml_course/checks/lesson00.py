"""Checkers for lesson 00 (welcome): each compares an answer with the package's own computation."""
from __future__ import annotations

import torch

from ._common import as_mapping, as_number, as_tensor as _as_tensor, checker, fail as _fail, passed as _pass
from ..models import accuracy, accuracy_under_corruptions
from ..datasets.corruptions import CORRUPTIONS


@checker(answer="counts")
def check_class_counts(answer, dataset) -> None:
    """Lesson 00: the number of images per class, a tensor (K,) in label order."""
    answer = _as_tensor(answer, "counts", shape=(len(dataset.classes),), dtype="integer",
                        hint="One count per class. Hint: torch.bincount(labels, minlength=K).")
    expected = torch.bincount(dataset.labels, minlength=len(dataset.classes))
    if not torch.equal(answer.long(), expected):
        _fail("the counts do not match the labels. Hint: count dataset.labels, not predictions.")
    return _pass(f"{len(dataset)} images, {int(expected.min())} to {int(expected.max())} per class.")


@checker(answer="accuracy")
def check_accuracy(answer, model, images: torch.Tensor, labels: torch.Tensor, tolerance: float = 1e-4) -> None:
    """Lesson 00: the accuracy (a float in [0, 1]) of ``model`` on ``images``."""

    value = as_number(answer, "accuracy")
    if value > 1.0:
        _fail(f"{value} is above 1: give the accuracy as a fraction, not a percentage.")
    if value < 0.0:
        _fail(f"{value} is below 0: an accuracy is the share of correct predictions, between 0 and 1.")
    expected = accuracy(model, images, labels)
    if abs(value - expected) > tolerance:
        _fail(f"{value:.4f} differs from the accuracy we measure. Hint: compare model(x).argmax(1) with the labels, "
              "with the model in eval mode.")
    return _pass(f"accuracy {expected:.2%}.")


@checker(answer="the accuracies")
def check_corruption_accuracies(answer, model, images: torch.Tensor, labels: torch.Tensor, severity: int = 5) -> None:
    """Lesson 00: the accuracy (in [0, 1]) of ``model`` on ``images`` under every corruption at ``severity``,
    a dict {corruption name: accuracy}; recomputed here with ``models.accuracy_under_corruptions``."""

    values = as_mapping(answer, "the accuracies", CORRUPTIONS, value=as_number, form="{corruption name: accuracy}",
                        keys_hint="in CORRUPTIONS, one entry for each")
    if any(v > 1.0 for v in values.values()):
        _fail("an accuracy is above 1: give fractions, not percentages.")
    if any(v < 0.0 for v in values.values()):
        _fail("an accuracy is below 0: give the share of correct predictions, between 0 and 1.")
    expected = accuracy_under_corruptions(model, images, labels, severities=(severity,), progress=False)[:, 0]
    got = torch.tensor([values[name] for name in CORRUPTIONS])
    if not torch.allclose(got, expected, atol=1e-4):
        others = tuple(s for s in range(1, 6) if s != severity)  # only measured for the hint
        table = accuracy_under_corruptions(model, images, labels, severities=others, progress=False)
        for j, other in enumerate(others):
            if torch.allclose(got, table[:, j], atol=1e-4):
                _fail(f"these are the accuracies at severity {other}; the exercise asks for severity {severity}.")
        wrong = [name for j, name in enumerate(CORRUPTIONS) if abs(got[j] - expected[j]) > 1e-4]
        _fail(f"{len(wrong)} of {len(CORRUPTIONS)} accuracies differ from ours (e.g. {wrong[0]}). Hint: for each name, "
              f"corrupt(images, name, {severity}) with the default seed, then compare model(x).argmax(1) with the "
              "labels, without gradients.")
    hardest = CORRUPTIONS[int(expected.argmin())]
    return _pass(f"{hardest} hurts this model most at severity {severity} ({float(expected.min()):.1%}).")
