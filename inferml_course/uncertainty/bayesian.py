"""Sampling-based uncertainty: MC dropout, deep ensembles, and total = aleatoric + epistemic.

Conventions (one each):

* samples are stacked **sample-major**: probabilities of shape ``(S, N, K)`` = (stochastic passes
  or ensemble members, inputs, classes);
* members are averaged in **probability** space, never in logit space;
* entropies are in **nats** (natural log), with ``0 log 0 = 0``;
* MC dropout puts the model in eval mode and then only the dropout modules in train mode, so batch
  norm keeps its running statistics (and never updates them). Every module's own ``training`` flag
  is restored afterwards, also when an error interrupts the call. That is the method's own
  definition (``policy="mc_dropout"`` of :mod:`inferml_course._core.modes`): dropout modules in
  training mode are expected, a batch norm in training mode gets a warning that it runs in eval
  mode. Ensembles are defined at inference (``policy="eval"``): a member in training mode runs in
  eval mode, with a warning;
* randomness: the dropout masks come from the global RNG (``nn.Dropout`` takes no generator), so
  the call seeds it from ``seed=`` inside ``torch.random.fork_rng``: the caller's RNG state is
  restored afterwards and the result is deterministic for a given seed, batch size and device.

Decomposition (for S samples p_s of one input)::

    total      H[ mean_s p_s ]            entropy of the mean prediction
    aleatoric  mean_s H[ p_s ]            expected entropy (the data's own noise)
    epistemic  total - aleatoric          mutual information between label and model (>= 0)
"""
from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch
from torch import nn

from .._core.arguments import checked
from .._core.checks import check_choice, check_model, check_model_input, check_positive_int, check_prob_samples
from .._core.batching import batches, check_batch_size, memory_cap
from .._core.adapter import dropout_head
from .._core.modes import dropout_modules, eval_mode, mc_dropout_mode, guarded
from .registry import score

__all__ = ["Decomposition", "entropy_of_mean", "mean_entropy", "mutual_information", "decompose",
           "mc_dropout_probs", "ensemble_probs", "mc_dropout", "ensemble", "MEASURES"]

MEASURES = ("total", "aleatoric", "epistemic")


class Decomposition(NamedTuple):
    """Per-input uncertainty in nats, each (N,): ``total = aleatoric + epistemic``."""

    total: torch.Tensor
    aleatoric: torch.Tensor
    epistemic: torch.Tensor


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -torch.special.xlogy(p, p).sum(-1)


@checked
def entropy_of_mean(probs: torch.Tensor) -> torch.Tensor:
    """Total predictive uncertainty ``H[mean_s p_s]`` (nats) of samples (S, N, K) -> (N,)."""
    return _entropy(check_prob_samples(probs).mean(0))


