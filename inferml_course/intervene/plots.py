"""Figures of lesson 09 (intervenability). Every function returns the matplotlib figure."""
from __future__ import annotations

import textwrap

import matplotlib
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import torch

from .._core.arguments import checked
from .. import plotting
from ..uncertainty.metrics import roc_curve

__all__ = ["plot_membership", "show_adversarial", "plot_robustness", "plot_prompt_curves", "show_prompting",
           "draw_prompts", "plot_do_tables", "show_watermark_interventions", "show_rise_shape"]


def _np(x):
    return x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=float)


# ------------------------------------------------------------------------------------- membership
@checked
def plot_membership(experiments: dict):
    """Per experiment (``{name: membership_experiment(...)}``): histograms of the per-record loss of
    members and non-members; last panel: ROC curves of every attack on log-log axes (low FPR matters)."""

    n = len(experiments)
    fig, axes = plt.subplots(1, n + 1, figsize=(4.6 * (n + 1), 3.8))
    for ax, (name, e) in zip(axes, experiments.items()):
        loss = -_np(e["scores"]["loss"])
        member = _np(e["is_member"]).astype(bool)
        bins = np.logspace(np.log10(max(loss.min(), 1e-8)), np.log10(max(loss.max(), 1e-6)) + 1e-9, 30)
        ax.hist(loss[member], bins=bins, alpha=0.6, label="members", color="tab:red")
        ax.hist(loss[~member], bins=bins, alpha=0.6, label="non-members", color="tab:blue")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        gap = e["gap"]["gap"]
        ax.set(xlabel="cross-entropy loss of the record", ylabel="records",
               title=f"{name}: train-test gap {gap:.0%}")
        ax.legend(fontsize=9)
    ax = axes[-1]
    for name, e in experiments.items():
        for attack, s in e["scores"].items():
            fpr, tpr, _ = roc_curve(s, e["is_member"])
            auc = e["reports"][attack]["AUC"]
            ax.plot(np.clip(_np(fpr), 1e-3, 1), np.clip(_np(tpr), 1e-3, 1),
                    label=f"{name}, {attack} (AUC {auc:.2f})", linestyle="-" if attack == "shadow" else "--")
    ax.plot([1e-3, 1], [1e-3, 1], color="gray", linestyle=":", label="chance")
    ax.set(xscale="log", yscale="log", xlabel="false-positive rate", ylabel="true-positive rate",
           title="membership attacks (log-log ROC)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig



# ------------------------------------------------------------------------------------ adversarial
@torch.no_grad()
@checked
def show_adversarial(model, x: torch.Tensor, x_adv: torch.Tensor, gradient: torch.Tensor, class_names,
                     labels=None, amplify: float = 10.0):
    """Columns: images; rows: clean (prediction), loss gradient (summed over channels, signed),
    perturbation x_adv - x (amplified, around grey), adversarial image (prediction)."""
    device = next(model.parameters()).device
    p_clean = torch.softmax(model(x.to(device)), 1).cpu()
    p_adv = torch.softmax(model(x_adv.to(device)), 1).cpu()
    n = x.shape[0]
    fig, axes = plt.subplots(4, n, figsize=(1.9 * n + 1.2, 8.2), squeeze=False)
    delta = (x_adv - x).cpu()
    for i in range(n):
        k, ka = int(p_clean[i].argmax()), int(p_adv[i].argmax())
        ok = "" if labels is None else (" ✓" if k == int(labels[i]) else " ✗")
        oka = "" if labels is None else (" ✓" if ka == int(labels[i]) else " ✗")
        plotting.show_image(axes[0, i], x[i], f"{class_names[k]} {p_clean[i, k]:.0%}{ok}")
        g = gradient[i].sum(0).cpu()
        bound = float(g.abs().max()) or 1.0
        axes[1, i].imshow(_np(g), cmap="RdBu_r", vmin=-bound, vmax=bound)
        axes[1, i].set_title("dCE/dx", fontsize=10)
        plotting.show_image(axes[2, i], (0.5 + amplify * delta[i]).clamp(0, 1), f"x' - x (x{amplify:g})")
        plotting.show_image(axes[3, i], x_adv[i], f"{class_names[ka]} {p_adv[i, ka]:.0%}{oka}")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for r, name in enumerate(("clean", "gradient", "perturbation", "adversarial")):
        axes[r, 0].set_ylabel(name)
    fig.tight_layout()
    return fig


@checked
def plot_robustness(curves: dict, title: str = "robustness to L-infinity attacks"):
    """Accuracy and attack success rate against epsilon (in 1/255 units) for ``{name: robustness_curve}``."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for name, c in curves.items():
        eps = _np(c["epsilon"]) * 255
        a.plot(eps, _np(c["accuracy"]), marker="o", label=name)
        b.plot(eps, _np(c["success_rate"]), marker="o", label=name)
    a.set(xlabel="epsilon (grey levels out of 255)", ylabel="accuracy (higher = more robust)", title=title,
          ylim=(-0.02, 1.02))
    b.set(xlabel="epsilon (grey levels out of 255)", ylabel="success rate (higher = stronger attack)",
          title="share of correct predictions flipped", ylim=(-0.02, 1.02))
    a.legend()
    b.legend()
    fig.tight_layout()
    return fig


# -------------------------------------------------------------------------------------- prompting
@checked
def plot_prompt_curves(curves: dict, title: str = "IoU after each prompt"):
    """Mean IoU (with the interquartile band) against the number of prompts, one line per strategy;
    the best prompt count of each strategy is marked with a star."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for name, c in curves.items():
        c = _np(c)
        k = np.arange(1, c.shape[1] + 1)
        mean = c.mean(0)
        line, = ax.plot(k, mean, marker="o", label=name.replace("_", " "))
        ax.fill_between(k, np.percentile(c, 25, 0), np.percentile(c, 75, 0), color=line.get_color(), alpha=0.12)
        best = int(mean.argmax())
        ax.plot(k[best], mean[best], marker="*", markersize=16, color=line.get_color())
    ax.set(xlabel="number of point prompts", ylabel="IoU with the sign mask (higher is better)", title=title,
           ylim=(0, 1.02))
    ax.legend()
    fig.tight_layout()
    return fig


@checked
def draw_prompts(ax, points, labels, size: float = 70):
    """Positive prompts as green plus signs, negative ones as red crosses (points are (row, col))."""
    pts = _np(points).reshape(-1, 2)
    lab = _np(labels).astype(bool)
    if len(pts):
        ax.scatter(pts[lab, 1], pts[lab, 0], marker="P", s=size, c="lime", edgecolors="black", linewidths=0.8)
        ax.scatter(pts[~lab, 1], pts[~lab, 0], marker="X", s=size, c="red", edgecolors="black", linewidths=0.8)


@checked
def show_prompting(image: torch.Tensor, mask: torch.Tensor, results: dict, counts=(1, 3, 6, 12)):
    """Rows: strategies (``{name: simulate_annotator(...)}``); columns: the mask after ``counts``
    prompts (orange overlay), the prompts so far, the ground truth outlined in cyan, IoU in the title."""
    fig, axes = plt.subplots(len(results), len(counts), figsize=(2.3 * len(counts) + 1.4, 2.5 * len(results)),
                             squeeze=False)
    for r, (name, res) in enumerate(results.items()):
        for c, k in enumerate(counts):
            ax = axes[r, c]
            k = min(k, len(res["iou"]))
            plotting.show_image(ax, image, f"{k} prompt{'s' if k > 1 else ''}: IoU {float(res['iou'][k - 1]):.2f}",
                                mask=mask)
            overlay = np.zeros((*mask.shape, 4))
            overlay[_np(res["masks"][k - 1]).astype(bool)] = (1.0, 0.55, 0.0, 0.45)
            ax.imshow(overlay)
            draw_prompts(ax, res["points"][:k], res["labels"][:k])
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(name.replace("_", " "))
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------- causal
@checked
def plot_do_tables(tables: dict, class_names, short: int = 12):
    """Per model (``{name: do_table(...)}`` with a last 'removed' column): heatmaps of
    P(y = watermark class | do(S = s), do(W = w)) and P(y = sign class | do(S = s), do(W = w))."""
    names = [c.replace("_", " ")[:short] for c in class_names]
    fig, axes = plt.subplots(len(tables), 2, figsize=(12, 5.2 * len(tables)), squeeze=False)
    for r, (model_name, t) in enumerate(tables.items()):
        t = t.detach().cpu()
        s_count, wp, _ = t.shape
        w_count = wp - 1
        follow_w = torch.stack([t[:, w, w] for w in range(w_count)], 1)  # (S, W)
        follow_s = torch.stack([t[torch.arange(s_count), w, torch.arange(s_count)] for w in range(wp)], 1)  # (S, W')
        for ax, data, title, cols in ((axes[r, 0], follow_w, "P(y = watermark's class)", names[:w_count]),
                                      (axes[r, 1], follow_s, "P(y = sign's class)", names[:w_count] + ["none"])):
            im = ax.imshow(_np(data), vmin=0, vmax=1, cmap="viridis")
            ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=9)
            ax.set_yticks(range(s_count), names[:s_count], fontsize=9)
            ax.set(xlabel="do(W = w): watermark colour of class", ylabel="do(S = s): sign drawn",
                   title=f"{model_name}: {title}")
            fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


