"""Metrics for uncertainty scores: detection (AUROC, FPR at 95 % TPR), trust curves (AUAC, AUFC)
and selective prediction (risk-coverage, AURC).

Inputs are plain tensors (or numpy arrays): scores (N,), 0/1 labels or correctness (N,).
Unless a function says otherwise, scores follow the course convention **higher = more uncertain**;
the trust-curve functions take ``kind="uncertainty"`` (default) or ``kind="trust"`` (higher = more
trustworthy, the GradTrust paper's orientation) so that nobody has to remember a sign.

Ties are handled exactly and the same way everywhere: AUROC counts a tied positive/negative pair
as 1/2 (Mann-Whitney), and the curves take the *expected* value over a random order within tied
scores. Consequently all metrics here are invariant under strictly increasing transforms of the
scores, and a constant score is exactly as good as chance.
"""
from __future__ import annotations

import math

import torch

from .._core.arguments import checked
from .._core.checks import check_binary, check_choice, check_labels, check_scores
from .._core.directions import register, view
from .._core.ranks import average_ranks

__all__ = ["auroc", "roc_curve", "fpr_at_tpr", "ood_metrics", "misprediction_auroc", "accuracy_curve",
           "f1_curve", "auac", "aufc", "auac_reference", "risk_coverage_curve", "aurc",
           "DIRECTIONS"]

# the direction of each metric defined here (the package's direction registry, _core.directions)
register('AUROC', True, quantity='area under the ROC curve (uncertainty flags the positives)', family="uncertainty.metrics")
register('FPR95', False, quantity='false-positive rate at 95 % true-positive rate', family="uncertainty.metrics")
register('AUAC', True, quantity='area under the accuracy-versus-retained-fraction curve', family="uncertainty.metrics")
register('AUFC', True, quantity='area under the macro-F1-versus-retained-fraction curve', family="uncertainty.metrics")
register('AURC', False, quantity='area under the risk-coverage curve', family="uncertainty.metrics")
register('accuracy', True, quantity='top-1 accuracy', family="uncertainty.metrics")

#: metric name -> True when higher is better: this module's part of the package's direction registry
#: (:mod:`inferml_course._core.directions`), read-only.
DIRECTIONS = view(("AUROC", "FPR95", "AUAC", "AUFC", "AURC", "ECE", "MCE", "adaptive ECE", "Brier", "NLL",
                   "accuracy"))


def _binary_pair(scores, labels, score_name="scores", label_name="labels"):
    scores = check_scores(scores, score_name)
    labels = check_binary(labels, label_name, scores.numel()).to(scores.device)
    n_pos = int(labels.sum())
    if n_pos == 0 or n_pos == labels.numel():
        raise ValueError(f"{label_name} must contain both classes (got {n_pos} positives of {labels.numel()}); "
                         "AUROC is undefined otherwise")
    return scores, labels, n_pos