@checked
def mean_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Aleatoric part ``mean_s H[p_s]`` (nats) of samples (S, N, K) -> (N,)."""
    return _entropy(check_prob_samples(probs)).mean(0)


@checked
def mutual_information(probs: torch.Tensor) -> torch.Tensor:
    """Epistemic part, the mutual information ``H[mean p] - mean H[p]`` (nats, clamped at 0): (N,)."""
    return decompose(probs).epistemic


@checked
def decompose(probs: torch.Tensor, clamp: bool = True) -> Decomposition:
    """Split the uncertainty of samples (S, N, K) into total, aleatoric and epistemic parts (nats).

    Epistemic = total - aleatoric (the mutual information, >= 0 by Jensen's inequality). ``clamp=True``
    sets the tiny negative values that float rounding gives for near-identical samples to 0;
    ``clamp=False`` keeps total = aleatoric + epistemic exact and the result differentiable everywhere
    (uncertainty attribution uses it, so that completeness holds). Differentiable in ``probs``.

    Example: two members that are each certain but disagree (one-hot on different classes) give
    aleatoric 0 and epistemic = total = ln 2.
    """
    return _decomposition(check_prob_samples(probs), clamp)


def _decomposition(probs: torch.Tensor, clamp: bool) -> Decomposition:
    """:func:`decompose` without the argument checks (for probabilities a method computed itself)."""
    total = _entropy(probs.mean(0))
    aleatoric = _entropy(probs).mean(0)
    epistemic = total - aleatoric
    return Decomposition(total, aleatoric, epistemic.clamp_min(0) if clamp else epistemic)


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device):
    """Seed the global RNG of ``device`` (and the CPU) inside fork_rng; the caller's state comes back."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.default_generator.manual_seed(seed)
        if device.type == "cuda":
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield


@guarded(policy="mc_dropout")
@torch.no_grad()
@checked
def mc_dropout_probs(model, x: torch.Tensor, samples: int = 10, seed: int = 0, batch_size="auto",
                     reuse_features: bool = True) -> torch.Tensor:
    """MC-dropout predictive samples (Gal & Ghahramani 2016): probabilities (S, N, K).

    The dropout masks are drawn chunk by chunk, so the numbers depend on ``batch_size``: ``"auto"`` is
    therefore not timed but the memory cap (:func:`~inferml_course._core.batching.memory_cap`, 512
    images of 32 x 32 on a CPU), the same for every run on the same device.

    Only the dropout modules sample; batch norm stays in eval mode. For a network whose dropout sits in
    its head only (:func:`~inferml_course._core.adapter.dropout_head`: a ``SmallCNN``, an ``nn.Sequential``),
    the deterministic trunk runs once and the head S times (``reuse_features=True``); the masks are
    drawn in the same order as S full passes, so both paths give the same numbers.
    """
    x = check_model_input(model, x)
    check_batch_size(batch_size)
    check_positive_int(samples, "samples")
    chunks = batches(x, memory_cap(x) if batch_size == "auto" else batch_size)
    split = dropout_head(model) if reuse_features else None
    with mc_dropout_mode(model), _seeded(seed, x.device):
        if split is not None:  # the trunk has no dropout and its batch norms are in eval mode: run it once
            trunk = [split.features(c) for c in chunks]
        out = []
        for _ in range(samples):
            if split is not None:
                logits = torch.cat([split.head(t) for t in trunk])
            else:
                logits = torch.cat([model(c) for c in chunks])
            out.append(torch.softmax(logits.float(), dim=1))
    return torch.stack(out)


@guarded(policy="eval")
@torch.no_grad()
@checked
def ensemble_probs(model, x: torch.Tensor, batch_size="auto") -> torch.Tensor:
    """Member probabilities (M, N, K) of a deep ensemble (Lakshminarayanan et al. 2017).

    ``model`` is an :class:`~inferml_course.models.Ensemble` (anything with ``member_logits``) or a
    list of models. Every member runs in eval mode; modes are restored.
    """
    check_batch_size(batch_size)
    if isinstance(model, (list, tuple, nn.ModuleList)):
        members = list(model)
        if not members:
            raise ValueError("model is an empty list of ensemble members")
        for m in members:
            check_model(m)
        x = check_model_input(members[0], x)
        with contextlib.ExitStack() as stack:
            for m in members:
                stack.enter_context(eval_mode(m))
            logits = torch.stack([torch.cat([m(c) for c in batches(x, batch_size, model=m)]) for m in members])
    else:
        check_model(model)
        if not hasattr(model, "member_logits"):
            raise TypeError("model must be an Ensemble (with member_logits) or a list of models, "
                            f"got {type(model).__name__}")
        x = check_model_input(model, x)
        with eval_mode(model):
            logits = torch.cat([model.member_logits(c) for c in batches(x, batch_size, model=model)], dim=1)
    return torch.softmax(logits.float(), dim=-1)


def _measure(probs: torch.Tensor, measure: str) -> torch.Tensor:
    check_choice(measure, MEASURES, "measure")
    return getattr(decompose(probs), measure)


def _mc_dropout_parts(p) -> Decomposition:
    """The MC-dropout decomposition of a score pass, shared by ``mc_dropout`` and ``mc_dropout_mi``."""
    return p.shared("mc_dropout", lambda: decompose(mc_dropout_probs(p.model, p.x, samples=p.samples, seed=p.seed,
                                                                     batch_size=p.batch_size)))


def _has_dropout(p) -> bool:
    return any(m.p > 0 for m in dropout_modules(p.model))


def _ensemble_parts(p) -> Decomposition:
    return p.shared("ensemble", lambda: decompose(p.member_probs))


def _is_ensemble(p) -> bool:
    return hasattr(p.model, "member_logits")


@score("mc_dropout", confidence=False, quantity="entropy of the mean MC-dropout prediction (nats)", family="sampling",
       reference="Gal & Ghahramani, ICML 2016", label="MCD", order=90, applies=_has_dropout,
       from_pass=lambda p: _mc_dropout_parts(p).total)
@guarded(policy="mc_dropout")
@checked
def mc_dropout(model, x: torch.Tensor, samples: int = 10, seed: int = 0, measure: str = "total",
               batch_size="auto") -> torch.Tensor:
    """MC-dropout uncertainty (N,) in nats, **higher = more uncertain**.

    ``measure``: ``"total"`` (entropy of the mean prediction, the registry's ``mc_dropout``),
    ``"aleatoric"`` (mean entropy) or ``"epistemic"`` (mutual information, ``mc_dropout_mi``).
    """
    check_choice(measure, MEASURES, "measure")
    return _measure(mc_dropout_probs(model, x, samples, seed, batch_size), measure)


@score("ensemble", confidence=False, quantity="entropy of the mean ensemble prediction (nats)", family="sampling",
       reference="Lakshminarayanan et al., NeurIPS 2017", label="Ensemble", order=110, applies=_is_ensemble,
       from_pass=lambda p: _ensemble_parts(p).total)
@guarded(policy="eval")
@checked
def ensemble(model, x: torch.Tensor, measure: str = "total", batch_size="auto") -> torch.Tensor:
    """Deep-ensemble uncertainty (N,) in nats, **higher = more uncertain** (``measure`` as in :func:`mc_dropout`)."""
    check_choice(measure, MEASURES, "measure")
    return _measure(ensemble_probs(model, x, batch_size), measure)


score("mc_dropout_mi", confidence=False, quantity="mutual information of MC-dropout samples (nats)", family="sampling",
      reference="Gal & Ghahramani, ICML 2016", label="MCD (MI)", order=100, applies=_has_dropout,
      from_pass=lambda p: _mc_dropout_parts(p).epistemic, options={"measure": "epistemic"})(mc_dropout)
score("ensemble_mi", confidence=False, quantity="mutual information between members (nats)", family="sampling",
      reference="Lakshminarayanan et al., NeurIPS 2017", label="Ensemble (MI)", order=120, applies=_is_ensemble,
      from_pass=lambda p: _ensemble_parts(p).epistemic, options={"measure": "epistemic"})(ensemble)
