"""The lessons' experiments as functions: corrupted test mixes, the misprediction-detection table,
the corruption x severity table, OOD detection and the GradTrust quadrants.

Every table states its metric's direction. Scores come from the registry (higher = more
uncertain); the trust-curve metrics turn them around internally.

Modes (``policy="eval"`` of :mod:`inferml_course._core.modes`): every table here (its scores) is
defined at inference, so a model left in training mode runs in eval mode for the call, with a
warning that says so; every module's own flag is restored afterwards, also on errors.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch

from .._core.arguments import checked
from ..datasets import ImageDataset
from .._core.batching import check_batch_size
from .._core.checks import check_binary, check_length, check_positive_int, check_scores
from .._core.directions import describe, higher_is_better
from .._core.modes import guarded
from .._core.registry import Column
from .metrics import auac, auac_reference, aufc, misprediction_auroc, ood_metrics
from .scores import SCORES, MahalanobisStats, score_batch
from ..datasets.corruptions import corrupt

__all__ = ["corrupted_mix", "misprediction_table", "corruption_table", "format_corruption_table", "ood_table",
           "format_ood_table", "quadrant_counts", "TUTORIAL_NAMES", "TUTORIAL_VARIANTS"]

def _device(model) -> torch.device:
    param = next(iter(model.parameters()), None)
    return param.device if param is not None else torch.device("cpu")


#: Display names in the tutorial's wording: every registry score's label and its variants' (read-only).
TUTORIAL_NAMES = Column(SCORES, rows=lambda spec: [(spec.name, spec.label),
                                                   *((row, label) for row, (_, label) in spec.variants.items())])

#: Score variants the lessons add to the tutorial's tables: row name -> (registry name, options), from
#: each score's ``variants``: the GradTrust demo's GradNorm (the tutorial's GradNorm column) and top-k
#: GradTrust in the slide's orientation (predicted over contrast, the reciprocal of ours). Read-only.
TUTORIAL_VARIANTS = Column(SCORES, rows=lambda spec: [(row, (spec.name, options))
                                                      for row, (options, _) in spec.variants.items()])


@checked
def corrupted_mix(dataset: ImageDataset, corruptions, severities=(1, 2, 3, 4, 5), seed: int = 0,
                  clean_fraction: float = 0.0) -> ImageDataset:
    """A copy of ``dataset`` in which every image gets one random corruption at a random severity.

    A fraction ``clean_fraction`` of the images stays clean. The assignment and the corruptions
    are deterministic for ``seed``. Attributes ``"corruption"`` (index into ``corruptions``, -1 =
    clean) and ``"severity"`` (0 = clean) record what each image got.
    """

    if not isinstance(dataset, ImageDataset):
        raise TypeError(f"dataset must be an ImageDataset, got {type(dataset).__name__}")
    corruptions, severities = list(corruptions), list(severities)
    if not corruptions or not severities:
        raise ValueError("corruptions and severities must be non-empty")
    if not 0 <= clean_fraction < 1:
        raise ValueError(f"clean_fraction must be in [0, 1), got {clean_fraction!r}")
    n = len(dataset)
    gen = torch.Generator().manual_seed(seed)
    which = torch.randint(len(corruptions), (n,), generator=gen)
    level = torch.tensor(severities)[torch.randint(len(severities), (n,), generator=gen)]
    clean = torch.rand(n, generator=gen) < clean_fraction
    which[clean], level[clean] = -1, 0
    images = dataset.images.clone()
    for ci, name in enumerate(corruptions):
        for s in severities:
            idx = torch.nonzero((which == ci) & (level == s)).flatten()
            if idx.numel():
                images[idx] = corrupt(dataset.images[idx], name, int(s), seed=seed + 100 * ci + int(s))
    attributes = dict(dataset.attributes, corruption=which, severity=level)
    return ImageDataset(images, dataset.labels.clone(), dataset.classes, dict(dataset.masks),
                        f"{dataset.name} + corrupted mix", attributes)


@guarded(policy="eval")
@checked
def misprediction_table(model, dataset: ImageDataset, names, *, mahalanobis_stats: MahalanobisStats | None = None,
                        samples: int = 10, seed: int = 0, batch_size="auto", n_points: int = 100,
                        variants: dict | None = None) -> dict:
    """Misprediction detection: for each score, AUAC and AUFC (the tutorial's protocol) and the AUROC
    of flagging wrong predictions. All three: **higher is better**.

    ``variants``: extra rows ``{row name: (registry name, options)}``, each scored with
    ``uncertainty(registry name, model, images, **options)`` (e.g. :data:`TUTORIAL_VARIANTS`).
    Returns ``{"table": {score: {"AUAC", "AUFC", "AUROC"}}, "scores", "logits", "predictions",
    "correct", "accuracy", "reference"}`` where ``reference`` holds the AUAC of a useless
    (``random``) and a perfect (``oracle``) score on these predictions.
    """
    from .scores import uncertainty

    if variants is not None and (not isinstance(variants, Mapping) or not all(
            isinstance(v, tuple) and len(v) == 2 and isinstance(v[1], dict) for v in variants.values())):
        raise TypeError("variants must be a dict {row name: (registry name, options dict)}")
    images = dataset.images.to(_device(model))
    result = score_batch(model, images, names, mahalanobis_stats=mahalanobis_stats,
                         samples=samples, seed=seed, batch_size=batch_size)
    for row, (name, options) in (variants or {}).items():
        if row in result.scores:
            raise ValueError(f"variants row {row!r} is already a score of names")
        result.scores[row] = uncertainty(name, model, images, **options)
    predictions = result.logits.argmax(1).cpu()
    labels = dataset.labels.cpu()
    correct = predictions == labels
    table = {}
    for name, u in result.scores.items():
        u = u.detach().cpu()
        table[name] = {"AUAC": auac(u, correct, n_points=n_points),
                       "AUFC": aufc(u, predictions, labels, n_points=n_points),
                       "AUROC": misprediction_auroc(u, correct) if 0 < int(correct.sum()) < len(correct)
                       else float("nan")}
    return {"table": table, "scores": result.scores, "logits": result.logits, "predictions": predictions,
            "correct": correct, "accuracy": float(correct.float().mean()),
            "reference": auac_reference(correct, n_points)}


@guarded(policy="eval")
@checked
def corruption_table(model, dataset: ImageDataset, corruptions, severities=(1, 2, 3, 4, 5), names=("msp",),
                     n: int | None = 200, seed: int = 0, batch_size="auto", n_points: int = 100) -> dict:
    """AUAC (higher is better) of each score on each corruption and severity, on the first ``n`` images.

    Returns ``{"auac": {(corruption, severity): {score: value}}, "accuracy": {(corruption, severity): acc},
    "scores": {(corruption, severity): {score: (n,) tensor}}, "correct": {(corruption, severity): (n,) bool}}``:
    the per-image scores (CPU) and which predictions are right, so that an AUAC can be bootstrapped over the
    images (the same ``n`` images in every cell) without scoring them again.
    """

    check_batch_size(batch_size)
    if n is not None:
        check_positive_int(n, "n")
    sub = (dataset.images if n is None else dataset.images[:n]).to(_device(model))
    labels = dataset.labels[:sub.shape[0]].cpu()
    out = {"auac": {}, "accuracy": {}, "scores": {}, "correct": {}}
    for ci, name in enumerate(corruptions):
        for s in severities:
            x = corrupt(sub, name, int(s), seed=seed + 100 * ci + int(s))
            result = score_batch(model, x, names, batch_size=batch_size, seed=seed)
            correct = result.logits.argmax(1).cpu() == labels
            scores = {k: v.detach().cpu() for k, v in result.scores.items()}
            out["accuracy"][(name, s)] = float(correct.float().mean())
            out["auac"][(name, s)] = {k: auac(v, correct, n_points=n_points) for k, v in scores.items()}
            out["scores"][(name, s)], out["correct"][(name, s)] = scores, correct
    return out


@checked
def format_corruption_table(result: dict, names, per_block: int = 5, display=None) -> str:
    """The tutorial's layout: levels as rows, corruptions as columns, each cell ``a/b/c/...`` (AUAC in %).

    A ``*`` after a cell marks cells where the last score in ``names`` is the best of all.
    """
    display = display or TUTORIAL_NAMES
    keys = list(result["auac"])
    corruptions = list(dict.fromkeys(c for c, _ in keys))
    levels = list(dict.fromkeys(s for _, s in keys))
    names = list(names)
    higher = higher_is_better("AUAC")
    pick = max if higher else min
    lines = [f"AUAC (%) for {' / '.join(display.get(n, n) for n in names)}: {describe(higher)} "
             f"(* = {display.get(names[-1], names[-1])} best in that cell)"]
    for start in range(0, len(corruptions), per_block):
        block = corruptions[start:start + per_block]
        cell_width = max(6 * len(names) + 2, *(len(c) + 2 for c in block))
        lines.append("Level" + "".join(f"{c.replace('_', ' '):>{cell_width}}" for c in block))
        for s in levels:
            cells = []
            for c in block:
                vals = result["auac"][(c, s)]
                text = "/".join(f"{100 * vals[n]:.1f}" for n in names)
                best = pick(vals[n] for n in names)
                text += "*" if vals[names[-1]] == best else " "
                cells.append(f"{text:>{cell_width}}")
            lines.append(f"{s:<5}" + "".join(cells))
        lines.append("")
    wins = {n: sum(1 for k in keys if pick(names, key=lambda m: result["auac"][k][m]) == n) for n in names}
    lines.append("cells won: " + ", ".join(f"{display.get(n, n)} {w}" for n, w in wins.items())
                 + f" (of {len(keys)})")
    return "\n".join(lines)


@guarded(policy="eval")
@checked
def ood_table(model, id_images: torch.Tensor, ood_sets: dict, names, *, id_scores: dict | None = None,
              mahalanobis_stats: MahalanobisStats | None = None, samples: int = 10, seed: int = 0,
              batch_size="auto") -> dict:
    """OOD / new-class detection: ``{score: {set: {"AUROC" (higher is better), "FPR95" (lower is better)}}}``.

    Positive class = OOD; FPR95 is the fraction of in-distribution images flagged when 95 % of the
    OOD images are caught (first ROC point with TPR >= 0.95). Pass ``id_scores`` to reuse scores
    already computed on ``id_images``.
    """
    kw = dict(mahalanobis_stats=mahalanobis_stats, samples=samples, seed=seed, batch_size=batch_size)
    device = _device(model)
    if id_scores is None:
        id_scores = score_batch(model, id_images.to(device), names, **kw).scores
    for n in names:
        if n not in id_scores:
            raise ValueError(f"id_scores has no {n!r} scores; give every score in names, or id_scores=None")
        check_length(id_scores[n], len(id_images), f"id_scores[{n!r}]", "id_images")
    table = {n: {} for n in names}
    for set_name, images in ood_sets.items():
        scores = score_batch(model, images.to(device), names, **kw).scores
        for n in names:
            table[n][set_name] = ood_metrics(id_scores[n].detach().cpu(), scores[n].detach().cpu())
    return table


@checked
def format_ood_table(table: dict, display=None) -> str:
    """Rows = scores, columns = OOD sets, cells ``AUROC / FPR95`` in %."""
    display = display or TUTORIAL_NAMES
    names = list(table)
    sets = list(dict.fromkeys(s for n in names for s in table[n]))
    width = max(15, *(len(s) + 2 for s in sets))
    first = max(len(display.get(n, n)) for n in names) + 2
    head = (f"AUROC (%, {describe(higher_is_better('AUROC'))}) / FPR95 (%, {describe(higher_is_better('FPR95'))}); "
            "positive = OOD")
    lines = [head,
             " " * first + "".join(f"{s.replace('_', ' '):>{width}}" for s in sets)]
    for n in names:
        cells = "".join(f"{100 * table[n][s]['AUROC']:>{width - 8}.1f} / {100 * table[n][s]['FPR95']:5.1f}"
                        for s in sets)
        lines.append(f"{display.get(n, n):<{first}}" + cells)
    return "\n".join(lines)


@checked
def quadrant_counts(trust, confidence, correct, trust_split: float | None = None,
                    confidence_split: float | None = None) -> dict:
    """Counts of correct and wrong predictions in the four quadrants of (trust, confidence).

    Splits default to the medians. Quadrant names: ``"low trust, high confidence"`` (the
    tutorial's top-left), ``"high trust, high confidence"``, ``"low trust, low confidence"`` and
    ``"high trust, low confidence"`` (bottom-right).
    """
    trust = check_scores(trust, "trust")
    confidence = check_scores(confidence, "confidence")
    if confidence.numel() != trust.numel():
        raise ValueError("trust and confidence must have the same length")
    correct = check_binary(correct, "correct", trust.numel())
    ts = float(trust.median()) if trust_split is None else float(trust_split)
    cs = float(confidence.median()) if confidence_split is None else float(confidence_split)
    high_t, high_c = trust > ts, confidence > cs
    out = {"splits": {"trust": ts, "confidence": cs}}
    for name, mask in {"low trust, high confidence": ~high_t & high_c, "high trust, high confidence": high_t & high_c,
                       "low trust, low confidence": ~high_t & ~high_c,
                       "high trust, low confidence": high_t & ~high_c}.items():
        out[name] = {"correct": int((mask & correct).sum()), "wrong": int((mask & ~correct).sum())}
    return out
