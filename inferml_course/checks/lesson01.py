"""Checkers for lesson 01 (inference and Fisher information)."""
from __future__ import annotations

import torch

from ._common import as_number as _as_number, as_tensor as _as_tensor, checker, fail as _fail, passed as _pass
from ..fisher.toys import logistic_toy_loss, toy_gradient


@checker(answer="fisher")
def check_bernoulli_fisher(answer, theta: float) -> None:
    """Lesson 01: the Fisher information of one coin flip with bias ``theta`` (a number)."""
    value = _as_number(answer, "fisher")
    expected = 1.0 / (theta * (1.0 - theta))
    if abs(value - theta * (1 - theta)) < 1e-9 * max(1.0, expected):
        _fail("that is theta (1 - theta), the variance of the outcome; the Fisher information is the variance "
              "of the *score*, which is its inverse.")
    if abs(value - expected) > 1e-3 * expected:
        _fail(f"{value:.4g} is not the Fisher information at theta = {theta}. Hint: the score is "
              "x / theta - (1 - x) / (1 - theta); average its square over x ~ Bernoulli(theta).")
    return _pass(f"I({theta}) = {expected:.4g}: the variance of the score, and the curvature of the log-likelihood.")


@checker(answer="trace")
def check_fisher_trace(answer, grads: torch.Tensor) -> None:
    """Lesson 01: the trace of the Fisher estimated from per-sample gradients ``grads`` (M, P)."""
    value = _as_number(answer, "trace")
    squared = grads.double().pow(2).sum(1)
    expected = float(squared.mean())
    if abs(value - float(squared.sum())) <= 1e-6 * abs(float(squared.sum())) and grads.shape[0] > 1:
        _fail("you summed over the samples; the Fisher is an expectation, so average over them.")
    if abs(value - float(grads.double().norm(dim=1).mean())) <= 1e-6 * expected and abs(value - expected) > 1e-6:
        _fail("that is the mean gradient norm; the trace of E[U U^T] is the mean *squared* norm.")
    if abs(value - expected) > 1e-4 * max(expected, 1e-12):
        _fail(f"{value:.4g} differs from tr E[U U^T]. Hint: the diagonal of U U^T holds the squared entries "
              "of U, so the trace is the squared norm of U, averaged over the samples.")
    return _pass(f"trace {expected:.4g}: the average squared gradient norm, no P x P matrix needed.")


@checker(answer="direction")
def check_steepest_direction(answer, theta) -> None:
    """Lesson 01: the direction of steepest descent of the logistic toy loss at ``theta`` (a 2-vector)."""

    d = _as_tensor(answer, "direction", shape=(2,), flat=True,
                   hint="Give a direction with 2 entries, one per weight.").double()
    if d.norm() == 0:
        _fail("the zero vector has no direction.")
    g = toy_gradient(logistic_toy_loss, torch.as_tensor(theta, dtype=torch.float64))
    cosine = float(d @ -g / (d.norm() * g.norm()))
    if cosine < -0.999:
        _fail("that is the gradient itself: it points uphill. Steepest *descent* is the opposite direction.")
    if cosine < 0.999:
        _fail(f"the cosine with the steepest-descent direction is {cosine:.3f}. Hint: use torch.autograd.grad "
              "of the loss at theta and flip its sign.")
    return _pass("the negative gradient: locally no other direction of the same length lowers the loss more.")
