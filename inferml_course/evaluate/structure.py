"""Structure-wise insertion and deletion: how many *bits* of the image does an explanation need?

Pixel-wise games (:mod:`.insertion_deletion`) move single pixels in order of importance, which
rewards scattered, non-human-like maps. The structure-wise games of the WACV 2025 tutorial keep the
map's structures intact: threshold the (min-max scaled) map at t, and

* **insertion** (``mode="keep"``): keep the region map >= t and replace the rest by the substrate;
* **deletion** (``mode="remove"``): replace the region map >= t by the substrate and keep the rest.

Instead of the share of pixels, the x-axis is the *information* left: the ratio of the Huffman-coded
size of the masked image to that of the original (8-bit symbols: each channel value quantised to
0..255, one code per image over all its channels). The y-axis is the accuracy over the images
(the class predicted on the masked image equals the target). A good explanation keeps the accuracy
high with few bits (insertion: area under accuracy-versus-bit-ratio, **higher is better**) and
destroys it by removing few bits (deletion: the same area, **lower is better**).

The tutorial calls the keep-the-region sweep a "deletion" too (it deletes everything *below* the
threshold); we name the games by what enters or leaves the image, as in the pixel-wise games.

Details that are ours (the tutorial shows figures but no code, see the reference notes §9):
thresholds default to 0, 0.1, ..., 0.9; both curves get the two method-independent end points
"the whole image" (bit ratio 1) and "only the substrate" (its bit ratio), so every method's
curve spans the same x-range and the AUC is the trapezoid over it divided by its width (a number
in [0, 1]); points are sorted by bit ratio before integrating. The default substrate is the mean
colour: a constant fill costs about one bit per symbol, so removing pixels visibly saves bits
(a blurred substrate would cost nearly as many bits as the image). The message length counts the
coded symbols only, not the code table. A one-symbol image gets one bit per symbol.

:func:`huffman_code_lengths` builds all codes of a batch of histograms at once (the two-queue
construction on sorted counts, vectorised over the batch), so a sweep over many images, maps and
thresholds needs no Python loop over images.

Modes (``policy="as_is"`` of :mod:`inferml_course._core.modes`): the model runs in the mode it is
in; a dropout or batch-norm module in training mode gets one warning per call (the result is random,
batch norm mixes the samples of a batch), and every module's flag and every batch-norm statistic are
restored afterwards, also on errors.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .._core.arguments import checked
from .._core.checks import check_choice
from .._core.directions import describe, higher_is_better, register
from .._core.modes import guarded
from .._core.tables import format_table
from .._core.batching import check_batch_size, chunk_size
from .._core.perturb import first_pass, score_jobs
from ._common import DEFAULT_BLUR_SIGMA, as_map_dict, minmax, substrate_images

__all__ = ["huffman_code_lengths", "huffman_bits", "huffman_code", "symbols", "histograms", "structure_curves",
           "StructureResult", "MODES", "DEFAULT_THRESHOLDS"]

# the direction of each metric defined here (the package's direction registry, _core.directions)
register('structure_insertion_auc', True, quantity='area under the structure-wise insertion (keep) curve', family="evaluate")
register('structure_deletion_auc', False, quantity='area under the structure-wise deletion (remove) curve', family="evaluate")

#: The two structure-wise games: keep the region (insertion) or remove it (deletion), with the direction
#: of their AUC (from the package's direction registry).
MODES = {"keep": f"insertion, {describe(higher_is_better('structure_insertion_auc'))}",
         "remove": f"deletion, {describe(higher_is_better('structure_deletion_auc'))}"}
#: Thresholds on the min-max scaled map.
DEFAULT_THRESHOLDS = tuple(round(0.1 * i, 1) for i in range(10))
_BIG = 1 << 40  # the weight of an absent symbol (never merged before a present one)


@checked
def symbols(images: torch.Tensor) -> torch.Tensor:
    """8-bit symbols (N, C*H*W) in 0..255: each value of images in [0, 1] rounded to a multiple of 1/255."""
    if not isinstance(images, torch.Tensor) or images.dim() < 2 or not images.is_floating_point():
        raise ValueError("images must be a floating tensor (N, ...) with values in [0, 1]")
    return torch.round(images.detach().flatten(1).clamp(0, 1) * 255).long()


@checked
def histograms(images: torch.Tensor) -> torch.Tensor:
    """Counts (N, 256) of the 8-bit symbols of each image."""
    s = symbols(images)
    n = s.shape[0]
    offset = torch.arange(n, device=s.device)[:, None] * 256
    return torch.bincount((s + offset).flatten(), minlength=n * 256).view(n, 256)


@checked
def huffman_code_lengths(counts: torch.Tensor) -> torch.Tensor:
    """Huffman code lengths (B, K) for the symbol counts (B, K) of B alphabets; 0 for absent symbols.

    Optimal prefix code: sum(counts * lengths) is minimal over all prefix codes (tested against a
    brute force on small alphabets). A single present symbol gets length 1. Vectorised over B.
    """
    if not isinstance(counts, torch.Tensor) or counts.dim() != 2 or counts.shape[1] == 0:
        raise ValueError("counts must be a tensor of shape (B, K) with K >= 1")
    if counts.is_floating_point():
        if not torch.isfinite(counts).all() or bool((counts != counts.round()).any()):
            raise ValueError("counts must be non-negative integers")
    if bool((counts < 0).any()):
        raise ValueError("counts must be non-negative integers")
    counts = counts.long()
    b, k = counts.shape
    dev = counts.device
    rows = torch.arange(b, device=dev)
    present = counts > 0
    m = present.sum(1)  # symbols per alphabet
    weight = torch.where(present, counts, torch.full_like(counts, _BIG))
    sorted_w, order = torch.sort(weight, dim=1, stable=True)  # present symbols first, ascending

    nodes = 2 * k - 1  # leaves 0..k-1 (sorted), internal nodes k..2k-2 in creation order
    w = torch.full((b, nodes), _BIG, dtype=torch.long, device=dev)
    w[:, :k] = sorted_w
    parent = torch.full((b, nodes), -1, dtype=torch.long, device=dev)
    leaf_head = torch.zeros(b, dtype=torch.long, device=dev)
    inner_head = torch.full((b,), k, dtype=torch.long, device=dev)

    def pop(created):
        """Take the lighter of the two queue heads (a leaf wins a tie)."""
        leaf_w = torch.where(leaf_head < k, w[rows, leaf_head.clamp_max(k - 1)], torch.full_like(leaf_head, _BIG * 4))
        inner_ok = inner_head < k + created
        inner_w = torch.where(inner_ok, w[rows, inner_head.clamp_max(nodes - 1)], torch.full_like(leaf_head, _BIG * 4))
        take_leaf = leaf_w <= inner_w
        node = torch.where(take_leaf, leaf_head, inner_head)
        leaf_head.add_(take_leaf.long())
        inner_head.add_((~take_leaf).long())
        return node, torch.where(take_leaf, leaf_w, inner_w)

    for s in range(k - 1):
        active = s < m - 1
        if not bool(active.any()):
            break
        a, wa = pop(s)
        c, wc = pop(s)
        new = k + s
        w[:, new] = torch.where(active, wa + wc, w[:, new])
        parent[rows, a] = torch.where(active, torch.full_like(a, new), parent[rows, a])
        parent[rows, c] = torch.where(active, torch.full_like(c, new), parent[rows, c])

    depth = torch.zeros((b, nodes), dtype=torch.long, device=dev)
    for s in range(k - 2, -1, -1):  # internal nodes from the root down (the root is created last)
        node = k + s
        p = parent[:, node]
        depth[:, node] = torch.where(p >= 0, depth[rows, p.clamp_min(0)] + 1, torch.zeros_like(p))
    leaf_parent = parent[:, :k]
    leaf_depth = torch.where(leaf_parent >= 0, depth.gather(1, leaf_parent.clamp_min(0)) + 1,
                             torch.ones_like(leaf_parent))
    lengths_sorted = torch.where(torch.arange(k, device=dev)[None] < m[:, None], leaf_depth,
                                 torch.zeros_like(leaf_depth))
    lengths = torch.zeros_like(lengths_sorted)
    lengths.scatter_(1, order, lengths_sorted)
    return lengths


@checked
def huffman_bits(images: torch.Tensor) -> torch.Tensor:
    """Huffman-coded size in bits (N,) of each image in [0, 1] (8-bit symbols, code table not counted)."""
    counts = histograms(images)
    return (counts * huffman_code_lengths(counts)).sum(1)


@checked
def huffman_code(counts) -> dict:
    """A canonical Huffman code {symbol index: bit string} for one histogram (K,) (for display and tests)."""
    counts = torch.as_tensor(counts)
    if counts.dim() != 1:
        raise ValueError("counts must be one histogram of shape (K,)")
    lengths = huffman_code_lengths(counts[None])[0].tolist()
    code, value, previous = {}, 0, None
    for length, sym in sorted((l, s) for s, l in enumerate(lengths) if l > 0):
        if previous is not None:
            value = (value + 1) << (length - previous)
        code[sym] = format(value, f"0{length}b")
        previous = length
    return code


@dataclass
class StructureResult:
    """Outcome of a structure-wise sweep for one or more maps.

    Per map name: ``bit_ratio[name]``, ``scores[name]``, ``correct[name]`` (N, T + 2) along the
    points "whole image", the T thresholds, "substrate only" (keep mode) or the reverse order for
    remove mode; ``thresholds`` (T,). :meth:`curve` gives the dataset-level curve, :meth:`auc` its area.
    """

    thresholds: torch.Tensor
    bit_ratio: dict
    scores: dict
    correct: dict
    mode: str
    targets: torch.Tensor

    def curve(self, name: str = "map"):
        """(mean bit ratio (P,), accuracy (P,)) over the images, sorted by bit ratio."""
        x = self.bit_ratio[name].double().mean(0)
        y = self.correct[name].double().mean(0)
        order = torch.argsort(x, stable=True)
        return x[order], y[order]

    def auc(self, name: str = "map") -> float:
        """Area under accuracy versus mean bit ratio, divided by the x-range (in [0, 1]).
        Keep mode (insertion): **higher is better**; remove mode (deletion): **lower is better**."""
        x, y = self.curve(name)
        width = float(x[-1] - x[0])
        if width <= 0:
            return float(y.mean())
        return float(((y[1:] + y[:-1]) * 0.5 * x.diff()).sum() / width)

    def summary(self) -> dict:
        key = "structure_insertion_auc" if self.mode == "keep" else "structure_deletion_auc"
        return {name: {key: self.auc(name)} for name in self.bit_ratio}

    def table(self) -> str:
        rows = self.summary()
        key = "structure_insertion_auc" if self.mode == "keep" else "structure_deletion_auc"
        game = "insertion (keep region)" if self.mode == "keep" else "deletion (remove region)"
        header = f"structure-wise {game} AUC ({describe(higher_is_better(key))})"
        return format_table(rows, [key], label="method", headers={key: header}, min_width=8)


@guarded()
@torch.no_grad()
@checked
def structure_curves(model: nn.Module, x: torch.Tensor, maps, target=None, mode: str = "keep",
                     thresholds=DEFAULT_THRESHOLDS, substrate="mean", output: str = "probability",
                     blur_sigma: float = DEFAULT_BLUR_SIGMA, batch_size="auto", normalize=None) -> StructureResult:
    """Structure-wise insertion (``mode="keep"``) or deletion (``mode="remove"``) of one map (N, H, W)
    or several (dict name -> map): threshold the min-max scaled map, keep or remove the region,
    and record the Huffman bit ratio, the score and the correctness of every masked image.

    Accuracy is measured against ``target`` (None: the class predicted on ``x``). Cost: 2 N +
    N T (number of maps) forward images, batched; one Huffman code per masked image, all built in
    one vectorised pass (memory: 256 counts per image).
    Keep-mode AUC: higher is better; remove-mode AUC: lower is better.
    """
    check_choice(mode, tuple(MODES), "mode")
    check_batch_size(batch_size)
    thr = torch.as_tensor(thresholds, dtype=torch.float64)
    if thr.dim() != 1 or thr.numel() == 0 or not torch.isfinite(thr).all() or bool((thr < 0).any()) \
            or bool((thr > 1).any()) or bool((thr.diff() <= 0).any()):
        raise ValueError(f"thresholds must be a non-empty increasing sequence in [0, 1], got {thresholds!r}")
    x, t, full, full_pred = first_pass(model, x, target, output)
    maps, _ = as_map_dict(maps, x)
    names = list(maps)
    n = x.shape[0]
    batch_size = chunk_size(batch_size, x, model=model, work=(len(names) * thr.numel() + 1) * n)
    sub = substrate_images(model, x, substrate, blur_sigma, normalize=normalize).to(x.dtype)
    scaled = torch.stack([minmax(maps[name].to(x)) for name in names])  # (M, N, H, W)
    thr_d = thr.to(device=x.device, dtype=x.dtype)
    tcount = thr.numel()
    total = len(names) * tcount * n  # jobs (map m, threshold j, image i), then the N substrate-only images

    def build(a, b):
        j = torch.arange(min(a, total), min(b, total), device=x.device)
        m, rest = j // (tcount * n), j % (tcount * n)
        k, i = rest // n, rest % n
        region = scaled[m, i] >= thr_d[k, None, None]
        keep = region if mode == "keep" else ~region
        parts = [torch.where(keep[:, None], x[i], sub[i])]
        if b > total:
            parts.append(sub[max(a - total, 0):b - total])
        return torch.cat(parts)

    targets = torch.cat([t.repeat(len(names) * tcount), t])
    counts, scores, predicted = [], [], []
    for start in range(0, total + n, batch_size):
        stop = min(total + n, start + batch_size)
        images = build(start, stop)
        counts.append(histograms(images))
        s, p = score_jobs(model, stop - start, lambda a, b: images[a:b], targets[start:stop], output, stop - start,
                          want_prediction=True)
        scores.append(s)
        predicted.append(p)
    # one vectorised Huffman construction for every masked image, the substrates and the originals
    counts = torch.cat(counts + [histograms(x)])
    bits = (counts * huffman_code_lengths(counts)).sum(1)
    scores, predicted = torch.cat(scores), torch.cat(predicted)
    correct = predicted == targets
    base_bits = bits[total + n:].double().clamp_min(1)
    bits = bits[:total + n]
    ends = {"bit_ratio": (torch.ones(n, dtype=torch.float64, device=x.device), bits[total:].double() / base_bits),
            "scores": (full, scores[total:]), "correct": (full_pred == t, correct[total:])}
    out = {"bit_ratio": {}, "scores": {}, "correct": {}}
    for mi, name in enumerate(names):
        sl = slice(mi * tcount * n, (mi + 1) * tcount * n)
        per = {"bit_ratio": (bits[sl].double().view(tcount, n) / base_bits).t(),
               "scores": scores[sl].view(tcount, n).t(), "correct": correct[sl].view(tcount, n).t()}
        for key in out:
            whole, empty = ends[key]
            first, last = (whole, empty) if mode == "keep" else (empty, whole)
            out[key][name] = torch.cat([first[:, None], per[key], last[:, None]], 1)
    return StructureResult(thr, out["bit_ratio"], out["scores"], out["correct"], mode, t)
