"""Toy problems of lesson 01 that check the Fisher identities in closed form: the Bernoulli coin
(likelihood, score, Fisher information I(theta) = 1 / (theta (1 - theta)) and its Monte-Carlo estimate)
and a 2-D logistic loss surface for steepest descent."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import grad, vmap

from .._core.arguments import checked
from .._core.checks import check_positive_int

__all__ = ["bernoulli_log_likelihood", "bernoulli_score", "bernoulli_fisher", "bernoulli_fisher_monte_carlo",
           "logistic_toy_loss", "descent_step_losses", "toy_gradient"]

_TOY_CACHE: dict = {}


def _check_theta(theta, argument: str = "theta") -> torch.Tensor:
    t = torch.as_tensor(theta, dtype=torch.float64)
    if not torch.isfinite(t).all() or (t <= 0).any() or (t >= 1).any():
        raise ValueError(f"{argument} must lie strictly between 0 and 1, got {theta!r}")
    return t


def _check_outcomes(x) -> torch.Tensor:
    x = torch.as_tensor(x, dtype=torch.float64)
    if not ((x == 0) | (x == 1)).all():
        raise ValueError("x must hold Bernoulli outcomes 0 or 1")
    return x


@checked
def bernoulli_log_likelihood(theta, x) -> torch.Tensor:
    """``log l(theta | x) = x log theta + (1 - x) log(1 - theta)`` (broadcast over theta and x)."""
    if isinstance(theta, torch.Tensor) and theta.is_floating_point():
        _check_theta(theta.detach())
        t = theta  # keeps the autograd graph, so d/dtheta works on the result
    else:
        t = _check_theta(theta)
    x = _check_outcomes(x).to(t.dtype)
    return x * torch.log(t) + (1 - x) * torch.log1p(-t)


@checked
def bernoulli_score(x, theta) -> torch.Tensor:
    """The score ``d/dtheta log l(theta | x) = x / theta - (1 - x) / (1 - theta)``."""
    t = _check_theta(theta)
    x = _check_outcomes(x)
    return x / t - (1 - x) / (1 - t)


@checked
def bernoulli_fisher(theta) -> torch.Tensor:
    """Closed-form Fisher information of one Bernoulli observation: ``1 / (theta (1 - theta))``."""
    t = _check_theta(theta)
    return 1.0 / (t * (1 - t))


@checked
def bernoulli_fisher_monte_carlo(theta: float, n: int = 100_000, seed: int = 0) -> dict[str, float]:
    """Three Monte-Carlo estimates of the Fisher information of a coin with bias ``theta``.

    Draws ``n`` outcomes with a local generator, computes each outcome's score with autograd
    (``torch.func.vmap(grad(log l))``), and returns the variance of the score, the mean squared
    score ``E[U^2]``, the mean negative curvature ``-E[d^2 log l / dtheta^2]``, the mean score
    (close to 0), and the closed form ``1 / (theta (1 - theta))``.
    """
    t = float(_check_theta(theta))
    check_positive_int(n, "n")
    gen = torch.Generator().manual_seed(int(seed))
    x = (torch.rand(n, generator=gen, dtype=torch.float64) < t).double()

    def loglik(th, xi):
        return xi * torch.log(th) + (1 - xi) * torch.log1p(-th)

    th = torch.tensor(t, dtype=torch.float64)
    scores = vmap(grad(loglik), in_dims=(None, 0))(th, x)
    curvature = vmap(grad(grad(loglik)), in_dims=(None, 0))(th, x)
    return {
        "closed_form": 1.0 / (t * (1 - t)),
        "variance_of_score": float(scores.var(unbiased=True)),
        "mean_squared_score": float(scores.pow(2).mean()),
        "negative_mean_curvature": float(-curvature.mean()),
        "mean_score": float(scores.mean()),
    }


def _toy_data():
    if "data" not in _TOY_CACHE:
        gen = torch.Generator().manual_seed(7)
        n = 60
        y = (torch.arange(n) % 2).double()
        centre = torch.tensor([[0.6, 0.3]], dtype=torch.float64) * (2 * y[:, None] - 1)
        cov = torch.tensor([[1.0, 0.8], [0.0, 0.6]], dtype=torch.float64)
        x = centre + torch.randn(n, 2, generator=gen, dtype=torch.float64) @ cov
        _TOY_CACHE["data"] = (x, y)
    return _TOY_CACHE["data"]


@checked
def logistic_toy_loss(theta: torch.Tensor) -> torch.Tensor:
    """Mean logistic-regression loss of a fixed 2-D toy dataset as a function of the weights.

    ``theta`` has shape (..., 2); the result has shape (...), so a whole grid can be evaluated at
    once for a contour plot. Differentiable: ``torch.autograd.grad`` gives the gradient field.
    """
    if not isinstance(theta, torch.Tensor) or theta.shape[-1:] != (2,):
        raise ValueError("theta must be a tensor of shape (..., 2)")
    x, y = _toy_data()
    z = theta.double() @ x.T  # (..., n)
    return (F.softplus(z) - y * z).mean(-1)


@checked
def descent_step_losses(loss_fn, theta: torch.Tensor, directions: torch.Tensor, step: float = 0.1) -> torch.Tensor:
    """Loss after a step of length ``step`` from ``theta`` along each unit-normalised direction.

    ``directions`` (M, P). Used to show that the negative gradient is the direction of steepest
    descent: for a small step no other direction of the same length lowers the loss more.
    """
    if not isinstance(directions, torch.Tensor) or directions.dim() != 2 or directions.shape[1] != theta.numel():
        raise ValueError(f"directions must have shape (M, {theta.numel()})")
    norms = directions.double().norm(dim=1, keepdim=True)
    if (norms == 0).any():
        raise ValueError("directions contains a zero vector")
    unit = directions.double() / norms
    return loss_fn(theta.double().reshape(1, -1) + step * unit)


@checked
def toy_gradient(loss_fn, theta: torch.Tensor) -> torch.Tensor:
    """``grad loss_fn(theta)`` for a single point ``theta`` (P,), via autograd."""
    t = theta.detach().double().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss_fn(t), t)
    return g
