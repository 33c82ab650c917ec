"""Checkers for lesson 04 (introspective learning)."""
from __future__ import annotations

import torch

from ._common import as_number, as_tensor as _as_tensor, checker, fail as _fail, passed as _pass
from ..uncertainty.calibration import BIN_RULES, expected_calibration_error, maximum_calibration_error, top_label


@checker(answer="gradient")
def check_question_gradient(answer, h: torch.Tensor, logits: torch.Tensor, question: int) -> None:
    """Lesson 04: dJ/dW for J = cross-entropy(z, question) of one image, with penultimate features
    ``h`` (D,) and logits ``logits`` (K,): a tensor (K, D)."""
    h, z = h.detach().cpu().double().flatten(), logits.detach().cpu().double().flatten()
    k, d = z.numel(), h.numel()
    g = _as_tensor(answer, "gradient", shape=(k, d),
                   hint="The gradient of the last layer's weights has the weights' shape (K, D). Hint: an outer "
                        "product e h^T.").double()
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


@checker(answer="the ECE")
def check_ece_by_hand(answer, probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> None:
    """Lesson 04: the expected calibration error of ``probs`` (N, K) for ``labels`` (N,) with ``n_bins``
    equal-width confidence bins, a fraction, as ``uncertainty.expected_calibration_error`` computes it (any of
    its edge rules accepted)."""

    value = as_number(answer, "the ECE")
    probs, labels = torch.as_tensor(probs).detach().cpu(), torch.as_tensor(labels).cpu()

    wide = probs.double() / probs.double().sum(1, keepdim=True)  # float64 copy (rows summing to 1 again)

    def ece(p, bins=n_bins):
        return [expected_calibration_error(q, labels, bins, rule) for q in (p, wide) for rule in BIN_RULES]

    def near(values, atol=1e-5):
        return any(abs(value - v) <= atol for v in values)

    conf, correct = top_label(probs, labels)
    conf, correct = conf.double(), correct.double()
    expected = expected_calibration_error(probs, labels, n_bins)
    if near(ece(probs)):
        gap = float(conf.mean() - correct.mean())
        return _pass(f"ECE {expected:.3f} over {n_bins} bins: mean confidence {float(conf.mean()):.1%} against "
                     f"accuracy {float(correct.mean()):.1%}, {'over' if gap > 0 else 'under'}confident by "
                     f"{abs(gap):.1%} on average.")
    if near([100 * v for v in ece(probs)], 1e-3):
        _fail("give the ECE as a fraction in [0, 1], not in per cent.")
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    idx = (torch.bucketize(conf, edges, right=True) - 1).clamp_max(n_bins - 1)
    gaps = [float((correct[idx == b].mean() - conf[idx == b].mean()).abs()) for b in range(n_bins) if (idx == b).any()]
    if near([sum(gaps) / len(gaps)]):
        _fail("each bin's gap |accuracy - confidence| must be weighted by the bin's share of the images, n_b / N, "
              "not averaged over the bins.")
    if near([float(correct.mean() - conf.mean()), float(conf.mean() - correct.mean())]):
        _fail("the signs cancelled: take the absolute gap |accuracy - confidence| in each bin before the weighted sum.")
    if near([float((correct - conf).abs().mean())]):
        _fail("that is the mean gap per image; the ECE first averages accuracy and confidence inside each bin, "
              "then takes the gap of the bin.")
    if near([maximum_calibration_error(probs, labels, n_bins, rule) for rule in BIN_RULES]):
        _fail("that is the largest gap of one bin (the MCE); the ECE is the weighted sum over all bins.")
    for other in (5, 10, 20):
        if other != n_bins and near(ece(probs, other)):
            _fail(f"that is the ECE with {other} bins; use {n_bins} equal-width bins, edges "
                  f"torch.linspace(0, 1, {n_bins + 1}).")
    _fail(f"{value:.4f} is not the ECE. Hint: conf, pred = probs.max(1); give each image the bin of its conf "
          f"({n_bins} equal-width bins); ECE = sum over bins of (n_b / N) * |accuracy_b - mean conf_b|.")