@checked
def auroc(scores, labels) -> float:
    """Area under the ROC curve for positives scored *higher*: **higher is better** (0.5 = chance, 1 = perfect).

    Rank-based (Mann-Whitney U, ties count 1/2) on the raw scores: no sigmoid, no binning, so
    unbounded scores (distances, gradient norms, energies) are safe. Equals
    ``sklearn.metrics.roc_auc_score(labels, scores)``.
    """
    scores, labels, n_pos = _binary_pair(scores, labels)
    ranks = average_ranks(scores)  # scipy.stats.rankdata, ties share their mean rank
    n_neg = labels.numel() - n_pos
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@checked
def roc_curve(scores, labels) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ROC for "positive when score >= threshold": ``(fpr, tpr, thresholds)``, one point per distinct
    score (decreasing thresholds), preceded by (0, 0) at threshold +inf. Like scikit-learn's
    ``roc_curve(..., drop_intermediate=False)``.
    """
    scores, labels, n_pos = _binary_pair(scores, labels)
    order = scores.argsort(descending=True, stable=True)
    s, y = scores[order], labels[order].double()
    _, counts = torch.unique_consecutive(s, return_counts=True)
    ends = counts.cumsum(0) - 1
    tp = y.cumsum(0)[ends]
    fp = (1 - y).cumsum(0)[ends]
    zero = torch.zeros(1, dtype=torch.float64, device=s.device)
    fpr = torch.cat([zero, fp / (labels.numel() - n_pos)])
    tpr = torch.cat([zero, tp / n_pos])
    thresholds = torch.cat([torch.full((1,), math.inf, dtype=s.dtype, device=s.device), s[ends]])
    return fpr, tpr, thresholds


@checked
def fpr_at_tpr(id_scores, ood_scores, tpr: float = 0.95, positive: str = "ood", rule: str = "first_ge") -> float:
    """False-positive rate at a given true-positive rate (FPR95 for ``tpr=0.95``): **lower is better**.

    Scores are uncertainties (higher = more likely OOD). Two conventions must be chosen explicitly:

    * ``positive="ood"`` (default; OpenOOD v1.5, pytorch-ood): detect OOD images; TPR = fraction of
      OOD flagged, FPR = fraction of in-distribution (ID) images flagged.
      ``positive="id"`` (Hendrycks et al., ODIN): accept ID images; TPR = fraction of ID accepted,
      FPR = fraction of OOD accepted. The two give different numbers unless the score
      distributions are mirror-symmetric.
    * ``rule="first_ge"`` (default): going down in threshold, the first ROC point whose TPR is
      ``>= tpr`` (the smallest FPR that reaches the target); ``rule="nearest"``: the ROC point whose
      TPR is closest to ``tpr`` (the first one on ties), as in the Hendrycks family of scripts.
    """
    check_choice(positive, ("ood", "id"), "positive")
    check_choice(rule, ("first_ge", "nearest"), "rule")
    if isinstance(tpr, bool) or not isinstance(tpr, (int, float)) or not 0 < tpr <= 1:
        raise ValueError(f"tpr must be a number in (0, 1], got {tpr!r}")
    id_scores = check_scores(id_scores, "id_scores")
    ood_scores = check_scores(ood_scores, "ood_scores").to(id_scores.device)
    scores = torch.cat([id_scores, ood_scores])
    is_ood = torch.cat([torch.zeros(id_scores.numel(), dtype=torch.bool, device=scores.device),
                        torch.ones(ood_scores.numel(), dtype=torch.bool, device=scores.device)])
    if positive == "ood":
        fpr, tprs, _ = roc_curve(scores, is_ood)
    else:
        fpr, tprs, _ = roc_curve(-scores, ~is_ood)
    if rule == "first_ge":
        index = int(torch.nonzero(tprs >= tpr - 1e-12)[0])
    else:
        index = int((tprs - tpr).abs().argmin())
    return float(fpr[index])


@checked
def ood_metrics(id_scores, ood_scores) -> dict[str, float]:
    """``{"AUROC": ..., "FPR95": ...}`` for detecting OOD inputs (positive = OOD, uncertainty scores).

    AUROC: higher is better. FPR95: lower is better (fraction of ID flagged when 95 % of OOD is caught).
    """
    id_scores = check_scores(id_scores, "id_scores")
    ood_scores = check_scores(ood_scores, "ood_scores").to(id_scores.device)
    labels = torch.cat([torch.zeros(id_scores.numel(), dtype=torch.bool),
                        torch.ones(ood_scores.numel(), dtype=torch.bool)]).to(id_scores.device)
    return {"AUROC": auroc(torch.cat([id_scores, ood_scores]), labels),
            "FPR95": fpr_at_tpr(id_scores, ood_scores, 0.95, positive="ood", rule="first_ge")}


@checked
def misprediction_auroc(scores, correct) -> float:
    """AUROC of separating wrong from correct predictions with uncertainty ``scores``: **higher is better**."""
    scores = check_scores(scores)
    correct = check_binary(correct, "correct", scores.numel())
    return auroc(scores, ~correct)


# ------------------------------------------------------------------------------------- trust curves
def _trust(scores, kind: str) -> torch.Tensor:
    check_choice(kind, ("uncertainty", "trust"), "kind")
    scores = check_scores(scores)
    return -scores if kind == "uncertainty" else scores


def _check_points(n_points) -> int:
    if isinstance(n_points, bool) or not isinstance(n_points, int) or n_points < 1:
        raise ValueError(f"n_points must be a positive integer, got {n_points!r}")
    return n_points


def _cumulative_by_trust(trust: torch.Tensor, values: torch.Tensor):
    """Sort by trust (descending); cumulative sums of ``values`` (N, V) at the ends of tied groups.

    Returns boundaries B (G+1,) starting at 0 and cumulative values C (G+1, V) starting at 0.
    """
    order = trust.argsort(descending=True, stable=True)
    t = trust[order]
    v = values[order].double()
    _, counts = torch.unique_consecutive(t, return_counts=True)
    ends = counts.cumsum(0)
    cum = v.cumsum(0)[ends - 1]
    zero_b = torch.zeros(1, dtype=ends.dtype, device=ends.device)
    zero_c = torch.zeros(1, v.shape[1], dtype=v.dtype, device=v.device)
    return torch.cat([zero_b, ends]).double(), torch.cat([zero_c, cum])


def _interpolate(bounds: torch.Tensor, cum: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """Expected cumulative values of the ``kept`` (real) most trusted samples (random order within ties)."""
    j = torch.searchsorted(bounds, kept, right=False).clamp(1, bounds.numel() - 1)
    lo, hi = bounds[j - 1], bounds[j]
    w = ((kept - lo) / (hi - lo)).unsqueeze(1)
    return cum[j - 1] + w * (cum[j] - cum[j - 1])


def _grid(n: int, n_points: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    fractions = torch.arange(n_points, dtype=torch.float64, device=device) / n_points
    return fractions, n * (1 - fractions)


@checked
def accuracy_curve(scores, correct, kind: str = "uncertainty", n_points: int = 100
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The tutorial's accuracy curve: ``(percentiles, accuracy)``.

    Order the images by trust; for each percentile x in ``0, 1/n, ..., (n-1)/n`` keep the
    images above it (the most trusted fraction 1 - x) and measure their accuracy. Higher is
    better at every x; a useless score gives a flat line at the overall accuracy.
    """
    trust = _trust(scores, kind)
    correct = check_binary(correct, "correct", trust.numel()).to(trust.device)
    n_points = _check_points(n_points)
    bounds, cum = _cumulative_by_trust(trust, correct.double().unsqueeze(1))
    fractions, kept = _grid(trust.numel(), n_points, trust.device)
    return fractions, (_interpolate(bounds, cum, kept)[:, 0] / kept)


