"""Checkers for lesson 03 (explanatory paradigms)."""
from __future__ import annotations

import torch

from ._common import as_tensor as _as_tensor, fail as _fail, passed as _pass, require_answer


def check_contrast_signal(answer, logits: torch.Tensor, contrast: int) -> bool:
    """Lesson 03: d CE(z, Q) / d z for one logit vector z (K,): what Contrast-CAM back-propagates."""
    answer = _as_tensor(answer, "the gradient").detach().double().reshape(-1)
    z = torch.as_tensor(logits).detach().double().reshape(-1)
    expected = torch.softmax(z, 0)
    expected[int(contrast)] -= 1
    if answer.shape != expected.shape:
        _fail(f"expected one value per class ({expected.numel()}), got {answer.numel()}.")
    onehot = torch.zeros_like(expected)
    onehot[int(contrast)] = 1
    if torch.allclose(answer, onehot - torch.softmax(z, 0), atol=1e-6):
        _fail("the sign is flipped: differentiate the loss CE(z, Q) = -log softmax(z)[Q] itself.")
    if not torch.allclose(answer, expected, atol=1e-6):
        _fail("not quite. Hint: CE(z, Q) = logsumexp(z) - z[Q]; its derivative is softmax(z) - onehot(Q).")
    p = torch.softmax(z, 0)
    top = int(p.argmax())
    return _pass(f"softmax - onehot(Q): +{float(p[top]):.3f} on the predicted class {top}, "
                 f"{float(expected[int(contrast)]):+.3f} on Q = {int(contrast)}; every other class enters too.")


def check_best_pair(answer, table: dict, column: str) -> bool:
    """Lesson 03: the row of ``table`` ({row: {column: value}}) with the highest ``column`` value."""
    require_answer(answer, "the pair")
    expected = max(table, key=lambda row: table[row][column])
    if answer != expected:
        _fail(f"{answer!r} is not the row with the highest {column!r}; read the table again.")
    return _pass(f"{expected}: {table[expected][column]:.3f}.")