@torch.no_grad()
@checked
def show_watermark_interventions(model, image: torch.Tensor, class_names, sign_class: int | None = None):
    """One sign (3, H, W) under every do(W = w) and with the watermark removed, with the model's answer."""
    from .causal import set_watermark

    k = len(class_names)
    x = torch.cat([set_watermark(image[None], w) for w in range(k)] + [set_watermark(image[None], None)])
    device = next(model.parameters()).device
    probs = torch.softmax(model(x.to(device)), 1).cpu()
    names = [str(c).replace("_", " ") for c in class_names]
    titles = [f"do(W = {names[w]})" for w in range(k)] + ["W removed"]
    ncols = min(6, k + 1)  # at most six images per row, full class names on wrapped lines
    nrows = -(-(k + 1) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.0 * ncols, 2.9 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i > k:
            ax.axis("off")
            continue
        p = int(probs[i].argmax())
        mark = "" if sign_class is None else (" ✓" if p == sign_class else " ✗")
        plotting.show_image(ax, x[i], None)
        answer = textwrap.fill(f"→ {names[p]} {probs[i, p]:.0%}{mark}", 18)
        ax.set_title(f"{textwrap.fill(titles[i], 18)}\n{answer}", fontsize=8)
    fig.tight_layout()
    return fig


@checked
def show_rise_shape(images: torch.Tensor, rows: dict, coverage: torch.Tensor | None = None, masks=None):
    """Rows of heatmaps over the same images (``{row name: maps (N, H, W)}``), plus, when given, the
    masks' coverage Mbar (H, W) in an extra first column."""
    n = images.shape[0]
    extra = int(coverage is not None)
    fig, axes = plt.subplots(len(rows), n + extra, figsize=(1.9 * (n + extra) + 1.2, 2.1 * len(rows)),
                             squeeze=False)
    for r, (name, maps) in enumerate(rows.items()):
        if extra:
            ax = axes[r, 0]
            if r == 0:
                im = ax.imshow(_np(coverage), cmap="gray")
                ax.set_title("mask coverage", fontsize=9)
                fig.colorbar(im, ax=ax, fraction=0.046)
            else:
                ax.axis("off")
        for i in range(n):
            ax = axes[r, i + extra]
            plotting.show_image(ax, images[i], None, mask=None if masks is None else masks[i])
            plotting.overlay_heatmap(ax, maps[i])
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, extra].set_ylabel(name)
    fig.tight_layout()
    return fig
