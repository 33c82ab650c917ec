"""Figures and a live-teaching widget for lesson 01 (inference and Fisher information).

Like :mod:`inferml_course.plotting`, every function returns a matplotlib ``Figure`` (or draws on a
given ``ax``) and never calls ``plt.show()``.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from .._core.arguments import checked
from .. import fisher

__all__ = ["plot_bernoulli_fisher", "plot_spectra", "plot_descent",
           "plot_score_distributions"]


@checked
def plot_bernoulli_fisher(theta: float = 0.3, n: int = 2000, seed: int = 0):
    """Two panels for a coin with bias ``theta``.

    Left: the expected log-likelihood ``E_x[log l(t | x)]`` as a function of the candidate ``t``,
    with its quadratic approximation ``-I(theta) (t - theta)^2 / 2`` (a larger Fisher information
    means a sharper peak). Right: ``I(t) = 1 / (t (1 - t))`` with the Monte-Carlo estimates
    (``n`` draws) at ``theta``.
    """
    mc = fisher.bernoulli_fisher_monte_carlo(theta, n=n, seed=seed)
    info = mc["closed_form"]
    t = torch.linspace(0.02, 0.98, 300, dtype=torch.float64)
    expected = theta * torch.log(t) + (1 - theta) * torch.log1p(-t)
    peak = theta * np.log(theta) + (1 - theta) * np.log1p(-theta)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    ax1.plot(t, expected, lw=2, label="expected log-likelihood")
    ax1.plot(t, peak - 0.5 * info * (t - theta) ** 2, "--", label="curvature from the Fisher information")
    ax1.axvline(theta, color="gray", lw=1)
    ax1.set_ylim(float(expected.min()) - 0.1, peak + 0.25)
    ax1.set_xlabel("candidate bias t")
    ax1.set_ylabel(r"$E_x[\log \ell(t \mid x)]$")
    ax1.set_title(f"true bias {theta:.2f}: peak curvature = I = {info:.2f}")
    ax1.legend(loc="lower center")
    ax2.plot(t, 1 / (t * (1 - t)), lw=2, color="k", label=r"closed form $1/(t(1-t))$")
    ax2.scatter([theta], [mc["variance_of_score"]], s=80, marker="o", label=f"Var[U], {n} draws", zorder=3)
    ax2.scatter([theta], [mc["mean_squared_score"]], s=40, marker="x", color="C3", label="E[U²]", zorder=4)
    ax2.set_yscale("log")
    ax2.set_xlabel("bias t")
    ax2.set_ylabel("Fisher information I(t)")
    ax2.set_title("rare outcomes are surprising: I grows near 0 and 1")
    ax2.legend(loc="upper center")
    fig.tight_layout()
    return fig


@checked
def plot_spectra(spectra: dict, ax=None, title: str = "representation spectra", normalize: bool = True):
    """Sorted covariance singular values per dataset on a log scale (``normalize``: divide by the largest)."""
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, s in spectra.items():
        s = s.detach().cpu().double()
        s = s / s[0] if normalize else s
        ax.semilogy(np.arange(1, len(s) + 1), s.clamp_min(1e-12).numpy(), lw=2,
                    label=f"{name} (eff. rank {fisher.effective_rank(s.float()):.1f})")
    ax.set_xlabel("index of the singular value")
    ax.set_ylabel("singular value" + (" / largest" if normalize else ""))
    ax.set_title(title)
    ax.set_ylim(1e-6, 2)
    ax.legend()
    return fig if fig is not None else ax.figure


@checked
def plot_descent(theta: torch.Tensor, step: float = 0.6, n_paths: int = 3, loss_fn=None, ax=None,
                 extent: float = 4.0):
    """Contours of a 2-D loss with the negative gradient and ``n_paths`` other directions from ``theta``.

    Each arrow has the same length ``step``; the legend gives the loss at its tip. ``loss_fn``
    defaults to :func:`inferml_course.fisher.logistic_toy_loss`.
    """
    loss_fn = fisher.logistic_toy_loss if loss_fn is None else loss_fn
    theta = torch.as_tensor(theta, dtype=torch.float64)
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.2, 5.4))
    g = np.linspace(-extent, extent, 120)
    grid = torch.tensor(np.stack(np.meshgrid(g, g), -1))
    with torch.no_grad():
        surface = loss_fn(grid).numpy()
    cs = ax.contour(g, g, surface, levels=20, cmap="viridis")
    ax.clabel(cs, fontsize=8, fmt="%.2f")
    grad = fisher.toy_gradient(loss_fn, theta)
    angles = torch.linspace(0, 2 * np.pi, n_paths + 1, dtype=torch.float64)[:-1] + 0.9
    directions = torch.cat([-grad.view(1, 2), torch.stack([angles.cos(), angles.sin()], 1)])
    with torch.no_grad():
        losses = fisher.descent_step_losses(loss_fn, theta, directions, step)
        start = float(loss_fn(theta))
    unit = directions / directions.norm(dim=1, keepdim=True)
    colors = ["C3", "C0", "C1", "C2", "C4", "C5", "C6", "C7", "C8", "C9"]
    for i, (d, value) in enumerate(zip(unit, losses)):
        color = colors[i % len(colors)]
        label = ("negative gradient" if i == 0 else f"path {i}") + f": loss {start:.3f} → {float(value):.3f}"
        ax.annotate("", xy=(float(theta[0] + step * d[0]), float(theta[1] + step * d[1])),
                    xytext=(float(theta[0]), float(theta[1])),
                    arrowprops=dict(arrowstyle="->", lw=3 if i == 0 else 1.8, color=color))
        ax.plot([], [], color=color, lw=3 if i == 0 else 1.8, label=label)
    ax.plot(*theta.tolist(), "ko")
    ax.set_xlim(-extent, extent)
    ax.set_ylim(-extent, extent)
    ax.set_xlabel(r"weight $\theta_1$")
    ax.set_ylabel(r"weight $\theta_2$")
    ax.set_title("which way is down? (equal step lengths)")
    ax.legend(loc="lower left", fontsize=9)
    ax.set_aspect("equal")
    return fig if fig is not None else ax.figure


@checked
def plot_score_distributions(scores: dict, xlabel: str, title: str | None = None, ax=None, log: bool = True):
    """One box per input set (e.g. clean, corrupted, OOD) of a per-sample score such as a gradient norm."""
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(scores) + 2), 4))
    values = [s.detach().cpu().double().clamp_min(1e-12).numpy() for s in scores.values()]
    try:  # matplotlib >= 3.10
        ax.boxplot(values, orientation="horizontal", showfliers=False)
    except TypeError:  # older matplotlib (e.g. on Colab)
        ax.boxplot(values, vert=False, showfliers=False)
    ax.set_yticks(range(1, len(scores) + 1), [k.replace("_", " ") for k in scores])
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title)
    return fig if fig is not None else ax.figure