@checked
def f1_curve(scores, predictions, labels, kind: str = "uncertainty", n_points: int = 100
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """The tutorial's F1 curve: ``(percentiles, macro F1)`` of the images above each trust percentile.

    F1 is the classifier's macro F1 (mean over classes of ``2 TP / (2 TP + FP + FN)``) on the
    retained images, over the classes that occur among their labels or predictions, as
    scikit-learn's ``f1_score(average="macro")``. (The tutorial does not define "F1" further;
    this is the course's reading.)
    """
    trust = _trust(scores, kind)
    n = trust.numel()
    predictions = check_labels(predictions, "predictions", n).to(trust.device)
    labels = check_labels(labels, "labels", n).to(trust.device)
    if labels.min() < 0:
        raise ValueError("labels must be class indices >= 0 (OOD images have no F1)")
    n_points = _check_points(n_points)
    k = int(max(predictions.max(), labels.max())) + 1
    eye = torch.eye(k, dtype=torch.float64, device=trust.device)
    hits = eye[labels] * (predictions == labels).double().unsqueeze(1)     # TP indicator per class
    values = torch.cat([hits, eye[predictions], eye[labels]], dim=1)        # (N, 3K)
    bounds, cum = _cumulative_by_trust(trust, values)
    fractions, kept = _grid(n, n_points, trust.device)
    counts = _interpolate(bounds, cum, kept)
    tp, pred, true = counts[:, :k], counts[:, k:2 * k], counts[:, 2 * k:]
    present = (pred + true) > 1e-9
    f1 = torch.where(present, 2 * tp / (pred + true).clamp_min(1e-300), 0.0)
    return fractions, f1.sum(1) / present.sum(1)


@checked
def auac(scores, correct, kind: str = "uncertainty", n_points: int = 100) -> float:
    """Area under the accuracy curve (:func:`accuracy_curve`), in [0, 1]: **higher is better**.

    The mean accuracy over the n percentiles (a Riemann sum over [0, 1)). A score that carries no
    information gives the overall accuracy a; a perfect ranking gives about ``a (1 + ln(1/a))``
    (see :func:`auac_reference`). So AUAC mixes the model's accuracy with the score's quality:
    compare scores on the same predictions only.
    """
    return float(accuracy_curve(scores, correct, kind, n_points)[1].mean())


@checked
def aufc(scores, predictions, labels, kind: str = "uncertainty", n_points: int = 100) -> float:
    """Area under the macro-F1 curve (:func:`f1_curve`), in [0, 1]: **higher is better**."""
    return float(f1_curve(scores, predictions, labels, kind, n_points)[1].mean())


@checked
def auac_reference(correct, n_points: int = 100) -> dict[str, float]:
    """AUAC of a useless score (``"random"``, = accuracy) and of a perfect one (``"oracle"``)."""
    correct = check_binary(correct, "correct")
    c = correct.double()
    return {"random": auac(torch.zeros_like(c), correct, "trust", n_points),
            "oracle": auac(c, correct, "trust", n_points)}


# -------------------------------------------------------------------------------- selective prediction
@checked
def risk_coverage_curve(scores, correct, kind: str = "uncertainty") -> tuple[torch.Tensor, torch.Tensor]:
    """``(coverage, risk)``: keep the k most trusted samples (k = 1..N), risk = their error rate.

    Coverage k/N; risk is the expected error rate under a random order within tied scores.
    Lower risk at each coverage is better.
    """
    trust = _trust(scores, kind)
    correct = check_binary(correct, "correct", trust.numel()).to(trust.device)
    n = trust.numel()
    bounds, cum = _cumulative_by_trust(trust, (~correct).double().unsqueeze(1))
    kept = torch.arange(1, n + 1, dtype=torch.float64, device=trust.device)
    return kept / n, _interpolate(bounds, cum, kept)[:, 0] / kept


@checked
def aurc(scores, correct, kind: str = "uncertainty", method: str = "mean") -> float:
    """Area under the risk-coverage curve (Geifman et al. 2019): **lower is better**.

    ``method="mean"``: ``(1/N) sum_k risk_k`` (Geifman's discrete definition);
    ``"trapezoid"``: trapezoid over coverage 1/N..1 divided by (1 - 1/N) (torch-uncertainty's AURC).
    """
    check_choice(method, ("mean", "trapezoid"), "method")
    coverage, risk = risk_coverage_curve(scores, correct, kind)
    if method == "mean":
        return float(risk.mean())
    if coverage.numel() < 2:
        raise ValueError("the trapezoid AURC needs at least 2 samples")
    return float(torch.trapezoid(risk, coverage) / (1 - 1 / coverage.numel()))
