"""Calibration: does a confidence of 80 % mean 80 % correct?

Metrics take **probabilities** (N, K) whose rows sum to 1 and integer labels (N,). Logits are
rejected with a message, never silently softmaxed. Top-label convention: the confidence of a
sample is ``max_k p_k`` and it is correct when ``argmax_k p_k`` equals the label.

Equal-width binning with B bins (edges ``b_0 = 0 < b_1 < ... < b_B = 1``) needs a rule for values
on an edge. Three rules are in use and give different numbers, so the rule is an explicit argument:

==================  ====================================  ====================================
``rule``            bins                                  a confidence of exactly 1.0 / 0.0
==================  ====================================  ====================================
``"left_closed"``   ``[b_k, b_k+1)``, last ``[b_B-1, 1]``  last bin / first bin   (default)
``"torchmetrics"``  ``[b_k, b_k+1)``                       an extra (B+1)-th bin of its own /
                                                           first bin (as torchmetrics 1.x)
``"right_closed"``  ``(b_k, b_k+1]`` (Guo et al. 2017)     last bin / in no bin, still counted in N
==================  ====================================  ====================================

They differ only for confidences exactly on an edge; in float32 a saturated softmax gives
exactly 1.0 often, so the difference is real for confident models.
"""
from __future__ import annotations

import torch
from torch import nn

from .._core.arguments import checked
from .._core.checks import as_float_tensor, check_binary, check_choice, check_labels, check_logits, check_number, check_probs, check_scores
from .._core.directions import register

__all__ = ["BIN_RULES", "reliability_bins", "expected_calibration_error", "ece", "maximum_calibration_error",
           "mce", "adaptive_ece", "brier_score", "mean_nll", "calibration_summary", "fit_temperature",
           "temperature_scale", "TemperatureScaled", "top_label"]

# the direction of each metric defined here (the package's direction registry, _core.directions)
register('ECE', False, quantity='expected calibration error', family="uncertainty.metrics")
register('MCE', False, quantity='maximum calibration error', family="uncertainty.metrics")
register('adaptive ECE', False, quantity='equal-mass expected calibration error', family="uncertainty.metrics")
register('Brier', False, quantity='multiclass Brier score', family="uncertainty.metrics")
register('NLL', False, quantity='mean negative log-likelihood of the true labels (nats)', family="uncertainty.metrics")

BIN_RULES = ("left_closed", "torchmetrics", "right_closed")


