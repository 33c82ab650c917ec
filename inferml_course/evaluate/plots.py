"""Figures for lesson 10 (explanatory evaluation). Every function returns the matplotlib Figure."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from .._core.arguments import checked
from .. import plotting
from .._core.directions import arrow, higher_is_better
from .insertion_deletion import GameResult, auc
from .ranking import rank_methods

__all__ = ["plot_game_curves", "plot_structure_curves", "show_game_frames", "plot_rank_matrix", "plot_study",
           "plot_bits_example"]


@checked
def plot_game_curves(result: GameResult, names=None, title: str | None = None):
    """Mean insertion (left, AUC higher is better) and deletion (right, AUC lower is better) curves,
    one line per map, the mean AUC in the legend."""
    names = list(names) if names is not None else list(result.insertion or result.deletion)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    x = result.fractions.cpu().numpy()
    for ax, game, direction in ((axes[0], "insertion", "higher"), (axes[1], "deletion", "lower")):
        curves = getattr(result, game)
        for name in names:
            if name not in curves:
                continue
            c = curves[name].double()
            ax.plot(x, c.mean(0).cpu().numpy(), label=f"{name} ({float(auc(c, result.fractions).mean()):.2f})", lw=2)
        ax.set_xlabel("fraction of pixels " + ("inserted" if game == "insertion" else "deleted"))
        ax.set_title(f"{game}: AUC {direction} is better")
        ax.legend(fontsize=9, title="mean AUC", title_fontsize=9)
    score = "probability" if result.output == "probability" else "logit"
    axes[0].set_ylabel(f"{score} of the explained class")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


@checked
def plot_structure_curves(keep=None, remove=None, names=None, title: str | None = None):
    """Accuracy versus Huffman bit ratio for the structure-wise games (keep: insertion, higher
    is better; remove: deletion, lower is better)."""
    results = [(r, m) for r, m in ((keep, "keep"), (remove, "remove")) if r is not None]
    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4), squeeze=False)
    for ax, (result, mode) in zip(axes[0], results):
        for name in (names if names is not None else list(result.bit_ratio)):
            bx, acc = result.curve(name)
            ax.plot(bx.cpu().numpy(), acc.cpu().numpy(), marker="o", ms=3, lw=2,
                    label=f"{name} ({result.auc(name):.2f})")
        game = "insertion: keep the region" if mode == "keep" else "deletion: remove the region"
        ax.set_title(f"{game}\n(AUC {'higher' if mode == 'keep' else 'lower'} is better)")
        ax.set_xlabel("Huffman bits of masked image / bits of original")
        ax.set_ylabel("accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=9, title="AUC", title_fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


@checked
def show_game_frames(x: torch.Tensor, maps: dict, fractions=(0.0, 0.1, 0.25, 0.5), game: str = "deletion",
                     substrate_image: torch.Tensor | None = None):
    """One row per map: the image of one game after each pixel fraction (x (C, H, W), maps name -> (H, W)).
    ``substrate_image`` (C, H, W): what removed pixels become (default: mean grey)."""
    c, h, w = x.shape
    sub = substrate_image if substrate_image is not None else torch.full_like(x, 0.5)
    rows = {}
    for name, m in maps.items():
        order = torch.argsort(m.flatten(), descending=True, stable=True)
        frames = []
        for f in fractions:
            moved = torch.zeros(h * w, dtype=torch.bool)
            moved[order[:int(round(f * h * w))]] = True
            keep = moved if game == "insertion" else ~moved
            frames.append(sub + keep.view(1, h, w).to(x.dtype) * (x - sub))
        rows[name] = torch.stack(frames)
    fig = plotting.show_image_rows(rows, ncols=len(fractions),
                                   suptitle=f"{game}: " + ", ".join(f"{f:.0%}" for f in fractions) + " of the pixels")
    return fig


@checked
def plot_rank_matrix(scores: dict, directions: dict | None = None, methods=None, title: str | None = None):
    """Methods (rows) x metrics (columns) coloured by rank (1 = best, dark); the rank in each cell.
    Column labels carry ↑ (higher is better) or ↓ (lower is better)."""
    ranks = rank_methods(scores, directions)
    metrics = list(scores)
    methods = list(methods) if methods is not None else sorted({m for v in scores.values() for m in v})
    mean = {m: np.nanmean([ranks[k].get(m, np.nan) for k in metrics]) for m in methods}
    methods.sort(key=lambda m: mean[m])
    grid = np.array([[ranks[k].get(m, np.nan) for k in metrics] for m in methods])
    fig, ax = plt.subplots(figsize=(1.0 + 0.85 * len(metrics), 0.9 + 0.36 * len(methods)))
    im = ax.imshow(grid, cmap="viridis_r", aspect="auto")
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            if not np.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.0f}", ha="center", va="center", fontsize=9,
                        color="black" if grid[i, j] <= np.nanmax(grid) / 2 else "white")
    ax.set_xticks(range(len(metrics)))
    ax.set_xticklabels([f"{k} {arrow(higher_is_better(k, directions))}" for k in metrics], rotation=40,
                       ha="right", fontsize=10)
    ax.set_yticks(range(len(methods)))
    ax.set_yticklabels(methods, fontsize=10)
    fig.colorbar(im, ax=ax, label="rank (1 = best)", fraction=0.03)
    ax.set_title(title or "Rank of each method under each metric")
    fig.tight_layout()
    return fig


@checked
def plot_study(result, title: str | None = None):
    """Each method's mean preference with its bootstrap interval; the title says whether the
    raters were human or simulated."""
    methods = result.ranking()
    means = [result.methods[m]["mean"] for m in methods]
    low = [result.methods[m]["mean"] - result.methods[m]["low"] for m in methods]
    high = [result.methods[m]["high"] - result.methods[m]["mean"] for m in methods]
    fig, ax = plt.subplots(figsize=(6.5, 0.8 + 0.55 * len(methods)))
    colour = "tab:gray" if result.kind == "simulated" else "tab:blue"
    ax.barh(range(len(methods)), means, xerr=[low, high], color=colour, capsize=4)
    ax.axvline(0, color="black", lw=1)
    ax.set_yticks(range(len(methods)))
    ax.set_yticklabels(methods)
    ax.invert_yaxis()
    ax.set_xlim(-2, 2)
    ax.set_xlabel("mean preference (-2 .. +2, higher is better)")
    ax.set_title(title or f"Which robot is more reasonable?\n{result.label}")
    fig.tight_layout()
    return fig


@checked
def plot_bits_example(images: dict, bits: dict, title: str | None = None):
    """Images (name -> (C, H, W)) titled with their Huffman-coded size in bits."""
    names = list(images)
    fig, axes = plt.subplots(1, len(names), figsize=(2.4 * len(names), 2.8))
    for ax, name in zip(np.atleast_1d(axes), names):
        plotting.show_image(ax, images[name], f"{name}\n{int(bits[name])} bits")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
