"""Checkers for lesson 04 (introspective learning)."""
from __future__ import annotations

import torch

from ._common import as_tensor as _as_tensor, fail as _fail, passed as _pass


def check_question_gradient(answer, h: torch.Tensor, logits: torch.Tensor, question: int) -> bool:
    """Lesson 04: dJ/dW for J = cross-entropy(z, question) of one image, with penultimate features
    ``h`` (D,) and logits ``logits`` (K,): a tensor (K, D)."""
    g = _as_tensor(answer, "gradient").double()
    h, z = h.detach().double().flatten(), logits.detach().double().flatten()
    k, d = z.numel(), h.numel()
    if g.shape != (k, d):
        _fail(f"the gradient of the last layer's weights has the weights' shape (K, D) = ({k}, {d}), "
              f"got {tuple(g.shape)}. Hint: an outer product e h^T.")
    p = torch.softmax(z, 0)
    onehot = torch.nn.functional.one_hot(torch.tensor(question), k).double()
    expected = torch.outer(p - onehot, h)
    if torch.allclose(g, -expected, atol=1e-5):
        _fail("the sign is flipped: the gradient of the loss is (p - onehot(I)) h^T.")
    if torch.allclose(g, torch.outer(z - onehot, h), atol=1e-5):
        _fail("that is the MSE-on-logits form (z - onehot) h^T; for cross-entropy use the probabilities p.")
    if not torch.allclose(g, expected, atol=1e-5, rtol=1e-4):
        _fail("not the cross-entropy gradient. Hint: dJ/dz = softmax(z) - onehot(I), and z = W h + b, "
              "so dJ/dW = (softmax(z) - onehot(I)) h^T.")
    return _pass(f"question {question}: only rows where p differs from onehot({question}) move, "
                 "so a confident model gives sparse gradients.")


def check_accuracy_gain(answer, result: dict) -> bool:
    """Lesson 04: the mean accuracy gain (introspective minus feed-forward) over every corruption and
    severity of ``result`` (from ``corruption_benchmark``), as a fraction (e.g. 0.012 for +1.2 points)."""
    value = float(_as_tensor(answer, "gain"))
    acc = result["accuracy"]
    expected = float((acc["introspective"] - acc["feed-forward"]).mean())
    if abs(value - expected) <= 1e-6:
        return _pass(f"mean gain {expected:+.2%} (the paper reports about +4 % on CIFAR-10-C).")
    if abs(value / 100 - expected) <= 1e-6:
        _fail("give the gain as a fraction, not in percentage points.")
    if abs(value + expected) <= 1e-6:
        _fail("the sign is flipped: introspective minus feed-forward.")
    _fail(f"{value:.4f} is not the mean of the introspective minus the feed-forward accuracy table.")