@checked
def top_label(probs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-label confidence ``max_k p_k`` (N,) and correctness ``argmax p == label`` (N,) after checks."""
    probs = check_probs(probs)
    labels = check_labels(labels, "labels", probs.shape[0], probs.shape[1]).to(probs.device)
    conf, pred = probs.max(1)
    return conf, pred == labels


def _check_bins(n_bins) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    return n_bins


@checked
def reliability_bins(confidences, correct, n_bins: int = 15, rule: str = "left_closed") -> dict:
    """Equal-width reliability bins of confidences (N,) in [0, 1] and 0/1 correctness (N,).

    Returns a dict of tensors: ``edges`` (B+1), and per bin ``count``, ``confidence`` (mean
    confidence) and ``accuracy`` (NaN for empty bins), plus ``n`` (the N used for the weights).
    With ``rule="torchmetrics"`` there are B+1 bins, the last one holding confidences equal to 1.0.
    """
    conf = check_scores(confidences, "confidences")
    correct = check_binary(correct, "correct", conf.numel()).to(conf.device)
    n_bins = _check_bins(n_bins)
    check_choice(rule, BIN_RULES, "rule")
    if conf.min() < 0 or conf.max() > 1:
        raise ValueError("confidences must lie in [0, 1]")
    edges = torch.linspace(0, 1, n_bins + 1, dtype=conf.dtype, device=conf.device)
    slots = n_bins + 1 if rule == "torchmetrics" else n_bins
    if rule == "right_closed":
        idx = torch.bucketize(conf, edges, right=False) - 1        # (b_k, b_k+1]; conf = 0 -> -1 (dropped)
        keep = idx >= 0
    else:
        idx = torch.bucketize(conf, edges, right=True) - 1         # [b_k, b_k+1); conf = 1 -> n_bins
        if rule == "left_closed":
            idx = idx.clamp_max(n_bins - 1)
        keep = torch.ones_like(idx, dtype=torch.bool)
    idx, c, a = idx[keep], conf[keep], correct[keep].to(conf.dtype)
    count = torch.zeros(slots, dtype=conf.dtype, device=conf.device).index_add_(0, idx, torch.ones_like(c))
    sum_conf = torch.zeros_like(count).index_add_(0, idx, c)
    sum_acc = torch.zeros_like(count).index_add_(0, idx, a)
    mean_conf = torch.where(count > 0, sum_conf / count.clamp_min(1), torch.nan)
    accuracy = torch.where(count > 0, sum_acc / count.clamp_min(1), torch.nan)
    return {"edges": edges, "count": count, "confidence": mean_conf, "accuracy": accuracy,
            "n": conf.numel(), "rule": rule}


def _gaps(bins):
    nonempty = bins["count"] > 0
    gap = (bins["accuracy"] - bins["confidence"]).abs()
    return nonempty, gap


@checked
def expected_calibration_error(probs, labels, n_bins: int = 15, rule: str = "left_closed") -> float:
    """ECE = sum_k (n_k / N) |acc_k - conf_k| over equal-width bins, in [0, 1]: **lower is better**.

    ``rule="torchmetrics"`` reproduces ``torchmetrics.functional.classification.multiclass_calibration_error``
    (``norm="l1"``) exactly, including its extra bin for confidences equal to 1.0.
    """
    conf, correct = top_label(probs, labels)
    bins = reliability_bins(conf, correct, n_bins, rule)
    nonempty, gap = _gaps(bins)
    return float((bins["count"][nonempty] / bins["n"] * gap[nonempty]).sum())


ece = expected_calibration_error


@checked
def maximum_calibration_error(probs, labels, n_bins: int = 15, rule: str = "left_closed") -> float:
    """MCE = max_k |acc_k - conf_k| over non-empty equal-width bins, in [0, 1]: **lower is better**."""
    conf, correct = top_label(probs, labels)
    bins = reliability_bins(conf, correct, n_bins, rule)
    nonempty, gap = _gaps(bins)
    return float(gap[nonempty].max()) if nonempty.any() else 0.0


mce = maximum_calibration_error


@checked
def adaptive_ece(probs, labels, n_bins: int = 15) -> float:
    """Adaptive (equal-mass) ECE (Nixon et al. 2019): **lower is better**.

    Confidences are sorted and split into ``n_bins`` groups of (almost) equal size, the first
    ``N mod n_bins`` groups one sample larger (as ``torch.tensor_split``); then the ECE formula.
    """
    conf, correct = top_label(probs, labels)
    n_bins = _check_bins(n_bins)
    order = conf.argsort(stable=True)
    total = 0.0
    for group in torch.tensor_split(order, min(n_bins, conf.numel())):
        if group.numel():
            total += group.numel() * abs(float(correct[group].float().mean() - conf[group].mean()))
    return total / conf.numel()


@checked
def brier_score(probs, labels) -> float:
    """Multiclass Brier score ``mean_i sum_k (p_ik - 1[y_i = k])^2``, in [0, 2]: **lower is better**."""
    probs = check_probs(probs)
    labels = check_labels(labels, "labels", probs.shape[0], probs.shape[1]).to(probs.device)
    onehot = torch.nn.functional.one_hot(labels, probs.shape[1]).to(probs.dtype)
    return float((probs - onehot).pow(2).sum(1).mean())


@checked
def mean_nll(probs, labels) -> float:
    """Mean negative log-likelihood of the true labels ``-mean_i log p_i[y_i]`` (nats): **lower is better**."""
    probs = check_probs(probs)
    labels = check_labels(labels, "labels", probs.shape[0], probs.shape[1]).to(probs.device)
    p = probs.gather(1, labels[:, None]).squeeze(1)
    return float(-torch.log(p.clamp_min(torch.finfo(p.dtype).tiny)).mean())


@checked
def calibration_summary(probs, labels, n_bins: int = 15, rule: str = "left_closed") -> dict[str, float]:
    """Accuracy (higher is better) and ECE, MCE, adaptive ECE, Brier, NLL (all lower is better)."""
    conf, correct = top_label(probs, labels)
    return {
        "accuracy": float(correct.float().mean()),
        "ECE": expected_calibration_error(probs, labels, n_bins, rule),
        "MCE": maximum_calibration_error(probs, labels, n_bins, rule),
        "adaptive ECE": adaptive_ece(probs, labels, n_bins),
        "Brier": brier_score(probs, labels),
        "NLL": mean_nll(probs, labels),
    }


# ------------------------------------------------------------------------------ temperature scaling
def _check_logits_not_probs(logits) -> torch.Tensor:
    logits = check_logits(logits)
    if logits.min() >= 0 and logits.max() <= 1 and torch.allclose(logits.sum(1), torch.ones(()).to(logits),
                                                                     atol=1e-4):
        raise ValueError("logits look like probabilities (rows in [0, 1] summing to 1); pass the model's "
                         "logits (pre-softmax outputs) to temperature scaling")
    return logits


@checked
def fit_temperature(logits, labels, max_iter: int = 100, init: float = 1.0) -> float:
    """Temperature scaling (Guo et al. 2017): the T > 0 minimising the NLL of ``softmax(logits / T)``.

    Fit it on a **validation** split, never on the test split. Optimised with L-BFGS (strong-Wolfe
    line search) over log T in float64, so T stays positive. The NLL is convex in 1/T, so the
    optimum is unique; T > 1 softens over-confident predictions, T < 1 sharpens under-confident ones.
    Scaling by T never changes the argmax, so accuracy is unchanged.
    """
    logits = _check_logits_not_probs(logits)
    labels = check_labels(labels, "labels", logits.shape[0], logits.shape[1]).to(logits.device)
    init = check_number(init, "init")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
    z = logits.detach().double()
    log_t = torch.tensor(float(torch.log(torch.tensor(init))), dtype=torch.float64, device=z.device,
                         requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-10, tolerance_change=1e-12)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / log_t.exp(), labels)
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return float(log_t.detach().exp())


@checked
def temperature_scale(logits, temperature: float) -> torch.Tensor:
    """``logits / T`` (check T > 0); softmax of the result is the calibrated prediction."""
    logits = as_float_tensor(logits, "logits")
    return logits / check_number(temperature, "temperature")


class TemperatureScaled(nn.Module):
    """``model`` followed by division of its logits by a fixed temperature T (a calibrated model)."""

    def __init__(self, model: nn.Module, temperature: float):
        super().__init__()
        self.model = model
        self.temperature = check_number(temperature, "temperature")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) / self.temperature
